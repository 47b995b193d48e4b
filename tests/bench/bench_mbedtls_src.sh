#!/usr/bin/env bash
# Debian's mbedTLS (libmbedtls-dev) against the one deploy/build-mbedtls.sh builds from
# Debian 13's source with deploy/mbedtls/xf_proxy_config.h, side by side in one run:
# heap per idle server ssl_context after a TLS 1.3 handshake and CPU per handshake
# (tests/bench/mbedtls_heap.c, in memory), then — with XF_BIN and XF_BIN_SRC — the RSS of
# the two xmppfront binaries holding IDLE_CONNS idle TLS connections.
#
#   tests/bench/bench_mbedtls_src.sh [PREFIX]      PREFIX: default, build-mbedtls.sh's
#
# Env: CONNS (200) contexts for the heap figure, ROUNDS (300) handshakes, REPEAT (3)
# alternating runs of each. Prints figures and ratios; never a pass/fail threshold.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
prefix=${1:-$(bash "$here/deploy/build-mbedtls.sh")}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 2 \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -subj /CN=a.example >/dev/null 2>&1
cc -O2 -o "$tmp/heap_deb" "$here/tests/bench/mbedtls_heap.c" -lmbedtls -lmbedx509 -lmbedcrypto
cc -O2 -I"$prefix/include" -o "$tmp/heap_src" "$here/tests/bench/mbedtls_heap.c" \
  "$prefix/lib/libmbedtls.a" "$prefix/lib/libmbedx509.a" "$prefix/lib/libmbedcrypto.a" -pthread
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
