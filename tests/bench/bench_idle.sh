#!/usr/bin/env bash
# Idle memory per routed connection: xmppfront (1 worker) vs HAProxy (tcp mode, 1 thread),
# same certificate, same backend, same N. See tests/bench/README.md ("Idle memory").
#
#   tests/bench/bench_idle.sh                 # N=10000
#   N=2000 HEAP_N=0 tests/bench/bench_idle.sh # quicker, no heap profile
#   XF_OLD_BIN=/path/to/old/xmppfront tests/bench/bench_idle.sh   # before/after in one run
#   (N is lowered to what `ulimit -n` allows: a proxy holds 2 descriptors per connection)
#
# Every connection (tests/bench/idlec.c) is an authenticated c2s stream in RELAY: TLS 1.3
# (TLS_AES_256_GCM_SHA384, X25519, SNI a.example), stream header, features, SASL PLAIN,
# <success/> from the backend, the restarted header, features; then nothing moves.
# Printed per proxy: RSS fresh / with N / after they closed, KiB per connection; for
# xmppfront also glibc's heap in use (malloc_stats through gdb) fresh / with N, the
# sizes of xf_conn and mbedtls_ssl_context, glibc's malloc_info with N open, and (HEAP_N
# > 0) heaptrack's allocation sites live with HEAP_N connections open.
# Bounded: every process has a time limit; only PIDs started here are signalled; loopback.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH="$ROOT/tests/bench"
XF_BIN=${XF_BIN:-$ROOT/build-bench/xmppfront}
XF_OLD_BIN=${XF_OLD_BIN:-}
XF_EXP_BIN=${XF_EXP_BIN:-}       # a third build (an experiment), label xf_exp
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
N=${N:-10000}
CONC=${CONC:-64}                 # connections in setup at a time
SETUP_MAX_SECS=${SETUP_MAX_SECS:-300}
HEAP_N=${HEAP_N:-1000}           # heaptrack run with this many connections (0 = skip)
SETTLE_SECS=${SETTLE_SECS:-2}
PY=/usr/bin/python3
export BENCH_SUITE=${BENCH_SUITE:-TLS_AES_256_GCM_SHA384} BENCH_GROUP=${BENCH_GROUP:-X25519}

. "$BENCH/lib.sh"

# ------------------------------------------------------------------ lifecycle
STOP_WAIT_TENTHS=100
bench_cleanup_hook() { exec 8>&- 2>/dev/null || true; }
bench_begin xfidle

# ------------------------------------------------------------------ prerequisites
command -v openssl >/dev/null || die "openssl missing"
command -v cc >/dev/null || die "cc missing"
command -v gdb >/dev/null || die "gdb missing (apt-get install gdb)"
[ -x "$HAPROXY" ] || die "haproxy not found ($HAPROXY): apt-get install haproxy"
if [ ! -x "$XF_BIN" ]; then
  log "building xmppfront (RelWithDebInfo) in build-bench"
  cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$ROOT/build-bench" -j2 --target xmppfront >/dev/null
fi
cc -O2 -Wall -o "$TMP/idlec" "$BENCH/idlec.c" -lssl -lcrypto || die "building idlec"
# Each proxy holds 2 descriptors per connection (client, backend). Without
# CAP_SYS_RESOURCE the hard limit caps N (e.g. 20000 -> 9950): N is lowered, and said so.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((N * 2 + 100)) ]; then
  n_max=$((($(ulimit -n) - 100) / 2))
  [ "$n_max" -ge 100 ] || die "ulimit -n $(ulimit -n) too low"
  log "ulimit -n is $(ulimit -n) (hard limit): N lowered from $N to $n_max"
  N=$n_max
fi

read -r P_BACK P_PX < <($PY - <<'EOF'
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
EOF
)

mkdir -p "$TMP/certs" "$TMP/xf/tenants" "$TMP/hap"
bench_make_cert "$TMP/certs" a.example a
cat "$TMP/certs/a.pem" "$TMP/certs/a.key" >"$TMP/hap/a.pem"

cat >"$TMP/xf/tenants/a.example.json" <<EOF
{ "domain": "a.example", "certificate": "../../certs/a.pem", "key": "../../certs/a.key",
  "c2s_backend": "127.0.0.1:$P_BACK" }
