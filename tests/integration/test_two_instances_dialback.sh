#!/usr/bin/env bash
# More than one instance (issue 9): two xmppfront processes that share the dialback
# secret file (federation.dialback_secret_file) and the tenants answer each other's
# dialback keys (XEP-0220 §2.1.2, XEP-0185), as behind one SRV name with two targets.
# In the lab's namespace, three instances of the same tenant a.example, each on its own
# loopback address: A (127.0.1.10) and B (127.0.1.11) with secret file S1, C (127.0.1.12)
# with another secret file S2. A scripted backend asks A's outbound listener for a stream
# to a scripted remote (dialback bridge); A connects to the remote by its _xmpps-server
# SRV and sends its <db:result/> key; the remote, as a real receiving server would ask the
# tenant's authoritative server, asks another instance with <db:verify/>:
#  (1) shared.example asks B: type='valid'; the remote accepts, A reports the stream
#      authenticated by dialback, and B's log names the verify answered valid;
#  (2) split.example asks C (same tenants, different secret): type='invalid'; A's stream
#      is refused, the backend gets no valid result — so the test fails if B's answer
#      in (1) came from anything but the shared secret;
#  (3) the key A sent to shared.example, asked of A itself and of B again: valid, of C:
#      invalid (the three keep their secrets apart in one run).
. "$(dirname "$0")/../lab/lab.sh"
. "$(dirname "$0")/outbound_lib.sh"
T=test_two_instances_dialback

lab_init "$T" || exit 1
lab_up || xf_setup_failed "$T: lab_up"
lab_ca || xf_setup_failed "$T: CA"
P="$LAB_DIR/peers"
xf_make_cert "$LAB_DIR/pki" "$LAB_DIR/certs/a.example" a.example a.example &&
xf_make_cert "$LAB_DIR/pki" "$P/shared" shared.example shared.example &&
xf_make_cert "$LAB_DIR/pki" "$P/split" split.example split.example || xf_setup_failed "$T: certificates"
S1="$LAB_DIR/secret-shared"; S2="$LAB_DIR/secret-other"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$S1"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$S2"
chmod 600 "$S1" "$S2"
mkdir -p "$LAB_DIR/tenants"
cat > "$LAB_DIR/tenants/a.example.json" <<JSON
{ "domain": "a.example", "certificate": "$LAB_DIR/certs/a.example/fullchain.pem",
  "key": "$LAB_DIR/certs/a.example/privkey.pem",
  "c2s_backend": "127.0.0.1:15222", "s2s_backend": "127.0.0.1:15269", "federation": "encrypted" }
JSON
lab_host shared.example 127.0.1.80
lab_host split.example 127.0.1.81
lab_rr _xmpps-server._tcp.shared.example SRV "0 5 5270 shared.example."
lab_rr _xmpps-server._tcp.split.example SRV "0 5 5270 split.example."
# a.example itself as the deployment would publish it: two targets, A and B
lab_host xf-a.a.example 127.0.1.10
lab_host xf-b.a.example 127.0.1.11
lab_rr _xmpps-server._tcp.a.example SRV "0 5 5270 xf-a.a.example."
lab_rr _xmpps-server._tcp.a.example SRV "0 5 5270 xf-b.a.example."
lab_addr 127.0.1.12 || xf_setup_failed "$T: address C"
lab_dns_start || xf_setup_failed "$T: dns"

