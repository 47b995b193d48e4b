#!/usr/bin/env bash
# Refusals, each with a scripted peer (python ssl) and the exact stream error expected:
# unknown `to` -> <host-unknown/> (pre-TLS on STARTTLS, post-TLS on direct TLS);
# malformed header -> <not-well-formed/>; header over max_header_bytes -> <policy-violation/>;
# no complete header within handshake_timeout_s -> <connection-timeout/>;
# wrong stream namespace -> <invalid-namespace/>; ALPN xmpp-server carrying jabber:client
# -> <invalid-namespace/>; missing `to` -> <host-unknown/>; SNI a / to b -> <policy-violation/>;
# plaintext pipelined after <starttls/> aborts TLS; a <starttls/> after TLS (STARTTLS or
# direct) is never answered with <proceed/> (the backend Prosody would offer TLS-in-TLS).
# Every refused connection leaves a log line with reason=.
. "$(dirname "$0")/lib.sh"
T=refusals
HS=3
XF_HANDSHAKE_TIMEOUT=$HS XF_MAX_HEADER=8192 xf_setup_standard "$T" ||
  xf_setup_failed "$T: could not start Prosody + xmppfront"
BAD="<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='a.example' <<<!>"

xf_check "STARTTLS, pre-TLS to='nothere.example' -> <host-unknown/>" \
  xf_peer --port "$P_C2S" --mode starttls --pretls --to nothere.example --expect-error host-unknown
xf_check "direct TLS (SNI a.example), to='nothere.example' -> <host-unknown/>" \
  xf_peer --port "$P_C2S_TLS" --mode direct --sni a.example --to nothere.example --ca "$XF_CA" \
          --expect-error host-unknown
xf_check "STARTTLS, pre-TLS malformed header -> <not-well-formed/>" \
  xf_peer --port "$P_C2S" --mode starttls --pretls --send "$BAD" --expect-error not-well-formed
xf_check "direct TLS, malformed header -> <not-well-formed/>" \
  xf_peer --port "$P_C2S_TLS" --mode direct --sni a.example --ca "$XF_CA" --send "$BAD" \
          --expect-error not-well-formed
xf_check "STARTTLS, pre-TLS header of ~10 kB (> max_header_bytes 8192) -> <policy-violation/>" \
  xf_peer --port "$P_C2S" --mode starttls --pretls --to a.example --oversize 10000 \
          --expect-error policy-violation
xf_check "direct TLS, header of ~10 kB -> <policy-violation/>" \
  xf_peer --port "$P_C2S_TLS" --mode direct --to a.example --ca "$XF_CA" --oversize 10000 \
          --expect-error policy-violation
xf_check "STARTTLS, half a header then silence -> <connection-timeout/> within ${HS}s+3" \
  xf_peer --port "$P_C2S" --mode starttls --pretls --to a.example --partial \
          --expect-error connection-timeout --within $((HS + 3)) --timeout $((HS + 8))
xf_check "direct TLS, half a header then silence -> <connection-timeout/> within ${HS}s+3" \
  xf_peer --port "$P_C2S_TLS" --mode direct --to a.example --ca "$XF_CA" --partial \
          --expect-error connection-timeout --within $((HS + 3)) --timeout $((HS + 8))
xf_check "direct TLS, TLS done, then nothing -> <connection-timeout/> within ${HS}s+3" \
  xf_peer --port "$P_C2S_TLS" --mode direct --to a.example --ca "$XF_CA" --idle \
          --expect-error connection-timeout --within $((HS + 3)) --timeout $((HS + 8))
xf_check "STARTTLS, pre-TLS stream namespace 'jabber:bogus' -> <invalid-namespace/>" \
  xf_peer --port "$P_C2S" --mode starttls --pretls --to a.example --ns jabber:bogus \
          --expect-error invalid-namespace
xf_check "auto listener, ALPN xmpp-server + jabber:client header -> <invalid-namespace/>" \
  xf_peer --port "$P_AUTO" --mode direct --to a.example --alpn xmpp-server --ca "$XF_CA" \
          --expect-alpn xmpp-server --expect-error invalid-namespace
xf_check "direct s2s listener (no ALPN) + jabber:client header -> <invalid-namespace/>" \
  xf_peer --port "$P_S2S_TLS" --mode direct --to a.example --ca "$XF_CA" \
          --expect-error invalid-namespace
# spec-digest §10 cases 4, 7, 8, 9, 10
xf_check "STARTTLS, pre-TLS header without 'to' -> <host-unknown/>" \
  xf_peer --port "$P_C2S" --mode starttls --pretls --no-to --expect-error host-unknown
