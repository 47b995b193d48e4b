#!/usr/bin/env bash
# From routing until authentication the proxy polices the client's stream (issue 6 §2,
# design.md §5). Each check asserts what the client got AND what the backend saw — the
# real Prosody (its log) for the real flows, a scripted raw backend (it records every
# byte it receives) for "never reaches the backend":
#  (d) a normal login through Prosody relays afterwards, unpoliced: a message larger than
#      max_header_bytes sent after login arrives (default auth_timeout_s);
#  then with limits.auth_timeout_s = 2:
#  (a) a routed c2s stream (TLS, header, features) that never authenticates gets
#      <connection-timeout/> after ~2 s; Prosody / the raw backend see the connection end;
#  (e) whitespace keepalives before auth are fine (then SASL PLAIN succeeds and the
#      stream restarts through the proxy), but they do not postpone the auth deadline;
#  (b) a 2 MB <auth> element gets <policy-violation/>; the raw backend saw the header and
#      nothing of the element;
#  (c) <starttls/> after a failed SASL attempt (Prosody: wrong password -> <failure/>) gets
#      <failure xmlns=xmpp-tls/> and the stream closes; with the raw backend: its bytes
#      never arrive there;
#  (f) XEP-0388 SASL2 through the raw backend: <failure/> keeps the stream policed,
#      <success xmlns='urn:xmpp:sasl:2'> (no stream restart) ends the policing;
#  (s) s2s (negotiated by xmppfront since issue 7): before authentication an oversize
#      element is refused, an unverifiable <db:result/> gets a dialback error and a stanza
#      then <not-authorized/>; the raw backend never gets a connection.
. "$(dirname "$0")/lib.sh"
T=preauth_policing
read -r P_RAW < <(xf_free_ports 1)
XF_W_C2S_BACKEND="127.0.0.1:$P_RAW" xf_setup_standard "$T" ||
  xf_setup_failed "$T: could not start Prosody + xmppfront"
PLOG="$XF_TMP/prosody/prosody.log"
RAW="$XF_TMP/raw"
mkdir -p "$RAW"

