#!/usr/bin/env bash
# ejabberd (Debian 12: 23.01, Debian 13: 24.12) as the c2s backend of tenant c.example: slixmpp users
# log in (SASL PLAIN over the plaintext loopback link, which ejabberd allows with
# starttls: false) and exchange a message through xmppfront, via STARTTLS and direct TLS.
# ejabberd runs isolated: its own ejabberd.yml / ejabberdctl.cfg / spool / logs in the temp
# dir, as user ejabberd, no epmd (ERL_DIST_PORT), stopped by PID + its process group.
# SKIPs (exit 0, "SKIP:" line) only when ejabberd itself cannot be started here.
. "$(dirname "$0")/lib.sh"
T=ejabberd_backend
xf_init "$T" || exit 1
XF_CA="$XF_TMP/pki/ca.pem"
xf_make_ca "$XF_TMP/pki" "xmppfront test CA" &&
  xf_make_cert "$XF_TMP/pki" "$XF_TMP/certs/c.example" c.example c.example ||
  xf_setup_failed "$T: PKI"
read -r P_EJ P_DIST P_C2S P_C2S_TLS < <(xf_free_ports 4)
EJ="$XF_TMP/ejabberd"
xf_ejabberd_start "$EJ" "$P_EJ" "$P_DIST" c.example; rc=$?
if [ $rc -ne 0 ]; then
  echo "  --- ejabberd output ---"; tail -15 "$EJ/stdout" "$EJ/log/error.log" 2>/dev/null | sed 's/^/  | /'
  xf_ejabberd_stop
  echo "SKIP: $T (ejabberd could not be started here, see above; the proxy was not tested)"
  exit 0
fi
trap 'rc=$?; xf_ejabberd_stop; (exit $rc); xf_cleanup' EXIT
xf_ejabberd_register "$EJ" user1 c.example pass1 &&
  xf_ejabberd_register "$EJ" user2 c.example pass2 ||
  xf_setup_failed "$T: ejabberdctl register"
xf_check "ejabberd direct (plaintext, no proxy): login + message" \
  xf_client --port "$P_EJ" --mode plain --domain c.example --timeout 15

TD="$XF_TMP/xf/tenants"
xf_tenant_write "$TD" c.example "" "$XF_TMP/certs/c.example" "127.0.0.1:$P_EJ" ""
sed -i '/"s2s_backend": ""/d' "$TD/c.example.json"   # c2s only
L="$(xf_listener 127.0.0.1 "$P_C2S" starttls client), $(xf_listener 127.0.0.1 "$P_C2S_TLS" direct client)"
XF_CFG="$XF_TMP/xf/xmppfront.json" XF_LOG="$XF_TMP/xf/xmppfront.log"
xf_config_write "$XF_CFG" tenants "$L" '"handshake_timeout_s": 10, "backend_timeout_s": 10'
xf_proxy_start "$XF_CFG" "$XF_LOG" "$P_C2S" "$P_C2S_TLS" || xf_setup_failed "$T: xmppfront did not start"

xf_check "c.example via xmppfront STARTTLS -> ejabberd: login + message" \
  xf_client --port "$P_C2S" --mode starttls --ca "$XF_CA" --domain c.example --timeout 20
xf_check "c.example via xmppfront direct TLS -> ejabberd: login + message" \
  xf_client --port "$P_C2S_TLS" --mode direct --ca "$XF_CA" --domain c.example --timeout 20
sleep 0.5
xf_check "proxy log: c.example connections relayed and closed with a reason" \
  xf_log_has "$XF_LOG" tenant=c.example service=client tls=TLSv1. reason=
xf_check "ejabberd saw the logins (its log names user1@c.example)" \
  bash -c "grep -h 'user1@c.example' '$EJ/log/ejabberd.log' | tail -3 | grep ."
xf_check "proxy still running" kill -0 "$XF_PROXY_PID"
xf_ejabberd_stop
xf_check "ejabberd stopped (beam.smp $XF_EJABBERD_PID gone, port $P_EJ closed)" \
  bash -c "! kill -0 $XF_EJABBERD_PID 2>/dev/null && ! ss -Hltn 'sport = :$P_EJ' | grep -q ."
xf_finish "$T"