# With the admin listener (issue 9; 127.0.0.1:8269 by default) each instance gets its own
# address for it, as three processes cannot share that port.
# instance NAME ADDR SECRET — one xmppfront: s2s direct TLS on ADDR:5270, a plain
# outbound listener on ADDR:15270, the shared tenants folder
declare -A XPID XLOG
instance() {
  local n=$1 addr=$2 secret=$3 d="$LAB_DIR/xf$1"
  mkdir -p "$d"
  cat > "$d/xmppfront.json" <<JSON
{
  "workers": 1,
  "tenants": "$LAB_DIR/tenants",
  "log_level": "info",
  "listeners": [ $(xf_listener "$addr" 5270 direct server),
    { "address": "$addr", "port": 15270, "tls": "none", "service": "outbound" } ],
  "limits": { "handshake_timeout_s": 10, "drain_timeout_s": 0 },
  "admin": { "address": "$addr", "port": 8269 },
  "federation": { "ca_file": "$LAB_DIR/pki/ca.pem", "resolvers": ["$LAB_DNS4"],
                  "dialback_secret_file": "$secret", "connect_timeout_s": 2, "negotiation_timeout_s": 8 }
}
JSON
  XLOG[$n]="$d/xmppfront.log"
  lab_xf_start "$d/xmppfront.json" "${XLOG[$n]}"
  XPID[$n]=$LAB_XF_PID
  lab_xf_wait "$addr" 5270 "${XLOG[$n]}" || xf_setup_failed "$T: instance $n"
}
instance A 127.0.1.10 "$S1"
instance B 127.0.1.11 "$S1"
instance C 127.0.1.12 "$S2"

# ---- the scripted remote: a receiving server that verifies with the authoritative
# server it is told (XEP-0220 §2.1.2), then answers the <db:result/> with that verdict
cat > "$LAB_DIR/remote.py" <<'PY'
import re, socket, ssl, sys, threading, uuid, time
addr, port, dom, cert, key, vhost, vport, logf = sys.argv[1:9]
log = open(logf, 'a', buffering=1)
def attr(tag, n):
    m = re.search(r"\s%s=(['\"])(.*?)\1" % n, tag); return m.group(2) if m else None
def until(s, buf, pat, t=10):
    end = time.time() + t
    while not re.search(pat, buf, re.S):
        if time.time() > end: raise TimeoutError(pat)
        s.settimeout(max(0.1, end - time.time())); d = s.recv(65536)
        if not d: raise EOFError(pat)
        buf += d.decode()
    m = re.search(pat, buf, re.S); return m, buf[m.end():]
def verify(T, sid, k):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE; ctx.set_alpn_protocols(['xmpp-server'])
    s = ctx.wrap_socket(socket.create_connection((vhost, int(vport)), 10), server_hostname=T)
    s.sendall((f"<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
               f"xmlns:db='jabber:server:dialback' from='{dom}' to='{T}' version='1.0'>").encode())
    m, buf = until(s, '', r'</stream:features>')
    s.sendall(f"<db:verify from='{dom}' to='{T}' id='{sid}'>{k}</db:verify>".encode())
    m, buf = until(s, buf, r'<db:verify[^>]*?(/>|>.*?</db:verify>)')
    s.sendall(b'</stream:stream>'); s.close()
    return attr(m.group(0), 'type')
def serve(c):
    t = ctx.wrap_socket(c, server_side=True)
    m, buf = until(t, '', r'<stream:stream[^>]*>')
    T = attr(m.group(0), 'from'); sid = uuid.uuid4().hex
    t.sendall((f"<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
               f"xmlns:db='jabber:server:dialback' from='{dom}' to='{T}' id='{sid}' version='1.0'>"
               f"<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>").encode())
    m, buf = until(t, buf, r'<db:result[^>]*>(.*?)</db:result>')
    k = m.group(1).strip()
    log.write(f"KEY {T} {sid} {k}\n")
    v = verify(T, sid, k)
    log.write(f"VERIFY {T} {sid} {v} at {vhost}\n")
    t.sendall(f"<db:result from='{dom}' to='{T}' type='{'valid' if v == 'valid' else 'invalid'}'/>".encode())
    try: until(t, buf, r'</stream:stream>', 15)
    except Exception: pass
    t.close()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(['xmpp-server'])
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((addr, int(port))); ls.listen(8)
while True:
    c, _ = ls.accept()
    def run(c=c):
        try: serve(c)
        except Exception as e: log.write(f"CLOSED {type(e).__name__}: {e}\n")
    threading.Thread(target=run, daemon=True).start()
