#!/usr/bin/env bash
# Backpressure on an inbound s2s stream that xmppfront keeps scanning while relaying
# (issue 7: every remote stanza's from/to is checked, so the stream is parsed, not copied):
# a remote authenticated by SASL EXTERNAL pushes 64 MB of stanzas while the scripted
# backend does not read for 4 s (small receive buffer). Checks:
#  (1) xmppfront stops reading the remote: within those 4 s the remote gets far less than
#      64 MB written (the kernel buffers on the way hold a few MB at most);
#  (2) xmppfront's RSS stays bounded meanwhile (< 16 MB above its start);
#  (3) once the backend reads again, every stanza arrives, whole and in order;
#  (4) the other way too: the backend pushes 16 MB while the remote does not read for
#      3 s; then the remote receives all of it.
. "$(dirname "$0")/lib.sh"
T=inbound_s2s_backpressure
xf_init "$T" || exit 1
xf_make_test_pki "$XF_TMP" || xf_setup_failed "$T: PKI"
C="$XF_TMP/certs"
xf_make_cert "$XF_TMP/pki" "$C/remote.example" remote.example remote.example || xf_setup_failed "$T: cert"
read -r P_S2S P_BE < <(xf_free_ports 2)
mkdir -p "$XF_TMP/xf/tenants"
SECRET_FILE="$XF_TMP/xf/dialback.secret"
printf 'bp-secret-%s' "$RANDOM$RANDOM" > "$SECRET_FILE"; chmod 600 "$SECRET_FILE"

# backend: answers the assertion valid (it trusts any key here: test_inbound_s2s_scripted
# checks the key), pushes 16 MB to the remote, then sleeps 4 s before reading stanzas;
# counts the <body>N</body> it receives and checks their order.
cat > "$XF_TMP/backend.py" <<'PYEOF'
import re, socket, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', port)); s.listen(4)
c, _ = s.accept()
c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
buf = b''
while not re.search(rb'</db:result>', buf):
    d = c.recv(65536)
    if not d: sys.exit(1)
    buf += d
    if re.search(rb'<stream:stream[^>]*>', buf) and not getattr(sys, 'greeted', False):
        sys.greeted = True
        c.sendall(b"<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
                  b"xmlns:stream='http://etherx.jabber.org/streams' id='bp1' version='1.0'>"
                  b"<stream:features/>")
c.sendall(b"<db:result from='a.example' to='remote.example' type='valid'/>")
pad = b'b' * 65000
for i in range(256):     # 16 MB toward the remote
    c.sendall(b"<message from='u@a.example' to='x@remote.example'><body>" + str(i).encode() + b'-' + pad + b"</body></message>")
time.sleep(4)
n, want, bad, rest = 0, 0, 0, b''
c.settimeout(20)
t0 = time.monotonic()
while time.monotonic() - t0 < 60:
    try:
        d = c.recv(1 << 20)
    except socket.timeout:
        break
    if not d: break
    rest += d
    for m in re.finditer(rb'<body>(\d+)-a+</body></message>', rest):
        if int(m.group(1)) != want: bad += 1
        want = int(m.group(1)) + 1; n += 1
    k = rest.rfind(b'</message>')
    if k >= 0: rest = rest[k + 10:]
    if n >= 1024: break
open(out, 'w').write(f'received {n} bad_order {bad}\n')
time.sleep(1)
PYEOF
timeout 120 "$XF_PY" "$XF_TMP/backend.py" "$P_BE" "$XF_TMP/backend.out" &
BE_PID=$!
xf_track $BE_PID
xf_wait_port 127.0.0.1 "$P_BE" 5 $BE_PID || xf_setup_failed "$T: backend"
xf_tenant_write "$XF_TMP/xf/tenants" a.example "" "$C/a.example" "127.0.0.1:1" "127.0.0.1:$P_BE"
XF_CFG="$XF_TMP/xf/xmppfront.json" XF_LOG="$XF_TMP/xf/xmppfront.log"
cat > "$XF_CFG" <<EOF
{ "workers": 1, "tenants": "tenants",
  "listeners": [$(xf_listener 127.0.0.1 "$P_S2S" direct server)],
  "federation": {"ca_file": "$XF_TMP/pki/ca.pem", "dialback_secret_file": "$SECRET_FILE"} }
