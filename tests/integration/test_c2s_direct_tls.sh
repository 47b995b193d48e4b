#!/usr/bin/env bash
# c2s through the direct TLS client listener (5223-style, XEP-0368): slixmpp clients
# of both tenants connect with TLS from the first byte (SNI = their domain, certificate
# verified), log in and exchange a message through xmppfront -> Prosody.
. "$(dirname "$0")/lib.sh"
T=c2s_direct_tls
xf_setup_standard "$T" || xf_setup_failed "$T: could not start Prosody + xmppfront"

for d in a.example b.example; do
  xf_check "slixmpp user1@$d -> user2@$d message via direct TLS :$P_C2S_TLS" \
    xf_client --port "$P_C2S_TLS" --mode direct --ca "$XF_CA" --domain "$d"
done
xf_check "direct TLS, SNI b.example: b's certificate, relayed features without <starttls/>" \
  xf_peer --port "$P_C2S_TLS" --mode direct --to b.example --ca "$XF_CA" --expect-features
xf_check "direct TLS with ALPN xmpp-client on the client listener: negotiated xmpp-client" \
  xf_peer --port "$P_C2S_TLS" --mode direct --to a.example --alpn xmpp-client \
          --expect-alpn xmpp-client --ca "$XF_CA" --expect-features
sleep 0.5
xf_check "closed connections logged with tenant=b.example service= reason=" \
  xf_log_has "$XF_LOG" 'tenant="b.example"' service= reason=
xf_finish "$T"
