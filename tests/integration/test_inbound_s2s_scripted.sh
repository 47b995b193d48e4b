#!/usr/bin/env bash
# Inbound s2s negotiated by xmppfront (issue 7 "Inbound"; proxy/s2s_in.c): scripted remote
# peers (raw_peer.py, TLS with client certificates from a test CA) against a scripted s2s
# backend that checks xmppfront's assertion key with the configured dialback secret
# (B = HMAC over "T R backend-id", XEP-0185) and records every byte it receives.
#  (e1) EXTERNAL with a valid certificate: offered, <success/>, restart, the backend gets a
#       stream from='remote.example' to='a.example' with a valid key, a message both ways;
#       the close line names auth=sasl-external; the same on a STARTTLS listener; on an
#       auto listener the certificate is asked for only with ALPN xmpp-server;
#  (e2) a certificate for another domain: EXTERNAL not offered (dialback is);
#  (e3) a self-signed certificate: the handshake works, EXTERNAL not offered;
#  (e4) authzid != from -> <invalid-authzid/>;
#  (e5) after EXTERNAL, a stanza from an unauthenticated domain -> <invalid-from/>,
#       to a domain not authenticated -> <host-unknown/>, without from ->
#       <improper-addressing/>; the remote's own <stream:error/> closes the stream;
#  (v1) <db:verify/> for a key made with dialback_secret_file -> valid, forged -> invalid,
#       unhosted to -> item-not-found;
#  (d1) <db:result/> to an unhosted domain -> item-not-found, the stream is kept;
#  (d2) an unsolicited <db:result type='valid'/> authorises nothing: a stanza -> <not-authorized/>;
#  (d3) dialback over a certificate that proves the domain (XEP-0344 §2.4): valid at once,
#       the backend accepts the assertion, a message is relayed;
#  (p1) piggybacked second domain covered by the certificate: valid, its stanza relayed;
#       a forged one (not provable, no verification path): refused, its stanza -> <invalid-from/>;
#  (b1) the tenant's s2s backend is down: <remote-connection-failed/> after authentication;
#  (a1) a stream that never authenticates: <connection-timeout/> after auth_timeout_s;
#  (t1) policy trusted, self-signed peer: dialback refused with not-authorized, logged with
#       the pkix verdict;
#  (o1) the tenant's prooftypes ("proofs", issue 8): a CA-valid peer (PKIX only, no TLSA)
#       is accepted by the trusted tenant b.example with the default list (EXTERNAL
#       offered, <success/>, dialback skipped over the certificate; "decided by pkix"),
#       but refused by the trusted tenant d.example with "proofs": ["dane"]: EXTERNAL
#       not offered (<invalid-mechanism/> when tried), <db:result/> -> not-authorized
#       (no XEP-0344 skip), logged "pkix: not accepted by the tenant's policy (ignored:
#       valid)", no POSH fetched; an encrypted tenant with "proofs": [] offers dialback
#       only; --check-config refuses a repeated or unknown prooftype and an empty list
#       under trusted, naming the file and the key.
. "$(dirname "$0")/lib.sh"
T=inbound_s2s_scripted
xf_init "$T" || exit 1
xf_make_test_pki "$XF_TMP" || xf_setup_failed "$T: PKI"
CA="$XF_TMP/pki/ca.pem"
C="$XF_TMP/certs"
xf_make_cert "$XF_TMP/pki" "$C/remote.example" remote.example remote.example piggy.example ||
  xf_setup_failed "$T: remote cert"
xf_make_cert "$XF_TMP/pki" "$C/other.example" other.example other.example ||
  xf_setup_failed "$T: other cert"
xf_make_cert "$XF_TMP/pki" "$C/d.example" d.example d.example || xf_setup_failed "$T: d cert"
xf_make_cert "$XF_TMP/pki" "$C/e.example" e.example e.example || xf_setup_failed "$T: e cert"
mkdir -p "$C/self"
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 30 \
  -keyout "$C/self/privkey.pem" -out "$C/self/cert.pem" -subj "/CN=remote.example" \
  -addext "subjectAltName=DNS:remote.example" >/dev/null 2>&1 || xf_setup_failed "$T: self-signed"

