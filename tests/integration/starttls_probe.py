#!/usr/bin/python3
"""STARTTLS probe: PORT [CA] [HOST] — stream header to a.example, <starttls/>, a TLS
handshake verified against CA for a.example. Exit 0 when the handshake completes."""
import socket, ssl, sys
port = int(sys.argv[1])
ca = sys.argv[2] if len(sys.argv) > 2 else None
host = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
s = socket.create_connection((host, port), timeout=10)
s.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' to='a.example' version='1.0'>")
got = b""
while b"</stream:features>" not in got:
    d = s.recv(4096)
    if not d:
        sys.exit(f"closed before features: {got!r}")
    got += d
if b"starttls" not in got:
    sys.exit(f"no starttls offered: {got!r}")
s.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
got = b""
while b"proceed" not in got:
    d = s.recv(4096)
    if not d:
        sys.exit(f"closed before proceed: {got!r}")
    got += d
ctx = ssl.create_default_context(cafile=ca) if ca else ssl._create_unverified_context()
t = ctx.wrap_socket(s, server_hostname="a.example")
print("TLS", t.version(), t.cipher()[0], "peer", t.getpeercert().get("subject") if ca else "-")
t.close()
