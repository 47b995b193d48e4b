#!/usr/bin/env bash
# Reload with an s2s stream xmppfront opened itself (issue 9 "Reload"; the client TLS is
# part of the snapshot, proxy/reload.c + proxy/remote.c). Lab world of
# test_outbound_sasl_external.sh: a plaintext backend Prosody for a.example, a remote
# Prosody of XEP-0238 type 6 (CA certificate required, SASL EXTERNAL only).
#  (1) a.example -> type6.example delivered: one remote stream, SASL EXTERNAL with a's
#      certificate;
#  (2) a.example's certificate renewed and SIGHUP: the reload logs the renewal; a message
#      sent afterwards is delivered over the SAME remote stream (no second
#      authentication: the stream keeps its snapshot and its client TLS);
#  (3) the remote restarts (the old stream is gone): the next message opens a new remote
#      stream, made with the new snapshot's client TLS, SASL EXTERNAL again, delivered;
#  (4) no reload refused, xmppfront still running.
. "$(dirname "$0")/../lab/lab.sh"
. "$(dirname "$0")/outbound_lib.sh"
T=test_reload_outbound

lab_init "$T" || exit 1
lab_up || xf_setup_failed "$T: lab_up"
lab_remote t6 type6.example 6 127.0.1.6 || xf_setup_failed "$T: remote"
ob_tenant a.example encrypted || xf_setup_failed "$T: tenant"
lab_dns_start || xf_setup_failed "$T: dns"
lab_remotes_start || xf_setup_failed "$T: remote start"
ob_backend_start a.example || xf_setup_failed "$T: backend"
ob_proxy_start || xf_setup_failed "$T: xmppfront"
XF_LOG=$OB_LOG

auths() { grep -cF 'remote="type6.example" authenticated auth=sasl-external' "$OB_LOG"; }
# delivered_after FILE N: FILE has a delivered RESULT and the log N SASL EXTERNAL streams.
delivered_after() { cat "$1"; echo "remote streams authenticated: $(auths) (want $2)"; grep -q 'RESULT .* delivered' "$1" && [ "$(auths)" = "$2" ]; }
OUT="$LAB_DIR/send1.out"
ob_send user1@a.example user1@type6.example "127.0.1.6 5222" 20 > "$OUT" 2>&1
xf_check "(1) a.example -> type6.example delivered (SASL EXTERNAL)" delivered_after "$OUT" 1

CD="$LAB_DIR/xf/certs/a.example"
OLD_SERIAL=$(openssl x509 -in "$CD/cert.pem" -noout -serial | cut -d= -f2)
xf_make_cert "$LAB_DIR/pki" "$LAB_DIR/renew" a.example a.example || xf_setup_failed "$T: renewal"
NEW_SERIAL=$(openssl x509 -in "$LAB_DIR/renew/cert.pem" -noout -serial | cut -d= -f2)
cp "$LAB_DIR/renew/fullchain.pem" "$CD/fullchain.pem.new" && mv "$CD/fullchain.pem.new" "$CD/fullchain.pem"
cp "$LAB_DIR/renew/privkey.pem" "$CD/privkey.pem.new" && mv "$CD/privkey.pem.new" "$CD/privkey.pem"
kill -HUP "$XF_PROXY_PID"
renewed() {
  local i
  for ((i = 0; i < 100; i++)); do
    grep -q "certificate renewed for tenant a.example: serial $OLD_SERIAL .* -> $NEW_SERIAL" "$OB_LOG" &&
      grep -qE 'reload [0-9]+ \((SIGHUP|file change: [^)]*)\) done' "$OB_LOG" && return 0
    sleep 0.1
  done
  grep reload "$OB_LOG"; return 1
}
xf_check "(2) the reload logs a.example's renewal ($OLD_SERIAL -> $NEW_SERIAL)" renewed
sleep 1
OUT2="$LAB_DIR/send2.out"
ob_send user1@a.example user1@type6.example "127.0.1.6 5222" 20 > "$OUT2" 2>&1
xf_check "(2) after the reload: delivered over the same remote stream (still one authentication)" \
  delivered_after "$OUT2" 1

lab_remote_restart t6 || xf_setup_failed "$T: remote restart"
sleep 1
OUT3="$LAB_DIR/send3.out"
ok3=0
for attempt in 1 2 3; do       # the backend may try its dead session once before a new one
  ob_send user1@a.example user1@type6.example "127.0.1.6 5222" 20 > "$OUT3.$attempt" 2>&1
  grep -q 'RESULT .* delivered' "$OUT3.$attempt" && { ok3=1; cp "$OUT3.$attempt" "$OUT3"; break; }
  sleep 1
done
xf_check "(3) after the remote restarted: a new remote stream (second SASL EXTERNAL) delivers" \
  bash -c "cat '$OUT3'.*; [ $ok3 = 1 ]"
xf_check "(3) ... and it is a new remote stream (two authentications in all)" delivered_after "$OUT3" 2
xf_check "(4) no reload refused, xmppfront still running" \
  bash -c "! grep -F 'refused:' '$OB_LOG' && kill -0 $XF_PROXY_PID"
[ "$XF_FAILS" -gt 0 ] && { echo "--- xmppfront log"; grep -vE ' close ' "$OB_LOG" | tail -30; }
xf_finish "$T"
