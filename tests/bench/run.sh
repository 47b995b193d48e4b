#!/usr/bin/env bash
# Side-by-side benchmark: xmppfront vs HAProxy (tcp mode) vs nginx's stream module,
# same job, one run, with mbedTLS's own cost for the same work (tests/bench/ceiling.c).
# See tests/bench/README.md. Usage: tests/bench/run.sh   (env knobs below; QUICK=1)
#
# All proxies terminate TLS with the same EC P-256 certificate, offer TLS 1.3 with the
# same suites and groups, and relay to the same plaintext backend (tests/bench/backend.c)
# on loopback. Each runs WORKERS (1) worker pinned to PROXY_CPU (0); the load client
# and the backend are pinned to LOAD_CPU (1). The load client (tests/bench/loadc.c)
# pins TLS_AES_256_GCM_SHA384 and X25519, so all servers do the same cryptography.
# Every load loop is bounded in count and time; only PIDs started here are signalled.
# Figures only: not called by tests/run-all.sh, nothing passes or fails on a time.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH="$ROOT/tests/bench"
XF_DEFAULT_BIN=$ROOT/build-bench/xmppfront
XF_BIN=${XF_BIN:-$XF_DEFAULT_BIN}   # default: built (incrementally) from this tree
NGINX=${NGINX:-/usr/sbin/nginx}
NGINX_STREAM_MOD=${NGINX_STREAM_MOD:-/usr/lib/nginx/modules/ngx_stream_module.so}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
PROXIES=${PROXIES:-xf hap ng}       # peers to run: xf (xmppfront, required), hap, ng (nginx)
# QUICK=1: every phase shorter (about a minute of load in all); a knob set explicitly wins.
if [ "${QUICK:-0}" = 1 ]; then
  : "${RATE_SECS:=3}" "${STIME_SECS:=0}" "${BULK_BYTES:=268435456}" "${ECHO_COUNT:=5000}"
  : "${ECHO_MAX_SECS:=2}" "${ECHO50_COUNT:=400}" "${ECHO50_MAX_SECS:=3}" "${IDLE_CONNS:=300}"
  : "${CEIL_HANDSHAKES:=300}" "${CEIL_MIB:=128}" "${CEIL_MAX_SECS:=3}"
fi
WORKERS=${WORKERS:-1}               # xmppfront "workers", HAProxy nbthread, nginx worker_processes
PROXY_CPU=${PROXY_CPU:-0}           # taskset -c list for the proxies and the ceiling
LOAD_CPU=${LOAD_CPU:-1}             # taskset -c list for loadc, backend, openssl s_time
PIN=${PIN:-1}                       # 0: no taskset at all
RATE_CONC=${RATE_CONC:-16}          # concurrent clients in the connection-rate phases
RATE_SECS=${RATE_SECS:-10}          # each of "rate" (full handshakes) and "rate, resumed"
STIME_SECS=${STIME_SECS:-3}         # openssl s_time -new (0 = skip)
BULK_BYTES=${BULK_BYTES:-1073741824}
BULK_MAX_SECS=${BULK_MAX_SECS:-20}
ECHO_COUNT=${ECHO_COUNT:-20000}
ECHO_MAX_SECS=${ECHO_MAX_SECS:-5}
ECHO_SIZE=${ECHO_SIZE:-128}
ECHO50_CONNS=${ECHO50_CONNS:-50}    # "echo50": concurrent ping-pong connections
ECHO50_COUNT=${ECHO50_COUNT:-2000}  # round trips per connection (bound)
ECHO50_MAX_SECS=${ECHO50_MAX_SECS:-8}
PHASES=${PHASES:-idle rate resume stime up down echo echo50}   # any subset, in this order
IDLE_CONNS=${IDLE_CONNS:-1000}
IDLE_MAX_SECS=${IDLE_MAX_SECS:-30}
CEIL_HANDSHAKES=${CEIL_HANDSHAKES:-1000}  # per ceiling part, each bounded by CEIL_MAX_SECS
CEIL_MIB=${CEIL_MIB:-512}
CEIL_MAX_SECS=${CEIL_MAX_SECS:-6}
# xmppfront's session tickets: this JSON value goes into the top-level "session_tickets"
# (empty: the key is left out). A binary that refuses the key runs without it ("n/a").
XF_TICKETS_JSON=${XF_TICKETS_JSON-true}
PY=/usr/bin/python3
HZ=$(getconf CLK_TCK)

