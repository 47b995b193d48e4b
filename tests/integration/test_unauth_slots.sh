#!/usr/bin/env bash
# limits.max_unauthenticated_per_ip counts streams from one address until they are
# authenticated (SASL success), not until they are routed: with the cap at 2, a logged-in
# slixmpp session plus 2 routed-but-unauthenticated streams are held, a 3rd
# unauthenticated one is refused at accept, and once one of the two is closed a new one
# is served again. The authenticated session keeps working throughout.
. "$(dirname "$0")/lib.sh"
T=unauth_slots
XF_EXTRA_LIMITS='"max_unauthenticated_per_ip": 2, "max_connections_per_ip": 50, "auth_timeout_s": 60' \
  xf_setup_standard "$T" || xf_setup_failed "$T"

xf_check "login + 2 unauthenticated streams held, 3rd refused, a freed slot serves again" \
  timeout 60 "$XF_PY" - "$P_C2S_TLS" "$XF_CA" "$XF_IT_DIR" <<'PYEOF'
import asyncio, socket, ssl, sys, time, types
port, ca, itdir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sys.path.insert(0, itdir)
import xmpp_client  # noqa: E402

HDR = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
       b"xmlns:stream='http://etherx.jabber.org/streams' to='a.example' version='1.0'>")

def routed_stream():
    """Direct TLS, our header; returns the socket once the backend's features arrived
    (the stream is routed and not authenticated), or None if the proxy closed it."""
    ctx = ssl.create_default_context(cafile=ca)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s = ctx.wrap_socket(raw, server_hostname="a.example")
        s.sendall(HDR)
        got = b""
        while b"</stream:features>" not in got:
            d = s.recv(4096)
            if not d:
                return None
            got += d
        return s
    except (ssl.SSLError, ConnectionError, socket.timeout):
        return None

async def main():
    args = types.SimpleNamespace(host="127.0.0.1", port=port, mode="direct", ca=ca, alpn=None,
                                 expect_alpn=None, domain="a.example", debug=False, timeout=20)
    c = xmpp_client.Client("user1@a.example/slots", "pass1", args, "user1")
    xmpp_client.connect(c, args)
    try:
        await asyncio.wait_for(c.started.wait(), 20)
    except asyncio.TimeoutError:
        print("login did not complete:", c.failed); return 1
    print("user1 logged in (authenticated: does not count)")
    loop = asyncio.get_running_loop()
    s1 = await loop.run_in_executor(None, routed_stream)
    s2 = await loop.run_in_executor(None, routed_stream)
    print("unauthenticated 1:", "held" if s1 else "REFUSED")
    print("unauthenticated 2:", "held" if s2 else "REFUSED")
    s3 = await loop.run_in_executor(None, routed_stream)
    print("unauthenticated 3:", "REFUSED (expected)" if s3 is None else "held (WRONG)")
    ok = s1 is not None and s2 is not None and s3 is None
    if s1:
        s1.close()
    await asyncio.sleep(0.5)
    s4 = await loop.run_in_executor(None, routed_stream)
    print("after closing one, a new one:", "held" if s4 else "REFUSED (WRONG)")
    ok = ok and s4 is not None
    c.send_message(mto=c.boundjid.full, mbody="still here")
    try:
        msg = await asyncio.wait_for(c.inbox.get(), 10)
        alive = msg["body"] == "still here"
    except asyncio.TimeoutError:
        alive = False
    print("user1's session still relays:", alive)
    ok = ok and alive
    for s in (s2, s4):
        if s:
            s.close()
    c.disconnect()
    await asyncio.sleep(0.2)
    return 0 if ok else 1

sys.exit(asyncio.run(main()))
PYEOF
xf_check "the 3rd was refused at accept with the reason" \
  xf_log_has "$XF_LOG" 'reason="refused: max_unauthenticated_per_ip reached"'
xf_finish "$T"
