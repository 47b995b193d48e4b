#!/usr/bin/env bash
# Scale benchmark (issue 10 item 6; tests/bench/README.md "Scale"): 10, 1,000 and 10,000
# tenants, each with its own ECDSA P-256 certificate (gen_tenants.py, cached under
# /tmp/xf-bench-reload-N, shared with bench_reload.sh). For each size xmppfront runs with
# one worker pinned to CPU 0 (taskset), the load on CPU 1, and the script prints:
#   - start time (exec -> listening) and RSS 1 s after;
#   - handshake CPU per connection: COUNT full TLS 1.3 handshakes (snic.c, OpenSSL,
#     THREADS sequential clients) with the SNI drawn at random over ALL tenants, each
#     checked to get the certificate of the name it asked for; the proxy's CPU
#     (utime+stime of all its threads, /proc/PID/stat) over the run / COUNT;
#   - then the lookup itself: lookup_bench.c calling xf_registry_for_sni 1e6 times per
#     size (10 / 1,000 / 10,000 tenants) in one process.
# XF_BIN_B (and XF_BUILD_B for the lookup) name a second build measured alternately in
# the same run ("before" vs "after"). Figures only: exit 1 only when a handshake failed
# or got the wrong certificate. Bounded: each step has a timeout; only its own PIDs are
# signalled.
#   tests/bench/bench_scale.sh     SIZES="10 1000" COUNT=1000 tests/bench/bench_scale.sh
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
XF_BIN=${XF_BIN:-$ROOT/build/xmppfront}
XF_BUILD=${XF_BUILD:-$(dirname "$XF_BIN")}
XF_BIN_B=${XF_BIN_B:-}
XF_BUILD_B=${XF_BUILD_B:-${XF_BIN_B:+$(dirname "$XF_BIN_B")}}
SIZES=${SIZES:-10 1000 10000}
COUNT=${COUNT:-2000}
WARMUP=${WARMUP:-200}
THREADS=${THREADS:-2}
LOOKUPS=${LOOKUPS:-1000000}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PY=/usr/bin/python3
BENCH="$ROOT/tests/bench"

. "$BENCH/lib.sh"
bench_begin xfbench-scale
for b in "$XF_BIN" ${XF_BIN_B:+"$XF_BIN_B"}; do
  [ -x "$b" ] || { log "no binary at $b (build first or set XF_BIN)"; exit 2; }
done
command -v taskset >/dev/null || { log "taskset missing (util-linux)"; exit 2; }
cc -O2 -Wall -o "$TMP/snic" "$BENCH/snic.c" -lssl -lcrypto -lpthread || { log "building snic"; exit 2; }
build_lookup() {      # build_lookup BUILD_DIR OUT
  cc -O2 -Wall -I"$ROOT" -o "$2" "$BENCH/lookup_bench.c" "$1/libxf_tenants.a" \
    "$1/libxf_certs.a" -lmbedtls -lmbedx509 -lmbedcrypto -lyajl -lpthread
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
  local i
  for ((i = 0; i < ${2:-600} * 20; i++)); do
    ss -Hltn "sport = :$1" | grep -q . && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

fail=0
# run_one N LABEL BIN: one xmppfront with N tenants; prints its line.
run_one() {
  local n=$1 label=$2 bin=$3 cache=/tmp/xf-bench-reload-$1 d="$TMP/n$1-$2"
  mkdir -p "$d"
  "$PY" "$BENCH/gen_tenants.py" tenants "$cache" "$n" "127.0.0.1:9" "$d/tenants"
  local port; port=$(free_port)
  cat >"$d/xmppfront.json" <<EOF
{"workers": 1, "tenants": "tenants", "log_level": "warn",
 "limits": {"max_connections_per_ip": 0},
 "listeners": [{"address": "127.0.0.1", "port": $port, "tls": "direct", "service": "client"}]}
EOF
  local t0 pid; t0=$(date +%s.%N)
  taskset -c "$SERVER_CPU" "$bin" -c "$d/xmppfront.json" 2>"$d/xmppfront.log" &
  pid=$!
  PIDS+=("$pid")
  if ! wait_port "$port" 600 "$pid"; then
    log "xmppfront ($label, $n tenants) did not listen"; tail -3 "$d/xmppfront.log" >&2
    fail=1; return
  fi
  local start_s; start_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')
  sleep 1
  local rss; rss=$(rss_kb "$pid")
  timeout 300 taskset -c "$LOAD_CPU" "$TMP/snic" 127.0.0.1 "$port" "$d/names" "$WARMUP" "$THREADS" \
    >/dev/null 2>&1 || true
  local c0 c1 out; c0=$(cpu_ticks "$pid")
  out=$(timeout 900 taskset -c "$LOAD_CPU" "$TMP/snic" 127.0.0.1 "$port" "$d/names" "$COUNT" "$THREADS")
  local rc=$?
  c1=$(cpu_ticks "$pid")
  [ $rc = 0 ] || fail=1
  local ok; ok=$(awk '{print $2}' <<<"$out")
  local ms="n/a"
  [ -n "$ok" ] && [ "$ok" -gt 0 ] && ms=$(awk -v c=$((c1 - c0)) -v t="$TCK" -v n="$ok" 'BEGIN{printf "%.3f", c / t * 1000 / n}')
  printf '%-6s %6s tenants: start %6ss   RSS %4d MiB   handshake CPU %s ms/conn   (%s)\n' \
    "$label" "$n" "$start_s" $((rss / 1024)) "$ms" "$out"
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}

for n in $SIZES; do
  t0=$(date +%s.%N)
  "$PY" "$BENCH/gen_tenants.py" certs "/tmp/xf-bench-reload-$n" "$n" || exit 2
  log "tenant certificates: /tmp/xf-bench-reload-$n ($n, $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s, cached)"
done
echo "xmppfront: 1 worker on CPU $SERVER_CPU, load (snic, $THREADS threads) on CPU $LOAD_CPU;" \
     "$COUNT TLS 1.3 handshakes per size, SNI random over all tenants"
for n in $SIZES; do
  for label in A ${XF_BIN_B:+B}; do
    bin=$XF_BIN; [ "$label" = B ] && bin=$XF_BIN_B
    d="$TMP/n$n-$label"; mkdir -p "$d"
    seq -f 't%05g.example' 1 "$n" >"$d/names"
    run_one "$n" "$label" "$bin"
  done
done
[ -n "$XF_BIN_B" ] && echo "A = $XF_BIN    B = $XF_BIN_B"

# The lookup alone, one process per build, sizes interleaved inside it.
first=${SIZES%% *}
C=/tmp/xf-bench-reload-$first/certs/t00001.example
for label in A ${XF_BUILD_B:+B}; do
  bd=$XF_BUILD; [ "$label" = B ] && bd=$XF_BUILD_B
  if build_lookup "$bd" "$TMP/lookup_$label" 2>"$TMP/lookup_$label.err"; then
    mkdir -p "$TMP/lk_$label"
    echo "$label ($bd):"
    timeout 600 taskset -c "$LOAD_CPU" "$TMP/lookup_$label" "$C/fullchain.pem" "$C/privkey.pem" \
      t00001.example "$TMP/lk_$label" "$LOOKUPS" 3 || fail=1
  else
    log "lookup_bench not built against $bd (no libxf_tenants.a?)"; head -3 "$TMP/lookup_$label.err" >&2
  fi
done
[ $fail = 0 ] && echo "bench_scale: every handshake got its tenant's certificate" || echo "bench_scale: FAILURES (see above)"
exit $fail