. "$BENCH/lib.sh"

# ------------------------------------------------------------------ lifecycle
bench_begin xfbench

# ------------------------------------------------------------------ prerequisites
has() { [[ " $PROXIES " == *" $1 "* ]]; }
has xf || die "PROXIES must include xf"
if has ng; then
  [ -x "$NGINX" ] || die "nginx not found ($NGINX): apt-get install nginx libnginx-mod-stream"
  [ -f "$NGINX_STREAM_MOD" ] || die "nginx stream module missing: apt-get install libnginx-mod-stream"
fi
if has hap; then [ -x "$HAPROXY" ] || die "haproxy not found ($HAPROXY): apt-get install haproxy"; fi
command -v openssl >/dev/null || die "openssl missing"
command -v cc >/dev/null || die "cc missing"
# Pinning: taskset execs its command, so "${P_PIN[@]}" CMD & leaves CMD's PID in $!.
P_PIN=() L_PIN=()
if [ "$PIN" = 1 ]; then
  command -v taskset >/dev/null || die "taskset missing (util-linux); or PIN=0"
  if [ "$(nproc)" -lt 2 ]; then
    log "one CPU only: proxies and load share it"
    PROXY_CPU=0 LOAD_CPU=0
  fi
  P_PIN=(taskset -c "$PROXY_CPU") L_PIN=(taskset -c "$LOAD_CPU")
fi
if [ "$XF_BIN" = "$XF_DEFAULT_BIN" ]; then
  log "building xmppfront (RelWithDebInfo) in build-bench"
  [ -f "$ROOT/build-bench/CMakeCache.txt" ] ||
    cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$ROOT/build-bench" -j2 --target xmppfront >/dev/null
  XF_DESC="commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || echo '+changes')"
else
  XF_DESC="$XF_BIN"
fi
[ -x "$XF_BIN" ] || die "no xmppfront binary at $XF_BIN"
cc -O2 -Wall -o "$TMP/loadc" "$BENCH/loadc.c" -lssl -lcrypto -lpthread || die "building loadc"
cc -O2 -Wall -o "$TMP/backend" "$BENCH/backend.c" || die "building backend"
# The ceiling is built against the mbedTLS the proxy uses: Debian's (pkg-config), or the
# prefix of deploy/build-mbedtls.sh in MBEDTLS_PREFIX (static libraries), or whatever
# CEILING_CFLAGS / CEILING_LIBS say.
if [ -n "${MBEDTLS_PREFIX:-}" ]; then
  : "${CEILING_CFLAGS:=-I$MBEDTLS_PREFIX/include}"
  : "${CEILING_LIBS:=$MBEDTLS_PREFIX/lib/libmbedtls.a $MBEDTLS_PREFIX/lib/libmbedx509.a $MBEDTLS_PREFIX/lib/libmbedcrypto.a -lpthread}"
fi
: "${CEILING_CFLAGS:=$(pkg-config --cflags mbedtls mbedx509 mbedcrypto 2>/dev/null || true)}"
: "${CEILING_LIBS:=$(pkg-config --libs mbedtls mbedx509 mbedcrypto 2>/dev/null || echo -lmbedtls -lmbedx509 -lmbedcrypto)}"
# shellcheck disable=SC2086
cc -O2 -Wall $CEILING_CFLAGS -o "$TMP/ceiling" "$BENCH/ceiling.c" $CEILING_LIBS || die "building ceiling"
if [ -z "${MBEDTLS_PREFIX:-}" ] && ! ldd "$XF_BIN" 2>/dev/null | grep -q libmbedtls; then
  log "WARNING: $XF_BIN does not link libmbedtls dynamically (static build?): the ceiling uses the system mbedTLS; set MBEDTLS_PREFIX"
