#!/usr/bin/env bash
# The "auto" direct TLS listener (443-style) routes by ALPN, or without ALPN by the
# stream namespace: slixmpp with ALPN xmpp-client logs in and messages (ALPN echoed);
# slixmpp without ALPN does too (routed by jabber:client). ALPN ["h2"] only (no
# overlap) is refused with the fatal no_application_protocol alert (spec §9, case 11).
. "$(dirname "$0")/lib.sh"
T=auto_alpn
xf_setup_standard "$T" || xf_setup_failed "$T: could not start Prosody + xmppfront"

xf_check "auto listener, ALPN xmpp-client: a.example login + message, ALPN negotiated xmpp-client" \
  xf_client --port "$P_AUTO" --mode direct --ca "$XF_CA" --domain a.example \
            --alpn xmpp-client --expect-alpn xmpp-client
xf_check "auto listener, ALPN xmpp-client: b.example login + message" \
  xf_client --port "$P_AUTO" --mode direct --ca "$XF_CA" --domain b.example \
            --alpn xmpp-client --expect-alpn xmpp-client
xf_check "auto listener, no ALPN: a.example login + message (routed by jabber:client)" \
  xf_client --port "$P_AUTO" --mode direct --ca "$XF_CA" --domain a.example --expect-alpn none
xf_check "auto listener, offer [h2, xmpp-client]: server picks xmpp-client" \
  xf_peer --port "$P_AUTO" --mode direct --to a.example --alpn h2,xmpp-client \
          --expect-alpn xmpp-client --ca "$XF_CA" --expect-features
xf_check "auto listener, ALPN xmpp-server + jabber:server header: s2s stream is accepted (features)" \
  xf_peer --port "$P_AUTO" --mode direct --to a.example --from remote.example --ns jabber:server --alpn xmpp-server \
          --expect-alpn xmpp-server --ca "$XF_CA" --expect-features
xf_check "auto listener, ALPN [h2] only: fatal no_application_protocol alert" \
  xf_peer --port "$P_AUTO" --mode direct --to a.example --alpn h2 --ca "$XF_CA" \
          --expect-alert no_application_protocol
xf_finish "$T"
