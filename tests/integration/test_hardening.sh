#!/usr/bin/env bash
# Regressions of review findings:
#  (a) s2s STARTTLS header with a from= of 1300 'x' on the server STARTTLS listener: a full
#      answer (header echoing the whole from as `to`, features with <starttls/>), TLS works,
#      the stream after TLS gets an answer; the proxy keeps serving a normal client;
#  (b) a stream `to` with "&#10;" + text shaped like a log line forges no log line: the log
#      has the escaped \x0a form and no line starts with the injected text;
#  (c) a second xmppfront with the same config exits nonzero with "Address already in use";
#      the first keeps serving;
#  (e) <starttls/> after TLS (Prosody behind offers TLS) -> <failure xmlns=xmpp-tls/> and
#      the stream closes, on the STARTTLS port (after the post-TLS restart) and on direct TLS;
#  (f) a TLS 1.2 client attempting renegotiation (openssl s_client 'R') is closed, gets no second
#      handshake (one ServerHello only);
#  (d) SIGTERM, then SIGHUP and a second SIGTERM during the drain: the process keeps
#      draining (an established relayed connection stays open until the drain deadline) and
#      exits 0. Last, since it stops the proxy.
. "$(dirname "$0")/lib.sh"
T=hardening
DRAIN=5
XF_DRAIN_TIMEOUT=$DRAIN xf_setup_standard "$T" || xf_setup_failed "$T: could not start Prosody + xmppfront"

# ---- (a) huge s2s from
xf_check "(a) s2s STARTTLS header with from='x'*1300: full pre-TLS answer, TLS, an answer after TLS" \
  timeout 20 "$XF_PY" - "$P_S2S" "$XF_CA" <<'PYEOF'
import re, socket, ssl, sys, time
port, ca = int(sys.argv[1]), sys.argv[2]
X = 'x' * 1300
def hdr():
    return ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
            f"xmlns:stream='http://etherx.jabber.org/streams' to='a.example' from='{X}' version='1.0'>").encode()
def until(sock, pat, t=8):
    buf, deadline = b'', time.monotonic() + t
    while not re.search(pat, buf, re.S) and time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            d = sock.recv(65536)
        except socket.timeout:
            break
        if not d:
            break
        buf += d
    return buf
s = socket.create_connection(('127.0.0.1', port), timeout=10)
s.sendall(hdr())
pre = until(s, rb'</stream:features>|</stream:error>')
print(f'pre-TLS answer ({len(pre)} bytes): {pre[:160]!r}...{pre[-160:]!r}')
if f"to='{X}'".encode() not in pre and f'to="{X}"'.encode() not in pre:
    sys.exit('FAIL: the response header does not carry the whole 1300-byte from as to')
if b'<starttls' not in pre or b'</stream:features>' not in pre:
    sys.exit('FAIL: no <starttls/> feature in the pre-TLS answer')
s.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
if b'<proceed' not in until(s, rb'<proceed[^>]*/>|<failure'):
    sys.exit('FAIL: no <proceed/>')
t = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname='a.example')
t.sendall(hdr())
post = until(t, rb'</stream:features>|</stream:error>')
print(f'post-TLS answer ({len(post)} bytes): {post[:300]!r}')
if not (b'</stream:features>' in post or b'</stream:error>' in post):
    sys.exit('FAIL: no features or stream error after TLS')
PYEOF
xf_check "(a) afterwards: a normal client logs in and messages (STARTTLS)" \
  xf_client --port "$P_C2S" --mode starttls --ca "$XF_CA" --domain a.example
xf_check "(a) proxy process alive" kill -0 "$XF_PROXY_PID"

# ---- (b) log injection through `to`
FAKE="1999-01-01T00:00:00.000Z info conn id=424242 close tenant=forged.example reason=FORGED"
xf_check "(b) STARTTLS pre-TLS to='a.example&#10;<fake log line>' -> <host-unknown/>" \
  xf_peer --port "$P_C2S" --mode starttls --pretls --to "a.example&#10;$FAKE" --expect-error host-unknown
xf_check "(b) direct TLS to='a.example&#13;&#10;<fake log line>' -> <host-unknown/>" \
  xf_peer --port "$P_C2S_TLS" --mode direct --sni a.example --to "a.example&#13;&#10;$FAKE" \
          --ca "$XF_CA" --expect-error host-unknown
sleep 0.5
xf_check "(b) the log shows the newline escaped (\\x0a followed by the injected text)" \
  xf_log_has "$XF_LOG" 'reason=' "\\x0a$FAKE"
xf_check "(b) no log line starts with the injected text (no forged line, no bare CR)" \
  bash -c "grep -n '^1999-01-01' '$XF_LOG' && exit 1; grep -c \$'\\r' '$XF_LOG' | grep -qx 0"

# ---- (c) second instance on the same config
xf_check "(c) a second xmppfront with the same config exits nonzero with 'Address already in use'" \
  bash -c "timeout 10 '$XF_BIN' -c '$XF_CFG' 2>'$XF_TMP/second.err'; rc=\$?; cat '$XF_TMP/second.err'; echo \"exit \$rc\"; [ \$rc -ne 0 ] && [ \$rc -ne 124 ] && grep -q 'Address already in use' '$XF_TMP/second.err'"
xf_check "(c) the first instance keeps serving (direct TLS login + message)" \
  xf_client --port "$P_C2S_TLS" --mode direct --ca "$XF_CA" --domain a.example

