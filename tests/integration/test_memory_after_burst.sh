#!/usr/bin/env bash
# Memory comes back after a burst: BURST (2,000) pre-TLS connections from one address
# to the STARTTLS port, each sending part of a stream header, all held, then all closed.
# The proxy's RSS after they closed must come back close to where it started
# (< start + 8 MB; the worker calls malloc_trim once its connections fell below a
# quarter of their peak). Prints the figures, including the cost per held connection.
# Loopback inside a network namespace made for the test; bounded in count and time.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_netns.sh"
T=memory_after_burst
BURST=${XF_BURST:-2000}
xf_netns_init "$T" || xf_setup_failed "$T: no network namespace"
xf_ns_tenant_world || xf_setup_failed "$T: PKI"
ulimit -n $((BURST * 2 + 200)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
PORT=5222
XF_CFG="$XF_TMP/xf/xmppfront.json" XF_LOG="$XF_TMP/xf/xmppfront.log"
XF_WORKERS=2 xf_config_write "$XF_CFG" tenants "$(xf_listener 127.0.0.1 $PORT starttls client)" \
  "\"max_connections_per_ip\": $((BURST + 100)), \"max_unauthenticated_per_ip\": $((BURST + 100)), \"handshake_timeout_s\": 120, \"drain_timeout_s\": 2"
xf_ns_proxy_start "$XF_CFG" "$XF_LOG" $PORT || xf_setup_failed "$T: xmppfront did not start"
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$XF_PROXY_PID/status"; }
sleep 0.5
START=$(rss_kb)

# The load client: opens BURST connections, each sends a partial header (two writes),
# holds them all, reports, waits for "close" on stdin, closes them all.
mkfifo "$XF_TMP/ctl"
cat > "$XF_TMP/load.py" <<'PYEOF'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
part = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
        b"xmlns:stream='http://etherx.jabber.org/streams' to='a.exa")
socks = []
t0 = time.monotonic()
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(part[:40]); socks.append(s)
for s in socks:
    s.sendall(part[40:])
print(f"HELD {len(socks)} in {time.monotonic() - t0:.1f}s", flush=True)
sys.stdin.readline()
for s in socks:
    s.close()
print("CLOSED", flush=True)
time.sleep(1)
PYEOF
xf_ns timeout 120 "$XF_PY" "$XF_TMP/load.py" "$PORT" "$BURST" <"$XF_TMP/ctl" >"$XF_TMP/load.out" 2>&1 &
LPID=$!
xf_track $LPID
exec 7>"$XF_TMP/ctl"
for ((i = 0; i < 600; i++)); do grep -q HELD "$XF_TMP/load.out" && break; kill -0 $LPID 2>/dev/null || break; sleep 0.1; done
# the proxy has read every partial header once its live connections reach BURST
live_conns() { xf_ns ss -Htn state established "( sport = :$PORT )" | wc -l; }
for ((i = 0; i < 100; i++)); do [ "$(live_conns)" -ge "$BURST" ] && break; sleep 0.1; done
sleep 1
PEAK=$(rss_kb)
HELD=$(live_conns)
echo "close" >&7; exec 7>&-
for ((i = 0; i < 100; i++)); do grep -q CLOSED "$XF_TMP/load.out" && break; sleep 0.1; done
# wait (bounded) for the proxy's close lines and its trim timer
for ((i = 0; i < 150; i++)); do
  n=$(grep -c ' close ' "$XF_LOG")
  [ "$n" -ge "$BURST" ] && [ "$(rss_kb)" -lt $((START + 8192)) ] && break
  sleep 0.1
done
END=$(rss_kb)
cat "$XF_TMP/load.out"
PER=$(( (PEAK - START) * 1024 / (HELD > 0 ? HELD : 1) ))
echo "  RSS: start ${START} kB, with $HELD held connections ${PEAK} kB (~${PER} B each), after they closed ${END} kB"
grep 'memory handed back' "$XF_LOG" | sed 's/^/  /'
xf_check "the burst was held: $HELD of $BURST connections established at the peak" \
  bash -c "[ '$HELD' -ge '$BURST' ]"
xf_check "every connection of the burst was closed and logged" \
  bash -c "n=\$(grep -c ' close ' '$XF_LOG'); echo \"\$n close lines\"; [ \"\$n\" -ge '$BURST' ]"
xf_check "RSS after the burst (${END} kB) < start (${START} kB) + 8 MB; peak was ${PEAK} kB" \
  bash -c "[ '$END' -lt $((START + 8192)) ]"
xf_check "the burst did grow RSS (the test measures something): peak > start + 8 MB" \
  bash -c "[ '$PEAK' -gt $((START + 8192)) ]"
[ -n "${XF_PAUSE:-}" ] && { echo "PID $XF_PROXY_PID"; sleep "$XF_PAUSE"; }
xf_finish "$T"
