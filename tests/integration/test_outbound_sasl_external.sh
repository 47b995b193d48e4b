#!/usr/bin/env bash
# Outbound s2s through xmppfront (issue 7, "Outbound"), with real servers in the lab:
# a plaintext backend Prosody for a.example (no TLS, dialback only) whose outgoing s2s is
# redirected by uid to xmppfront's transparent outbound listener, and a remote Prosody of
# XEP-0238 type 6 (CA certificate required, SASL EXTERNAL only, no dialback).
#  (1) a.example -> type6.example is delivered: xmppfront resolves the remote (lab DNS,
#      _xmpps-server first), direct TLS, the remote certificate is PKIX-valid, the tenant
#      authenticates by SASL EXTERNAL with its own certificate; the original destination
#      of the redirected connection is logged; the remote says mechanism=EXTERNAL
#  (2) unreachable remote (A record, nothing listens) and a silent remote (accepts TCP,
#      never answers): the backend gets a dialback error at once and bounces the message
#      with an error within seconds (bounded by connect/negotiation timeouts 2 s / 4 s)
#  (3) NXDOMAIN and SERVFAIL (a DNSSEC-bogus zone behind the lab's validating resolver),
#      asked by a scripted backend on the outbound listener: type='error'
#      <remote-server-not-found/> within a second or two
#  (4) the dialback bridge on the outbound listener: <db:verify/> for a key made with
#      xmppfront's secret is answered valid locally, a forged key invalid, no TCP to R
#  (5) a stream whose `from` is not hosted gets <invalid-from/>
#  (6) SIGTERM with a relaying stream: drained, resolver freed, exit status 0
: "${LAB_DNSSEC:=1}"          # unbound validates: the bogus zone answers SERVFAIL
. "$(dirname "$0")/../lab/lab.sh"
. "$(dirname "$0")/outbound_lib.sh"
T=test_outbound_sasl_external

lab_init "$T" || exit 1
lab_up || xf_setup_failed "$T: lab_up"
lab_remote t6 type6.example 6 127.0.1.6 || xf_setup_failed "$T: remote"
lab_host dead.example 127.0.1.60
lab_host silent.example 127.0.1.61
# shellcheck disable=SC2034  # read by lab.sh
LAB_ZONES="example bogus.example" LAB_BOGUS_ZONES="bogus.example"
lab_host xmpp.bogus.example 127.0.1.98
lab_xmpp_srv bogus.example xmpp.bogus.example
ob_tenant a.example encrypted || xf_setup_failed "$T: tenant"
lab_dns_start || xf_setup_failed "$T: dns"
lab_remotes_start || xf_setup_failed "$T: remote start"
ob_peer remote --listen 127.0.1.61 5269 --domain silent.example --mode silent \
  --log "$LAB_DIR/silent.log" > /dev/null 2>&1 &
xf_track $!
ob_backend_start a.example || xf_setup_failed "$T: backend"
ob_proxy_start || xf_setup_failed "$T: xmppfront"

OUT="$LAB_DIR/send1.out"
ob_send user1@a.example user1@type6.example "127.0.1.6 5222" 20 > "$OUT" 2>&1
xf_check "(1) a.example -> type6.example delivered through xmppfront" grep -q 'RESULT .* delivered' "$OUT"
xf_check "(1) xmppfront: SASL EXTERNAL, PKIX valid, TLS, remote address from SRV" \
  grep -E 'authenticated auth=sasl-external remote_addr=127\.0\.1\.6:5270 tls=TLSv1\.[23] verdict=.*pkix: valid' "$OB_LOG"
xf_check "(1) xmppfront logs the original destination of the redirected connection" \
  grep -qE 'accept peer=127\.[0-9.]+:[0-9]+ original_dst=127\.0\.1\.6:5269' "$OB_LOG"
xf_check "(1) the remote saw EXTERNAL from a.example" \
  grep -q 'lab-s2s dir=incoming from=a.example .*mechanism=EXTERNAL' "$LAB_DIR/remote/t6/prosody.log"

OUT2="$LAB_DIR/send2.out"
t0=$(date +%s)
ob_send user1@a.example user1@dead.example - 20 > "$OUT2" 2>&1 &
p1=$!
ob_send user2@a.example user2@silent.example - 20 > "$OUT2.b" 2>&1
wait $p1
cat "$OUT2.b" >> "$OUT2"
bounced_fast() {   # FILE TO MAX_S: an error RESULT for TO within MAX_S seconds
  awk -v to="$2" -v max="$3" '$1 == "RESULT" && $3 == to && $4 ~ /^error:/ && $5 + 0 <= max { ok = 1 } END { exit !ok }' "$1" || { cat "$1"; return 1; }
}
xf_check "(2) unreachable remote: the backend bounces with an error within 6 s" bounced_fast "$OUT2" user1@dead.example 6
xf_check "(2) silent remote: the backend bounces with an error within 10 s" bounced_fast "$OUT2" user2@silent.example 10
xf_check "(2) xmppfront: remote-connection-failed (dead) and remote-server-timeout (silent)" \
  bash -c "grep -q 'remote=\"dead.example\" refused: dialback error remote-connection-failed' '$OB_LOG' &&
           grep -q 'remote=\"silent.example\" refused: dialback error remote-server-timeout' '$OB_LOG'"