# ---- the scripted backend: a header and features for any stream header, SASL PLAIN
# (success only for user1/good), dialback (valid only for key 'goodkey'). Records every
# connection's bytes in RAW/N.in, its end in RAW/N.end (seconds after its start).
cat > "$XF_TMP/raw_backend.py" <<'PYEOF'
import base64, os, re, socket, sys, threading, time
port, out = int(sys.argv[1]), sys.argv[2]
HDR = rb"<stream:stream[^>]*>"
def serve(c, n):
    t0 = time.monotonic()
    rec = open(os.path.join(out, f'{n}.in'), 'wb', buffering=0)
    buf = b''
    want_header = True
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            rec.write(d)
            buf += d
            while True:
                if want_header:
                    m = re.search(HDR, buf)
                    if not m:
                        break
                    server = b'jabber:server' in m.group(0)
                    buf = buf[m.end():]
                    want_header = False
                    ns = 'jabber:server' if server else 'jabber:client'
                    feat = ("<stream:features><dialback xmlns='urn:xmpp:features:dialback'/>"
                            "</stream:features>" if server else
                            "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                            "<mechanism>PLAIN</mechanism></mechanisms></stream:features>")
                    c.sendall((f"<?xml version='1.0'?><stream:stream xmlns='{ns}' "
                               "xmlns:db='jabber:server:dialback' "
                               "xmlns:stream='http://etherx.jabber.org/streams' "
                               f"from='w.example' id='raw{n}' version='1.0'>" + feat).encode())
                    continue
                m = re.search(rb"<auth[^>]*>([^<]*)</auth>", buf)
                if m:
                    buf = buf[m.end():]
                    if base64.b64decode(m.group(1) + b'==') == b'\0user1\0good':
                        c.sendall(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
                        want_header = True
                    else:
                        c.sendall(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                                  b"<not-authorized/></failure>")
                    continue
                m = re.search(rb"<authenticate xmlns='urn:xmpp:sasl:2'[^>]*>"
                              rb"<initial-response>([^<]*)</initial-response></authenticate>", buf)
                if m:     # XEP-0388 SASL2: no stream restart after <success/>
                    buf = buf[m.end():]
                    ok = base64.b64decode(m.group(1) + b'==') == b'\0user1\0good'
                    c.sendall(b"<success xmlns='urn:xmpp:sasl:2'><authorization-identifier>"
                              b"user1@w.example</authorization-identifier></success>" if ok else
                              b"<failure xmlns='urn:xmpp:sasl:2'><not-authorized "
                              b"xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/></failure>")
                    continue
                m = re.search(rb"<db:result[^>]*>([^<]*)</db:result>", buf)
                if m:
                    buf = buf[m.end():]
                    v = b'valid' if m.group(1) == b'goodkey' else b'invalid'
                    c.sendall(b"<db:result from='w.example' to='remote.example' type='" + v + b"'/>")
                    continue
                break
    except OSError:
        pass
    with open(os.path.join(out, f'{n}.end'), 'w') as f:
        f.write(f'{time.monotonic() - t0:.2f}\n')
    c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', port)); s.listen(64)
n = 0
while True:
    c, _ = s.accept(); n += 1
    threading.Thread(target=serve, args=(c, n), daemon=True).start()
PYEOF
timeout 600 "$XF_PY" "$XF_TMP/raw_backend.py" "$P_RAW" "$RAW" &
xf_track $!
xf_wait_port 127.0.0.1 "$P_RAW" 5 $! || xf_setup_failed "$T: raw backend did not start"

# ---- scripted client: direct TLS, a header, the features, then steps.
#   send:TEXT  ws:N:SEC (N spaces, SEC apart)  big:N (a <auth> of N bytes of 'A', its
#   first 16 kB in small writes)
#   expect:REGEX (within 8 s)  closed (EOF within 8 s)  restart (new header, features)
#   mark (print the elapsed time since the features)
cat > "$XF_TMP/client.py" <<'PYEOF'
import re, socket, ssl, sys, time
port, ca, dom, ns = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
steps = sys.argv[5:]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', port), timeout=10), server_hostname=dom)
buf, closed = b'', False
def hdr():
    extra = " xmlns:db='jabber:server:dialback' from='remote.example'" if ns == 'jabber:server' else ''
    return (f"<?xml version='1.0'?><stream:stream xmlns='{ns}' xmlns:stream='http://etherx.jabber.org/"
            f"streams' to='{dom}' version='1.0'{extra}>").encode()
def until(pat, t=8):
    global buf, closed
    deadline = time.monotonic() + t
    while True:
        m = re.search(pat, buf, re.S)
        if m or closed:
            return m
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        s.settimeout(left)
        try:
            d = s.recv(65536)
        except socket.timeout:
            return None
        except (OSError, ssl.SSLError) as e:
            print(f'recv: {e}'); d = b''
        if not d:
            closed = True
        buf += d
def send(b):
    try:
        s.sendall(b)
    except (OSError, ssl.SSLError) as e:
        print(f'send: {e} (after the proxy closed?)')
s.sendall(hdr())
if not until(rb'</stream:features>'):
    sys.exit(f'FAIL: no features: {buf[:300]!r}')
print(f'features: {buf[-200:]!r}')
t0 = time.monotonic()
for st in steps:
    kind, _, arg = st.partition(':')
    if kind == 'send':
        send(arg.encode())
    elif kind == 'ws':
        n, sec = arg.split(':')
        for _ in range(int(n)):
            send(b' '); time.sleep(float(sec))
    elif kind == 'big':
        # the first 16 kB in 512-byte writes (separate TLS records, each well under the
        # limit: a proxy that forwarded bytes as they come would pass the element's start
        # on), then the rest at once
        el = (b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
              b'A' * int(arg) + b"</auth>")
        for i in range(0, 16384, 512):
            send(el[i:i + 512]); time.sleep(0.005)
        send(el[16384:])
    elif kind == 'restart':
        buf = b''
        s.sendall(hdr())
        if not until(rb'</stream:features>'):
            sys.exit(f'FAIL: no features after the restart: {buf[:300]!r}')
        print(f'restarted: {buf[:300]!r}')
    elif kind == 'expect':
        m = until(arg.encode())
        if not m:
            sys.exit(f'FAIL: no {arg!r} (closed={closed}) in {buf[-400:]!r}')
        print(f'got {m.group(0)[:160]!r} after {time.monotonic() - t0:.1f}s')
    elif kind == 'closed':
        until(rb'$^')
        if not closed:
            sys.exit('FAIL: the stream is still open')
        print(f'closed after {time.monotonic() - t0:.1f}s')
    elif kind == 'mark':
        print(f'ELAPSED {time.monotonic() - t0:.2f}')
print('OK')
PYEOF
pa_client() { timeout 40 "$XF_PY" "$XF_TMP/client.py" "$@"; }
B64_GOOD=$(printf '\0user1\0pass1' | base64)
B64_RAWGOOD=$(printf '\0user1\0good' | base64)
B64_BAD=$(printf '\0user1\0wrong' | base64)
AUTH="<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
STARTTLS="<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
TLS_FAILURE="<failure xmlns=.urn:ietf:params:xml:ns:xmpp-tls./></stream:stream>"
SASL_FAILURE="<failure xmlns=.urn:ietf:params:xml:ns:xmpp-sasl.>"
# newest raw backend connection number
raw_last() { ls "$RAW" | sed -n 's/\.in$//p' | sort -n | tail -1; }
# raw_end N: wait up to 5 s for connection N's end, print its duration
raw_end() { local i; for ((i = 0; i < 50; i++)); do [ -f "$RAW/$1.end" ] && { cat "$RAW/$1.end"; return 0; }; sleep 0.1; done; echo "connection $1 still open"; return 1; }
# raw_lasted N MIN MAX: connection N ended, after MIN..MAX seconds
raw_lasted() { local d; d=$(raw_end "$1") || { echo "$d"; return 1; }; echo "lasted ${d}s"; awk -v d="$d" -v a="$2" -v b="$3" 'BEGIN { exit !(d + 0 >= a && d + 0 <= b) }'; }
# raw_ends_with_spaces N: connection N's bytes end in '>' and at least two spaces
raw_ends_with_spaces() { tail -c 40 "$RAW/$1.in" | od -c | head -4; "$XF_PY" -c 'import re, sys; sys.exit(0 if re.search(rb">  +\Z", open(sys.argv[1], "rb").read()) else 1)' "$RAW/$1.in"; }

# prosody_last_unauth_closed: Prosody's newest c2s session (from its last "Client
# connected" line on) was closed and never authenticated. Waits up to 3 s for the close.
prosody_last_unauth_closed() {
  local i tail_ sid
  for ((i = 0; i < 30; i++)); do
    tail_=$(awk '/\tClient connected/ { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' "$PLOG")
    sid=$(printf '%s\n' "$tail_" | awk -F'\t' 'NR == 1 { split($1, a, " "); print a[4] }')
    printf '%s\n' "$tail_" | grep -q "$sid"$'\t'"info"$'\t'"Client disconnected" && break
    sleep 0.1
  done
  printf '%s\n' "$tail_" | grep "$sid"
  [ -n "$sid" ] && printf '%s\n' "$tail_" | grep -q "$sid"$'\t'"info"$'\t'"Client disconnected" &&
    ! printf '%s\n' "$tail_" | grep -q "$sid"$'\t'"info"$'\t'"Authenticated"
}

# ---- (d) default auth_timeout_s: a normal login relays afterwards, unpoliced
BIG=$(head -c 15000 /dev/zero | tr '\0' 'm')
xf_check "(d) normal login through Prosody (direct TLS), then a ${#BIG}-byte message (> max_header_bytes 8192) arrives" \
  xf_client --port "$P_C2S_TLS" --mode direct --ca "$XF_CA" --domain a.example --body "$BIG"
xf_check "(d) Prosody authenticated both users" \
  bash -c "grep -c 'Authenticated as user1@a.example' '$PLOG' && grep -q 'Authenticated as user2@a.example' '$PLOG'"

# ---- restart the proxy with auth_timeout_s = 2
xf_stop_pid "$XF_PROXY_PID" 5
"$XF_PY" - "$XF_CFG" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1])); c['limits']['auth_timeout_s'] = 2
json.dump(c, open(sys.argv[1], 'w'), indent=1)
PYEOF
XF_LOG="$XF_TMP/xf/xmppfront2.log"
xf_proxy_start "$XF_CFG" "$XF_LOG" "$P_C2S" "$P_C2S_TLS" "$P_S2S" "$P_S2S_TLS" "$P_AUTO" ||
  xf_setup_failed "$T: xmppfront did not restart with auth_timeout_s 2"

