#!/usr/bin/env bash
# c2s through the STARTTLS client listener (5222-style): real slixmpp clients of both
# tenants log in (certificate verified for the tenant's name) and exchange a message
# through xmppfront -> Prosody. Also: pre-TLS features offer <starttls><required/>,
# the certificate is chosen by the pre-TLS `to` (no SNI), Prosody's own STARTTLS offer
# is stripped from the relayed features, and closed connections are logged.
. "$(dirname "$0")/lib.sh"
T=c2s_starttls
xf_setup_standard "$T" || xf_setup_failed "$T: could not start Prosody + xmppfront"

for d in a.example b.example; do
  xf_check "slixmpp user1@$d -> user2@$d message via STARTTLS :$P_C2S" \
    xf_client --port "$P_C2S" --mode starttls --ca "$XF_CA" --domain "$d"
done
xf_check "pre-TLS features: <starttls><required/>; after TLS: relayed features, Prosody's <starttls/> stripped" \
  xf_peer --port "$P_C2S" --mode starttls --to a.example --ca "$XF_CA" --want-required --expect-features
xf_check "no SNI: pre-TLS to='b.example' selects b.example's certificate" \
  xf_peer --port "$P_C2S" --mode starttls --to b.example --sni none --verify-name b.example \
          --ca "$XF_CA" --expect-features
xf_check "to='A.EXAMPLE' (upper case, domains are case-insensitive) is accepted with a's certificate" \
  xf_peer --port "$P_C2S" --mode starttls --to A.EXAMPLE --sni none --verify-name a.example \
          --ca "$XF_CA" --expect-features
xf_check "every byte in its own write (headers split inside <?xml and attributes): still works" \
  xf_peer --port "$P_C2S" --mode starttls --to a.example --ca "$XF_CA" --trickle 2 \
          --expect-features --timeout 20
sleep 0.5
xf_check "closed connections logged with tenant=a.example service= reason=" \
  xf_log_has "$XF_LOG" 'tenant="a.example"' service= reason=
xf_finish "$T"