PY
remote() {   # NAME ADDR VERIFY_ADDR
  timeout 120 ip netns exec "$LAB_NS" "$XF_PY" "$LAB_DIR/remote.py" "$2" 5270 "$1.example" \
    "$P/$1/fullchain.pem" "$P/$1/privkey.pem" "$3" 5270 "$LAB_DIR/$1.log" >/dev/null 2>&1 &
  xf_track $!
  lab_wait_port "$2" 5270 10 || xf_setup_failed "$T: remote $1"
}
remote shared 127.0.1.80 127.0.1.11   # asks B
remote split 127.0.1.81 127.0.1.12    # asks C

# the backend's dialback bridge request to A: A authenticates a.example -> R itself
ob_peer backend --connect 127.0.1.10 15270 --from a.example --to shared.example --result --timeout 12 \
  > "$LAB_DIR/backend-shared.out" 2>&1
ob_peer backend --connect 127.0.1.10 15270 --from a.example --to split.example --result --timeout 12 \
  > "$LAB_DIR/backend-split.out" 2>&1
sleep 0.3

xf_check "(1) B answers the <db:verify/> for A's key type='valid' (shared secret file)" \
  grep -E '^VERIFY a\.example [0-9a-f]+ valid at 127\.0\.1\.11$' "$LAB_DIR/shared.log"
xf_check "(1) B's log: the verify from shared.example answered valid" \
  xf_log_has "${XLOG[B]}" 's2s db:verify' 'from="shared.example"' 'answered valid'
xf_check "(1) A: a.example -> shared.example authenticated by dialback; the backend's result is valid" \
  bash -c "grep -q 'tenant=\"a.example\" remote=\"shared.example\" authenticated auth=dialback' '${XLOG[A]}' &&
           grep -q \"ANSWER.*<db:result[^>]*type='valid'\" '$LAB_DIR/backend-shared.out' ||
           { cat '$LAB_DIR/backend-shared.out'; tail -20 '${XLOG[A]}'; exit 1; }"
xf_check "(2) C (same tenants, another secret file) answers the same kind of <db:verify/> type='invalid'" \
  bash -c "grep -E '^VERIFY a\.example [0-9a-f]+ invalid at 127\.0\.1\.12$' '$LAB_DIR/split.log' &&
           grep -q 's2s db:verify .*from=\"split.example\" answered invalid' '${XLOG[C]}' || { cat '$LAB_DIR/split.log'; exit 1; }"
xf_check "(2) A: the stream to split.example is not authenticated; the backend gets no valid result" \
  bash -c "! grep -q 'remote=\"split.example\" authenticated' '${XLOG[A]}' &&
           ! grep -q \"type='valid'\" '$LAB_DIR/backend-split.out'"

# (3) the key A sent shared.example, asked again of each instance
read -r _ _ SID KEY < <(grep '^KEY a.example ' "$LAB_DIR/shared.log" | head -1)
ask() {   # ADDR -> prints the type of the answer
  xf_peer --host "$1" --port 5270 --mode direct --to a.example --from shared.example --ns jabber:server --db \
    --alpn xmpp-server --timeout 8 \
    --step "send:<db:verify from='shared.example' to='a.example' id='$SID'>$KEY</db:verify>" \
    --step "expect:<db:verify from='a.example' to='shared.example' id='$SID' type='$2'/>"
}
export -f ask xf_peer; export SID KEY XF_PY XF_IT_DIR
xf_check "(3) A's own key asked of A: valid; of B: valid; of C: invalid" \
  bash -c "[ -n '$KEY' ] && ip netns exec '$LAB_NS' bash -c 'ask 127.0.1.10 valid && ask 127.0.1.11 valid && ask 127.0.1.12 invalid'"
xf_check "the three instances are still running" kill -0 "${XPID[A]}" "${XPID[B]}" "${XPID[C]}"
[ "$XF_FAILS" -gt 0 ] && { for n in A B C; do echo "--- $n"; tail -15 "${XLOG[$n]}"; done; cat "$LAB_DIR"/*.log; }
xf_finish "$T"