fi
ulimit -n 20000 2>/dev/null || true
[ "$(ulimit -n)" -ge $((IDLE_CONNS * 3 + 100)) ] || die "ulimit -n too low for $IDLE_CONNS connections"

# ------------------------------------------------------------------ world
read -r P_BACK P_XF P_NG P_HAP < <($PY - <<'EOF'
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
EOF
)

mkdir -p "$TMP/certs" "$TMP/xf/tenants" "$TMP/ng/logs" "$TMP/hap"
bench_make_cert "$TMP/certs" a.example a
cat "$TMP/certs/a.pem" "$TMP/certs/a.key" >"$TMP/certs/hap.pem"   # HAProxy: chain + key

cat >"$TMP/xf/tenants/a.example.json" <<EOF
{ "domain": "a.example", "certificate": "../../certs/a.pem", "key": "../../certs/a.key",
  "c2s_backend": "127.0.0.1:$P_BACK" }
EOF
# log_level warn: one line per closed connection at info would be a cost nginx (no
# access_log in stream{} here) and HAProxy (no log directive) do not pay. No admin
# listener (its default 127.0.0.1:8269 may be taken; the peers have none either).
xf_conf() {
  local tickets=""
  [ -z "$1" ] || tickets="\"session_tickets\": $1,"
  cat >"$TMP/xf/main.json" <<EOF
{ "workers": $WORKERS, "tenants": "tenants", "log_level": "${XF_LOG_LEVEL:-warn}", "admin": false, $tickets
  "listeners": [ { "address": "127.0.0.1", "port": $P_XF, "tls": "direct", "service": "client" } ],
  "limits": { "max_connections": 100000, "handshake_timeout_s": 30,
              "max_connections_per_ip": 0, "max_unauthenticated_per_ip": 0 } }
EOF
}
XF_TICKETS=off
xf_conf "$XF_TICKETS_JSON"
if [ -n "$XF_TICKETS_JSON" ]; then
  if "$XF_BIN" --check-config -c "$TMP/xf/main.json" >/dev/null 2>&1; then
    XF_TICKETS=on
  else
    log "xmppfront refuses \"session_tickets\": $XF_TICKETS_JSON (not in this binary?): running without"
    xf_conf ""
  fi
fi
"$XF_BIN" --check-config -c "$TMP/xf/main.json" >/dev/null 2>&1 ||
  { "$XF_BIN" --check-config -c "$TMP/xf/main.json"; die "xmppfront config refused"; }

# HAProxy: tcp mode, WORKERS threads, TLS 1.2+ with xmppfront's TLS 1.3 suites and
# groups; session tickets and the session cache at their defaults (both on).
cat >"$TMP/hap/haproxy.cfg" <<EOF
global
  nbthread $WORKERS
  maxconn 8000
  ssl-default-bind-ciphersuites TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256
  ssl-default-bind-options ssl-min-ver TLSv1.2
  ssl-default-bind-curves X25519:P-256:P-384
defaults
  mode tcp
  maxconn 8000
  timeout connect 10s
  timeout client 120s
  timeout server 120s
frontend fe
  bind 127.0.0.1:$P_HAP ssl crt $TMP/certs/hap.pem
  default_backend be
backend be
  server b 127.0.0.1:$P_BACK
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
    # Session tickets and cache at nginx's defaults (ssl_session_tickets on,
    # ssl_session_cache none): TLS 1.3 resumes with stateless tickets.
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

declare -A R        # R[proxy.metric] = value
kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }

