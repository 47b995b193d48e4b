#!/usr/bin/env bash
# A backend's outgoing s2s to a domain xmppfront hosts itself (issue 7, "Outbound": "goes
# to that tenant's backend directly, with no DNS and no TLS to itself"). Two plaintext
# backend Prosodies, a.example on one and c.example on the other, both as uid nobody,
# whose outgoing s2s is redirected to xmppfront's outbound listener. The DNS has SRV
# records for both tenants toward xmppfront's public name (which nothing else serves):
#  (1) user1@a.example -> user1@c.example is delivered, and back: xmppfront opens c's
#      backend stream asserting a.example with its own key; c's backend verifies it with
#      a.example's "authoritative server", i.e. the outbound listener's db:verify bridge
#  (2) xmppfront made no TLS and no remote connection for it (local-backend, tls=none)
#  (3) a hosted tenant whose backend is down: the sender gets an error within seconds
. "$(dirname "$0")/../lab/lab.sh"
. "$(dirname "$0")/outbound_lib.sh"
T=test_outbound_local

lab_init "$T" || exit 1
lab_up || xf_setup_failed "$T: lab_up"
lab_host xf.example 127.0.1.100
lab_xmpp_srv a.example xf.example 5269
lab_xmpp_srv c.example xf.example 5269
lab_xmpp_srv d.example xf.example 5269
ob_tenant a.example encrypted || xf_setup_failed "$T: tenant a"
OB_C2S=25222 OB_S2S=25269 ob_tenant c.example encrypted || xf_setup_failed "$T: tenant c"
OB_C2S=35222 OB_S2S=35269 ob_tenant d.example encrypted || xf_setup_failed "$T: tenant d"
lab_dns_start || xf_setup_failed "$T: dns"
ob_backend_start a.example || xf_setup_failed "$T: backend a"
OB_BACKEND_TAG=2 OB_C2S=25222 OB_S2S=25269 ob_backend_start c.example || xf_setup_failed "$T: backend c"
ob_proxy_start || xf_setup_failed "$T: xmppfront"

OUT="$LAB_DIR/sends.out"
lab_xmpp --account user1@a.example pass1 127.0.0.1 15222 --account user1@c.example pass1 127.0.0.1 25222 \
  --send user1@a.example user1@c.example --timeout 10 > "$OUT" 2>&1
lab_xmpp --account user1@a.example pass1 127.0.0.1 15222 --account user1@c.example pass1 127.0.0.1 25222 \
  --send user1@c.example user1@a.example --send user1@a.example user1@d.example --timeout 10 >> "$OUT" 2>&1
cat "$OUT"
xf_check "(1) a.example -> c.example (both hosted, different backends) delivered" \
  grep -q 'RESULT user1@a.example user1@c.example delivered' "$OUT"
xf_check "(1) c.example -> a.example delivered" grep -q 'RESULT user1@c.example user1@a.example delivered' "$OUT"
xf_check "(1) the backends' db:verify answered valid by the bridge" \
  bash -c "grep -q 'db:verify from=\"c.example\" to=\"a.example\" answered valid' '$OB_LOG' &&
           grep -q 'db:verify from=\"a.example\" to=\"c.example\" answered valid' '$OB_LOG'"
xf_check "(2) to the local backend, no TLS, no DNS candidates" \
  grep -q 'tenant="a.example" remote="c.example" authenticated auth=dialback remote_addr=127.0.0.1:25269 tls=none verdict="peer 127.0.0.1:25269 local-backend' "$OB_LOG"
bounced() { awk '$1 == "RESULT" && $3 == "user1@d.example" && $4 ~ /^error:/ && $5 + 0 <= 4 { ok = 1 } END { exit !ok }' "$OUT"; }
xf_check "(3) hosted tenant with its backend down: error within 4 s" bounced
xf_check "xmppfront is still running" kill -0 "$XF_PROXY_PID"
[ "$XF_FAILS" -gt 0 ] && { echo "--- xmppfront log"; tail -40 "$OB_LOG"; echo "--- backend c log"; tail -30 "$OB_BDIR/prosody.log"; }
xf_finish "$T"