EOF
xf_proxy_start "$XF_CFG" "$XF_LOG" "$P_S2S" || xf_setup_failed "$T: xmppfront"
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$XF_PROXY_PID/status"; }
START=$(rss_kb)

# the remote: EXTERNAL, restart, then a writer thread pushes 1024 x 64 kB stanzas while
# the main thread does not read for 3 s, samples xmppfront's RSS, then reads everything.
cat > "$XF_TMP/remote.py" <<'PYEOF'
import re, socket, ssl, sys, threading, time
port, ca, cert, key, pid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
def rss():
    for l in open(f'/proc/{pid}/status'):
        if l.startswith('VmRSS:'): return int(l.split()[1])
ctx = ssl.create_default_context(cafile=ca); ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(['xmpp-server'])
raw = socket.create_connection(('127.0.0.1', port), timeout=20)
raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s = ctx.wrap_socket(raw, server_hostname='a.example')
H = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
     "xmlns:stream='http://etherx.jabber.org/streams' to='a.example' from='remote.example' version='1.0'>").encode()
buf = b''
def until(pat):
    global buf
    while not re.search(pat, buf, re.S):
        d = s.recv(65536)
        if not d: print('EOF', buf[-300:]); sys.exit(1)
        buf += d
s.sendall(H); until(rb'</stream:features>')
s.sendall(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>")
until(rb'<success'); buf = b''
s.sendall(H); until(rb'</stream:features>|<stream:features/>')
buf = buf[buf.rfind(b'features'):]
sent = [0]
pad = b'a' * 65000
def writer():
    for i in range(1024):
        m = (b"<message from='x@remote.example' to='u@a.example'><body>" + str(i).encode() + b'-' + pad + b"</body></message>")
        s.sendall(m)
        sent[0] += len(m)
t = threading.Thread(target=writer, daemon=True); t.start()
peak = 0
for _ in range(30):            # 3 s: nothing read from xmppfront, the backend sleeps too
    time.sleep(0.1); peak = max(peak, rss())
print(f'SENT_WITHIN_3S {sent[0]} PEAK_RSS_KB {peak}', flush=True)
n, want, bad, rest = 0, 0, 0, buf
s.settimeout(30)
t0 = time.monotonic()
while n < 256 and time.monotonic() - t0 < 40:
    d = s.recv(1 << 20)
    if not d: break
    rest += d
    for m in re.finditer(rb'<body>(\d+)-b+</body></message>', rest):
        if int(m.group(1)) != want: bad += 1
        want = int(m.group(1)) + 1; n += 1
    k = rest.rfind(b'</message>')
    if k >= 0: rest = rest[k + 10:]
t.join(60)
print(f'REMOTE_RECEIVED {n} BAD_ORDER {bad} SENT_TOTAL {sent[0]}', flush=True)
time.sleep(3)
PYEOF
OUT="$XF_TMP/remote.out"
timeout 120 "$XF_PY" "$XF_TMP/remote.py" "$P_S2S" "$XF_TMP/pki/ca.pem" "$C/remote.example/fullchain.pem" \
  "$C/remote.example/privkey.pem" "$XF_PROXY_PID" > "$OUT" 2>&1
cat "$OUT"
wait $BE_PID 2>/dev/null
cat "$XF_TMP/backend.out" 2>/dev/null
SENT3=$(awk '/^SENT_WITHIN_3S/ {print $2}' "$OUT")
PEAK=$(awk '/^SENT_WITHIN_3S/ {print $4}' "$OUT")
echo "  start RSS ${START} kB, peak while blocked ${PEAK:-?} kB, sent within 3 s ${SENT3:-?} bytes"
xf_check "(1) while the backend does not read, the remote got < 16 MB of 64 MB written" \
  test "${SENT3:-999999999}" -lt 16777216
xf_check "(2) xmppfront's RSS stayed < start + 16 MB" test "${PEAK:-999999999}" -lt $((START + 16384))
xf_check "(3) the backend received all 1024 stanzas in order" grep -q '^received 1024 bad_order 0' "$XF_TMP/backend.out"
xf_check "(4) the remote received all 256 backend stanzas in order" grep -q '^REMOTE_RECEIVED 256 BAD_ORDER 0 SENT_TOTAL 66' "$OUT"
xf_check "proxy still running" kill -0 "$XF_PROXY_PID"
xf_finish "$T"