# ------------------------------------------------------------------ the ceiling
# mbedTLS alone, one thread on the proxies' CPU, before any proxy runs.
log "ceiling: mbedTLS in memory, $CEIL_HANDSHAKES handshakes per part, $CEIL_MIB MiB, CPU $PROXY_CPU"
CEIL_OUT=$(timeout $((CEIL_MAX_SECS * 6 + 60)) "${P_PIN[@]}" "$TMP/ceiling" "$TMP/certs/a.pem" \
  "$TMP/certs/a.key" "$CEIL_HANDSHAKES" "$CEIL_MIB" "$CEIL_MAX_SECS") ||
  { echo "$CEIL_OUT" >&2; die "ceiling failed"; }
while read -r line; do
  log "ceiling $line"
  part=$(kv part "$line")
  case "$part" in
    lib) R[ceil.version]=$(kv version "$line") ;;
    full | full_ticket | resumed)
      R[ceil.${part}_hs]=$(kv server_hs_ms "$line"); R[ceil.${part}_conn]=$(kv server_conn_ms "$line")
      R[ceil.${part}_ok]=$(kv resumed_ok "$line"); R[ceil.${part}_n]=$(kv n "$line") ;;
    gcm) R[ceil.enc]=$(kv enc_MBps "$line"); R[ceil.dec]=$(kv dec_MBps "$line") ;;
    records) R[ceil.rec_down]=$(kv down_MBps "$line"); R[ceil.rec_up]=$(kv up_MBps "$line") ;;
  esac
done <<<"$CEIL_OUT"

# ------------------------------------------------------------------ proxies
"${L_PIN[@]}" "$TMP/backend" "$P_BACK" 900 2>"$TMP/backend.log" &
PIDS+=($!)
wait_port "$P_BACK" || die "backend did not start"

"${P_PIN[@]}" "$XF_BIN" -c "$TMP/xf/main.json" 2>"$TMP/xf/xmppfront.log" &
XF_PID=$!
PIDS+=("$XF_PID")
NG_PID="" HAP_PID=""
if has hap; then
  "$HAPROXY" -c -f "$TMP/hap/haproxy.cfg" >"$TMP/hap/check.log" 2>&1 ||
    { cat "$TMP/hap/check.log" >&2; die "haproxy config refused"; }
  # -db: foreground, no master process, so $! is HAProxy itself.
  "${P_PIN[@]}" "$HAPROXY" -db -f "$TMP/hap/haproxy.cfg" >"$TMP/hap/haproxy.log" 2>&1 &
  HAP_PID=$!
  PIDS+=("$HAP_PID")
fi
if has ng; then
  "${P_PIN[@]}" "$NGINX" -p "$TMP/ng" -c "$TMP/ng/nginx.conf" -e "$TMP/ng/logs/error.log" \
    2>"$TMP/ng/stderr.log" &
  NG_PID=$!
  PIDS+=("$NG_PID")
fi
wait_port "$P_XF" || { cat "$TMP/xf/xmppfront.log" >&2; die "xmppfront did not start"; }
if has hap; then
  wait_port "$P_HAP" || { cat "$TMP/hap/haproxy.log" >&2; die "haproxy did not start"; }
fi
if has ng; then
  wait_port "$P_NG" || { cat "$TMP/ng/logs/error.log" "$TMP/ng/stderr.log" >&2; die "nginx did not start"; }
fi
sleep 0.5

# nginx: the master and its workers (children of the master PID we started).
pids_of() {
  case "$1" in
    xf) echo "$XF_PID" ;;
    hap) echo "$HAP_PID" ;;
    ng) echo "$NG_PID $(pgrep -P "$NG_PID" | tr '\n' ' ')" ;;
  esac
}
port_of() { case "$1" in xf) echo "$P_XF" ;; hap) echo "$P_HAP" ;; ng) echo "$P_NG" ;; esac; }
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
secs() { awk -v t="$1" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }'; }
cpu_begin() { CPU0=$(cpu_ticks "$1"); }
cpu_end() { R[$1.cpu_$2]=$(secs $(($(cpu_ticks "$1") - CPU0))); }

