#!/usr/bin/env bash
# A client whose peer vanishes (every packet dropped both ways, as when a phone leaves
# coverage) is closed by TCP keepalive (limits.tcp_keepalive_s) within its bound, with
# the reason "peer unreachable: keepalive timed out" in the close line, and counted.
# Everything runs inside a network namespace made for the test; the drop rules (nft)
# live only there and go with it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_netns.sh"
T=keepalive_vanished_peer
command -v nft >/dev/null || { echo "FAIL: $T: nft (package nftables) is not installed"; exit 1; }
xf_netns_init "$T" || xf_setup_failed "$T: no network namespace"
xf_ns_tenant_world || xf_setup_failed "$T: PKI"
KA=1
BOUND=$((KA + 5 * 1))            # idle + 5 probes x max(1, idle/6) s
PORT=5222
XF_CFG="$XF_TMP/xf/xmppfront.json" XF_LOG="$XF_TMP/xf/xmppfront.log"
XF_WORKERS=1 xf_config_write "$XF_CFG" tenants "$(xf_listener 127.0.0.1 $PORT starttls client)" \
  "\"tcp_keepalive_s\": $KA, \"handshake_timeout_s\": 120, \"drain_timeout_s\": 2"
xf_ns_proxy_start "$XF_CFG" "$XF_LOG" $PORT || xf_setup_failed "$T: xmppfront did not start"

# The client: connects, sends half a stream header (the proxy then waits, idle), says
# READY, then stays silent with the socket open for 60 s (we stop it earlier).
xf_ns timeout 90 "$XF_PY" -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"<?xml version=\x271.0\x27?><stream:stream xmlns=\x27jabber:client\x27 to=\x27a.ex")
print("READY", s.getsockname()[1], flush=True)
time.sleep(60)
' $PORT > "$XF_TMP/client.out" 2>&1 &
CPID=$!
xf_track $CPID
for ((i = 0; i < 50; i++)); do grep -q READY "$XF_TMP/client.out" && break; sleep 0.1; done
CPORT=$(awk '/READY/ {print $2}' "$XF_TMP/client.out")
xf_check "client connected from 127.0.0.1:$CPORT and is held by the proxy" \
  bash -c "[ -n '$CPORT' ] && ip netns exec '$XF_NS' ss -Htn state established '( sport = :$PORT )' | grep ':$CPORT'"
sleep 0.5
# Blackhole: drop everything in and out of the namespace (both ends of the connection).
xf_ns nft -f - <<'NFT'
table inet xfit_blackhole {
  chain in  { type filter hook input  priority 0; policy drop; }
  chain out { type filter hook output priority 0; policy drop; }
}
NFT
T0=$(date +%s.%N)
xf_log "packets dropped; keepalive bound ${BOUND}s"
wait_close() {
  local i
  for ((i = 0; i < (BOUND + 10) * 10; i++)); do
    grep -q "peer=127.0.0.1:$CPORT .*reason=" "$XF_LOG" && break
    sleep 0.1
  done
  grep "peer=127.0.0.1:$CPORT " "$XF_LOG"
  grep -q "peer=127.0.0.1:$CPORT .*reason=\"peer unreachable: keepalive timed out (client side)\"" "$XF_LOG"
}
xf_check "the proxy closes the vanished peer's connection: reason=\"peer unreachable: keepalive timed out (client side)\"" wait_close
ELAPSED=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
xf_check "closed within the keepalive bound (${BOUND}s + 3s slack; took ${ELAPSED}s), not by the 120s handshake timeout" \
  bash -c "awk -v e='$ELAPSED' -v b='$BOUND' 'BEGIN { exit !(e > 0 && e <= b + 3) }'"
xf_ns nft flush ruleset
xf_stop_pid $CPID 2
xf_ns_proxy_stop
xf_check "counted: close_keepalive=1 in the proxy's counters at exit" \
  xf_counter_is "$XF_LOG" close_keepalive 1
xf_finish "$T"
