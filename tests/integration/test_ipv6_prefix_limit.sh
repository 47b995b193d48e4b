#!/usr/bin/env bash
# Per-address limits count an IPv6 /64 as one address (limits.ipv6_prefix, default 64):
# with max_connections_per_ip = N, connections from N+1 different addresses of one /64
# are refused from the (N+1)th on, while an address of another /64 still connects and is
# served. Inside a network namespace made for the test, whose loopback carries the
# addresses; the proxy listens on [::].
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_netns.sh"
T=ipv6_prefix_limit
N=3
xf_netns_init "$T" || xf_setup_failed "$T: no network namespace"
xf_ns_tenant_world || xf_setup_failed "$T: PKI"
for i in $(seq 1 $((N + 1))); do
  xf_ns ip -6 addr add "2001:db8:aa:1::$i/128" dev lo nodad || xf_setup_failed "$T: ip addr"
done
xf_ns ip -6 addr add "2001:db8:aa:2::1/128" dev lo nodad || xf_setup_failed "$T: ip addr"
PORT=5222
XF_CFG="$XF_TMP/xf/xmppfront.json" XF_LOG="$XF_TMP/xf/xmppfront.log"
XF_WORKERS=2 xf_config_write "$XF_CFG" tenants "$(xf_listener :: $PORT starttls client)" \
  "\"max_connections_per_ip\": $N, \"handshake_timeout_s\": 60, \"drain_timeout_s\": 2"
xf_ns_proxy_start "$XF_CFG" "$XF_LOG" $PORT || xf_setup_failed "$T: xmppfront did not start"

# One client process: N+1 connections from 2001:db8:aa:1::1.. (held open), then one from
# 2001:db8:aa:2::1 that sends a stream header and must get the proxy's answer.
xf_check "/64 2001:db8:aa:1::/64: connections 1..$N held, $((N + 1))th refused; 2001:db8:aa:2::1 served" \
  xf_ns timeout 30 "$XF_PY" - "$PORT" "$N" <<'PYEOF'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
def conn(src):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.connect(("::1", port))
    return s
def closed_within(s, t):
    """True if the proxy closed s (EOF / reset) within t seconds without sending data."""
    s.settimeout(t)
    try:
        d = s.recv(4096)
        return d == b""
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True
held, bad = [], 0
for i in range(1, n + 1):
    s = conn(f"2001:db8:aa:1::{i}")
    held.append(s)
    time.sleep(0.2)
for i, s in enumerate(held, 1):
    c = closed_within(s, 0.5)
    print(f"2001:db8:aa:1::{i}: {'CLOSED (unexpected)' if c else 'held'}")
    bad += c
extra = conn(f"2001:db8:aa:1::{n + 1}")
c = closed_within(extra, 3)
print(f"2001:db8:aa:1::{n + 1}: {'refused (closed)' if c else 'NOT refused'}")
bad += not c
other = conn("2001:db8:aa:2::1")
other.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
              b"xmlns:stream='http://etherx.jabber.org/streams' to='a.example' version='1.0'>")
other.settimeout(5)
got = b""
try:
    while b"</stream:features>" not in got:
        d = other.recv(4096)
        if not d:
            break
        got += d
except socket.timeout:
    pass
ok = b"<starttls" in got
print(f"2001:db8:aa:2::1: {'served (features with <starttls/>)' if ok else 'NOT served: %r' % got[:200]}")
bad += not ok
sys.exit(1 if bad else 0)
PYEOF
sleep 0.3
xf_check "log: the $((N + 1))th address of the /64 refused with reason=\"refused: max_connections_per_ip reached\"" \
  xf_log_has "$XF_LOG" "peer=[2001:db8:aa:1::$((N + 1))]:" 'reason="refused: max_connections_per_ip reached"'
xf_check "log: no other address was refused" \
  bash -c "! grep 'refused: max' '$XF_LOG' | grep -v 'peer=\[2001:db8:aa:1::$((N + 1))\]:'"
xf_ns_proxy_stop
xf_check "counted: refused_per_ip=1" xf_counter_is "$XF_LOG" refused_per_ip 1
xf_finish "$T"