xf_check "direct TLS (SNI a.example), header without 'to' -> <host-unknown/>" \
  xf_peer --port "$P_C2S_TLS" --mode direct --sni a.example --no-to --ca "$XF_CA" \
          --expect-error host-unknown
xf_check "direct TLS SNI a.example but to='b.example' (hosted, not covered by a's cert) -> <policy-violation/>" \
  xf_peer --port "$P_C2S_TLS" --mode direct --sni a.example --to b.example --verify-name a.example \
          --ca "$XF_CA" --expect-error policy-violation
xf_check "STARTTLS: plaintext pipelined after <starttls/> -> TLS aborted, never parsed" \
  xf_peer --port "$P_C2S" --mode starttls --to a.example --ca "$XF_CA" \
          --pipeline "<message to='user2@a.example'><body>injected</body></message>" --expect-tls-fail
xf_check "STARTTLS: a second <starttls/> after TLS -> <failure/>/stream error/close, never <proceed/>" \
  xf_peer --port "$P_C2S" --mode starttls --to a.example --ca "$XF_CA" --second-starttls
xf_check "direct TLS: <starttls/> on an xmpps connection -> <failure/>/stream error/close, never <proceed/>" \
  xf_peer --port "$P_C2S_TLS" --mode direct --to a.example --ca "$XF_CA" --second-starttls
# restricted XML and pre-TLS rules (spec §1.2, §5, §10 cases 5, 6)
HDR="<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='a.example'"
xf_check "pre-TLS comment before the header -> <restricted-xml/>" \
  xf_peer --port "$P_C2S" --mode starttls --pretls \
          --send "<?xml version='1.0'?><!-- hi -->$HDR version='1.0'>" --expect-error restricted-xml
xf_check "pre-TLS DTD with an entity declaration -> <restricted-xml/>" \
  xf_peer --port "$P_C2S" --mode starttls --pretls \
          --send "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>$HDR version='1.0'>" \
          --expect-error restricted-xml
xf_check "header without version (0.9: no STARTTLS possible) -> <unsupported-version/>" \
  xf_peer --port "$P_C2S" --mode starttls --pretls --send "<?xml version='1.0'?>$HDR>" \
          --expect-error 'unsupported-version|policy-violation'
xf_check "a stanza before STARTTLS on the TLS-required port -> <policy-violation/> (or <not-authorized/>)" \
  xf_peer --port "$P_C2S" --mode starttls --pretls \
          --send "<?xml version='1.0'?>$HDR version='1.0'><message to='user2@a.example'><body>x</body></message>" \
          --expect-error 'policy-violation|not-authorized'

# --check-config: the generated config passes; broken ones are refused with exit 1
xf_check "xmppfront --check-config accepts the test config (exit 0)" \
  "$XF_BIN" --check-config -c "$XF_CFG"
mkdir -p "$XF_TMP/bad1" "$XF_TMP/bad2/tenants"
echo '{"workers": 2, "tenants": "tenants", "listeners": [' > "$XF_TMP/bad1/x.json"
cp "$XF_TMP/xf/tenants/"*.json "$XF_TMP/bad2/tenants/"
sed 's|"tenants": "tenants"|"tenants": "tenants"|' "$XF_CFG" > "$XF_TMP/bad2/x.json"
sed -i 's|certs/b.example/fullchain.pem|certs/b.example/missing.pem|' "$XF_TMP/bad2/tenants/b.example.json"
check_config_rc() {  # check_config_rc WANT FILE
  "$XF_BIN" --check-config -c "$2"; local rc=$?
  echo "exit $rc (want $1)"; [ "$rc" = "$1" ]
}
xf_check "xmppfront --check-config refuses truncated JSON (exit 1)" check_config_rc 1 "$XF_TMP/bad1/x.json"
xf_check "xmppfront --check-config refuses a tenant whose certificate file is missing (exit 1)" \
  check_config_rc 1 "$XF_TMP/bad2/x.json"
sleep 0.5
xf_check "refusals logged: a line with service= reason= for each refused connection (>= 12)" \
  bash -c "n=\$(grep 'service=' '$XF_LOG' | grep -c 'reason='); echo \"\$n lines\"; [ \"\$n\" -ge 12 ]"
for cond in host-unknown not-well-formed policy-violation connection-timeout invalid-namespace; do
  xf_check "log line names the refusal: tenant= service= reason=...$cond" \
    xf_log_has "$XF_LOG" tenant= service= reason= "$cond"
done
xf_finish "$T"