EOF
cat >"$TMP/xf/main.json" <<EOF
{ "workers": 1, "tenants": "tenants", "log_level": "warn",
  "listeners": [ { "address": "127.0.0.1", "port": $P_PX, "tls": "direct", "service": "client" } ],
  "limits": { "max_connections": 100000, "handshake_timeout_s": 60, "auth_timeout_s": 600,
              "max_connections_per_ip": 0, "max_unauthenticated_per_ip": 0 } }
EOF
# HAProxy: TLS termination in tcp mode, one thread, no tickets / session cache (xmppfront
# has none here either), the same suites and groups.
cat >"$TMP/hap/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn $((N + 10))
  ulimit-n $(($(ulimit -n) < 2 * N + 200 ? $(ulimit -n) : 2 * N + 200))
  tune.ssl.cachesize 0
  ssl-default-bind-ciphersuites TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256
  ssl-default-bind-curves X25519:P-256:P-384
  ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
defaults
  mode tcp
  timeout connect 10s
  timeout client 3600s
  timeout server 3600s
frontend f
  bind 127.0.0.1:$P_PX ssl crt $TMP/hap/a.pem
  default_backend b
backend b
  server s 127.0.0.1:$P_BACK
EOF

wait_port() {
  local port=$1 i
  for ((i = 0; i < 150; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# glibc's heap: malloc_stats() (all arenas: "in use bytes" of the Total) in the process,
# through gdb; prints KiB in use. Its output goes to the process's stderr ($2).
heap_inuse_kib() {
  local pid=$1 errf=$2 before
  before=$(stat -c %s "$errf")
  timeout 60 gdb -p "$pid" -batch -nx -ex 'call (void)malloc_stats()' >/dev/null 2>&1 || true
  tail -c +$((before + 1)) "$errf" | awk '/^Total/ {t=1} t && /in use bytes/ {printf "%d\n", $NF / 1024; exit}'
}
malloc_info_to() {
  local pid=$1 errf=$2 out=$3 before
  before=$(stat -c %s "$errf")
  timeout 60 gdb -p "$pid" -batch -nx -ex 'call (int)malloc_info(0, *(void **)&stderr)' \
    >/dev/null 2>&1 || true
  tail -c +$((before + 1)) "$errf" | sed -n '/<malloc version/,/<\/malloc>/p' >"$out"
}

"$TMP/idlec" backend "$P_BACK" 3600 2>"$TMP/backend.log" &
PIDS+=($!)
wait_port "$P_BACK" || die "backend did not start"

declare -A R
# One proxy: start, RSS fresh, N idle connections, RSS, heap, close, RSS, stop.
# $1 label, $2 kind (xf|hap), $3 binary
measure() {
  local label=$1 kind=$2 bin=$3 pid errf out n_ok n_fail secs
  errf="$TMP/$label.stderr"
  : >"$errf"
  if [ "$kind" = xf ]; then
    "$bin" --check-config -c "$TMP/xf/main.json" >/dev/null 2>&1 ||
      { "$bin" --check-config -c "$TMP/xf/main.json"; die "xmppfront config refused"; }
    "$bin" -c "$TMP/xf/main.json" 2>"$errf" &
  else
    "$bin" -db -f "$TMP/hap/haproxy.cfg" 2>"$errf" >/dev/null &
  fi
  pid=$!
  PIDS+=("$pid")
  wait_port "$P_PX" || { cat "$errf" >&2; die "$label did not start"; }
  sleep 1
  R[$label.rss0]=$(rss_kib "$pid")
  [ "$kind" = xf ] && R[$label.heap0]=$(heap_inuse_kib "$pid" "$errf")
  out="$TMP/$label.client"
  mkfifo "$TMP/$label.fifo"
  "$TMP/idlec" client 127.0.0.1 "$P_PX" "$N" "$CONC" $((SETUP_MAX_SECS + 120)) \
    <"$TMP/$label.fifo" >"$out" 2>"$TMP/$label.client.err" &
  local cpid=$!
  PIDS+=("$cpid")
  exec 8>"$TMP/$label.fifo"
  local i
  for ((i = 0; i < SETUP_MAX_SECS * 10; i++)); do
    grep -q '^ready' "$out" 2>/dev/null && break
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.1
  done
  read -r _ n_ok n_fail secs < <(grep '^ready' "$out" || echo "ready 0 $N 0")
  R[$label.ok]=$n_ok; R[$label.fail]=$n_fail; R[$label.setup_s]=$secs
  log "$label: $n_ok connections idle, $n_fail failed, set up in ${secs}s"
  [ "$n_fail" = 0 ] || head -20 "$TMP/$label.client.err" >&2
  sleep "$SETTLE_SECS"
  R[$label.rssN]=$(rss_kib "$pid")
  if [ "$kind" = xf ]; then
    R[$label.heapN]=$(heap_inuse_kib "$pid" "$errf")
    malloc_info_to "$pid" "$errf" "$TMP/$label.malloc_info.xml"
  fi
  echo close >&8
  exec 8>&-
  for ((i = 0; i < 600; i++)); do
    grep -q '^closed' "$out" 2>/dev/null && break
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.1
  done
  stop_pid "$cpid"
  sleep "$SETTLE_SECS"
  R[$label.rssC]=$(rss_kib "$pid")
  [ "$kind" = xf ] && R[$label.heapC]=$(heap_inuse_kib "$pid" "$errf")
  stop_pid "$pid"
  log "$label: RSS fresh ${R[$label.rss0]} with N ${R[$label.rssN]} after close ${R[$label.rssC]} KiB; heap ${R[$label.heap0]:--} / ${R[$label.heapN]:--} / ${R[$label.heapC]:--} KiB"
}
bin_of() { case $1 in xf_old) echo "$XF_OLD_BIN" ;; xf_exp) echo "$XF_EXP_BIN" ;; *) echo "$XF_BIN" ;; esac; }

