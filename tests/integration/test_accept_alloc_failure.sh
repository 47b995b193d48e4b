#!/usr/bin/env bash
# A failed allocation at accept does not stop the worker's listener: with the test-only
# fault injection XF_TEST_FAIL_CONN_ALLOC (docs/configuration.md), the 2nd, 3rd and 4th
# connection allocations fail. Those connections are closed at once without a byte
# (taken into the listener's spare handle), the failure is logged and counted, and the
# connections before and after are served normally — with one worker, so that every
# connection goes to the listener that saw the failures.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_netns.sh"
T=accept_alloc_failure
xf_init "$T" || xf_setup_failed "$T: init"
xf_ns_tenant_world || xf_setup_failed "$T: PKI"
read -r PORT < <(xf_free_ports 1)
XF_CFG="$XF_TMP/xf/xmppfront.json" XF_LOG="$XF_TMP/xf/xmppfront.log"
XF_WORKERS=1 xf_config_write "$XF_CFG" tenants "$(xf_listener 127.0.0.1 "$PORT" starttls client)" \
  "\"drain_timeout_s\": 2"
XF_TEST_FAIL_CONN_ALLOC=2,3,4 xf_proxy_start "$XF_CFG" "$XF_LOG" "$PORT" ||
  xf_setup_failed "$T: xmppfront did not start"

xf_check "connection 1 served; 2, 3, 4 (opened at once) closed without a byte; 5 and 6 served" \
  timeout 30 "$XF_PY" - "$PORT" <<'PYEOF'
import socket, sys
port = int(sys.argv[1])
HDR = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
       b"xmlns:stream='http://etherx.jabber.org/streams' to='a.example' version='1.0'>")
def served(s):
    s.sendall(HDR)
    s.settimeout(5)
    got = b""
    try:
        while b"</stream:features>" not in got:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except OSError:
        pass
    return b"<starttls" in got
def closed_silently(s):
    s.settimeout(5)
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True
    except OSError:
        return False
bad = 0
c1 = socket.create_connection(("127.0.0.1", port))
r = served(c1); print("1:", "served" if r else "NOT served"); bad += not r
burst = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
for i, s in enumerate(burst, 2):
    r = closed_silently(s); print(f"{i}:", "closed without a byte" if r else "NOT closed"); bad += not r
for i in (5, 6):
    s = socket.create_connection(("127.0.0.1", port))
    r = served(s); print(f"{i}:", "served" if r else "NOT served (listener stuck?)"); bad += not r
sys.exit(1 if bad else 0)
PYEOF
xf_check "log: the failure is reported (rate-limited: one error line for the burst)" \
  bash -c "grep 'out of memory for the connection state' '$XF_LOG'; n=\$(grep -c 'out of memory for the connection state' '$XF_LOG'); [ \"\$n\" -ge 1 ] && [ \"\$n\" -le 2 ]"
xf_check "proxy alive" kill -0 "$XF_PROXY_PID"
xf_stop_pid "$XF_PROXY_PID" 10
xf_check "counted: accept_alloc_failed=3" xf_counter_is "$XF_LOG" accept_alloc_failed 3
xf_finish "$T"
