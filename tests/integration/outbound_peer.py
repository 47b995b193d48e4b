#!/usr/bin/python3
"""Scripted s2s peers for the outbound tests (tests/integration/test_outbound_*.sh).

  outbound_peer.py remote --listen ADDR PORT --domain R --cert PEM --key PEM
                   --secret-file F [--log FILE] [--mode dialback|silent|sasl-fail]
      A remote server R that xmppfront connects to with direct TLS (its _xmpps-server
      SRV). dialback: offers dialback only; checks the <db:result/> key itself with the
      secret xmppfront uses (XEP-0185: hex(HMAC-SHA256(hex(SHA256(secret)), "R T ID")) —
      what R's verify to T's authoritative server would establish) and answers
      valid/invalid; logs "KEY ok|bad T" and "STANZA <xml>" lines. sasl-fail: offers
      SASL EXTERNAL and dialback, answers <auth/> with <failure/>, then does dialback.
      silent: accepts TCP and never sends a byte.
      --tls direct (default: TLS from the first byte), starttls (RFC 6120 §5: features
      with <starttls/> unless --no-advertise, <proceed/>, then TLS), none (plaintext;
      a <starttls/> gets <failure/>).

  outbound_peer.py backend --connect ADDR PORT --from T --to R
                   (--result | --verify ID KEY | --verify-secret ID SECRET_FILE)
                   [--timeout S]
      A backend speaking to xmppfront's outbound listener in plaintext: sends its header,
      then <db:result/> or <db:verify/>, and prints the answer element; exit 0 on any
      answer (the test reads the output), 3 on timeout, 4 on a closed stream.
"""
import argparse
import hashlib
import hmac
import re
import socket
import ssl
import sys
import threading
import time
import uuid


def key_for(secret, receiving, originating, sid):
    k = hashlib.sha256(secret.encode()).hexdigest().encode()
    return hmac.new(k, f"{receiving} {originating} {sid}".encode(), hashlib.sha256).hexdigest()


def read_secret(path):
    with open(path) as f:
        return f.read().rstrip()


class Log:
    def __init__(self, path):
        self.f = open(path, 'a', buffering=1) if path else sys.stdout
        self.lock = threading.Lock()

    def __call__(self, line):
        with self.lock:
            self.f.write(line + '\n')


def recv_until(sock, buf, pattern, deadline):
    rx = re.compile(pattern, re.S)
    while True:
        m = rx.search(buf)
        if m:
            return m, buf
        if time.time() > deadline:
            return None, buf
        sock.settimeout(max(0.1, deadline - time.time()))
        try:
            d = sock.recv(65536)
        except socket.timeout:
            return None, buf
        if not d:
            return None, buf
        buf += d.decode('utf-8', 'replace')


def attr(tag, name):
    m = re.search(r"\s%s=(['\"])(.*?)\1" % name, tag)
    return m.group(2) if m else None