NG_VER=-; HAP_VER=-
has ng && NG_VER=$("$NGINX" -v 2>&1 | sed 's/.*\///')
has hap && HAP_VER=$("$HAPROXY" -v 2>&1 | awk 'NR == 1 { print $3 }')
log "xmppfront $XF_BIN pid $XF_PID port $P_XF (session tickets $XF_TICKETS)"
has hap && log "haproxy $HAP_VER pid $HAP_PID port $P_HAP"
has ng && log "nginx $NG_VER pid $NG_PID (workers $(pgrep -P "$NG_PID" | tr '\n' ' ')) port $P_NG"
log "backend port $P_BACK; proxies on CPU $PROXY_CPU, load on CPU $LOAD_CPU (PIN=$PIN); $(uptime | sed 's/.*load/load/')"
UPTIME_START=$(uptime | sed 's/.*load average: //')

# ------------------------------------------------------------------ phases
for px in $PROXIES; do R[$px.rss_idle]=$(rss_kib $px); done

phase_idle() {
  local px=$1 port out fifo lp i line
  port=$(port_of "$px")
  fifo="$TMP/idle.$px.fifo"; out="$TMP/idle.$px.out"
  mkfifo "$fifo"
  cpu_begin "$px"
  "${L_PIN[@]}" "$TMP/loadc" idle 127.0.0.1 "$port" a.example "$IDLE_CONNS" "$IDLE_MAX_SECS" \
    <"$fifo" >"$out" &
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

# phase_rate PX rate|resume: RATE_CONC clients opening connections for RATE_SECS; in
# "resume" each client thread offers the ticket of its first connection.
phase_rate() {
  local px=$1 mode=$2 k line
  k=rate; [ "$mode" = rate ] || k=res
  cpu_begin "$px"
  line=$(timeout $((RATE_SECS + 30)) "${L_PIN[@]}" "$TMP/loadc" "$mode" 127.0.0.1 "$(port_of "$px")" \
         a.example "$RATE_CONC" "$RATE_SECS") || true
  cpu_end "$px" "$k"
  R[$px.$k]=$(kv rate "$line"); R[$px.${k}_err]=$(kv errors "$line")
  R[$px.${k}_ok]=$(kv ok "$line"); R[$px.${k}_reused]=$(kv resumed "$line")
  R[$px.${k}_secs]=$(kv secs "$line")
  R[$px.${k}_p50]=$(kv setup_p50_ms "$line"); R[$px.${k}_p99]=$(kv setup_p99_ms "$line")
  log "$px $mode: $line"
}

phase_stime() {
  local px=$1 out
  [ "$STIME_SECS" -gt 0 ] || return 0
  cpu_begin "$px"
  out=$(timeout $((STIME_SECS + 20)) "${L_PIN[@]}" openssl s_time -connect "127.0.0.1:$(port_of "$px")" \
        -new -tls1_3 -ciphersuites TLS_AES_256_GCM_SHA384 -time "$STIME_SECS" 2>&1) || true
  cpu_end "$px" stime
  # "N connections in T real seconds, ..."
  R[$px.stime]=$(awk '/connections in .* real seconds/ { printf "%.1f", $1 / $4 }' <<<"$out")
  log "$px s_time: $(grep 'real seconds' <<<"$out" || echo "$out" | tail -2)"
}

phase_bulk() {
  local px=$1 dir=$2 line
  cpu_begin "$px"
  line=$(timeout $((BULK_MAX_SECS + 30)) "${L_PIN[@]}" "$TMP/loadc" "$dir" 127.0.0.1 "$(port_of "$px")" \
         a.example "$BULK_BYTES" "$BULK_MAX_SECS") || true
  cpu_end "$px" "$dir"
  R[$px.$dir]=$(kv MBps "$line"); R[$px.${dir}_complete]=$(kv complete "$line")
  R[$px.${dir}_bytes]=$(kv bytes "$line")   # relayed (acknowledged, for up), even if cut by BULK_MAX_SECS
  log "$px bulk $dir: $line"
}

phase_echo() {
  local px=$1 line
  cpu_begin "$px"
  line=$(timeout $((ECHO_MAX_SECS + 30)) "${L_PIN[@]}" "$TMP/loadc" echo 127.0.0.1 "$(port_of "$px")" \
         a.example "$ECHO_COUNT" "$ECHO_MAX_SECS" "$ECHO_SIZE") || true
  cpu_end "$px" echo
  R[$px.echo_p50]=$(kv p50_us "$line"); R[$px.echo_p99]=$(kv p99_us "$line")
  R[$px.echo_n]=$(kv count "$line")
  log "$px echo: $line"
}

# ECHO50_CONNS connections at once, each doing sequential round trips (issue 10 item 5).
phase_echo50() {
  local px=$1 line
  cpu_begin "$px"
  line=$(timeout $((ECHO50_MAX_SECS + 40)) "${L_PIN[@]}" "$TMP/loadc" echon 127.0.0.1 "$(port_of "$px")" \
         a.example "$ECHO50_CONNS" "$ECHO50_COUNT" "$ECHO50_MAX_SECS" "$ECHO_SIZE") || true
  cpu_end "$px" echo50
  R[$px.e50_p50]=$(kv p50_us "$line"); R[$px.e50_p99]=$(kv p99_us "$line")
  R[$px.e50_p999]=$(kv p999_us "$line"); R[$px.e50_n]=$(kv count "$line")
  R[$px.e50_rps]=$(kv rtt_per_s "$line"); R[$px.e50_secs]=$(kv secs "$line")
  R[$px.e50_ok]="$(kv ok_conns "$line")/$(kv failed "$line")"
  log "$px echo50: $line"
}

T0=$(date +%s)
ph() { [[ " $PHASES " == *" $1 "* ]]; }
ph idle && for px in $PROXIES; do phase_idle "$px"; done
ph rate && for px in $PROXIES; do phase_rate "$px" rate; done
ph resume && for px in $PROXIES; do phase_rate "$px" resume; done
ph stime && for px in $PROXIES; do phase_stime "$px"; done
ph up && for px in $PROXIES; do phase_bulk "$px" up; done
ph down && for px in $PROXIES; do phase_bulk "$px" down; done
ph echo && for px in $PROXIES; do phase_echo "$px"; done
ph echo50 && for px in $PROXIES; do phase_echo50 "$px"; done
sleep 1
for px in $PROXIES; do R[$px.rss_end]=$(rss_kib $px); done
for px in $PROXIES; do kill -0 "$(pids_of $px | cut -d' ' -f1)" 2>/dev/null || R[$px.died]=1; done
UPTIME_END=$(uptime | sed 's/.*load average: //')

# ------------------------------------------------------------------ report
# Columns: the mbedTLS ceiling where a row has one, each proxy, each proxy / HAProxy,
# and xmppfront's fraction of the ceiling: ceiling cost / xmppfront's for CPU per
# connection, xmppfront's MB per CPU-second / raw AES-GCM MB/s for bulk (1 = the library).
num() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }
ratio() { if num "${1:-}" && num "${2:-}"; then awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; else echo -; fi; }
# per A B MULT FMT: A * MULT / B
per() { if num "${1:-}" && num "${2:-}"; then awk -v a="$1" -v b="$2" -v m="$3" -v f="$4" 'BEGIN { if (b > 0) printf f, a * m / b; else print "-" }'; else echo -; fi; }
v() { local x=${R[$1]:-}; echo "${x:--}"; }
# row LABEL KEY [CEILING [cost|rate]]
row() {
  local label=$1 key=$2 ceil=${3:--} mode=${4:-} xf hap ng fr=-
  xf=$(v "xf.$key"); hap=$(v "hap.$key"); ng=$(v "ng.$key")
  if [ "$mode" = cost ]; then fr=$(ratio "$ceil" "$xf"); elif [ "$mode" = rate ]; then fr=$(ratio "$xf" "$ceil"); fi
  printf '| %-50s | %8s | %16s | %11s | %11s | %6s | %6s | %7s |\n' "$label" "$ceil" \
    "$xf" "$hap" "$ng" "$(ratio "$xf" "$hap")" "$(ratio "$ng" "$hap")" "$fr"
}
for px in $PROXIES; do
  R[$px.rate_ms]=$(per "$(v $px.cpu_rate)" "$(v $px.rate_ok)" 1000 %.3f)
  R[$px.rate_busy]=$(per "$(v $px.cpu_rate)" "$(v $px.rate_secs)" 100 %.0f)
  R[$px.res_ms]=$(per "$(v $px.cpu_res)" "$(v $px.res_ok)" 1000 %.3f)
  R[$px.res_frac]=$(per "$(v $px.res_reused)" "$(v $px.res_ok)" 100 %.1f)
  R[$px.res_vs_full]=$(ratio "${R[$px.res_ms]}" "${R[$px.rate_ms]}")
  for d in up down; do
    R[$px.${d}_mbcpu]=$(per "$(v $px.${d}_bytes)" "$(v $px.cpu_$d)" 1e-6 %.0f)
  done
  R[$px.e50_busy]=$(per "$(v $px.cpu_echo50)" "$(v $px.e50_secs)" 100 %.0f)
  R[$px.idle_oe]="$(v $px.idle_ok)/$(v $px.idle_err)"
