#!/usr/bin/env python3
"""TLS session resumption probe (tests/integration/test_session_resumption.sh).

Connects to --first (PORT:SNI), sends an XMPP stream header for the SNI (c2s or s2s
namespace), reads until </stream:features> so that a TLS 1.3 NewSessionTicket is
processed, keeps the session; optionally sleeps; connects to --second (PORT:SNI) with
that session and sends the header again. Prints one line of facts and exits 0 when
--expect (reused / new) holds for the second connection and, with --relay, its stream
features came back from the backend (SASL mechanisms: routed and relayed).
"""
import argparse
import socket
import subprocess
import ssl
import sys
import time


def header(to, ns):
    if ns == "server":
        return ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
                "from='remote.example' to='%s' version='1.0'>" % to).encode()
    return ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>" % to).encode()


def read_until(sock, marker, deadline):
    data = b""
    while marker not in data and time.time() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def one(ctx, port, sni, ns, session, alpn, starttls=False, no_sni=False):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if starttls:
        # RFC 6120 §5.4: features, <starttls/>, <proceed/>, then TLS on the same socket.
        s.sendall(header(sni, ns))
        read_until(s, b"</stream:features>", time.time() + 10)
        s.sendall(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        if b"<proceed" not in read_until(s, b"<proceed", time.time() + 10):
            raise SystemExit("FAIL: no <proceed/>")
    t = ctx.wrap_socket(s, server_hostname=None if no_sni else sni, session=session)
    t.sendall(header(sni, ns))
    data = b""
    deadline = time.time() + 10
    while b"</stream:features>" not in data and time.time() < deadline:
        try:
            chunk = t.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    info = {"version": t.version(), "reused": t.session_reused,
            "session": t.session, "features": data.decode("utf-8", "replace"),
            "alpn": t.selected_alpn_protocol()}
    try:
        t.close()
    except OSError:
        pass
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ca", required=True)
    ap.add_argument("--first", required=True, help="PORT:SNI")
    ap.add_argument("--second", help="PORT:SNI (default: --first)")
    ap.add_argument("--tls", choices=["1.2", "1.3"], default="1.3")
    ap.add_argument("--ns", choices=["client", "server"], default="client")
    ap.add_argument("--alpn")
    ap.add_argument("--starttls", action="store_true", help="STARTTLS (RFC 6120 §5.4)")
    ap.add_argument("--no-sni", action="store_true",
                    help="send no SNI: the stream's `to` picks the certificate")
    ap.add_argument("--sleep", type=float, default=0)
    ap.add_argument("--between", help="shell command run between the two connections")
    ap.add_argument("--expect", choices=["reused", "new"], required=True)
    ap.add_argument("--relay", action="store_true",
                    help="the second stream's features must carry SASL mechanisms")
    ap.add_argument("--expect-no-ticket", action="store_true",
                    help="the first connection must get no usable ticket")
    a = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(a.ca)
    v = ssl.TLSVersion.TLSv1_3 if a.tls == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.minimum_version = v
    ctx.maximum_version = v
    if a.alpn:
        ctx.set_alpn_protocols([a.alpn])
    if a.no_sni:
        ctx.check_hostname = False       # the chain is still verified against --ca
    p1, sni1 = a.first.split(":", 1)
    p2, sni2 = (a.second or a.first).split(":", 1)
    first = one(ctx, int(p1), sni1, a.ns, None, a.alpn, a.starttls, a.no_sni)
    sess = first["session"]
    has = bool(sess and sess.has_ticket)
    hint = sess.ticket_lifetime_hint if sess else None
    print("first: %s ticket=%s lifetime_hint=%s" % (first["version"], has, hint))
    if a.expect_no_ticket and has and hint != 0:
        print("FAIL: a usable ticket was issued")
        return 1
    if a.sleep:
        time.sleep(a.sleep)
    if a.between and subprocess.call(a.between, shell=True) != 0:
        print("FAIL: --between command failed")
        return 1
    second = one(ctx, int(p2), sni2, a.ns, sess if has else None, a.alpn, a.starttls,
                 a.no_sni)
    print("second: %s reused=%s alpn=%s features=%d bytes" % (
        second["version"], second["reused"], second["alpn"], len(second["features"])))
    ok = second["reused"] == (a.expect == "reused")
    if a.relay and "mechanisms" not in second["features"]:
        print("FAIL: no SASL mechanisms relayed: %r" % second["features"][:300])
        ok = False
    if not ok:
        print("FAIL: expected %s" % a.expect)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
