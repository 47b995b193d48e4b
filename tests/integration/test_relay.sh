#!/usr/bin/env bash
# End-to-end relaying through xmppfront and Prosody:
#  (a) user1 sends user2 300 messages of 8-20 KB random text (ASCII, XML specials, non-
#      ASCII, newlines) over direct TLS; all arrive, in order, with byte-identical bodies;
#  (b) whitespace keepalives: a raw TLS client logged in with SASL PLAIN sends single spaces
#      between stanzas (and sits idle between them); Prosody keeps the session, a ping and
#      a message sent afterwards are still answered/delivered;
#  (c) clean close: that client sends </stream:stream>, receives Prosody's </stream:stream>,
#      the connection is gone (EOF) within a few seconds, and the proxy's close line for
#      that peer port says the stream was closed (client/backend closed) with its bytes.
. "$(dirname "$0")/lib.sh"
T=relay
xf_setup_standard "$T" || xf_setup_failed "$T: could not start Prosody + xmppfront"

xf_check "(a) 300 messages of 8-20 KB via direct TLS: all delivered, in order, byte-identical" \
  timeout 50 "$XF_PY" - "$XF_IT_DIR" "$P_C2S_TLS" "$XF_CA" <<'PYEOF'
import asyncio, hashlib, random, sys, time
sys.path.insert(0, sys.argv[1])
import xmpp_client                                  # the harness's slixmpp client class
port, ca = int(sys.argv[2]), sys.argv[3]
N = 300

class A:  # the options xmpp_client.Client and xmpp_client.connect read
    mode, ca, alpn, domain, host = 'direct', ca, None, 'a.example', '127.0.0.1'
A.port = port

rnd = random.Random(20261122)
alphabet = ('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789     '
            '.,;:!?-_()[]{}<>&\'"/\\\n\té€ü漢字😀')
bodies = [f'#{i:03d} ' + ''.join(rnd.choice(alphabet) for _ in range(rnd.randint(8000, 20000)))
          for i in range(N)]

async def main():
    c1 = xmpp_client.Client('user1@a.example/bulk1', 'pass1', A, 'user1')
    c2 = xmpp_client.Client('user2@a.example/bulk2', 'pass2', A, 'user2')
    for c in (c1, c2):
        xmpp_client.connect(c, A)          # direct TLS only, whatever the slixmpp version
    if not await xmpp_client.wait_started((c1, c2), time.monotonic() + 20):
        print('FAIL: login', c1.failed, c2.failed); return 1
    t0 = time.monotonic()
    for b in bodies:
        c1.send_message(mto='user2@a.example/bulk2', mbody=b, mtype='chat')
    got = []
    deadline = time.monotonic() + 35
    while len(got) < N:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            m = await asyncio.wait_for(c2.inbox.get(), timeout=left)
        except asyncio.TimeoutError:
            break
        got.append(m['body'])
    dt = time.monotonic() - t0
    size = sum(len(b.encode()) for b in bodies)
    print(f'sent {N} messages, {size} bytes of body; received {len(got)} in {dt:.1f}s')
    bad = 0
    for i, (a, b) in enumerate(zip(bodies, got)):
        if a != b:
            bad += 1
            if bad <= 3:
                print(f'message {i}: sent {len(a)} chars sha256 {hashlib.sha256(a.encode()).hexdigest()[:16]}, '
                      f'received {b[:10]!r} {len(b)} chars sha256 {hashlib.sha256(b.encode()).hexdigest()[:16]}')
    for c in (c1, c2):
        c.disconnect(wait=1.0)
    await asyncio.sleep(0.3)
    if len(got) != N or bad:
        print(f'FAIL: {len(got)}/{N} received, {bad} differ or out of order'); return 1
    print('all bodies identical and in order')
    return 0

loop = asyncio.new_event_loop(); asyncio.set_event_loop(loop)
sys.exit(loop.run_until_complete(main()))
PYEOF

