# tests/bench/lib.sh: what every benchmark script shares — log lines, and the lifecycle:
# a temp dir, the PIDs the script started (and only those) stopped in reverse order on
# any exit, the temp dir removed unless BENCH_KEEP=1.
#
#   . "$ROOT/tests/bench/lib.sh"
#   bench_begin xfbench-NAME          # TMP=/tmp/xfbench-NAME.XXXXXX, traps set
#   some_server & PIDS+=($!)
#   bench_cleanup_hook() { ...; }     # optional: runs first on exit
#
# stop_pid: SIGTERM, up to STOP_WAIT_TENTHS (50) × 0.1 s, then SIGKILL; a zombie counts
# as gone.

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < ${STOP_WAIT_TENTHS:-50}; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    ps -p "$pid" -o stat= 2>/dev/null | grep -qv Z || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
  local rc=$? i
  trap - EXIT
  if declare -F bench_cleanup_hook >/dev/null; then bench_cleanup_hook || true; fi
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "keeping $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}

bench_begin() {
  PIDS=()
  TMP=$(mktemp -d "/tmp/$1.XXXXXX")
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# bench_make_cert DIR NAME [STEM]: a throwaway CA (DIR/ca.pem, ca.key) and an ECDSA
# P-256 server certificate for NAME signed by it, valid two days: DIR/STEM.key,
# DIR/STEM.crt and DIR/STEM.pem = certificate + CA (the chain a proxy serves); STEM
# defaults to NAME.
bench_make_cert() {
  local d=$1 name=$2 n=${3:-$2}
  mkdir -p "$d"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$d/ca.key" -out "$d/ca.pem" -days 2 -subj "/CN=bench CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    >/dev/null 2>&1 || die "CA generation"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/$n.key" 2>/dev/null
  openssl req -new -key "$d/$n.key" -subj "/CN=$name" -out "$d/$n.csr" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:%s\n' "$name" >"$d/ext.cnf"
  openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
    -CAcreateserial -days 2 -extfile "$d/ext.cnf" -out "$d/$n.crt" 2>/dev/null ||
    die "certificate generation"
  cat "$d/$n.crt" "$d/ca.pem" >"$d/$n.pem"
}
