#!/usr/bin/env bash
# limits.max_connections bounds the whole process, the outbound listener's sessions (the
# backend's outgoing s2s, proxy/outbound.c) included: with max_connections 3, two held
# inbound connections and one held outbound session fill it; a fourth connection to the
# outbound listener is closed at once with a log line, and after one of the others closes
# a new outbound session is accepted again.
. "$(dirname "$0")/lib.sh"
T=outbound_max_connections
xf_init "$T" || exit 1
xf_make_test_pki "$XF_TMP" || xf_setup_failed "$T: PKI"
read -r P_C2S P_OUT < <(xf_free_ports 2)
mkdir -p "$XF_TMP/xf/tenants"
xf_tenant_write "$XF_TMP/xf/tenants" a.example "" "$XF_TMP/certs/a.example" "127.0.0.1:1" "127.0.0.1:1"
XF_CFG="$XF_TMP/xf/xmppfront.json"
XF_LOG="$XF_TMP/xf/xmppfront.log"
cat > "$XF_CFG" <<EOF
{
  "workers": 2,
  "tenants": "tenants",
  "listeners": [$(xf_listener 127.0.0.1 "$P_C2S" starttls client),
                {"address": "127.0.0.1", "port": $P_OUT, "tls": "none", "service": "outbound"}],
  "limits": {"max_connections": 3, "handshake_timeout_s": 20},
  "log_level": "info"
}
EOF
xf_proxy_start "$XF_CFG" "$XF_LOG" "$P_C2S" "$P_OUT" || xf_setup_failed "$T: xmppfront did not start"
cat > "$XF_TMP/hold.py" <<'PYEOF'
import socket, sys, time
c2s, out = int(sys.argv[1]), int(sys.argv[2])
def conn(port):
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    time.sleep(0.3)             # let the accept happen before the next one
    return s
def closed_within(s, secs):
    s.settimeout(secs)
    try:
        return s.recv(100) == b''
    except socket.timeout:
        return False
    except OSError:
        return True
held = [conn(c2s), conn(c2s), conn(out)]
fourth = conn(out)
r1 = closed_within(fourth, 2)
alive = not closed_within(held[2], 0.5)
held[0].close(); time.sleep(0.5)
fifth = conn(out)
r2 = not closed_within(fifth, 1)
print(f"fourth_closed={r1} third_alive={alive} fifth_accepted={r2}")
sys.exit(0 if (r1 and alive and r2) else 1)
PYEOF
xf_check "max_connections 3 = 2 inbound + 1 outbound: a 4th (outbound) is closed at once, the 3rd stays; after one closes a new outbound one is accepted" \
  "$XF_PY" "$XF_TMP/hold.py" "$P_C2S" "$P_OUT"
xf_check "the refusal is logged with the reason" \
  grep -q 'outbound listener .*refused 127.0.0.1:[0-9]*: max_connections (3) reached' "$XF_LOG"
xf_check "proxy still running" kill -0 "$XF_PROXY_PID"
xf_finish "$T"
