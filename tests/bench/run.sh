#!/usr/bin/env bash
# Side-by-side benchmark: xmppfront vs nginx's stream module, same job, one run.
# See tests/bench/README.md. Usage: tests/bench/run.sh   (env knobs below)
#
# Both proxies terminate TLS with the same EC P-256 certificate, offer TLS 1.3 with the
# same suites, and relay to the same plaintext backend (tests/bench/backend.c) on
# loopback; both run 2 workers. The load client (tests/bench/loadc.c) pins
# TLS_AES_256_GCM_SHA384 and X25519, so both servers do exactly the same cryptography.
# Every load loop is bounded in count and time; only PIDs started here are signalled.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH="$ROOT/tests/bench"
XF_BIN=${XF_BIN:-$ROOT/build-bench/xmppfront}
NGINX=${NGINX:-/usr/sbin/nginx}
NGINX_STREAM_MOD=${NGINX_STREAM_MOD:-/usr/lib/nginx/modules/ngx_stream_module.so}
WORKERS=${WORKERS:-2}
RATE_CONC=${RATE_CONC:-16}          # concurrent clients in the connection-rate phase
RATE_SECS=${RATE_SECS:-10}
STIME_SECS=${STIME_SECS:-3}         # openssl s_time -new (0 = skip)
BULK_BYTES=${BULK_BYTES:-1073741824}
BULK_MAX_SECS=${BULK_MAX_SECS:-20}
ECHO_COUNT=${ECHO_COUNT:-20000}
ECHO_MAX_SECS=${ECHO_MAX_SECS:-5}
ECHO_SIZE=${ECHO_SIZE:-128}
IDLE_CONNS=${IDLE_CONNS:-1000}
IDLE_MAX_SECS=${IDLE_MAX_SECS:-30}
PY=/usr/bin/python3
HZ=$(getconf CLK_TCK)

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

# ------------------------------------------------------------------ lifecycle
PIDS=()
TMP=$(mktemp -d /tmp/xfbench.XXXXXX)
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    ps -p "$pid" -o stat= 2>/dev/null | grep -qv Z || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? i
  trap - EXIT
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then log "keeping $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ prerequisites
[ -x "$NGINX" ] || die "nginx not found ($NGINX): apt-get install nginx libnginx-mod-stream"
[ -f "$NGINX_STREAM_MOD" ] || die "nginx stream module missing: apt-get install libnginx-mod-stream"
command -v openssl >/dev/null || die "openssl missing"
command -v cc >/dev/null || die "cc missing"
if [ ! -x "$XF_BIN" ]; then
  log "building xmppfront (RelWithDebInfo) in build-bench"
  cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$ROOT/build-bench" -j2 --target xmppfront >/dev/null
fi
cc -O2 -Wall -o "$TMP/loadc" "$BENCH/loadc.c" -lssl -lcrypto -lpthread || die "building loadc"
cc -O2 -Wall -o "$TMP/backend" "$BENCH/backend.c" || die "building backend"
ulimit -n 20000 2>/dev/null || true
[ "$(ulimit -n)" -ge $((IDLE_CONNS * 3 + 100)) ] || die "ulimit -n too low for $IDLE_CONNS connections"

# ------------------------------------------------------------------ world
read -r P_BACK P_XF P_NG < <($PY - <<'EOF'
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
EOF
)

mkdir -p "$TMP/certs" "$TMP/xf/tenants" "$TMP/ng/logs"
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -keyout "$TMP/certs/ca.key" -out "$TMP/certs/ca.pem" -days 2 -subj "/CN=bench CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
  >/dev/null 2>&1 || die "CA generation"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$TMP/certs/a.key" 2>/dev/null
openssl req -new -key "$TMP/certs/a.key" -subj "/CN=a.example" -out "$TMP/certs/a.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:a.example\n' >"$TMP/certs/ext.cnf"
openssl x509 -req -in "$TMP/certs/a.csr" -CA "$TMP/certs/ca.pem" -CAkey "$TMP/certs/ca.key" \
  -CAcreateserial -days 2 -extfile "$TMP/certs/ext.cnf" -out "$TMP/certs/a.crt" 2>/dev/null
cat "$TMP/certs/a.crt" "$TMP/certs/ca.pem" >"$TMP/certs/a.pem"

cat >"$TMP/xf/tenants/a.example.json" <<EOF
{ "domain": "a.example", "certificate": "../../certs/a.pem", "key": "../../certs/a.key",
  "c2s_backend": "127.0.0.1:$P_BACK" }