read -r P_S2S P_BE P_S2S_ST P_AUTO < <(xf_free_ports 4)
RAW="$XF_TMP/raw"
mkdir -p "$RAW" "$XF_TMP/xf/tenants"
SECRET_FILE="$XF_TMP/xf/dialback.secret"
printf 'test-secret-%s\n' "$RANDOM$RANDOM" > "$SECRET_FILE"
chmod 600 "$SECRET_FILE"
SECRET=$(tr -d '\n' < "$SECRET_FILE")

# ---- scripted s2s backend
cat > "$XF_TMP/backend.py" <<'PYEOF'
import hashlib, hmac, os, re, socket, sys, threading
port, out, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
def key(recv, orig, sid):
    k = hashlib.sha256(secret).hexdigest().encode()
    return hmac.new(k, f'{recv} {orig} {sid}'.encode(), hashlib.sha256).hexdigest()
def serve(c, n):
    rec = open(os.path.join(out, f'{n}.in'), 'wb', buffering=0)
    buf, bid, greeted = b'', f'bid{n}x', False
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            rec.write(d)
            buf += d
            if not bid or not re.search(rb'<stream:stream[^>]*>', buf):
                continue
            if b'<stream:stream' in buf and not hasattr(serve, f'h{n}'):
                setattr(serve, f'h{n}', 1)
                c.sendall(("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                           "xmlns:db='jabber:server:dialback' xmlns:stream='http://etherx.jabber.org/streams' "
                           f"id='{bid}' version='1.0'><stream:features><dialback "
                           "xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>").encode())
            for m in re.finditer(rb"<db:result from='([^']+)' to='([^']+)'>([^<]*)</db:result>", buf):
                frm, to, k = (x.decode() for x in m.groups())
                ok = hmac.compare_digest(k, key(to, frm, bid))
                c.sendall(f"<db:result from='{to}' to='{frm}' type='{'valid' if ok else 'invalid'}'/>".encode())
                if ok and not greeted:
                    greeted = True
                    c.sendall(f"<message from='user1@{to}' to='x@{frm}'><body>hello-from-backend</body></message>".encode())
            buf = re.sub(rb"<db:result from='[^']+' to='[^']+'>[^<]*</db:result>", b'', buf)
    except OSError:
        pass
    c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', port)); s.listen(64)
n = 0
while True:
    c, _ = s.accept(); n += 1
    threading.Thread(target=serve, args=(c, n), daemon=True).start()
PYEOF
timeout 900 "$XF_PY" "$XF_TMP/backend.py" "$P_BE" "$RAW" "$SECRET" &
xf_track $!
xf_wait_port 127.0.0.1 "$P_BE" 5 $! || xf_setup_failed "$T: scripted backend did not start"

xf_tenant_write "$XF_TMP/xf/tenants" a.example "conference.a.example" "$C/a.example" \
  "127.0.0.1:1" "127.0.0.1:$P_BE"
xf_tenant_write "$XF_TMP/xf/tenants" b.example "" "$C/b.example" "127.0.0.1:1" "127.0.0.1:$P_BE"
xf_tenant_write "$XF_TMP/xf/tenants" w.example "" "$C/w.example" "127.0.0.1:1" "127.0.0.1:1"
sed -i 's/"proxy_protocol": "none"/"proxy_protocol": "none", "federation": "trusted"/' \
  "$XF_TMP/xf/tenants/b.example.json"
xf_tenant_write "$XF_TMP/xf/tenants" d.example "" "$C/d.example" "127.0.0.1:1" "127.0.0.1:$P_BE"
sed -i 's/"proxy_protocol": "none"/"proxy_protocol": "none", "federation": "trusted", "proofs": ["dane"]/' \
  "$XF_TMP/xf/tenants/d.example.json"
xf_tenant_write "$XF_TMP/xf/tenants" e.example "" "$C/e.example" "127.0.0.1:1" "127.0.0.1:$P_BE"
sed -i 's/"proxy_protocol": "none"/"proxy_protocol": "none", "proofs": []/' \
  "$XF_TMP/xf/tenants/e.example.json"
XF_CFG="$XF_TMP/xf/xmppfront.json"
XF_LOG="$XF_TMP/xf/xmppfront.log"
cat > "$XF_CFG" <<EOF
{
  "workers": 2,
  "tenants": "tenants",
  "listeners": [$(xf_listener 127.0.0.1 "$P_S2S" direct server), $(xf_listener 127.0.0.1 "$P_S2S_ST" starttls server), $(xf_listener 127.0.0.1 "$P_AUTO" direct auto)],
  "limits": {"auth_timeout_s": 4},
  "log_level": "debug",
  "federation": {"ca_file": "$CA", "dialback_secret_file": "$SECRET_FILE"}
}
EOF
xf_proxy_start "$XF_CFG" "$XF_LOG" "$P_S2S" "$P_S2S_ST" "$P_AUTO" || xf_setup_failed "$T: xmppfront did not start"

