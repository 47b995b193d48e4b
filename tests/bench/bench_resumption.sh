#!/usr/bin/env bash
# TLS session resumption cost (issue 10 item 2): xmppfront's CPU per handshake, full
# vs resumed, TLS 1.3 (psk_dhe_ke, X25519) and TLS 1.2 (RFC 5077 ticket), in one run.
#
# xmppfront runs with one worker pinned to one core (taskset), a direct-TLS "auto"
# listener and an EC P-256 tenant certificate; `openssl s_time` runs pinned to another
# core, -new (full handshakes) and -reuse (resumed), fetching "/" from the HTTP side
# (needed so that a TLS 1.3 client reads the NewSessionTicket; the same small request in
# both modes). CPU = utime+stime of the xmppfront process (/proc/PID/stat) over the run,
# divided by the handshakes xmppfront counted (xmppfront_tls_resumption_total, by mode),
# so a "resumed" figure can never silently be a full handshake.
#
# Figures only, never a pass/fail. Knobs: SECS (5), XF_BIN (build/xmppfront),
# SERVER_CPU (0), CLIENT_CPU (1).
set -u
. "$(dirname "$0")/../integration/lib.sh"
SECS=${SECS:-5}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
xf_init bench_resumption || exit 1
xf_make_ca "$XF_TMP/pki" "bench CA" || exit 1
xf_make_cert "$XF_TMP/pki" "$XF_TMP/certs/a.example" a.example a.example || exit 1
read -r PORT PADMIN PDEAD < <(xf_free_ports 3)
xf_tenant_write "$XF_TMP/tenants" a.example "" "$XF_TMP/certs/a.example" \
  "127.0.0.1:$PDEAD" "127.0.0.1:$PDEAD"
cat > "$XF_TMP/xmppfront.json" <<EOF
{ "workers": 1, "tenants": "$XF_TMP/tenants", "log_level": "warn",
  "admin": {"port": $PADMIN},
  "listeners": [ {"address": "127.0.0.1", "port": $PORT, "tls": "direct", "service": "auto"} ] }
EOF
taskset -c "$SERVER_CPU" "$XF_BIN" -c "$XF_TMP/xmppfront.json" 2>"$XF_TMP/xf.log" &
PID=$!
xf_track "$PID"
xf_wait_port 127.0.0.1 "$PORT" 10 "$PID" || { cat "$XF_TMP/xf.log"; exit 1; }

tck=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
count() {   # count MODE -> handshakes of that mode so far
  curl -s --max-time 5 "http://127.0.0.1:$PADMIN/metrics" |
    awk -v m="$1" '$1 == "xmppfront_tls_resumption_total{mode=\"" m "\"}" {print $2}'
}

printf 'bench_resumption: %s, xmppfront %s, %ss per row, server on CPU %s, client on CPU %s\n' \
  "$(date -u +%FT%TZ)" "$(git -C "$XF_ROOT" rev-parse --short HEAD 2>/dev/null)" \
  "$SECS" "$SERVER_CPU" "$CLIENT_CPU"
printf '%-8s %-8s %10s %10s %14s\n' tls mode handshakes conn/s "CPU ms/conn"
declare -A RES
for v in tls1_3 tls1_2; do
  for m in new reuse; do
    f0=$(count full); r0=$(count resumed); c0=$(cpu); t0=$(date +%s.%N)
    taskset -c "$CLIENT_CPU" openssl s_time -connect "127.0.0.1:$PORT" "-$m" "-$v" \
      -time "$SECS" -www / >"$XF_TMP/stime.$v.$m" 2>&1
    c1=$(cpu); t1=$(date +%s.%N); f1=$(count full); r1=$(count resumed)
    full=$((f1 - f0)); res=$((r1 - r0))
    if [ "$m" = new ]; then n=$full; other=$res; else n=$res; other=$((full - 1)); fi
    # (s_time -reuse does one full handshake first: not counted as "other".)
    ms=$(awk -v c=$((c1 - c0)) -v t="$tck" -v n=$((full + res)) \
      'BEGIN { if (n > 0) printf "%.3f", c / t * 1000 / n; else print "-" }')
    rate=$(awk -v n="$n" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
    printf '%-8s %-8s %10s %10s %14s%s\n' "$v" "$m" "$n" "$rate" "$ms" \
      "$([ "$other" -gt 0 ] && echo "  ($other handshakes of the other mode!)")"
    RES[$v.$m]=$ms
  done
done
for v in tls1_3 tls1_2; do
  awk -v a="${RES[$v.new]}" -v b="${RES[$v.reuse]}" -v v="$v" \
    'BEGIN { if (b > 0) printf "%s: resumed / full CPU per handshake = %.2f\n", v, b / a }'
done