LABELS=()
if [ -n "$XF_OLD_BIN" ]; then measure xf_old xf "$XF_OLD_BIN"; LABELS+=(xf_old); fi
measure xf xf "$XF_BIN"; LABELS+=(xf)
if [ -n "$XF_EXP_BIN" ]; then measure xf_exp xf "$XF_EXP_BIN"; LABELS+=(xf_exp); fi
measure hap hap "$HAPROXY"; LABELS+=(hap)

per() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.2f", (b - a) / n; else print "-" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo
echo "Idle routed connections: N=$N, $(date -u +%F), xmppfront $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $($HAPROXY -v | head -1 | cut -d' ' -f1-3)"
printf '| %-44s' "metric"; for l in "${LABELS[@]}"; do printf '| %12s ' "$l"; done; printf '| xf/hap |\n'
printf '|%s' "----------------------------------------------"; for l in "${LABELS[@]}"; do printf '|%s' "--------------"; done; printf '|--------|\n'
row() {
  local name=$1 key=$2 l
  printf '| %-44s' "$name"
  for l in "${LABELS[@]}"; do printf '| %12s ' "${R[$l.$key]:--}"; done
  printf '| %6s |\n' "$(ratio "${R[xf.$key]:-0}" "${R[hap.$key]:-0}")"
}
for l in "${LABELS[@]}"; do
  R[$l.per]=$(per "${R[$l.rss0]}" "${R[$l.rssN]}" "${R[$l.ok]}")
  [ -n "${R[$l.heapN]:-}" ] && R[$l.heapper]=$(per "${R[$l.heap0]}" "${R[$l.heapN]}" "${R[$l.ok]}")
done
row "connections idle in RELAY" ok
row "  failed" fail
row "  setup time (s, $CONC at a time)" setup_s
row "RSS fresh (KiB)" rss0
row "RSS with N idle (KiB)" rssN
row "RSS after they closed (KiB)" rssC
row "RSS per connection (KiB)" per
row "heap in use fresh (KiB, malloc_stats)" heap0
row "heap in use with N idle (KiB)" heapN
row "heap in use after close (KiB)" heapC
row "heap per connection (KiB)" heapper