# ---- (a) never authenticates
OUT="$XF_TMP/a.out"
xf_check "(a) Prosody, direct TLS: header + features, then nothing -> <connection-timeout/> after ~2 s, stream closed" \
  bash -c "timeout 30 '$XF_PY' '$XF_IT_DIR/raw_peer.py' --port $P_C2S_TLS --mode direct --to a.example --ca '$XF_CA' \
             --hold 8 --hold-expect error:connection-timeout >'$OUT' 2>&1; rc=\$?; grep -E 'HOLD|RESULT' '$OUT';
           [ \$rc = 0 ] && grep -Eq 'HOLD: stream ended as error:connection-timeout after (1\.[5-9]|2\.[0-9]|3\.[0-5])s' '$OUT'"
sleep 0.5
xf_check "(a) the proxy logged the auth timeout for a.example" \
  xf_log_has "$XF_LOG" 'tenant="a.example"' 'reason="stream error connection-timeout: not authenticated within auth_timeout_s"'
xf_check "(a) Prosody: that c2s session was closed and never authenticated" \
  prosody_last_unauth_closed
xf_check "(a) direct TLS, raw backend: <connection-timeout/> after ~2 s" \
  pa_client "$P_C2S_TLS" "$XF_CA" w.example jabber:client mark \
    "expect:<connection-timeout xmlns=.urn:ietf:params:xml:ns:xmpp-streams./>" closed