EOF
# log_level warn: one line per closed connection at info would be a cost nginx (no
# access_log in stream{} here) does not pay.
cat >"$TMP/xf/main.json" <<EOF
{ "workers": $WORKERS, "tenants": "tenants", "log_level": "warn",
  "listeners": [ { "address": "127.0.0.1", "port": $P_XF, "tls": "direct", "service": "client" } ],
  "limits": { "max_connections": 100000, "handshake_timeout_s": 30,
              "max_connections_per_ip": 0, "max_unauthenticated_per_ip": 0 } }
EOF
cat >"$TMP/ng/nginx.conf" <<EOF
load_module $NGINX_STREAM_MOD;
daemon off;
master_process on;
worker_processes $WORKERS;
worker_rlimit_nofile 20000;
pid $TMP/ng/nginx.pid;
error_log $TMP/ng/logs/error.log warn;
events { worker_connections 8192; }
stream {
  server {
    listen 127.0.0.1:$P_NG ssl reuseport;
    ssl_certificate     $TMP/certs/a.pem;
    ssl_certificate_key $TMP/certs/a.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
    ssl_conf_command Ciphersuites TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256;
    # xmppfront has no resumption: no tickets, no cache (and no post-handshake tickets).
    ssl_session_tickets off;
    ssl_session_cache off;
    ssl_conf_command NumTickets 0;
    ssl_handshake_timeout 30s;
    proxy_pass 127.0.0.1:$P_BACK;
    proxy_connect_timeout 10s;
  }
}
EOF

