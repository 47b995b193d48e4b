#!/usr/bin/env bash
# Debian's mbedTLS (libmbedtls-dev) against the one deploy/build-mbedtls.sh builds from
# Debian 13's source with deploy/mbedtls/xf_proxy_config.h, side by side in one run:
#  1. in memory (tests/bench/mbedtls_heap.c, built against each): heap per idle server
#     ssl_context after a TLS 1.3 handshake, CPU per handshake (client + server);
#  2. with two xmppfront binaries, one per library (XF_BIN_DEB, default build/xmppfront;
#     XF_BIN_SRC, default build-src/xmppfront, built with -DXF_MBEDTLS_FROM_SOURCE=ON), both
#     running at once, same config and backend: RSS per idle routed TLS connection with
#     IDLE_CONNS open (loadc idle), and proxy CPU per connection for RATE_SECS of new
#     connections (loadc rate: TLS 1.3 handshake + stream header round trip).
#
#   tests/bench/bench_mbedtls_src.sh [PREFIX]      PREFIX: default, build-mbedtls.sh's
#
# Env: CONNS (200) contexts for the heap figure, ROUNDS (300) handshakes, REPEAT (3)
# alternating runs; IDLE_CONNS (1000), RATE_SECS (5), RATE_CONC (8); SKIP_PROXY=1 for
# part 1 only. Prints figures and ratios (source / Debian); never a pass/fail threshold.
# Needs cc, openssl, libssl-dev (loadc), libmbedtls-dev. Stops only the PIDs it started.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
prefix=${1:-$(bash "$here/deploy/build-mbedtls.sh")}
tmp=$(mktemp -d)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ "${BENCH_KEEP:-0}" = 1 ] && echo "kept $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 2 \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -subj /CN=a.example \
  -addext "subjectAltName=DNS:a.example" >/dev/null 2>&1
cc -O2 -o "$tmp/heap_deb" "$here/tests/bench/mbedtls_heap.c" -lmbedtls -lmbedx509 -lmbedcrypto
cc -O2 -I"$prefix/include" -o "$tmp/heap_src" "$here/tests/bench/mbedtls_heap.c" \
  "$prefix/lib/libmbedtls.a" "$prefix/lib/libmbedx509.a" "$prefix/lib/libmbedcrypto.a" -pthread
echo "== 1. in memory (mbedtls_heap.c), $(grep ^source_version= "$prefix/share/xmppfront-mbedtls/build-info")"
for ((i = 0; i < ${REPEAT:-3}; i++)); do
  for v in deb src; do
    printf '%s %s\n' "$v" "$("$tmp/heap_$v" "$tmp/cert.pem" "$tmp/key.pem" "${CONNS:-200}" "${ROUNDS:-300}")"
  done
done | tee "$tmp/out"
awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[$1, kv[1]] += kv[2] } n[$1]++ }
     END { hd = v["deb", "heap_per_ctx"] / n["deb"]; hs = v["src", "heap_per_ctx"] / n["src"]
           td = v["deb", "handshake_us"] / n["deb"]; ts = v["src", "handshake_us"] / n["src"]
           printf "heap per ssl_context: Debian %.1f KB, from source %.1f KB (%.2fx)\n", hd / 1000, hs / 1000, hs / hd
           printf "CPU per handshake (client+server): Debian %.0f us, from source %.0f us (%.2fx)\n", td, ts, ts / td }' "$tmp/out"
[ "${SKIP_PROXY:-0}" = 1 ] && exit 0