N=$(raw_last)
xf_check "(a) the raw backend's connection was dropped ~2 s after it opened (not left open)" \
  raw_lasted "$N" 1.4 4

# ---- (e) keepalives
xf_check "(e) Prosody: spaces before auth (0.9 s), then SASL PLAIN succeeds, the stream restarts, bind works" \
  pa_client "$P_C2S_TLS" "$XF_CA" a.example jabber:client ws:3:0.3 "send:$AUTH$B64_GOOD</auth>" \
    "expect:<success xmlns=.urn:ietf:params:xml:ns:xmpp-sasl." restart \
    "send:<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>" \
    "expect:<jid>user1@a.example/[^<]*</jid>" ws:3:1 "send:<presence/>" \
    "send:<message to='user1@a.example' type='chat' id='m1'><body>$BIG</body></message>" \
    "expect:<body>m{15000}</body>"
xf_check "(e) Prosody authenticated that stream" \
  bash -c "[ \$(grep -c 'Authenticated as user1@a.example' '$PLOG') -ge 2 ]"
xf_check "(e) raw backend: keepalives do not postpone the auth deadline (spaces every 0.4 s -> <connection-timeout/> at ~2 s)" \
  pa_client "$P_C2S_TLS" "$XF_CA" w.example jabber:client ws:8:0.4 mark \
    "expect:<connection-timeout xmlns=.urn:ietf:params:xml:ns:xmpp-streams./>" closed
N=$(raw_last)
xf_check "(e) the raw backend received the keepalive spaces after the header" \
  raw_ends_with_spaces "$N"

# ---- (b) 2 MB pre-auth element
xf_check "(b) raw backend: a 2 MB <auth> -> <policy-violation/>, stream closed" \
  pa_client "$P_C2S_TLS" "$XF_CA" w.example jabber:client big:2097152 \
    "expect:<policy-violation xmlns=.urn:ietf:params:xml:ns:xmpp-streams./>" closed
N=$(raw_last)
raw_end "$N" >/dev/null
xf_check "(b) the raw backend saw the stream header and none of the <auth> element's bytes" \
  bash -c "wc -c < '$RAW/$N.in'; grep -q \"to='w.example'\" '$RAW/$N.in' && ! grep -q '<auth' '$RAW/$N.in' && ! grep -q AAAA '$RAW/$N.in' && [ \$(wc -c < '$RAW/$N.in') -lt 1000 ]"
xf_check "(b) the proxy logged the policy violation" \
  xf_log_has "$XF_LOG" 'tenant="w.example"' 'stream error policy-violation: before authentication: first-level element too large'
xf_check "(b) Prosody: a 2 MB <auth> -> <policy-violation/> (the stream still answers first)" \
  pa_client "$P_C2S_TLS" "$XF_CA" a.example jabber:client big:2097152 \
    "expect:<policy-violation xmlns=.urn:ietf:params:xml:ns:xmpp-streams./>" closed

# ---- (c) <starttls/> after a failed SASL attempt
xf_check "(c) Prosody: wrong password -> SASL <failure/>; then <starttls/> -> <failure xmlns=xmpp-tls/> + close" \
  pa_client "$P_C2S_TLS" "$XF_CA" a.example jabber:client "send:$AUTH$B64_BAD</auth>" \
    "expect:$SASL_FAILURE" "send:$STARTTLS" "expect:$TLS_FAILURE" closed
xf_check "(c) Prosody: that session never authenticated and was closed (the proxy dropped it)" \
  prosody_last_unauth_closed
xf_check "(c) the proxy logged the refusal" \
  xf_log_has "$XF_LOG" 'tenant="a.example"' 'client sent <starttls/> inside TLS: answered <failure/>'
xf_check "(c) raw backend: SASL <failure/>, then <starttls/> -> <failure xmlns=xmpp-tls/> + close" \
  pa_client "$P_C2S_TLS" "$XF_CA" w.example jabber:client "send:$AUTH$B64_BAD</auth>" \
    "expect:$SASL_FAILURE" "send:$STARTTLS" "expect:$TLS_FAILURE" closed