echo "  (sends took $(( $(date +%s) - t0 ))s)"

OUT3="$LAB_DIR/nx.out"
ob_peer backend --connect 127.0.0.1 "$OB_PORT" --from a.example --to nosuch.example --result > "$OUT3" 2>&1
xf_check "(3) NXDOMAIN: type='error' <remote-server-not-found/> within 2 s" \
  bash -c "grep -E \"^ANSWER (0|1)\\.[0-9]s <db:result from='nosuch.example' to='a.example' type='error'>.*remote-server-not-found\" '$OUT3' || { cat '$OUT3'; exit 1; }"

if [ "$LAB_DNSSEC" = 1 ]; then
  ob_peer backend --connect 127.0.0.1 "$OB_PORT" --from a.example --to bogus.example --result > "$OUT3.s" 2>&1
  xf_check "(3) SERVFAIL: type='error' <remote-server-not-found/> within 5 s, the log says SERVFAIL" \
    bash -c "grep -E \"^ANSWER [0-4]\.[0-9]s <db:result from='bogus.example' to='a.example' type='error'>.*remote-server-not-found\" '$OUT3.s' &&
             grep -q 'remote=\"bogus.example\" refused: dialback error remote-server-not-found; \"SRV lookup for bogus.example failed: .*SERVFAIL' '$OB_LOG' || { cat '$OUT3.s'; exit 1; }"
fi

OUT4="$LAB_DIR/verify.out"
ob_peer backend --connect 127.0.0.1 "$OB_PORT" --from a.example --to type6.example \
  --verify-secret sid-1234 "$OB_SECRET" > "$OUT4" 2>&1
xf_check "(4) db:verify with xmppfront's key: valid, answered locally" \
  bash -c "grep -q \"^ANSWER .*<db:verify from='type6.example' to='a.example' id='sid-1234' type='valid'/>\" '$OUT4' || { cat '$OUT4'; exit 1; }"
ob_peer backend --connect 127.0.0.1 "$OB_PORT" --from a.example --to type6.example \
  --verify sid-1234 0000000000000000000000000000000000000000000000000000000000000000 > "$OUT4.f" 2>&1
xf_check "(4) db:verify with a forged key: invalid" \
  bash -c "grep -q \"^ANSWER .*<db:verify from='type6.example' to='a.example' id='sid-1234' type='invalid'/>\" '$OUT4.f' || { cat '$OUT4.f'; exit 1; }"
xf_check "(4) the verifies were answered by the bridge, no remote stream opened for them" \
  bash -c "[ \$(grep -c 'db:verify from=\"a.example\" to=\"type6.example\" answered .* (local, dialback bridge)' '$OB_LOG') -eq 2 ] &&
           [ \$(grep -c 'authenticated auth=' '$OB_LOG') -eq 1 ]"

OUT5="$LAB_DIR/from.out"
ob_peer backend --connect 127.0.0.1 "$OB_PORT" --from evil.example --to type6.example --result > "$OUT5" 2>&1
xf_check "(5) a stream from a domain that is not hosted: <invalid-from/>" grep -q 'invalid-from' "$OUT5"

xf_check "xmppfront is still running" kill -0 "$XF_PROXY_PID"
# (6) SIGTERM: the worker's resolver and the remote streams are freed, the loop ends clean
stop_clean() {
  kill -TERM "$XF_PROXY_PID"
  local i
  for ((i = 0; i < 100; i++)); do kill -0 "$XF_PROXY_PID" 2>/dev/null || break; sleep 0.1; done
  wait "$XF_PROXY_PID"; local rc=$?
  echo "exit status $rc"; tail -n 3 "$OB_LOG"
  [ "$rc" -eq 0 ] && grep -q 'info stopped; counters' "$OB_LOG"
}
xf_check "(6) SIGTERM with a live remote stream: clean exit (status 0, 'stopped')" stop_clean
[ "$XF_FAILS" -gt 0 ] && { echo "--- xmppfront log"; tail -40 "$OB_LOG"; echo "--- backend log"; tail -20 "$OB_BDIR/prosody.log"; }
xf_finish "$T"