done
# No ticket, no resumption: say so rather than print 0 %.
if [ "$(v xf.res_reused)" = 0 ]; then
  if [ "$XF_TICKETS" = off ]; then R[xf.res_frac]="n/a (no tickets)"; else R[xf.res_frac]="0 (tickets on!)"; fi
  R[xf.res_vs_full]="n/a"
fi
# The full-handshake ceiling: with a ticket issued if xmppfront issues them (HAProxy and
# nginx do, at their defaults).
CF=full; [ "$XF_TICKETS" = on ] && CF=full_ticket
MiB=$(awk -v b="$BULK_BYTES" 'BEGIN { printf "%.0f", b / 1048576 }')

echo
echo "xmppfront vs HAProxy $HAP_VER (tcp) vs nginx $NG_VER (stream), $WORKERS worker(s) each on CPU $PROXY_CPU, load + backend on CPU $LOAD_CPU, $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "TLS 1.3 TLS_AES_256_GCM_SHA384 X25519, EC P-256; xmppfront $XF_DESC, session tickets $XF_TICKETS; load average at start $UPTIME_START, at end $UPTIME_END"
echo
echo "mbedTLS $(v ceil.version) ceiling (in memory, one thread on CPU $PROXY_CPU, server side only):"
echo "  full handshake $(v ceil.full_hs) ms CPU ($(v ceil.full_conn) ms with setup, one read + write, close_notify, free)"
echo "  full + 1 ticket $(v ceil.full_ticket_hs) ms ($(v ceil.full_ticket_conn)); resumed psk_dhe_ke $(v ceil.resumed_hs) ms ($(v ceil.resumed_conn)), $(v ceil.resumed_ok) of $(v ceil.resumed_n) resumed"
echo "  AES-256-GCM, 16 KiB records: encrypt $(v ceil.enc) MB/s, decrypt $(v ceil.dec) MB/s; ssl_write $(v ceil.rec_down), ssl_read $(v ceil.rec_up) MB per CPU-s"
echo
printf '| %-50s | %8s | %16s | %11s | %11s | %6s | %6s | %7s |\n' "metric" "mbedTLS" "xmppfront" "HAProxy" "nginx" "xf/HAP" "ng/HAP" "xf/ceil"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..52})" "$(printf -- '-%.0s' {1..10})" \
  "$(printf -- '-%.0s' {1..18})" "$(printf -- '-%.0s' {1..13})" "$(printf -- '-%.0s' {1..13})" \
  "$(printf -- '-%.0s' {1..8})" "$(printf -- '-%.0s' {1..8})" "$(printf -- '-%.0s' {1..9})"
