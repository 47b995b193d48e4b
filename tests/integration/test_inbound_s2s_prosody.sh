#!/usr/bin/env bash
# Inbound s2s through xmppfront with real servers (issue 7, "Inbound"), in the federation
# lab: remote Prosody servers send to a user of a.example, whose backend is a plaintext
# Prosody (TLS off, dialback on) behind xmppfront; a.example's SRV records point at
# xmppfront's s2s listeners (STARTTLS 5269, direct TLS 5270 on 127.0.1.100). xmppfront
# authenticates the remote, asserts it to the backend with its own key, and the backend's
# verification of that key (its outgoing connection to the remote, redirected by uid to
# the outbound listener) is answered by xmppfront's dialback bridge.
#  (6) XEP-0238 type 6 (CA certificate, SASL EXTERNAL only) -> user1@a.example delivered;
#      xmppfront logs auth=sasl-external; the remote says mechanism=EXTERNAL; the reply
#      a.example -> type6.example goes out through xmppfront as well (both ways)
#  (5) type 5 (CA certificate, dialback): delivered; Prosody takes the EXTERNAL offer
#      (dialback over a proven certificate is covered by test_inbound_s2s_scripted.sh)
#  (4) type 4 (self-signed, dialback): xmppfront verifies the key with type4.example's
#      authoritative server over its own outbound path, delivered; auth=dialback
#  (f1) a forged key for type4.example on a scripted stream: xmppfront asks type4.example's
#       server, which says invalid: answered invalid and closed
#  (f2) piggybacked forged key after a valid pair (a scripted peer with type6's certificate): forbidden, the stream stays, a stanza
#       from the forged domain -> <invalid-from/>
#  (b) the backend never saw a connection from outside: every s2s stream it accepted
#      came from xmppfront's assertion (from = the remote domain)
. "$(dirname "$0")/../lab/lab.sh"
. "$(dirname "$0")/outbound_lib.sh"
T=test_inbound_s2s_prosody
XF_ADDR=127.0.1.100

lab_init "$T" || exit 1
lab_up || xf_setup_failed "$T: lab_up"
lab_remote t6 type6.example 6 127.0.1.6 || xf_setup_failed "$T: remote 6"
lab_remote t5 type5.example 5 127.0.1.5 || xf_setup_failed "$T: remote 5"
lab_remote t4 type4.example 4 127.0.1.4 || xf_setup_failed "$T: remote 4"
# the SRV target has a name of its own: an A record for a.example itself would make the
# test's c2s clients (slixmpp) connect there instead of to the backend
lab_host xf-a.example "$XF_ADDR" || xf_setup_failed "$T: host"
lab_xmpp_srv a.example xf-a.example 5269 5270
ob_tenant a.example encrypted || xf_setup_failed "$T: tenant"
lab_dns_start || xf_setup_failed "$T: dns"
lab_remotes_start || xf_setup_failed "$T: remotes"
ob_backend_start a.example || xf_setup_failed "$T: backend"

# xmppfront: outbound_lib's configuration plus the public s2s listeners of a.example
X="$LAB_DIR/xf"
OB_SECRET="$X/dialback.secret"
OB_LOG="$X/xmppfront.log"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$OB_SECRET"
chmod 600 "$OB_SECRET"
cat > "$X/xmppfront.json" <<EOF
{
  "workers": 1,
  "tenants": "tenants",
  "log_level": "${OB_LOG_LEVEL:-debug}",
  "listeners": [
    { "address": "127.0.0.1", "port": $OB_PORT, "tls": "none", "service": "outbound", "transparent": true },
    { "address": "$XF_ADDR", "port": 5269, "tls": "starttls", "service": "server" },
    { "address": "$XF_ADDR", "port": 5270, "tls": "direct", "service": "server" }
  ],
  "limits": { "handshake_timeout_s": 10, "drain_timeout_s": 2 },
  "federation": {
    "ca_file": "$LAB_DIR/pki/ca.pem",
    "resolvers": ["$LAB_DNS4"],
    "dialback_secret_file": "$OB_SECRET",
    "connect_timeout_s": 2,
    "negotiation_timeout_s": 6
  }
}
EOF
ip netns exec "$LAB_NS" "$XF_BIN" -c "$X/xmppfront.json" 2> "$OB_LOG" &
XF_PROXY_PID=$!
xf_track "$XF_PROXY_PID"
lab_wait_port "$XF_ADDR" 5270 10 "$XF_PROXY_PID" || { tail -20 "$OB_LOG"; xf_setup_failed "$T: xmppfront"; }
lab_redirect_uid "$OB_BACKEND_UID" "$OB_PORT" "5269, 5270"

send_in() {   # REMOTE_NAME USER_ON_A OUT — user1@remote -> USER@a.example
  local r=$1 u=$2 out=$3
  # shellcheck disable=SC2046  # lab_account prints four words on purpose
  lab_xmpp --account $(lab_account "$r" user1) --account "$u@a.example" "pass${u#user}" 127.0.0.1 15222 \
    --send "user1@${LAB_R_DOMAIN[$r]}" "$u@a.example" --timeout 25 > "$out" 2>&1
  cat "$out"
  grep -q '^RESULT .* delivered ' "$out"
}
reply_out() {
  local out; out=$(ob_send user1@a.example user1@type6.example '127.0.1.6 5222' 20)
  echo "$out"; grep -q 'RESULT .* delivered' <<< "$out"
}

