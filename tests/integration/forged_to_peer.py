"""forged_to_peer.py PORT: open a c2s stream whose `to` carries text shaped like log
fields (quotes, tenant=, peer=, a backslash) and exit 0 when xmppfront answers with
<host-unknown/> (tests of log lines that such input must not forge)."""
import socket
import sys

s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
to = '" tenant=evil.example peer=1.2.3.4 x="\\'
s.sendall(("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
           "xmlns:stream='http://etherx.jabber.org/streams' "
           f"to='{to}' version='1.0'>").encode())
s.settimeout(5)
got = b""
try:
    while True:
        d = s.recv(4096)
        if not d:
            break
        got += d
except OSError:
    pass
print(got[-300:])
sys.exit(0 if b"host-unknown" in got else 1)