N=$(raw_last)
raw_end "$N" >/dev/null
xf_check "(c) the raw backend got the <auth/> but never the <starttls/>" \
  bash -c "cat '$RAW/$N.in'; echo; grep -q '<auth' '$RAW/$N.in' && ! grep -q starttls '$RAW/$N.in'"

# ---- (f) XEP-0388 SASL2 (no stream restart): its <failure/> keeps policing, its <success/> ends it
SASL2="<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>"
xf_check "(f) raw backend, SASL2 <failure/>: still policed, a 30 kB element -> <policy-violation/>" \
  pa_client "$P_C2S_TLS" "$XF_CA" w.example jabber:client "send:$SASL2$B64_BAD</initial-response></authenticate>" \
    "expect:<failure xmlns=.urn:xmpp:sasl:2.>" "send:<message to='x@w.example'><body>$BIG$BIG</body></message>" \
    "expect:<policy-violation xmlns=.urn:ietf:params:xml:ns:xmpp-streams./>" closed
N=$(raw_last)
raw_end "$N" >/dev/null
xf_check "(f) ... the raw backend got the <authenticate/> and nothing of the element" \
  bash -c "grep -q '<authenticate' '$RAW/$N.in' && ! grep -q '<message' '$RAW/$N.in'"
xf_check "(f) raw backend, SASL2 <success/>: policing ends, a 30 kB element goes through, the stream outlives auth_timeout_s" \
  pa_client "$P_C2S_TLS" "$XF_CA" w.example jabber:client "send:$SASL2$B64_RAWGOOD</initial-response></authenticate>" \
    "expect:<success xmlns=.urn:xmpp:sasl:2.>" "send:<message to='x@w.example'><body>$BIG$BIG</body></message>" \
    ws:1:3 "send:<message to='x@w.example'><body>after</body></message>" ws:1:0.5
N=$(raw_last)
xf_check "(f) ... the raw backend received the whole element and the later one" \
  bash -c "grep -q \"<body>$BIG$BIG</body></message>\" '$RAW/$N.in' && grep -q '<body>after</body>' '$RAW/$N.in'"

# ---- (s) s2s: xmppfront negotiates server streams itself (issue 7, s2s_in.c; the
# dialback cases are in test_inbound_s2s_scripted.sh): before authentication the remote's
# elements stay bounded by max_header_bytes and nothing reaches the backend
# (w.example's s2s -> raw)
xf_tenant_write "$XF_TMP/xf/tenants" w.example "chat.w.example" "$XF_TMP/certs/w.example" \
  "127.0.0.1:$P_RAW" "127.0.0.1:$P_RAW"
xf_stop_pid "$XF_PROXY_PID" 5
XF_LOG="$XF_TMP/xf/xmppfront3.log"
xf_proxy_start "$XF_CFG" "$XF_LOG" "$P_C2S" "$P_C2S_TLS" "$P_S2S" "$P_S2S_TLS" "$P_AUTO" ||
  xf_setup_failed "$T: xmppfront did not restart with w.example's s2s on the raw backend"
PAD=$(head -c 20000 /dev/zero | tr '\0' 'q')
DBR="<db:result from='remote.example' to='w.example'>"
N0=$(raw_last)
xf_check "(s) s2s: a 20 kB element before authentication -> <policy-violation/>" \
  pa_client "$P_S2S_TLS" "$XF_CA" w.example jabber:server \
    "send:<message from='x@remote.example' to='y@w.example'><body>$PAD</body></message>" \
    "expect:<policy-violation xmlns=.urn:ietf:params:xml:ns:xmpp-streams./>" closed
xf_check "(s) s2s: a <db:result/> that cannot be verified -> dialback error; a stanza then -> <not-authorized/>" \
  pa_client "$P_S2S_TLS" "$XF_CA" w.example jabber:server "send:${DBR}badkey</db:result>" \
    "expect:type=.error." "send:<message from='x@remote.example' to='y@w.example'><body>x</body></message>" \
    "expect:<not-authorized xmlns=.urn:ietf:params:xml:ns:xmpp-streams./>" closed
xf_check "(s) ... and the raw backend got no connection for either stream" \
  bash -c "[ \"\$(ls '$RAW' | grep -c '\.in$')\" = \"${N0:-0}\" ]"
xf_check "proxy still running" kill -0 "$XF_PROXY_PID"
xf_finish "$T"
