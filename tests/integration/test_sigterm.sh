#!/usr/bin/env bash
# SIGTERM with an open idle (relayed, post-TLS) connection: xmppfront drains and exits 0
# within the drain deadline (limits.drain_timeout_s, set to 3 here); during the drain new
# connections are not served; the idle stream is ended (a stream error such as
# <system-shutdown/> or a close), and the listening ports are gone afterwards.
. "$(dirname "$0")/lib.sh"
T=sigterm
DRAIN=3
XF_DRAIN_TIMEOUT=$DRAIN xf_setup_standard "$T" || xf_setup_failed "$T: could not start Prosody + xmppfront"

OUT="$XF_TMP/idle.out"
xf_peer --port "$P_C2S_TLS" --mode direct --to a.example --ca "$XF_CA" --hold 30 \
  >"$OUT" 2>&1 &
IDLE=$!
xf_track "$IDLE"
ready=0
for ((i = 0; i < 100; i++)); do
  grep -q '</stream:features>' "$OUT" 2>/dev/null && { ready=1; break; }
  kill -0 "$IDLE" 2>/dev/null || break
  sleep 0.1
done
xf_check "idle client connected through the proxy (features received)" \
  bash -c "cat '$OUT'; [ $ready = 1 ]"

t0=$(date +%s.%N)
kill -TERM "$XF_PROXY_PID"
sleep 0.5
# during the drain, new connections are not served: refused, or closed without a reply
xf_check "during the drain a new connection is refused (or closed unanswered)" \
  timeout 10 "$XF_PY" - "$P_C2S" <<'PYEOF'
import socket, sys
port = int(sys.argv[1])
try:
    s = socket.create_connection(('127.0.0.1', port), timeout=2)
except OSError as e:
    print(f'connect: {e}'); sys.exit(0)
s.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' to='a.example' version='1.0'>")
s.settimeout(2)
try:
    data = s.recv(4096)
except (socket.timeout, OSError) as e:
    print(f'no answer ({e})'); sys.exit(1 if isinstance(e, socket.timeout) else 0)
print(f'received {data[:300]!r}')
sys.exit(0 if (not data or b'<stream:error>' in data) else 1)
PYEOF
exited=0
for ((i = 0; i < (DRAIN + 10) * 10; i++)); do
  if ! kill -0 "$XF_PROXY_PID" 2>/dev/null || ps -p "$XF_PROXY_PID" -o stat= | grep -q Z; then
    exited=1; break
  fi
  sleep 0.1
done
t1=$(date +%s.%N)
if [ $exited = 1 ]; then wait "$XF_PROXY_PID"; RC=$?; else RC=timeout; fi
ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
xf_check "exited after SIGTERM within drain ${DRAIN}s + 2s (took ${ELAPSED}s)" \
  awk -v e="$ELAPSED" -v x="$exited" -v d="$DRAIN" 'BEGIN { exit !(x == 1 && e <= d + 2) }'
xf_check "exit status 0 (got $RC)" test "$RC" = 0
wait "$IDLE" 2>/dev/null
xf_check "idle stream was ended by the shutdown" \
  bash -c "cat '$OUT'; grep -Eq 'HOLD: stream ended as (error|close)' '$OUT'"
xf_check "listening ports closed after exit" \
  bash -c "! ss -Hltn 'sport = :$P_C2S' | grep -q . && ! ss -Hltn 'sport = :$P_C2S_TLS' | grep -q ."
xf_finish "$T"