# ---- (e) <starttls/> inside TLS
check_starttls_failure() {  # PORT MODE
  local out="$XF_TMP/e-$1.out"
  xf_peer --port "$1" --mode "$2" --to a.example --ca "$XF_CA" --second-starttls --timeout 8 >"$out" 2>&1
  local rc=$?; cat "$out"
  [ $rc = 0 ] && grep -q "refused: \"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\"; closed=True" "$out"
}
xf_check "(e) STARTTLS port, after TLS and the stream restart: <starttls/> -> <failure xmlns=xmpp-tls/> + close" \
  check_starttls_failure "$P_C2S" starttls
xf_check "(e) direct TLS port: <starttls/> -> <failure xmlns=xmpp-tls/> + close" \
  check_starttls_failure "$P_C2S_TLS" direct

# ---- (f) TLS 1.2 renegotiation
RENEG="$XF_TMP/reneg.out"
{ printf "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='a.example' version='1.0'>\n"
  sleep 1; printf 'R\n'; sleep 2; } |
  timeout 15 openssl s_client -tls1_2 -connect "127.0.0.1:$P_C2S_TLS" -servername a.example \
    -CAfile "$XF_CA" -msg >"$RENEG" 2>&1
xf_check "(f) TLS 1.2 renegotiation attempt: the first handshake and the relayed features happened" \
  bash -c "grep -E 'Cipher is|features' '$RENEG' | cut -c1-160; grep -q 'New, TLSv1.2, Cipher is ECDHE' '$RENEG' && grep -q '</stream:features>' '$RENEG'"
xf_check "(f) no second handshake: exactly one ServerHello, one 'New, TLSv1.2' (what happened is printed)" \
  bash -c "grep -E 'RENEGOTIATING|ServerHello[^D]|Alert|no renegotiation|New, ' '$RENEG' | cut -c1-160; [ \$(grep -c 'ServerHello\$' '$RENEG') = 1 ] && [ \$(grep -c '^New, ' '$RENEG') = 1 ]"
sleep 0.3
xf_check "(f) the proxy closed the connection on the renegotiation attempt (RFC 6120 §5.4.3.3)" \
  grep -q 'reason="TLS renegotiation attempt"' "$XF_LOG"
xf_check "(f) proxy alive after the renegotiation attempt" kill -0 "$XF_PROXY_PID"

# ---- (d) SIGTERM, SIGHUP + SIGTERM during the drain
OUT="$XF_TMP/hold.out"
xf_peer --port "$P_C2S_TLS" --mode direct --to a.example --ca "$XF_CA" --hold 30 >"$OUT" 2>&1 &
IDLE=$!; xf_track "$IDLE"
ready=0
for ((i = 0; i < 100; i++)); do
  grep -q '</stream:features>' "$OUT" 2>/dev/null && { ready=1; break; }
  kill -0 "$IDLE" 2>/dev/null || break; sleep 0.1
done
xf_check "(d) a relayed connection is established (Prosody's features received)" test $ready = 1
t0=$(date +%s.%N)
kill -TERM "$XF_PROXY_PID"; sleep 1
kill -HUP "$XF_PROXY_PID"; sleep 0.5
kill -TERM "$XF_PROXY_PID"
sleep $((DRAIN - 3))    # ~1 s before the drain deadline
xf_check "(d) $((DRAIN - 1))s into the ${DRAIN}s drain (after HUP + 2nd TERM): proxy still running, relayed connection still open" \
  bash -c "cat '$OUT' | tail -2; kill -0 $XF_PROXY_PID && kill -0 $IDLE && ! grep -q 'HOLD:' '$OUT'"
exited=0
for ((i = 0; i < 80; i++)); do
  if ! kill -0 "$XF_PROXY_PID" 2>/dev/null || ps -p "$XF_PROXY_PID" -o stat= | grep -q Z; then exited=1; break; fi
  sleep 0.1
done
t1=$(date +%s.%N)
if [ $exited = 1 ]; then wait "$XF_PROXY_PID"; RC=$?; else RC=running; fi
EL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
xf_check "(d) exited ${EL}s after the first SIGTERM (drain ${DRAIN}s: between $((DRAIN - 1)) and $((DRAIN + 2)))" \
  awk -v e="$EL" -v x="$exited" -v d="$DRAIN" 'BEGIN { exit !(x == 1 && e >= d - 1 && e <= d + 2) }'
xf_check "(d) exit status 0 (got $RC)" test "$RC" = 0
wait "$IDLE" 2>/dev/null
xf_check "(d) the relayed connection was ended by the drain deadline" \
  bash -c "grep HOLD: '$OUT'; grep -Eq 'HOLD: stream ended as (error|close)' '$OUT'"
xf_check "(d) the SIGHUP and the second SIGTERM during the drain were handled and logged" \
  bash -c "grep -q 'reload (SIGHUP) ignored: shutting down' '$XF_LOG' && grep -q 'SIGTERM received: already draining' '$XF_LOG'"
xf_check "(d) the drain ran to its deadline and the process logged a clean stop" \
  bash -c "grep -E 'drain|stopped|SIG' '$XF_LOG'; grep -q 'drain deadline reached' '$XF_LOG' && tail -1 '$XF_LOG' | grep -q 'info stopped'"
xf_finish "$T"