row "new conns/s, full handshake ($RATE_CONC clients, ${RATE_SECS}s)" rate
row "  failed connections" rate_err
row "  setup time p50 (ms)" rate_p50
row "  setup time p99 (ms)" rate_p99
row "  proxy CPU ms per connection (ceiling: $CF)" rate_ms "$(v "ceil.${CF}_conn")" cost
row "  proxy core busy (%)" rate_busy
row "new conns/s, resumed ($RATE_CONC clients, ${RATE_SECS}s)" res
row "  failed connections" res_err
row "  resumed (% of connections)" res_frac
# xf/ceil only when xmppfront did resume (its full handshakes against the resumed ceiling
# would say nothing).
XF_RES_MODE=cost; [ "$(v xf.res_reused)" != 0 ] || XF_RES_MODE=""
row "  proxy CPU ms per connection (ceiling: resumed)" res_ms "$(v ceil.resumed_conn)" "$XF_RES_MODE"
row "  resumed / full CPU per connection" res_vs_full "$(ratio "$(v ceil.resumed_conn)" "$(v "ceil.${CF}_conn")")"
if [ "$STIME_SECS" -gt 0 ] && ph stime; then
  row "openssl s_time -new conns/s (1 client, ${STIME_SECS}s)" stime
  row "  proxy CPU s" cpu_stime
