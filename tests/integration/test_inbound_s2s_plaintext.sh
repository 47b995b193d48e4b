#!/usr/bin/env bash
# Inbound s2s without TLS for a tenant whose federation policy is `open` (issue 7;
# XEP-0238 types 2/3: TLS offered, not required, dialback over plaintext accepted;
# proxy/inbound.c on_plain_header -> proxy/s2s_in.c). Scripted remote peers on the
# STARTTLS s2s listener; the success path with a real server of XEP-0238 type 1 (no TLS
# at all) is the federation matrix's `open` row (tests/lab/test_federation_matrix.sh).
#  (o1) open tenant: the pre-TLS features offer <starttls/> WITHOUT <required/>, and dialback;
#  (o2) open tenant, plaintext: <db:verify/> for a key made with the dialback secret ->
#       valid, a forged one -> invalid (the verify connection of a remote without TLS,
#       xmppfront being the tenant's authoritative server); the close line says tls=-;
#  (o3) open tenant, plaintext: a stanza before any authenticated pair -> <not-authorized/>;
#  (o4) a plaintext stream to the open tenant asks to piggyback a domain of an
#       `encrypted` tenant: that pair is refused (the policy there requires TLS), logged
#       with "policy encrypted; no tls"; a <starttls/> after dialback began -> <policy-violation/>;
#  (o5) open tenant: <starttls/> still works (the remote that has TLS uses it): <proceed/>,
#       TLS, post-TLS features without <starttls/>, a <db:verify/> answered inside TLS;
#  (o6) an `encrypted` tenant (the default) on the same listener: <starttls><required/>,
#       a dialback element before STARTTLS -> <policy-violation/>; nothing of it reached the backend.
. "$(dirname "$0")/lib.sh"
T=inbound_s2s_plaintext
xf_init "$T" || exit 1
xf_make_test_pki "$XF_TMP" || xf_setup_failed "$T: PKI"
C="$XF_TMP/certs"
read -r P_ST P_BE < <(xf_free_ports 2)
mkdir -p "$XF_TMP/xf/tenants" "$XF_TMP/be"
SECRET_FILE="$XF_TMP/xf/dialback.secret"
printf 'test-secret-%s\n' "$RANDOM$RANDOM" > "$SECRET_FILE"
chmod 600 "$SECRET_FILE"
SECRET=$(tr -d '\n' < "$SECRET_FILE")

# A backend that records what reaches it (nothing should, in these cases).
cat > "$XF_TMP/backend.py" <<'PYEOF'
import socket, sys, threading
port, out = int(sys.argv[1]), sys.argv[2]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', port)); s.listen(16)
def serve(c):
    with open(out, 'ab', buffering=0) as f:
        while True:
            d = c.recv(65536)
            if not d:
                break
            f.write(d)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PYEOF
: > "$XF_TMP/be/received"
timeout 600 "$XF_PY" "$XF_TMP/backend.py" "$P_BE" "$XF_TMP/be/received" &
xf_track $!
xf_wait_port 127.0.0.1 "$P_BE" 5 $! || xf_setup_failed "$T: scripted backend did not start"

xf_tenant_write "$XF_TMP/xf/tenants" a.example "" "$C/a.example" "127.0.0.1:1" "127.0.0.1:$P_BE"
xf_tenant_write "$XF_TMP/xf/tenants" b.example "" "$C/b.example" "127.0.0.1:1" "127.0.0.1:$P_BE"
sed -i 's/"proxy_protocol": "none"/"proxy_protocol": "none", "federation": "open"/' \
  "$XF_TMP/xf/tenants/a.example.json"
XF_CFG="$XF_TMP/xf/xmppfront.json"
XF_LOG="$XF_TMP/xf/xmppfront.log"
cat > "$XF_CFG" <<EOF
{
  "workers": 2,
  "tenants": "tenants",
  "listeners": [$(xf_listener 127.0.0.1 "$P_ST" starttls server)],
  "limits": {"auth_timeout_s": 6},
  "log_level": "debug",
  "federation": {"dialback_secret_file": "$SECRET_FILE", "resolvers": ["127.0.0.1:1"]}
}
EOF
xf_proxy_start "$XF_CFG" "$XF_LOG" "$P_ST" || xf_setup_failed "$T: xmppfront did not start"