NS_SASL=urn:ietf:params:xml:ns:xmpp-sasl
peer() {   # peer CERTDIR|none FROM TO STEPS...
  local cert=$1 from=$2 to=$3; shift 3
  local args=(--port "$P_S2S" --mode direct --to "$to" --from "$from" --ns jabber:server --db
              --alpn xmpp-server --timeout 8)
  if [ "$cert" != none ]; then
    local f=$cert/fullchain.pem; [ -f "$f" ] || f=$cert/cert.pem
    args+=(--cert "$f" --key "$cert/privkey.pem")
  fi
  local s; for s in "$@"; do args+=(--step "$s"); done
  xf_peer "${args[@]}"
}
raw_last() { ls "$RAW"/*.in 2>/dev/null | sed 's|.*/||; s|\.in$||' | sort -n | tail -1; }
waitfor() { local f=$1 pat=$2 i; for ((i = 0; i < 50; i++)); do grep -q -- "$pat" "$f" 2>/dev/null && return 0; sleep 0.1; done; grep -- "$pat" "$f"; }
dbkey() { "$XF_PY" -c 'import hashlib,hmac,sys
k=hashlib.sha256(sys.argv[1].encode()).hexdigest().encode()
print(hmac.new(k," ".join(sys.argv[2:]).encode(),hashlib.sha256).hexdigest())' "$SECRET" "$@"; }
EXT_FEATURE="<mechanism>EXTERNAL</mechanism>"
AUTH_EQ="<auth xmlns='$NS_SASL' mechanism='EXTERNAL'>=</auth>"
MSG_IN="<message from='x@remote.example' to='user1@a.example' type='chat'><body>hello-from-remote</body></message>"

# ---- (e1) EXTERNAL with a valid certificate
xf_check "(e1) EXTERNAL offered for a certificate of remote.example; <success/>, restart, messages both ways" \
  peer "$C/remote.example" remote.example a.example "expect:$EXT_FEATURE" "expect:urn:xmpp:features:dialback" \
    "send:$AUTH_EQ" "expect:<success xmlns='$NS_SASL'/>" restart "send:$MSG_IN" \
    "expect:<body>hello-from-backend</body>" "absent:stream:error:1"
N=$(raw_last)
xf_check "(e1) the backend got a stream from='remote.example' to='a.example', a db:result it found valid, and the message" \
  bash -c "waitfor() { for i in \$(seq 50); do grep -q \"\$2\" \"\$1\" && return 0; sleep 0.1; done; cat \"\$1\"; return 1; }
    waitfor '$RAW/$N.in' hello-from-remote && grep -q \"from='remote.example' to='a.example' version='1.0'\" '$RAW/$N.in' &&
    grep -q \"<db:result from='remote.example' to='a.example'>\" '$RAW/$N.in'"
xf_check "(e1) the close line names auth=sasl-external and the verdict" \
  waitfor "$XF_LOG" 'close tenant="a.example" service=server.* auth=sasl-external verdict="policy encrypted; tls; decided by pkix; pkix: valid'

xf_check "(e1) STARTTLS listener: the client certificate is asked for there too: EXTERNAL offered, <success/>" \
  xf_peer --port "$P_S2S_ST" --mode starttls --to a.example --from remote.example --ns jabber:server --db \
    --cert "$C/remote.example/fullchain.pem" --key "$C/remote.example/privkey.pem" --timeout 8 \
    --step "expect:$EXT_FEATURE" --step "send:$AUTH_EQ" --step "expect:<success xmlns='$NS_SASL'/>" --step restart
AUTOPEER=(--port "$P_AUTO" --mode direct --to a.example --from remote.example --ns jabber:server --db
          --cert "$C/remote.example/fullchain.pem" --key "$C/remote.example/privkey.pem" --timeout 8)
xf_check "(e1) auto listener, ALPN xmpp-server: the certificate is asked for, EXTERNAL offered" \
  xf_peer "${AUTOPEER[@]}" --alpn xmpp-server --step "expect:$EXT_FEATURE"
xf_check "(e1) auto listener without ALPN: no certificate request (c2s clients and browsers share it), so no EXTERNAL; dialback offered" \
  xf_peer "${AUTOPEER[@]}" --step "absent:$EXT_FEATURE:0.5" --step "expect:urn:xmpp:features:dialback"
# ---- (e2) a certificate for another domain
xf_check "(e2) certificate for other.example, from=remote.example: EXTERNAL not offered, dialback is" \
  peer "$C/other.example" remote.example a.example "absent:$EXT_FEATURE:0.5" "expect:urn:xmpp:features:dialback"
# ---- (e3) self-signed: handshake fine, no EXTERNAL
xf_check "(e3) self-signed client certificate: TLS works, EXTERNAL not offered, dialback is" \
  peer "$C/self" remote.example a.example "absent:$EXT_FEATURE:0.5" "expect:urn:xmpp:features:dialback"
# ---- (e4) authzid != from
EVIL64=$(printf evil.example | base64)
xf_check "(e4) EXTERNAL with authzid evil.example on a stream from remote.example -> <invalid-authzid/>" \
  peer "$C/remote.example" remote.example a.example "expect:$EXT_FEATURE" \
    "send:<auth xmlns='$NS_SASL' mechanism='EXTERNAL'>$EVIL64</auth>" "expect:<failure xmlns='$NS_SASL'><invalid-authzid/></failure>"
xf_check "(e4) ... logged as a refusal naming the peer, the tenant and the method" \
  waitfor "$XF_LOG" 's2s refused peer=127.0.0.1:[0-9]* tenant=a.example remote="remote.example" local="a.example" method=sasl-external'
# ---- (e5) stanza addressing after EXTERNAL
xf_check "(e5) after EXTERNAL, a stanza from x@evil.example -> <invalid-from/>" \
  peer "$C/remote.example" remote.example a.example "send:$AUTH_EQ" "expect:<success" restart \
    "send:<message from='x@evil.example' to='user1@a.example'><body>no</body></message>" \
    "expect:<invalid-from xmlns=" closed
xf_check "(e5) after EXTERNAL, a stanza to b.example (not authenticated on this stream) -> <host-unknown/>" \
  peer "$C/remote.example" remote.example a.example "send:$AUTH_EQ" "expect:<success" restart \
    "send:<message from='x@remote.example' to='user1@b.example'><body>no</body></message>" \
    "expect:<host-unknown xmlns=" closed
xf_check "(e5) after EXTERNAL, a stanza without from -> <improper-addressing/>" \
  peer "$C/remote.example" remote.example a.example "send:$AUTH_EQ" "expect:<success" restart \
    "send:<message to='user1@a.example'><body>no</body></message>" "expect:<improper-addressing xmlns=" closed

xf_check "(e5) after EXTERNAL, the remote's <stream:error/> is no stanza: our </stream:stream>, logged" \
  peer "$C/remote.example" remote.example a.example "send:$AUTH_EQ" "expect:<success" restart \
    "send:<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>" \
    "expect:</stream:stream>" closed
xf_check "(e5) ... the close reason names the remote's condition" \
  waitfor "$XF_LOG" 'reason="remote sent a stream error <undefined-condition/>"'
# ---- (v1) db:verify: xmppfront is a.example's authoritative server
K=$(dbkey remote.example a.example abc123)
xf_check "(v1) <db:verify/> with a key made with dialback_secret_file -> valid; a forged key -> invalid; unhosted to -> item-not-found" \
  peer none remote.example a.example \
    "send:<db:verify from='remote.example' to='a.example' id='abc123'>$K</db:verify>" \
    "expect:<db:verify from='a.example' to='remote.example' id='abc123' type='valid'/>" \
    "send:<db:verify from='remote.example' to='a.example' id='abc123'>$(forge_key "$K")</db:verify>" \
    "expect:<db:verify from='a.example' to='remote.example' id='abc123' type='invalid'/>" \
    "send:<db:verify from='remote.example' to='nothere.example' id='abc123'>$K</db:verify>" \
    "expect:type='error'.*<item-not-found"
# ---- (d1) db:result to an unhosted domain
xf_check "(d1) <db:result/> to nothere.example -> item-not-found, the stream stays (a db:verify is still answered)" \
  peer none remote.example a.example \
    "send:<db:result from='remote.example' to='nothere.example'>abcd</db:result>" \
    "expect:<db:result from='nothere.example' to='remote.example' type='error'><error type='cancel'><item-not-found" \
    "send:<db:verify from='remote.example' to='a.example' id='abc123'>$K</db:verify>" "expect:type='valid'"
# ---- (d2) unsolicited result
xf_check "(d2) an unsolicited <db:result type='valid'/> authorises nothing: the next stanza -> <not-authorized/>" \
  peer none remote.example a.example \
    "send:<db:result from='remote.example' to='a.example' type='valid'/>" "send:$MSG_IN" \
    "expect:<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" closed
# ---- (d3) dialback over a proven certificate
xf_check "(d3) dialback from remote.example over its valid certificate: valid without a verify round trip, messages both ways" \
  peer "$C/remote.example" remote.example a.example \
    "send:<db:result from='remote.example' to='a.example'>anykey</db:result>" \
    "expect:<db:result from='a.example' to='remote.example' type='valid'/>" "send:$MSG_IN" \
    "expect:hello-from-backend" "absent:stream:error:1"
N=$(raw_last)
xf_check "(d3) ... the backend accepted xmppfront's key and got the message" \
  waitfor "$RAW/$N.in" hello-from-remote
xf_check "(d3) the close line names auth=dialback" \
  waitfor "$XF_LOG" 'auth=dialback verdict="policy encrypted; tls; decided by pkix; pkix: valid'
# ---- (p1) piggybacking
xf_check "(p1) piggybacked piggy.example (covered by the certificate): valid, its stanza relayed; forged.example: refused, its stanza -> <invalid-from/>" \
  peer "$C/remote.example" remote.example a.example "send:$AUTH_EQ" "expect:<success" restart \
    "send:<db:result from='piggy.example' to='a.example'>k2</db:result>" \
    "expect:<db:result from='a.example' to='piggy.example' type='valid'/>" \
    "send:<message from='y@piggy.example' to='user1@a.example'><body>piggy-msg</body></message>" \
    "send:<db:result from='forged.example' to='a.example'>k3</db:result>" \
    "expect:<db:result from='a.example' to='forged.example' type='error'>" \
    "send:<message from='z@forged.example' to='user1@a.example'><body>forged-msg</body></message>" \
    "expect:<invalid-from xmlns=" closed
N=$(raw_last)
xf_check "(p1) ... the backend got two assertions and piggy-msg, never forged-msg" \
  bash -c "sleep 0.5; grep -q \"<db:result from='piggy.example' to='a.example'>\" '$RAW/$N.in' &&
    grep -q piggy-msg '$RAW/$N.in' && ! grep -q forged '$RAW/$N.in'"
# ---- (t1) trusted policy, self-signed peer
xf_check "(t1) b.example (trusted), self-signed peer: <db:result/> -> not-authorized error" \
  peer "$C/self" remote.example b.example \
    "send:<db:result from='remote.example' to='b.example'>k</db:result>" \
    "expect:type='error'><error type='cancel'><not-authorized"
# (PKIX did not prove the peer, so DANE and POSH were tried too: docs/federation.md §3c)
xf_check "(t1) ... logged with the dane, pkix and posh verdicts" \
  waitfor "$XF_LOG" 'tenant=b.example remote="remote.example" local="b.example" method=dialback verdict="policy trusted; tls; dane: absent (not applicable: resolver not trusted for DNSSEC (not on loopback)); pkix: invalid (.*); posh: error'

# ---- (o1) the tenant's prooftypes
xf_check "(o1) b.example (trusted, default proofs), CA-valid remote.example: EXTERNAL offered, <success/>" \
  peer "$C/remote.example" remote.example b.example "expect:$EXT_FEATURE" "send:$AUTH_EQ" \
    "expect:<success xmlns='$NS_SASL'/>" restart "absent:stream:error:0.5"
xf_check "(o1) ... logged as decided by pkix" \
  waitfor "$XF_LOG" 's2s authenticated peer=[^ ]* tenant=b.example auth=sasl-external verdict="policy trusted; tls; decided by pkix; pkix: valid'
xf_check "(o1) b.example, the same peer by dialback: valid at once over the certificate (XEP-0344)" \
  peer "$C/remote.example" remote.example b.example \
    "send:<db:result from='remote.example' to='b.example'>anykey</db:result>" \
    "expect:<db:result from='b.example' to='remote.example' type='valid'/>"
xf_check "(o1) d.example (trusted, \"proofs\": [\"dane\"]), the same CA-valid peer: EXTERNAL not offered; tried anyway -> <invalid-mechanism/>" \
  peer "$C/remote.example" remote.example d.example "absent:$EXT_FEATURE:0.5" \
    "expect:urn:xmpp:features:dialback" "send:$AUTH_EQ" "expect:<invalid-mechanism/>"
xf_check "(o1) d.example: <db:result/> -> not-authorized (no dialback skip: pkix is not its prooftype)" \
  peer "$C/remote.example" remote.example d.example \
    "send:<db:result from='remote.example' to='d.example'>anykey</db:result>" \
    "expect:type='error'><error type='cancel'><not-authorized"
# "posh: not accepted" without "(ignored: ...)": no POSH verdict exists, nothing was fetched
xf_check "(o1) ... logged with pkix ignored and posh not accepted (not fetched)" \
  waitfor "$XF_LOG" "tenant=d.example remote=\"remote.example\" local=\"d.example\" method=dialback verdict=\"policy trusted; tls; dane: [^;]*; pkix: not accepted by the tenant's policy (ignored: valid); posh: not accepted by the tenant's policy; refused: policy trusted requires a certificate proof"
xf_check "(o1) e.example (encrypted, \"proofs\": []), the same peer: EXTERNAL not offered, dialback is" \
  peer "$C/remote.example" remote.example e.example "absent:$EXT_FEATURE:0.5" "expect:urn:xmpp:features:dialback"
mkdir -p "$XF_TMP/badp/tenants"
cp "$XF_TMP/xf/tenants/"*.json "$XF_TMP/badp/tenants/"
sed 's|"tenants": "tenants"|"tenants": "'"$XF_TMP/badp/tenants"'"|' "$XF_CFG" > "$XF_TMP/badp/x.json"
bad_proofs() {   # bad_proofs JSON-LIST FEDERATION EXPECTED-ERROR
  sed -i 's/"proofs": [^]]*]/"proofs": '"$1"'/; s/"federation": "[a-z]*"/"federation": "'"$2"'"/' \
    "$XF_TMP/badp/tenants/d.example.json"
  local out rc; out=$("$XF_BIN" --check-config -c "$XF_TMP/badp/x.json" 2>&1); rc=$?
  echo "exit $rc: $out"
  [ "$rc" = 1 ] && grep -qF "$XF_TMP/badp/tenants/d.example.json: $3" <<<"$out"
}
xf_check "(o1) --check-config accepts the tenants with proofs (exit 0)" "$XF_BIN" --check-config -c "$XF_TMP/badp/x.json"
xf_check "(o1) --check-config refuses a repeated prooftype, naming the file and the key (exit 1)" \
  bad_proofs '["dane", "pkix", "dane"]' trusted 'proofs[2]: "dane" repeats proofs[0]'
xf_check "(o1) --check-config refuses an unknown prooftype (exit 1)" \
  bad_proofs '["dane", "dnssec"]' trusted 'proofs[1]: "dnssec" is not "dane", "pkix" or "posh"'
xf_check "(o1) --check-config refuses an empty list under trusted (exit 1)" \
  bad_proofs '[]' trusted 'proofs: empty, but federation "trusted" requires a certificate proof'
xf_check "(o1) ... the same empty list under encrypted loads (exit 0)" \
  bash -c "sed -i 's/\"federation\": \"trusted\"/\"federation\": \"encrypted\"/' '$XF_TMP/badp/tenants/d.example.json' &&
    '$XF_BIN' --check-config -c '$XF_TMP/badp/x.json'"

# ---- (b1) the backend is down
xf_check "(b1) w.example's s2s backend is down: after EXTERNAL, <remote-connection-failed/> at once" \
  peer "$C/remote.example" remote.example w.example "send:$AUTH_EQ" "expect:<success" \
    "expect:<remote-connection-failed xmlns=" closed
# ---- (a1) the auth deadline
xf_check "(a1) an s2s stream that never authenticates gets <connection-timeout/> after auth_timeout_s (4 s)" \
  xf_peer --port "$P_S2S" --mode direct --to a.example --from remote.example --ns jabber:server --db \
    --alpn xmpp-server --expect-features --hold 9 --hold-expect error:connection-timeout
xf_check "proxy still running" kill -0 "$XF_PROXY_PID"
xf_finish "$T"