fi
row "bulk client->backend MB/s ($MiB MiB, 1 stream)" up
row "  complete (1; 0: cut at BULK_MAX_SECS)" up_complete
row "  proxy CPU s" cpu_up
row "  MB per proxy CPU-s (ceiling: AES-GCM decrypt)" up_mbcpu "$(v ceil.dec)" rate
row "bulk backend->client MB/s ($MiB MiB, 1 stream)" down
row "  complete (1; 0: cut at BULK_MAX_SECS)" down_complete
row "  proxy CPU s" cpu_down
row "  MB per proxy CPU-s (ceiling: AES-GCM encrypt)" down_mbcpu "$(v ceil.enc)" rate
row "echo RTT p50 (us, 1 conn, ${ECHO_SIZE}-byte stanza)" echo_p50
row "  p99 (us)" echo_p99
row "  round trips done" echo_n
row "  proxy CPU s" cpu_echo
row "echo50 RTT p50 (us, $ECHO50_CONNS conns ping-pong)" e50_p50
row "  p99 (us)" e50_p99
row "  p99.9 (us)" e50_p999
row "  round trips/s" e50_rps
row "  round trips done" e50_n
row "  connections ok / failed" e50_ok
row "  proxy CPU s" cpu_echo50
row "  proxy core busy (%)" e50_busy
row "RSS idle, fresh (KiB, all processes)" rss_idle
row "RSS with $IDLE_CONNS idle established conns (KiB)" rss_conns
row "  connections established / failed" idle_oe
row "  per connection (KiB)" per_conn
row "  proxy CPU s (open + hold + close)" cpu_idle
row "RSS after those closed (KiB)" rss_after
row "RSS at the end of the run (KiB)" rss_end
echo
[ -z "${R[xf.died]:-}" ] || echo "WARNING: xmppfront exited during the run (see $TMP/xf/xmppfront.log)"
[ -z "${R[hap.died]:-}" ] || echo "WARNING: haproxy exited during the run"
[ -z "${R[ng.died]:-}" ] || echo "WARNING: nginx exited during the run"
nw=$(grep -c . "$TMP/xf/xmppfront.log" 2>/dev/null || true)
[ "${nw:-0}" -eq 0 ] || { echo "xmppfront log (warn and above), $nw lines, first 5:"; head -5 "$TMP/xf/xmppfront.log"; }
nw=$(grep -c . "$TMP/hap/haproxy.log" 2>/dev/null || true)
[ "${nw:-0}" -eq 0 ] || { echo "haproxy output, $nw lines, first 5:"; head -5 "$TMP/hap/haproxy.log"; }
nw=$(grep -c . "$TMP/ng/logs/error.log" 2>/dev/null || true)
[ "${nw:-0}" -eq 0 ] || { echo "nginx error.log, $nw lines, first 5:"; head -5 "$TMP/ng/logs/error.log"; }
log "phases took $(($(date +%s) - T0)) s"
