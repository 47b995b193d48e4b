#!/usr/bin/env bash
# PROXY protocol v2 towards a real HAProxy (2.6 or 3.0): tenant a.example has "proxy_protocol": "v2"
# and its c2s backend is a HAProxy TCP frontend with accept-proxy that forwards to Prosody.
#  - slixmpp login + message through xmppfront -> HAProxy -> Prosody (STARTTLS, direct TLS)
#  - a raw TLS client bound to 127.0.0.2 (xmppfront's own backend connections come from
#    127.0.0.1): HAProxy's log shows ci=127.0.0.2 and the client's own source port, and
#    the SNI a.example as fc_pp_authority
#  - tenant b.example has NO proxy_protocol and the same HAProxy frontend as backend: its
#    clients do not get a session (HAProxy refuses a stream without a PROXY header), which
#    proves the header is only sent when configured.
. "$(dirname "$0")/lib.sh"
T=proxy_protocol
xf_setup_standard "$T" || xf_setup_failed "$T: could not start Prosody + xmppfront"
read -r P_HAP < <(xf_free_ports 1)
HCFG="$XF_TMP/haproxy.cfg" HLOG="$XF_TMP/haproxy.log"
cat > "$HCFG" <<EOC
global
  log stdout format raw local0
defaults
  mode tcp
  log global
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe_pp
  bind 127.0.0.1:$P_HAP accept-proxy
  option logasap
  log-format "PPLOG ci=%ci cp=%cp authority=%[fc_pp_authority] uid=%[fc_pp_unique_id] fi=%fi fp=%fp"
  default_backend be_prosody
backend be_prosody
  server prosody 127.0.0.1:$P_PC2S
EOC
xf_haproxy_start "$HCFG" "$HLOG" "$P_HAP" || xf_setup_failed "$T: haproxy did not start"

# restart xmppfront with a.example (v2) and b.example (none) both behind HAProxy
xf_stop_pid "$XF_PROXY_PID" 5
TD="$XF_TMP/xf/tenants" C="$XF_TMP/certs"
xf_tenant_write "$TD" a.example "conference.a.example" "$C/a.example" "127.0.0.1:$P_HAP" "127.0.0.1:$P_PS2S" v2
xf_tenant_write "$TD" b.example "" "$C/b.example" "127.0.0.1:$P_HAP" "127.0.0.1:$P_PS2S"
xf_proxy_start "$XF_CFG" "$XF_LOG" "$P_C2S" "$P_C2S_TLS" || xf_setup_failed "$T: xmppfront restart"

xf_check "a.example (proxy_protocol v2) via STARTTLS -> HAProxy accept-proxy -> Prosody: login + message" \
  xf_client --port "$P_C2S" --mode starttls --ca "$XF_CA" --domain a.example
xf_check "a.example (proxy_protocol v2) via direct TLS -> HAProxy -> Prosody: login + message" \
  xf_client --port "$P_C2S_TLS" --mode direct --ca "$XF_CA" --domain a.example

# raw client from 127.0.0.2: direct TLS with SNI a.example, stream header, Prosody's features
RAW="$XF_TMP/raw.out"
xf_check "raw client bound to 127.0.0.2 gets Prosody's features through HAProxy" \
  timeout 20 "$XF_PY" - "$P_C2S_TLS" "$XF_CA" "$RAW" <<'PYEOF'
import socket, ssl, sys, time
port, ca, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(('127.0.0.1', port), timeout=10, source_address=('127.0.0.2', 0))
lport = s.getsockname()[1]
ctx = ssl.create_default_context(cafile=ca)
t = ctx.wrap_socket(s, server_hostname='a.example')
t.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' to='a.example' version='1.0'>")
buf = b''
deadline = time.monotonic() + 10
while b'</stream:features>' not in buf and time.monotonic() < deadline:
    d = t.recv(65536)
    if not d:
        break
    buf += d
print(f'client 127.0.0.2:{lport} received {buf[:400]!r}')
open(out, 'w').write(f'{lport}\n')
ok = b'</stream:features>' in buf and b'mechanism' in buf
t.sendall(b'</stream:stream>')
time.sleep(0.3)
sys.exit(0 if ok else 1)
PYEOF
CPORT=$(head -1 "$RAW" 2>/dev/null)
sleep 0.5
xf_check "HAProxy log: the real client address 127.0.0.2:${CPORT:-?} and SNI a.example as PP2 authority" \
  xf_log_has "$HLOG" PPLOG "ci=127.0.0.2 cp=${CPORT:-none} " "authority=a.example "
xf_check "HAProxy log: the 4 slixmpp sessions arrived with a PROXY v2 header (authority=a.example)" \
  bash -c "grep PPLOG '$HLOG'; [ \$(grep -c 'PPLOG ci=127.0.0.1 .*authority=a.example ' '$HLOG') -ge 4 ]"

# b.example: no proxy_protocol -> HAProxy's accept-proxy frontend refuses the stream
xf_check "b.example (no proxy_protocol) behind accept-proxy: <remote-connection-failed/>, no features" \
  xf_peer --port "$P_C2S_TLS" --mode direct --to b.example --ca "$XF_CA" \
          --expect-error remote-connection-failed --timeout 8
xf_check "b.example: slixmpp login through the accept-proxy frontend fails" \
  bash -c "! XF_CLIENT_TIMEOUT=20 timeout 20 '$XF_PY' '$XF_IT_DIR/xmpp_client.py' --port '$P_C2S_TLS' --mode direct --ca '$XF_CA' --domain b.example --timeout 8"
sleep 0.5
xf_check "HAProxy log: b.example's streams arrived without a PROXY header" \
  xf_log_has "$HLOG" "does not look like a PROXY protocol header"
xf_check "no HAProxy session was logged with the authority b.example" \
  bash -c "! grep -q 'authority=b.example' '$HLOG'"
xf_check "proxy log: b.example connection closed with a reason" \
  xf_log_has "$XF_LOG" tenant=b.example reason=
xf_check "proxy and HAProxy still running" bash -c "kill -0 $XF_PROXY_PID && kill -0 $XF_HAPROXY_PID"
[ "$XF_FAILS" -gt 0 ] && { echo "  --- haproxy log ---"; tail -20 "$HLOG" | sed 's/^/  | /'; }
xf_finish "$T"