RAW="$XF_TMP/raw.out"
xf_check "(b)+(c) raw SASL PLAIN session: spaces between stanzas kept alive; clean </stream:stream> both ways, EOF" \
  timeout 40 "$XF_PY" - "$P_C2S_TLS" "$XF_CA" "$RAW" <<'PYEOF'
import base64, re, socket, ssl, sys, time
port, ca, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(('127.0.0.1', port), timeout=10)
lport = s.getsockname()[1]
open(out, 'w').write(f'{lport}\n')
t = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname='a.example')
buf = b''
def send(x):
    print('SENT', repr(x[:200])); t.sendall(x.encode() if isinstance(x, str) else x)
def until(pat, timeout=10):
    global buf
    deadline = time.monotonic() + timeout
    while True:
        m = re.search(pat, buf, re.S)
        if m:
            r = buf[:m.end()]; buf = buf[m.end():]; print('RECV', repr(r[-300:])); return r
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit(f'FAIL: timeout waiting for {pat!r}; have {buf[-300:]!r}')
        t.settimeout(left)
        d = t.recv(65536)
        if not d:
            raise SystemExit(f'FAIL: EOF waiting for {pat!r}; have {buf[-300:]!r}')
        buf += d
HDR = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
       "xmlns:stream='http://etherx.jabber.org/streams' to='a.example' version='1.0'>")
send(HDR); until(rb'</stream:features>')
send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
     + base64.b64encode(b'\0user1\0pass1').decode() + '</auth>')
until(rb'<success[^>]*(/>|</success>)')
send(HDR); until(rb'</stream:features>')
send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
     "<resource>ka</resource></bind></iq>")
r = until(rb"<iq[^>]*id=['\"]b1['\"].*?</iq>")
jid = re.search(rb'<jid>([^<]+)</jid>', r).group(1).decode()
print('bound', jid)
# whitespace keepalives: single spaces, idle gaps, between stanzas
for i in range(6):
    send(' ')
    time.sleep(0.5)
send(f"<iq type='get' id='p1' to='a.example'><ping xmlns='urn:xmpp:ping'/></iq>")
until(rb"<iq[^>]*id=['\"]p1['\"][^>]*type=['\"]result['\"]|<iq[^>]*type=['\"]result['\"][^>]*id=['\"]p1['\"]")
for i in range(6):
    send(' ')
    time.sleep(0.5)
send(f"<message to='{jid}' type='chat' id='m1'><body>after keepalives</body></message>")
until(rb'<body>after keepalives</body>.*?</message>')
print('OK: session kept across whitespace keepalives')
# (c) clean close
t0 = time.monotonic()
send('</stream:stream>')
until(rb'</stream:stream>', 5)
print(f'received the closing </stream:stream> after {time.monotonic() - t0:.2f}s')
t.settimeout(5)
try:
    while True:
        d = t.recv(4096)
        if not d:
            break
        print('after close, received', repr(d[:100]))
except (ssl.SSLError, OSError) as e:
    print(f'close as {e!r}')
dt = time.monotonic() - t0
print(f'connection gone (EOF) {dt:.2f}s after </stream:stream>')
sys.exit(0 if dt < 5 else 1)
PYEOF
LPORT=$(head -1 "$RAW" 2>/dev/null)
sleep 0.5
xf_check "(c) proxy close line for peer port ${LPORT:-?}: stream closed by client/backend, tenant and bytes" \
  bash -c "grep 'peer=127.0.0.1:${LPORT:-none} ' '$XF_LOG' | grep -E 'reason=\"(client|backend) closed' | grep 'tenant=a.example' | grep -E ' in=[1-9][0-9]* out=[1-9]'"
xf_check "(c) that connection is no longer established" \
  bash -c "! ss -Htn state established '( sport = :$P_C2S_TLS and dport = :${LPORT:-1} )' | grep -q ."
xf_check "proxy still running" kill -0 "$XF_PROXY_PID"
xf_finish "$T"