# ---- 2. the two proxies
deb_bin=${XF_BIN_DEB:-$here/build/xmppfront} src_bin=${XF_BIN_SRC:-$here/build-src/xmppfront}
for b in "$deb_bin" "$src_bin"; do [ -x "$b" ] || { echo "missing $b (XF_BIN_DEB / XF_BIN_SRC)" >&2; exit 2; }; done
objdump -p "$src_bin" | grep -q 'NEEDED.*libmbedtls' && { echo "$src_bin links libmbedtls.so: not the source build" >&2; exit 2; }
idle=${IDLE_CONNS:-1000}
ulimit -n 20000 2>/dev/null || true
cc -O2 -o "$tmp/loadc" "$here/tests/bench/loadc.c" -lssl -lcrypto -lpthread
cc -O2 -o "$tmp/backend" "$here/tests/bench/backend.c"
# Three free ports below the ephemeral range: with other load on the machine an
# ephemeral port found free can be taken by an outgoing connection before we bind it.
read -r p_back p_deb p_src < <(python3 -c '
import random, socket
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
got = []
while len(got) < 3:
    p = random.randrange(max(1024, lo - 12000), lo)
    s = socket.socket()
    try:
        if p not in got: s.bind(("127.0.0.1", p)); got.append(p)
    except OSError:
        pass
    s.close()
print(*got)')
"$tmp/backend" "$p_back" 900 2>"$tmp/backend.log" & PIDS+=($!)
sleep 0.3; kill -0 "${PIDS[-1]}" 2>/dev/null || { cat "$tmp/backend.log" >&2; echo "the backend did not start" >&2; exit 1; }
declare -A PID
for v in deb src; do
  mkdir -p "$tmp/$v/tenants"
  port=$p_deb; [ $v = src ] && port=$p_src
  cat > "$tmp/$v/main.json" <<JSON
{ "workers": 1, "tenants": "tenants", "log_level": "warn",
  "listeners": [ { "address": "127.0.0.1", "port": $port, "tls": "direct", "service": "client" } ],
  "limits": { "max_connections": 100000, "handshake_timeout_s": 30,
              "max_connections_per_ip": 0, "max_unauthenticated_per_ip": 0 } }
JSON
  cat > "$tmp/$v/tenants/a.example.json" <<JSON
{ "domain": "a.example", "certificate": "$tmp/cert.pem", "key": "$tmp/key.pem", "c2s_backend": "127.0.0.1:$p_back" }
JSON
  bin=$deb_bin; [ $v = src ] && bin=$src_bin
  "$bin" -c "$tmp/$v/main.json" 2>"$tmp/$v/log" & PID[$v]=$!; PIDS+=(${PID[$v]})
done
for v in deb src; do
  port=$p_deb; [ $v = src ] && port=$p_src
  for ((i = 0; i < 100; i++)); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  kill -0 "${PID[$v]}" 2>/dev/null || { cat "$tmp/$v/log" >&2; echo "xmppfront ($v) did not start" >&2; exit 1; }
done
sleep 0.5
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
ticks() { cut -d')' -f2- "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
hz=$(getconf CLK_TCK)
echo "== 2. xmppfront, 1 worker each, both running: $deb_bin vs $src_bin"
for v in deb src; do
  port=$p_deb; [ $v = src ] && port=$p_src
  r0=$(rss "${PID[$v]}")
  mkfifo "$tmp/$v.fifo"; : > "$tmp/$v.idle"
  "$tmp/loadc" idle 127.0.0.1 "$port" a.example "$idle" 120 <"$tmp/$v.fifo" >"$tmp/$v.idle" & lp=$!
  exec 3>"$tmp/$v.fifo"
  for ((i = 0; i < 1200; i++)); do grep -q ready "$tmp/$v.idle" && break; sleep 0.1; done
  sleep 1
  r1=$(rss "${PID[$v]}")
  exec 3>&-
  wait "$lp" || true
  echo "$v idle: $(cat "$tmp/$v.idle") rss ${r0} -> ${r1} KiB: $(awk -v a="$r1" -v b="$r0" -v n="$idle" 'BEGIN { printf "%.1f", (a - b) / n }') KiB per connection"
done | tee "$tmp/idle.out"
for ((i = 0; i < ${REPEAT:-3}; i++)); do
  for v in deb src; do
    port=$p_deb; [ $v = src ] && port=$p_src
    c0=$(ticks "${PID[$v]}")
    line=$("$tmp/loadc" rate 127.0.0.1 "$port" a.example "${RATE_CONC:-8}" "${RATE_SECS:-5}")
    c1=$(ticks "${PID[$v]}")
    ok=$(sed -n 's/.*\bok=\([0-9]*\).*/\1/p' <<<"$line")
    echo "$v rate: $line proxy_cpu_ms_per_conn=$(awk -v t=$((c1 - c0)) -v hz="$hz" -v n="$ok" 'BEGIN { printf "%.3f", n ? t / hz * 1000 / n : 0 }')"
  done
done | tee "$tmp/rate.out"
awk '{ for (i = 3; i <= NF; i++) if ($i ~ /^proxy_cpu_ms_per_conn=/) { split($i, kv, "="); s[$1] += kv[2]; n[$1]++ } }
     END { d = s["deb"] / n["deb"]; r = s["src"] / n["src"]
           printf "proxy CPU per connection: Debian %.3f ms, from source %.3f ms (%.2fx)\n", d, r, r / d }' "$tmp/rate.out"
awk '{ for (i = 1; i <= NF; i++) if ($i == "KiB" && $(i+1) == "per") v[$1] = $(i-1) }
     END { printf "RSS per idle routed connection: Debian %.1f KiB, from source %.1f KiB (%.2fx)\n", v["deb"], v["src"], v["src"] / v["deb"] }' "$tmp/idle.out"