wait_port() {
  local port=$1 i
  for ((i = 0; i < 100; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

"$TMP/backend" "$P_BACK" 900 2>"$TMP/backend.log" &
PIDS+=($!)
wait_port "$P_BACK" || die "backend did not start"

"$XF_BIN" --check-config -c "$TMP/xf/main.json" >/dev/null 2>&1 ||
  { "$XF_BIN" --check-config -c "$TMP/xf/main.json"; die "xmppfront config refused"; }
"$XF_BIN" -c "$TMP/xf/main.json" 2>"$TMP/xf/xmppfront.log" &
XF_PID=$!
PIDS+=("$XF_PID")
"$NGINX" -p "$TMP/ng" -c "$TMP/ng/nginx.conf" -e "$TMP/ng/logs/error.log" 2>"$TMP/ng/stderr.log" &
NG_PID=$!
PIDS+=("$NG_PID")
wait_port "$P_XF" || { cat "$TMP/xf/xmppfront.log" >&2; die "xmppfront did not start"; }
wait_port "$P_NG" || { cat "$TMP/ng/logs/error.log" "$TMP/ng/stderr.log" >&2; die "nginx did not start"; }
sleep 0.5

# nginx: the master and its workers (children of the master PID we started).
pids_of() {
  if [ "$1" = xf ]; then echo "$XF_PID"; else echo "$NG_PID $(pgrep -P "$NG_PID" | tr '\n' ' ')"; fi
}
port_of() { if [ "$1" = xf ]; then echo "$P_XF"; else echo "$P_NG"; fi; }
# CPU seconds (user+system) summed over the proxy's processes.
cpu_ticks() {
  local t=0 p f
  for p in $(pids_of "$1"); do
    f=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
    set -- $f
    t=$((t + ${12} + ${13}))
  done
  echo "$t"
}
# Resident set in KiB summed over the proxy's processes.
rss_kib() {
  local t=0 p v
  for p in $(pids_of "$1"); do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || continue
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }
secs() { awk -v t="$1" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }'; }

declare -A R        # R[proxy.metric] = value
cpu_begin() { CPU0=$(cpu_ticks "$1"); }
cpu_end() { R[$1.cpu_$2]=$(secs $(($(cpu_ticks "$1") - CPU0))); }

log "xmppfront $XF_BIN pid $XF_PID port $P_XF | nginx $("$NGINX" -v 2>&1 | sed 's/.*\///') pid $NG_PID (workers $(pgrep -P "$NG_PID" | tr '\n' ' ')) port $P_NG | backend $P_BACK"

# ------------------------------------------------------------------ phases
for px in xf ng; do R[$px.rss_idle]=$(rss_kib $px); done

phase_idle() {
  local px=$1 port out fifo lp i line
  port=$(port_of "$px")
  fifo="$TMP/idle.$px.fifo"; out="$TMP/idle.$px.out"
  mkfifo "$fifo"
  cpu_begin "$px"
  "$TMP/loadc" idle 127.0.0.1 "$port" a.example "$IDLE_CONNS" "$IDLE_MAX_SECS" <"$fifo" >"$out" &
  lp=$!
  PIDS+=("$lp")
  exec 3>"$fifo"
  for ((i = 0; i < IDLE_MAX_SECS * 10; i++)); do
    grep -q ready "$out" && break
    sleep 0.1
  done
  line=$(cat "$out")
  sleep 1                                   # let both sides settle
  R[$px.idle_ok]=$(kv ready "$line")
  R[$px.idle_err]=$(kv errors "$line")
  R[$px.rss_conns]=$(rss_kib "$px")
  exec 3>&-                                 # loadc closes its connections
  stop_pid "$lp"
  cpu_end "$px" idle
  sleep 1
  R[$px.rss_after]=$(rss_kib "$px")
  R[$px.per_conn]=$(awk -v a="${R[$px.rss_conns]}" -v b="${R[$px.rss_idle]}" -v n="${R[$px.idle_ok]:-0}" \
    'BEGIN { if (n > 0) printf "%.1f", (a - b) / n; else print "-" }')
  log "$px idle: $line rss ${R[$px.rss_idle]} -> ${R[$px.rss_conns]} -> ${R[$px.rss_after]} KiB"
}

phase_rate() {
  local px=$1 line
  cpu_begin "$px"
  line=$(timeout $((RATE_SECS + 30)) "$TMP/loadc" rate 127.0.0.1 "$(port_of "$px")" a.example \
         "$RATE_CONC" "$RATE_SECS") || true
  cpu_end "$px" rate
  R[$px.rate]=$(kv rate "$line"); R[$px.rate_err]=$(kv errors "$line")
  R[$px.rate_ok]=$(kv ok "$line")
  R[$px.setup_p50]=$(kv setup_p50_ms "$line"); R[$px.setup_p99]=$(kv setup_p99_ms "$line")
  log "$px rate: $line"
}

phase_stime() {
  local px=$1 out
  [ "$STIME_SECS" -gt 0 ] || return 0
  cpu_begin "$px"
  out=$(timeout $((STIME_SECS + 20)) openssl s_time -connect "127.0.0.1:$(port_of "$px")" -new \
        -tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384 -time "$STIME_SECS" 2>&1) || true
  cpu_end "$px" stime
  # "N connections in T real seconds, ..."
  R[$px.stime]=$(awk '/connections in .* real seconds/ { printf "%.1f", $1 / $4 }' <<<"$out")
  log "$px s_time: $(grep 'real seconds' <<<"$out" || echo "$out" | tail -2)"
}

phase_bulk() {
  local px=$1 dir=$2 line
  cpu_begin "$px"
  line=$(timeout $((BULK_MAX_SECS + 30)) "$TMP/loadc" "$dir" 127.0.0.1 "$(port_of "$px")" a.example \
         "$BULK_BYTES" "$BULK_MAX_SECS") || true
  cpu_end "$px" "$dir"
  R[$px.$dir]=$(kv MBps "$line"); R[$px.${dir}_complete]=$(kv complete "$line")
  log "$px bulk $dir: $line"
}

phase_echo() {
  local px=$1 line
  cpu_begin "$px"
  line=$(timeout $((ECHO_MAX_SECS + 30)) "$TMP/loadc" echo 127.0.0.1 "$(port_of "$px")" a.example \
         "$ECHO_COUNT" "$ECHO_MAX_SECS" "$ECHO_SIZE") || true
  cpu_end "$px" echo
  R[$px.echo_p50]=$(kv p50_us "$line"); R[$px.echo_p99]=$(kv p99_us "$line")
  R[$px.echo_n]=$(kv count "$line")
  log "$px echo: $line"
}

T0=$(date +%s)
for px in xf ng; do phase_idle "$px"; done
for px in xf ng; do phase_rate "$px"; done
for px in xf ng; do phase_stime "$px"; done
for px in xf ng; do phase_bulk "$px" up; done
for px in xf ng; do phase_bulk "$px" down; done
for px in xf ng; do phase_echo "$px"; done
sleep 1
for px in xf ng; do R[$px.rss_end]=$(rss_kib $px); done
for px in xf ng; do kill -0 "$(pids_of $px | cut -d' ' -f1)" 2>/dev/null || R[$px.died]=1; done

# ------------------------------------------------------------------ report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }
row() { printf '| %-52s | %12s | %12s | %8s |\n' "$1" "${2:--}" "${3:--}" "$(ratio "${2:-}" "${3:-}")"; }
MiB=$(awk -v b="$BULK_BYTES" 'BEGIN { printf "%.0f", b / 1048576 }')

echo
echo "xmppfront vs nginx $("$NGINX" -v 2>&1 | sed 's/.*\///') stream, $WORKERS workers each, $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M UTC'), TLS 1.3 TLS_AES_256_GCM_SHA384 X25519, EC P-256 cert"
echo
printf '| %-52s | %12s | %12s | %8s |\n' "metric" "xmppfront" "nginx" "xf/nginx"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..54})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..14})" "$(printf -- '-%.0s' {1..10})"
row "new conns/s, TLS + XMPP header RTT ($RATE_CONC clients, ${RATE_SECS}s)" "${R[xf.rate]:-}" "${R[ng.rate]:-}"
row "  failed connections in that phase" "${R[xf.rate_err]:-}" "${R[ng.rate_err]:-}"
row "  setup time p50 (ms)" "${R[xf.setup_p50]:-}" "${R[ng.setup_p50]:-}"
row "  setup time p99 (ms)" "${R[xf.setup_p99]:-}" "${R[ng.setup_p99]:-}"
row "  proxy CPU s" "${R[xf.cpu_rate]:-}" "${R[ng.cpu_rate]:-}"
row "  proxy CPU ms per connection" \
  "$(awk -v c="${R[xf.cpu_rate]:-0}" -v n="${R[xf.rate_ok]:-0}" 'BEGIN { if (n > 0) printf "%.3f", c * 1000 / n }')" \
  "$(awk -v c="${R[ng.cpu_rate]:-0}" -v n="${R[ng.rate_ok]:-0}" 'BEGIN { if (n > 0) printf "%.3f", c * 1000 / n }')"