NS_TLS=urn:ietf:params:xml:ns:xmpp-tls
plain() {   # plain TO STEPS...  a plaintext s2s stream from remote.example
  local to=$1; shift
  local args=(--port "$P_ST" --mode plain --to "$to" --from remote.example --ns jabber:server --db
              --timeout 8) s
  for s in "$@"; do args+=(--step "$s"); done
  xf_peer "${args[@]}"
}
waitfor() { local f=$1 pat=$2 i; for ((i = 0; i < 50; i++)); do grep -q -- "$pat" "$f" 2>/dev/null && return 0; sleep 0.1; done; grep -- "$pat" "$f"; }
dbkey() { "$XF_PY" -c 'import hashlib,hmac,sys
k=hashlib.sha256(sys.argv[1].encode()).hexdigest().encode()
print(hmac.new(k," ".join(sys.argv[2:]).encode(),hashlib.sha256).hexdigest())' "$SECRET" "$@"; }
K=$(dbkey remote.example a.example plain123)

# ---- (o1)
xf_check "(o1) open tenant, plaintext header: features offer <starttls/> without <required/>, and dialback" \
  plain a.example "expect:<stream:features><starttls xmlns='$NS_TLS'/>" \
    "absent:<required:0.3" "expect:<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
# ---- (o2)
xf_check "(o2) open tenant, plaintext: <db:verify/> with our key -> valid; forged -> invalid" \
  plain a.example \
    "send:<db:verify from='remote.example' to='a.example' id='plain123'>$K</db:verify>" \
    "expect:<db:verify from='a.example' to='remote.example' id='plain123' type='valid'/>" \
    "send:<db:verify from='remote.example' to='a.example' id='plain123'>$(forge_key "$K")</db:verify>" \
    "expect:<db:verify from='a.example' to='remote.example' id='plain123' type='invalid'/>" \
    "send:</stream:stream>" closed
xf_check "(o2) ... the close line of that stream: tls=- service=server auth=none" \
  waitfor "$XF_LOG" 'close tenant="a.example" service=server listener=[^ ]* peer=[^ ]* tls=- .* auth=none verdict="not authenticated"'
# ---- (o3)
xf_check "(o3) open tenant, plaintext: a stanza before any authenticated pair -> <not-authorized/>" \
  plain a.example \
    "send:<message from='x@remote.example' to='u@a.example'><body>early</body></message>" \
    "expect:<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" closed
# ---- (o4)
xf_check "(o4) plaintext stream to the open tenant, <db:result/> for b.example (encrypted): refused; then <starttls/> -> <policy-violation/>" \
  plain a.example \
    "send:<db:result from='remote.example' to='b.example'>k1</db:result>" \
    "expect:<db:result from='b.example' to='remote.example' type='error'>" \
    "send:<starttls xmlns='$NS_TLS'/>" \
    "expect:<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" closed
xf_check "(o4) ... the refusal is logged with the encrypted tenant's policy and no TLS" \
  waitfor "$XF_LOG" 's2s refused peer=[^ ]* tenant=b.example remote="remote.example" local="b.example" method=dialback verdict="policy encrypted; no tls'
# ---- (o5)
xf_check "(o5) open tenant: <starttls/> -> <proceed/>, TLS, post-TLS features offer dialback and no <starttls/>, <db:verify/> answered" \
  xf_peer --port "$P_ST" --mode starttls --to a.example --from remote.example --ns jabber:server --db \
    --timeout 8 --step "expect:<stream:features>(?!.*starttls).*urn:xmpp:features:dialback" \
    --step "send:<db:verify from='remote.example' to='a.example' id='plain123'>$K</db:verify>" \
    --step "expect:<db:verify from='a.example' to='remote.example' id='plain123' type='valid'/>"
xf_check "(o5) ... that stream closes with a TLS version on its close line" \
  bash -c "sleep 0.5; grep -q 'close tenant=\"a.example\" service=server listener=[^ ]* peer=[^ ]* tls=TLSv1.[23] ' '$XF_LOG'"
# ---- (o6)
xf_check "(o6) encrypted tenant b.example on the same listener: <starttls><required/>; a <db:result/> before STARTTLS -> <policy-violation/>" \
  plain b.example "expect:<starttls xmlns='$NS_TLS'><required/></starttls>" \
    "send:<db:result from='remote.example' to='b.example'>k1</db:result>" \
    "expect:<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" closed
xf_check "no byte of any of these streams reached the backend" test ! -s "$XF_TMP/be/received"
xf_check "proxy still running" kill -0 "$XF_PROXY_PID"
xf_finish "$T"