xf_check "(6) type6.example -> user1@a.example delivered through xmppfront" send_in t6 user1 "$LAB_DIR/in6.out"
xf_check "(6) xmppfront authenticated type6.example by SASL EXTERNAL (close line or accept line)" \
  grep -qE 's2s authenticated peer=[^ ]+ tenant=a.example auth=sasl-external verdict=.*pkix: valid' "$OB_LOG"
xf_check "(6) the remote says it used EXTERNAL toward a.example" \
  grep -q 'lab-s2s dir=outgoing from=type6.example to=a.example .*mechanism=EXTERNAL' "$LAB_DIR/remote/t6/prosody.log"
xf_check "(6) reply a.example -> type6.example delivered (outbound side)" \
  reply_out
xf_check "(5) type5.example -> user2@a.example delivered" send_in t5 user2 "$LAB_DIR/in5.out"
xf_check "(5) ... by SASL EXTERNAL: Prosody uses it when offered and its certificate is CA-signed" \
  grep -qE 's2s authenticated peer=[^ ]+ tenant=a.example auth=sasl-external verdict="policy encrypted; tls; decided by pkix; pkix: valid \(DNS-ID type5.example' "$OB_LOG"
xf_check "(4) type4.example (self-signed) -> user1@a.example delivered (dialback verified with its authoritative server)" \
  send_in t4 user1 "$LAB_DIR/in4.out"
xf_check "(4) ... xmppfront's verdict: pkix invalid, dialback valid" \
  grep -qE 's2s pair accepted .*remote=type4.example local=a.example auth=dialback verdict=.*pkix: invalid.*dialback: valid' "$OB_LOG"
# ---- forged dialback keys, judged by a real authoritative server (type4.example's Prosody)
lpeer() {   # CERT|none STEPS... — raw_peer.py in the namespace, direct TLS to xmppfront
  local cert=$1; shift
  local args=(--host "$XF_ADDR" --port 5270 --mode direct --to a.example --ns jabber:server --db
              --alpn xmpp-server --timeout 12)
  [ "$cert" != none ] && args+=(--cert "$cert/fullchain.pem" --key "$cert/privkey.pem")
  case "$1" in from=*) args+=(--from "${1#from=}"); shift ;; esac
  local st; for st in "$@"; do args+=(--step "$st"); done
  timeout 40 ip netns exec "$LAB_NS" "$XF_PY" "$XF_IT_DIR/raw_peer.py" "${args[@]}"
}
FORGED=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
xf_check "(f1) a forged key for type4.example on the only pair: type4.example's server says invalid -> invalid + close" \
  lpeer none from=type4.example "send:<db:result from='type4.example' to='a.example'>$FORGED</db:result>" \
    "expect:<db:result from='a.example' to='type4.example' type='invalid'/>" closed
xf_check "(f1) ... logged: dialback invalid, forbidden" \
  grep -qE 's2s refused peer=[^ ]+ tenant=a.example remote="type4.example" local="a.example" method=dialback verdict=.*dialback: invalid' "$OB_LOG"
# The scripted peer presents type6.example's own certificate (from the lab's files): its
# first pair is proven by it, and the backend's verification of xmppfront's assertion
# goes to type6.example's real server like in (6). (A domain whose server cannot be
# reached would fail there: the outbound side gives up the backend's stream, <db:verify/>
# included, when it cannot open the remote stream.)
xf_check "(f2) piggybacking: type6.example valid by its certificate, then a forged type4.example -> forbidden, stream kept; a type4.example stanza -> <invalid-from/>" \
  lpeer "$LAB_DIR/remote/t6/pem" from=type6.example "send:<db:result from='type6.example' to='a.example'>k</db:result>" \
    "expect:<db:result from='a.example' to='type6.example' type='valid'/>" \
    "send:<db:result from='type4.example' to='a.example'>$FORGED</db:result>" \
    "expect:<db:result from='a.example' to='type4.example' type='error'><error type='cancel'><forbidden" \
    "send:<message from='x@type6.example' to='user1@a.example' type='chat'><body>from-peer</body></message>" \
    "send:<message from='x@type4.example' to='user1@a.example' type='chat'><body>smuggled</body></message>" \
    "expect:<invalid-from xmlns=" closed
xf_check "(b) the backend accepted only xmppfront's assertions (dialback valid for every remote)" \
  bash -c "for d in type6 type5 type4; do grep -q \"\$d.example\" '$OB_BDIR/prosody.log' || exit 1; done"
xf_check "xmppfront is still running" kill -0 "$XF_PROXY_PID"
[ "$XF_FAILS" -gt 0 ] && { echo "--- xmppfront log"; tail -60 "$OB_LOG"; echo "--- backend log"; tail -30 "$OB_BDIR/prosody.log"; }
xf_finish "$T"