if [ "$STIME_SECS" -gt 0 ]; then
  row "openssl s_time -new conns/s (1 client, ${STIME_SECS}s, TLS only)" "${R[xf.stime]:-}" "${R[ng.stime]:-}"
  row "  proxy CPU s" "${R[xf.cpu_stime]:-}" "${R[ng.cpu_stime]:-}"
fi
row "bulk client->backend MB/s ($MiB MiB, 1 stream)" "${R[xf.up]:-}" "${R[ng.up]:-}"
row "  complete (1 = all bytes arrived)" "${R[xf.up_complete]:-}" "${R[ng.up_complete]:-}"
row "  proxy CPU s" "${R[xf.cpu_up]:-}" "${R[ng.cpu_up]:-}"
row "bulk backend->client MB/s ($MiB MiB, 1 stream)" "${R[xf.down]:-}" "${R[ng.down]:-}"
row "  complete (1 = all bytes arrived)" "${R[xf.down_complete]:-}" "${R[ng.down_complete]:-}"
row "  proxy CPU s" "${R[xf.cpu_down]:-}" "${R[ng.cpu_down]:-}"
row "echo RTT p50 (us, ${ECHO_SIZE}-byte stanza)" "${R[xf.echo_p50]:-}" "${R[ng.echo_p50]:-}"
row "echo RTT p99 (us)" "${R[xf.echo_p99]:-}" "${R[ng.echo_p99]:-}"
row "  round trips done" "${R[xf.echo_n]:-}" "${R[ng.echo_n]:-}"
row "  proxy CPU s" "${R[xf.cpu_echo]:-}" "${R[ng.cpu_echo]:-}"
row "RSS idle, fresh (KiB, all processes)" "${R[xf.rss_idle]:-}" "${R[ng.rss_idle]:-}"
row "RSS with $IDLE_CONNS idle established conns (KiB)" "${R[xf.rss_conns]:-}" "${R[ng.rss_conns]:-}"
row "  connections established / failed" "${R[xf.idle_ok]:-}/${R[xf.idle_err]:-}" "${R[ng.idle_ok]:-}/${R[ng.idle_err]:-}"
row "  per connection (KiB)" "${R[xf.per_conn]:-}" "${R[ng.per_conn]:-}"
row "  proxy CPU s (open + hold + close)" "${R[xf.cpu_idle]:-}" "${R[ng.cpu_idle]:-}"
row "RSS after those closed (KiB)" "${R[xf.rss_after]:-}" "${R[ng.rss_after]:-}"
row "RSS at the end of the run (KiB)" "${R[xf.rss_end]:-}" "${R[ng.rss_end]:-}"
echo
[ -z "${R[xf.died]:-}" ] || echo "WARNING: xmppfront exited during the run (see $TMP/xf/xmppfront.log)"
[ -z "${R[ng.died]:-}" ] || echo "WARNING: nginx exited during the run"
nw=$(grep -c . "$TMP/xf/xmppfront.log" 2>/dev/null || true)
[ "${nw:-0}" -eq 0 ] || { echo "xmppfront log (warn and above), $nw lines, first 5:"; head -5 "$TMP/xf/xmppfront.log"; }
nw=$(grep -c . "$TMP/ng/logs/error.log" 2>/dev/null || true)
[ "${nw:-0}" -eq 0 ] || { echo "nginx error.log, $nw lines, first 5:"; head -5 "$TMP/ng/logs/error.log"; }
log "phases took $(($(date +%s) - T0)) s"
