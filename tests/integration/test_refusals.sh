#!/usr/bin/env bash
# Refusals, each with a scripted peer (python ssl) and the exact stream error expected:
# unknown `to` -> <host-unknown/> (pre-TLS on STARTTLS, post-TLS on direct TLS);
# malformed header -> <not-well-formed/>; header over max_header_bytes -> <policy-violation/>;
# no complete header within handshake_timeout_s -> <connection-timeout/>;
# wrong stream namespace -> <invalid-namespace/>; ALPN xmpp-server carrying jabber:client
# -> <invalid-namespace/>. Every refused connection leaves a log line with reason=.
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
sleep 0.5
xf_check "refusals logged: a line with service= reason= for each refused connection (>= 12)" \
  bash -c "n=\$(grep 'service=' '$XF_LOG' | grep -c 'reason='); echo \"\$n lines\"; [ \"\$n\" -ge 12 ]"
for cond in host-unknown not-well-formed policy-violation connection-timeout invalid-namespace; do
  xf_check "log line names the refusal: tenant= service= reason=...$cond" \
    xf_log_has "$XF_LOG" tenant= service= reason= "$cond"
done
xf_finish "$T"
