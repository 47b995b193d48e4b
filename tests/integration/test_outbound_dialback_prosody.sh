#!/usr/bin/env bash
# The whole dialback bridge with real servers on both ends (issue 7, design.md §2):
# a plaintext backend Prosody for a.example (self-signed certificate at xmppfront, so no
# remote accepts SASL EXTERNAL for it), its outgoing s2s redirected to xmppfront's
# outbound listener; remote Prosodies of XEP-0238 types 4 (self-signed, TLS required) and
# 5 (CA, TLS required). xmppfront authenticates a.example by dialback with its own key;
# the remote verifies that key with a.example's authoritative server — by SRV,
# xmppfront's public s2s ports — where xmppfront's inbound side answers the <db:verify/>.
#  (1) a.example -> type4.example and -> type5.example delivered; the remotes log
#      mechanism=dialback over TLS; xmppfront's outbound line says auth=dialback
#  (2) xmppfront's inbound side answered the remotes' db:verify (no backend involved)
#  (3) and back: type4.example -> a.example (dialback inbound: xmppfront as receiving
#      server verifies type4's key over its own outbound path, xf_remote_verify, then
#      asserts type4.example to the backend, whose db:verify the outbound listener
#      answers) and type5.example -> a.example (SASL EXTERNAL inbound)
. "$(dirname "$0")/../lab/lab.sh"
. "$(dirname "$0")/outbound_lib.sh"
T=test_outbound_dialback_prosody

lab_init "$T" || exit 1
lab_up || xf_setup_failed "$T: lab_up"
lab_remote t4 type4.example 4 127.0.1.4 || xf_setup_failed "$T: remote 4"
lab_remote t5 type5.example 5 127.0.1.5 || xf_setup_failed "$T: remote 5"
lab_host xf.example 127.0.1.100
lab_xmpp_srv a.example xf.example 5269 5270
ob_tenant a.example encrypted self || xf_setup_failed "$T: tenant"
lab_dns_start || xf_setup_failed "$T: dns"
lab_remotes_start || xf_setup_failed "$T: remotes"
ob_backend_start a.example || xf_setup_failed "$T: backend"
OB_EXTRA_LISTENERS='{ "address": "127.0.1.100", "port": 5269, "tls": "starttls", "service": "server" },
    { "address": "127.0.1.100", "port": 5270, "tls": "direct", "service": "server" }' \
  ob_proxy_start || xf_setup_failed "$T: xmppfront"

OUT="$LAB_DIR/sends.out"
lab_xmpp --account user1@a.example pass1 127.0.0.1 15222 \
  --account user1@type4.example pass1 127.0.1.4 5222 --account user1@type5.example pass1 127.0.1.5 5222 \
  --send user1@a.example user1@type4.example --send user1@a.example user1@type5.example \
  --send user1@type4.example user1@a.example --send user1@type5.example user1@a.example \
  --timeout 15 > "$OUT" 2>&1
cat "$OUT"
xf_check "(1) a.example -> type4.example (self-signed, TLS required) delivered" \
  grep -q 'RESULT user1@a.example user1@type4.example delivered' "$OUT"
xf_check "(1) a.example -> type5.example (CA, TLS required) delivered" \
  grep -q 'RESULT user1@a.example user1@type5.example delivered' "$OUT"
xf_check "(1) the remotes authenticated a.example by dialback over TLS" \
  bash -c "grep -q 'lab-s2s dir=incoming from=a.example .*mechanism=dialback secure=true' '$LAB_DIR/remote/t4/prosody.log' &&
           grep -q 'lab-s2s dir=incoming from=a.example .*mechanism=dialback secure=true' '$LAB_DIR/remote/t5/prosody.log'"
xf_check "(1) xmppfront: auth=dialback to both, pkix invalid for type4 and valid for type5" \
  bash -c "grep -qE 'remote=\"type4.example\" authenticated auth=dialback .*pkix: invalid' '$OB_LOG' &&
           grep -qE 'remote=\"type5.example\" authenticated auth=dialback .*pkix: valid' '$OB_LOG'"
xf_check "(2) xmppfront's inbound side answered both remotes' db:verify valid" \
  bash -c "grep -qE 's2s db:verify peer=127\.0\.1\.100:[0-9]+ from=\"type4.example\" answered valid' '$OB_LOG' &&
           grep -qE 's2s db:verify peer=127\.0\.1\.100:[0-9]+ from=\"type5.example\" answered valid' '$OB_LOG'"
xf_check "(3) type4.example -> a.example delivered (inbound dialback, verified by xmppfront)" \
  grep -q 'RESULT user1@type4.example user1@a.example delivered' "$OUT"
xf_check "(3) xmppfront accepted type4.example by dialback (its key verified with type4's authoritative server)" \
  grep -qE 's2s pair accepted .*remote=type4.example local=a.example auth=dialback .*pkix: invalid.*dialback: valid' "$OB_LOG"
xf_check "(3) type5.example -> a.example delivered" \
  grep -q 'RESULT user1@type5.example user1@a.example delivered' "$OUT"
xf_check "(3) the backend's db:verify for the assertion of type4.example answered by the bridge" \
  grep -q 'db:verify from="a.example" to="type4.example" answered valid (local, dialback bridge)' "$OB_LOG"

xf_check "xmppfront is still running" kill -0 "$XF_PROXY_PID"
[ "$XF_FAILS" -gt 0 ] && { echo "--- xmppfront log"; tail -40 "$OB_LOG"; echo "--- t5 log"; tail -20 "$LAB_DIR/remote/t5/prosody.log"; }
xf_finish "$T"