def serve_one(conn, args, log, secret):
    deadline = time.time() + 30
    buf = ''
    m, buf = recv_until(conn, buf, r'<stream:stream[^>]*>', deadline)
    if not m:
        return
    hdr = m.group(0)
    buf = buf[m.end():]
    T = attr(hdr, 'from')
    sid = uuid.uuid4().hex
    conn.sendall((f"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                  f"xmlns:stream='http://etherx.jabber.org/streams' "
                  f"xmlns:db='jabber:server:dialback' from='{args.domain}' to='{T}' "
                  f"id='{sid}' version='1.0'>").encode())
    feats = "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
    if args.mode == 'sasl-fail':
        feats = ("<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL"
                 "</mechanism></mechanisms>") + feats
    conn.sendall(f"<stream:features>{feats}</stream:features>".encode())
    log(f"HEADER from={T} sid={sid}")
    while True:
        m, buf = recv_until(conn, buf, r'<auth[^>]*>.*?</auth>|<auth[^>]*/>|<starttls[^>]*/>|'
                            r'<db:result[^>]*>(.*?)</db:result>', deadline)
        if not m:
            return
        buf = buf[m.end():]
        if m.group(0).startswith('<starttls'):
            log("STARTTLS refused")
            conn.sendall(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>")
            return
        if m.group(0).startswith('<auth'):
            log("SASL auth refused")
            conn.sendall(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                         b"<not-authorized/></failure>")
            continue
        key = m.group(1).strip()
        ok = hmac.compare_digest(key, key_for(secret, args.domain, T, sid))
        log(f"KEY {'ok' if ok else 'bad'} {T}")
        conn.sendall((f"<db:result from='{args.domain}' to='{T}' "
                      f"type='{'valid' if ok else 'invalid'}'/>").encode())
        break
    while True:
        m, buf = recv_until(conn, buf, r'<(message|presence|iq)\b.*?(/>|</\1>)|</stream:stream>',
                            time.time() + 60)
        if not m:
            return
        buf = buf[m.end():]
        if m.group(0) == '</stream:stream>':
            log("END")
            conn.sendall(b"</stream:stream>")
            return
        log("STANZA " + m.group(0).replace('\n', ' '))
        if args.close_after_stanza:
            log("CLOSING abruptly")
            return


def remote(args):
    log = Log(args.log)
    secret = read_secret(args.secret_file) if args.secret_file else ''
    ls = socket.socket(socket.AF_INET6 if ':' in args.listen[0] else socket.AF_INET)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((args.listen[0], int(args.listen[1])))
    ls.listen(16)
    ctx = None
    if args.mode != 'silent':
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        ctx.set_alpn_protocols(['xmpp-server'])

        def on_sni(sock, name, _ctx):
            sock.sni = name
        ctx.sni_callback = on_sni
    log("LISTENING")
    held = []
    while True:
        c, _ = ls.accept()
        log("ACCEPT")
        if args.mode == 'silent':
            held.append(c)              # never answer, never close
            continue

        def run(c=c):
            try:
                if args.tls == 'none':
                    serve_one(c, args, log, secret)
                    return
                if args.tls == 'starttls':
                    deadline = time.time() + 30
                    m, buf = recv_until(c, '', r'<stream:stream[^>]*>', deadline)
                    if not m:
                        return
                    T = attr(m.group(0), 'from')
                    adv = "" if args.no_advertise else "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                    c.sendall((f"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                               f"xmlns:stream='http://etherx.jabber.org/streams' from='{args.domain}' "
                               f"to='{T}' id='{uuid.uuid4().hex}' version='1.0'>"
                               f"<stream:features>{adv}</stream:features>").encode())
                    m, buf = recv_until(c, buf, r'<starttls[^>]*/>', deadline)
                    if not m:
                        return
                    log(f"STARTTLS asked (advertised={not args.no_advertise})")
                    c.sendall(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
                t = ctx.wrap_socket(c, server_side=True)
                log(f"TLS sni={getattr(t, 'sni', None)} "
                    f"alpn={t.selected_alpn_protocol()}")
                serve_one(t, args, log, secret)
            except Exception as e:      # a failed handshake is an expected outcome
                log(f"CLOSED {type(e).__name__}: {e}")
            finally:
                c.close()
        threading.Thread(target=run, daemon=True).start()


def backend(args):
    s = socket.create_connection((args.connect[0], int(args.connect[1])), timeout=args.timeout)
    s.sendall((f"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
               f"xmlns:stream='http://etherx.jabber.org/streams' "
               f"xmlns:db='jabber:server:dialback' from='{args.frm}' to='{args.to}' "
               f"version='1.0'>").encode())
    deadline = time.time() + args.timeout
    buf = ''
    m, buf = recv_until(s, buf, r'<stream:stream[^>]*>', deadline)
    if not m:
        print("NO-HEADER " + buf)
        return 4
    print("HEADER " + m.group(0))
    if args.result:
        s.sendall(f"<db:result from='{args.frm}' to='{args.to}'>ignored</db:result>".encode())
        pat = r'<db:result[^>]*/>|<db:result[^>]*>.*?</db:result>'
    else:
        vid, key = args.verify
        if args.verify_secret:
            vid = args.verify_secret[0]
            key = key_for(read_secret(args.verify_secret[1]), args.frm, args.to, vid)
        s.sendall(f"<db:verify from='{args.frm}' to='{args.to}' id='{vid}'>{key}</db:verify>".encode())
        pat = r'<db:verify[^>]*/>|<db:verify[^>]*>.*?</db:verify>'
    t0 = time.time()
    m, buf = recv_until(s, buf, pat + r'|<stream:error>.*?</stream:error>', deadline)
    if not m:
        print(f"TIMEOUT after {time.time() - t0:.1f}s: " + buf[-300:])
        return 3
    print(f"ANSWER {time.time() - t0:.1f}s " + m.group(0))
    s.sendall(b"</stream:stream>")
    s.close()
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest='cmd', required=True)
    r = sub.add_parser('remote')
    r.add_argument('--listen', nargs=2, required=True)
    r.add_argument('--domain', required=True)
    r.add_argument('--cert')
    r.add_argument('--key')
    r.add_argument('--secret-file')
    r.add_argument('--log')
    r.add_argument('--mode', default='dialback', choices=['dialback', 'silent', 'sasl-fail'])
    r.add_argument('--tls', default='direct', choices=['direct', 'starttls', 'none'])
    r.add_argument('--no-advertise', action='store_true')
    r.add_argument('--close-after-stanza', action='store_true',
                   help='close TCP (no </stream:stream>) after the first stanza')
    b = sub.add_parser('backend')
    b.add_argument('--connect', nargs=2, required=True)
    b.add_argument('--from', dest='frm', required=True)
    b.add_argument('--to', required=True)
    b.add_argument('--result', action='store_true')
    b.add_argument('--verify', nargs=2, default=(None, None))
    b.add_argument('--verify-secret', nargs=2)
    b.add_argument('--timeout', type=float, default=15)
    a = p.parse_args()
    return remote(a) if a.cmd == 'remote' else backend(a)


if __name__ == '__main__':
    sys.exit(main())