echo
for l in "${LABELS[@]}"; do
  [ "$l" = hap ] && continue
  bin=$(bin_of "$l")
  echo "$l sizes (gdb on $bin):"
  gdb -batch -nx "$bin" -ex 'printf "  sizeof(xf_conn) = %d\n", sizeof(struct xf_conn)' \
    -ex 'printf "  sizeof(mbedtls_ssl_context) = %d (inside xf_conn)\n", sizeof(mbedtls_ssl_context)' \
    -ex 'printf "  sizeof(xf_tls_select) = %d\n", sizeof(xf_tls_select)' 2>/dev/null || true
  if [ -s "$TMP/$l.malloc_info.xml" ]; then
    echo "$l malloc_info with N open (per arena: in use = mapped - free; free chunk sizes):"
    $PY - "$TMP/$l.malloc_info.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
for heap in root.findall("heap"):
    tot = {t.get("type"): (int(t.get("count")), int(t.get("size"))) for t in heap.findall("total")}
    sysm = {s.get("type"): int(s.get("size")) for s in heap.findall("system")}
    free = sum(v[1] for v in tot.values())
    print("  arena %s: system %d KiB, free %d KiB (fast %d, rest %d), in use %d KiB" % (
        heap.get("nr"), sysm.get("current", 0) // 1024, free // 1024,
        tot.get("fast", (0, 0))[1] // 1024, tot.get("rest", (0, 0))[1] // 1024,
        (sysm.get("current", 0) - free) // 1024))
for t in root.findall("total"):
    print("  total %s: count %s size %d KiB" % (t.get("type"), t.get("count"), int(t.get("size")) // 1024))
for s in root.findall("system"):
    print("  system %s: %d KiB" % (s.get("type"), int(s.get("size")) // 1024))
EOF
  fi
done

# ------------------------------------------------------------------ heap profile
# heaptrack with HEAP_N idle connections; the proxy is killed (SIGKILL) while they are
# open, so heaptrack's "leaked" is exactly what was live then, summed by allocation
# site per connection (heap_sites.py).
if [ "$HEAP_N" -gt 0 ] && command -v heaptrack >/dev/null; then
  for l in "${LABELS[@]}"; do
    [ "$l" = hap ] && continue
    bin=$(bin_of "$l")
    log "$l: heaptrack with $HEAP_N idle connections"
    ht="$TMP/$l.heaptrack"
    heaptrack -o "$ht" "$bin" -c "$TMP/xf/main.json" >"$TMP/$l.ht.out" 2>&1 &
    hpid=$!
    PIDS+=("$hpid")
    wait_port "$P_PX" || die "$l under heaptrack did not start"
    sleep 1
    xpid=$(pgrep -P "$hpid" -x xmppfront || true)
    [ -n "$xpid" ] || die "no xmppfront under heaptrack"
    out="$TMP/$l.ht.client"
    mkfifo "$TMP/$l.ht.fifo"
    "$TMP/idlec" client 127.0.0.1 "$P_PX" "$HEAP_N" "$CONC" $((SETUP_MAX_SECS + 60)) \
      <"$TMP/$l.ht.fifo" >"$out" 2>&1 &
    cpid=$!
    PIDS+=("$cpid")
    exec 8>"$TMP/$l.ht.fifo"
    for ((i = 0; i < SETUP_MAX_SECS * 10; i++)); do
      grep -q '^ready' "$out" 2>/dev/null && break
      kill -0 "$cpid" 2>/dev/null || break
      sleep 0.1
    done
    sleep "$SETTLE_SECS"
    kill -KILL "$xpid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do kill -0 "$hpid" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$hpid"
    exec 8>&-
    stop_pid "$cpid"
    f=$(ls "$ht".* 2>/dev/null | head -1)
    n_ok=$(grep '^ready' "$out" | cut -d' ' -f2)
    [ -n "$f" ] && [ -n "$n_ok" ] && [ "$n_ok" -gt 0 ] || { log "$l: no heaptrack data"; continue; }
    heaptrack_print -f "$f" -F "$TMP/$l.stacks" --flamegraph-cost-type leaked >/dev/null 2>&1 || true
    echo
    echo "$l heaptrack: live with $n_ok idle connections, bytes per connection by allocation site (>= 8)"
    $PY "$BENCH/heap_sites.py" "$TMP/$l.stacks" "$n_ok" "$ROOT"
  done
fi
