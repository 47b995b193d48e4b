#!/usr/bin/python3
"""Scripted XMPP peer for refusal / edge-case tests against xmppfront.

Connects (--mode plain|starttls|direct), optionally does STARTTLS or direct TLS (SNI,
ALPN, verification against --ca), sends one crafted stream opening and reports what came
back. The expectation flags decide the exit status (0 = expectation met).

Pre-TLS (starttls mode): by default sends a correct header to --to and negotiates
STARTTLS. --pre-send TEXT replaces that header with TEXT and no TLS happens (for
refusals that must come before TLS); then the "post" expectations apply to the
plaintext answer.

After TLS (or in plain mode): sends --send TEXT, or by default a stream header to
--to in namespace --ns. Payload helpers: --oversize N pads the header with an
N-byte attribute; --partial sends the header only up to the middle of 'to'; --idle
sends nothing.

Expectations:
  --expect-error COND    a <stream:error> with <COND/> arrives (then the stream closes);
                         COND may list alternatives: a|b
  --expect-features      a <stream:features> arrives and has no <starttls/>
  --expect-alert NAME    the TLS handshake fails with alert NAME (e.g. unrecognized_name,
                         no_application_protocol)
  --expect-alpn NAME     the negotiated ALPN must be NAME
  --within S             the expected answer must arrive within S seconds of sending
  --hold S               after features, stay idle up to S s and report how the stream ended
                         (--hold-expect error:COND | close | open)
  --step STEP            (repeatable) after the features, in order:
                           send:TEXT        send TEXT ({SID} = id of the last stream header
                                            received; \n-style escapes are decoded)
                           expect:REGEX     REGEX appears in what arrives after the last
                                            expect's match (within --timeout)
                           absent:REGEX:S   REGEX does not appear within S seconds
                           restart          send a new stream header, await its features
                           closed           the peer ends the stream (</stream:stream> or EOF)
s2s: --db declares xmlns:db in the header; --cert/--key present a client certificate.
Prints a one-line summary: RESULT ok|fail ... with what was received.
"""
import argparse
import re
import socket
import ssl
import sys
import time

NS_STREAMS = 'http://etherx.jabber.org/streams'
NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls'


def header(to, ns='jabber:client', extra='', frm=None, decl=True):
    h = "<?xml version='1.0'?>" if decl else ''
    h += (f"<stream:stream xmlns='{ns}' xmlns:stream='{NS_STREAMS}'"
          f"{f' to={chr(39)}{to}{chr(39)}' if to is not None else ''}"
          f"{f' from={chr(39)}{frm}{chr(39)}' if frm else ''} version='1.0' xml:lang='en'"
          f"{extra}>")
    return h


class Peer:
    def __init__(self, args):
        self.args = args
        self.sock = None
        self.buf = b''
        self.closed = False
        self.close_how = None
        self.transcript = []

    def note(self, what, data):
        if isinstance(data, bytes):
            data = data.decode('utf-8', 'replace')
        if len(data) > 600:
            data = data[:300] + f'...[{len(data)} chars]...' + data[-200:]
        self.transcript.append(f'{what}: {data}')
        print(f'{what}: {data}', flush=True)

    def send(self, text):
        data = text.encode() if isinstance(text, str) else text
        self.note('SENT', data)
        if self.args.trickle:
            # one byte per write: splits inside '<?xml', attributes and UTF-8 sequences
            for i in range(len(data)):
                self.sock.sendall(data[i:i + 1])
                time.sleep(self.args.trickle / 1000.0)
        else:
            self.sock.sendall(data)

    def recv_until(self, pattern, timeout):
        """Read until regex `pattern` matches the buffer, the peer closes, or timeout.
        Returns the match or None."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.S)
        while True:
            m = rx.search(self.buf.decode('utf-8', 'replace'))
            if m:
                return m
            if self.closed:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(min(left, 1.0))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ssl.SSLError as e:
                self.closed, self.close_how = True, f'ssl error {e.reason or e}'
                self.note('CLOSED', self.close_how)
                return rx.search(self.buf.decode('utf-8', 'replace'))
            except OSError as e:
                self.closed, self.close_how = True, f'os error {e}'
                self.note('CLOSED', self.close_how)
                return rx.search(self.buf.decode('utf-8', 'replace'))
            if not data:
                self.closed, self.close_how = True, 'eof'
                self.note('CLOSED', 'eof')
                return rx.search(self.buf.decode('utf-8', 'replace'))
            self.note('RECV', data)
            self.buf += data

    def tls_wrap(self, server_hostname):
        a = self.args
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if a.ca:
            ctx.load_verify_locations(a.ca)
            ctx.check_hostname = bool(a.verify_name) or bool(server_hostname)
            ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if a.alpn:
            ctx.set_alpn_protocols(a.alpn.split(','))
        if a.cert:
            ctx.load_cert_chain(a.cert, a.key)
        sni = server_hostname
        self.sock.settimeout(a.timeout)
        # check_hostname needs a name: with --sni none we still verify the chain, and the
        # name by hand below.
        if sni is None:
            ctx.check_hostname = False
        tls = ctx.wrap_socket(self.sock, server_hostname=sni)
        self.sock = tls
        self.buf = b''
        cert = tls.getpeercert()
        san = [v for k, v in cert.get('subjectAltName', ())] if cert else []
        self.note('TLS', f'{tls.version()} {tls.cipher()[0]} alpn={tls.selected_alpn_protocol()} '
                  f'sni={sni} san={san}')
        self.san = san
        self.alpn = tls.selected_alpn_protocol()
        if a.verify_name and not any(name_matches(p, a.verify_name) for p in san):
            raise ssl.SSLCertVerificationError(f'certificate {san} does not cover {a.verify_name}')


def name_matches(pattern, name):
    if pattern.startswith('*.'):
        return '.' in name and name.split('.', 1)[1] == pattern[2:]
    return pattern.lower() == name.lower()


def payload(a):
    if a.send is not None:
        return a.send.encode().decode('unicode_escape').encode('latin-1').decode('utf-8')
    extra = ''
    if a.oversize:
        extra = f" x-pad='{'p' * a.oversize}'"
    if a.db:
        extra += " xmlns:db='jabber:server:dialback'"
    h = header(None if a.no_to else a.to, a.ns, extra, frm=a.frm)
    if a.partial:
        i = h.find(' to=')
        return h[:i + 7] if i >= 0 else h[:len(h) // 2]
    return h


def run_steps(p, a, result):
    """--step list: see the module docstring. Exits through result()."""
    feat = r'</stream:features>|<stream:features/>|<stream:error>.*?</stream:error>'
    m = p.recv_until(feat, a.timeout)
    if not m or '<stream:error>' in m.group(0):
        result(False, f'no stream features (closed={p.close_how}): {p.buf[:600]!r}')
    cursor = 0          # the first expects may look at the header and features

    def sid():
        ids = re.findall(r"<stream:stream[^>]*?\sid=['\"]([^'\"]+)['\"]", p.buf.decode('utf-8', 'replace'))
        return ids[-1] if ids else ''

    for st in a.step:
        kind, _, arg = st.partition(':')
        if kind == 'send':
            text = arg.encode().decode('unicode_escape').encode('latin-1').decode('utf-8')
            p.send(text.replace('{SID}', sid()))
        elif kind == 'expect':
            rx = re.compile(arg, re.S)
            deadline = time.monotonic() + a.timeout
            while True:
                mm = rx.search(p.buf.decode('utf-8', 'replace'), cursor)
                if mm or p.closed or time.monotonic() > deadline:
                    break
                p.recv_until(r'$^', 0.2)
            if not mm:
                result(False, f'step {st!r}: not received (closed={p.close_how}); after the cursor: '
                              f'{p.buf.decode("utf-8", "replace")[cursor:][:600]!r}')
            cursor = mm.end()
        elif kind == 'absent':
            pat, _, secs = arg.rpartition(':')
            p.recv_until(r'$^', float(secs))
            if re.search(pat, p.buf.decode('utf-8', 'replace')[cursor:], re.S):
                result(False, f'step {st!r}: it arrived: {p.buf.decode("utf-8", "replace")[cursor:][:600]!r}')
        elif kind == 'restart':
            p.send(payload(a))
            frx = re.compile(r'<stream:stream[^>]*>.*?(?:</stream:features>|<stream:features/>)', re.S)
            deadline = time.monotonic() + a.timeout
            while True:
                fm = frx.search(p.buf.decode('utf-8', 'replace'), cursor)
                if fm or p.closed or time.monotonic() > deadline:
                    break
                p.recv_until(r'$^', 0.2)
            if not fm:
                result(False, f'step restart: no new header + features: '
                              f'{p.buf.decode("utf-8", "replace")[cursor:][:600]!r}')
            cursor = fm.end()
        elif kind == 'closed':
            p.recv_until(r'</stream:stream>\s*$', a.timeout)
            p.recv_until(r'$^', 1)
            if not (p.closed or p.buf.decode('utf-8', 'replace').rstrip().endswith('</stream:stream>')):
                result(False, f'step closed: the stream is still open: {p.buf[-300:]!r}')
        else:
            result(False, f'unknown step {st!r}')
    result(True, f'{len(a.step)} steps done')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--mode', choices=('plain', 'starttls', 'direct'), default='starttls')
    ap.add_argument('--to', default='a.example')
    ap.add_argument('--pre-to', help='pre-TLS header to (default --to)')
    ap.add_argument('--ns', default='jabber:client')
    ap.add_argument('--from', dest='frm', help="stream header 'from' (s2s)")
    ap.add_argument('--sni', help="SNI (default: --to; 'none' = no SNI)")
    ap.add_argument('--alpn', help='comma-separated ALPN list')
    ap.add_argument('--ca')
    ap.add_argument('--verify-name', help='name the certificate must cover (default: SNI)')
    ap.add_argument('--pre-send')
    ap.add_argument('--send')
    ap.add_argument('--pretls', action='store_true',
                    help='starttls mode: send the crafted payload before TLS, no STARTTLS')
    ap.add_argument('--oversize', type=int, default=0)
    ap.add_argument('--partial', action='store_true')
    ap.add_argument('--idle', action='store_true')
    ap.add_argument('--want-required', action='store_true',
                    help='pre-TLS <starttls/> must carry <required/>')
    ap.add_argument('--no-to', action='store_true', help="header without a 'to'")
    ap.add_argument('--pipeline', help='plaintext sent in the same write right after <starttls/>')
    ap.add_argument('--expect-tls-fail', action='store_true',
                    help='the STARTTLS/TLS step must fail or be aborted')
    ap.add_argument('--second-starttls', action='store_true',
                    help='after post-TLS features send <starttls/>: must get <failure/>, '
                         'a stream error or a close, never <proceed/>')
    ap.add_argument('--trickle', type=float, default=0,
                    help='send every payload one byte at a time, MS milliseconds apart')
    ap.add_argument('--expect-error')
    ap.add_argument('--expect-features', action='store_true')
    ap.add_argument('--expect-alert')
    ap.add_argument('--expect-alpn')
    ap.add_argument('--within', type=float)
    ap.add_argument('--hold', type=float, default=0)
    ap.add_argument('--hold-expect', default='')
    ap.add_argument('--timeout', type=float, default=10)
    ap.add_argument('--cert', help='client certificate chain (PEM) for TLS')
    ap.add_argument('--key', help='its private key')
    ap.add_argument('--db', action='store_true', help="header declares xmlns:db (s2s dialback)")
    ap.add_argument('--step', action='append', default=[])
    a = ap.parse_args()

    p = Peer(a)
    sni = a.to if a.sni is None else (None if a.sni == 'none' else a.sni)

    def result(ok, msg):
        print(f"RESULT {'ok' if ok else 'fail'}: {msg}", flush=True)
        sys.exit(0 if ok else 1)

    try:
        p.sock = socket.create_connection((a.host, a.port), timeout=a.timeout)
    except OSError as e:
        result(False, f'connect {a.host}:{a.port}: {e}')

    t_sent = time.monotonic()
    try:
        if a.mode == 'starttls':
            if a.pre_send is not None or a.pretls:
                if a.pre_send is not None:
                    p.send(a.pre_send.encode().decode('unicode_escape').encode('latin-1'))
                elif not a.idle:
                    p.send(payload(a))
                t_sent = time.monotonic()
            else:
                p.send(header(a.pre_to or a.to, a.ns, frm=a.frm))
                m = p.recv_until(r'</stream:features>|</stream:stream>|<stream:error>.*?</stream:error>',
                                 a.timeout)
                text = p.buf.decode('utf-8', 'replace')
                if a.expect_error and '<stream:error>' in text and not m is None and \
                        '<stream:features' not in text:
                    pass  # pre-TLS stream error: checked below
                elif not m or '</stream:features>' not in text:
                    result(False, f'no pre-TLS features (closed={p.close_how}): {text[:400]!r}')
                else:
                    if not re.search(r"<starttls[^>]*xmlns=['\"]%s['\"]" % re.escape(NS_TLS), text):
                        result(False, f'pre-TLS features without <starttls/>: {text!r}')
                    if not re.search(r'<required\s*/>', text):
                        if a.want_required:
                            result(False, f'pre-TLS <starttls/> lacks <required/>: {text!r}')
                        print('NOTE: pre-TLS <starttls/> lacks <required/>')
                    p.send(f"<starttls xmlns='{NS_TLS}'/>" + (a.pipeline or ''))
                    m = p.recv_until(r'<proceed[^>]*/>|<failure', a.timeout)
                    if not m or not m.group(0).startswith('<proceed'):
                        if a.expect_tls_fail:
                            result(True, f'no <proceed/>, stream aborted ({p.close_how}): {p.buf[-200:]!r}')
                        result(False, f'no <proceed/>: {p.buf!r}')
                    p.tls_wrap(sni)
        elif a.mode == 'direct':
            p.tls_wrap(sni)
    except (ssl.SSLError, ConnectionError, socket.timeout) as e:
        desc = f'{getattr(e, "reason", None) or ""} {e}'
        p.note('TLS-FAIL', desc)
        if a.expect_tls_fail:
            result(True, f'TLS handshake failed as expected: {desc}')
        if not isinstance(e, ssl.SSLError):
            result(False, f'connection error during TLS setup: {desc} (received {p.buf!r})')
        if a.expect_alert:
            want = a.expect_alert.upper()
            if want in desc.upper() or want.replace('_', ' ') in desc.upper():
                result(True, f'TLS alert as expected: {desc}')
            result(False, f'TLS failed with {desc!r}, expected alert {a.expect_alert}')
        result(False, f'TLS handshake failed: {desc}')
    except OSError as e:
        result(False, f'connection error during setup: {e} (received {p.buf!r})')

    if a.expect_alert:
        result(False, f'TLS handshake succeeded; expected alert {a.expect_alert}')
    if a.expect_tls_fail:
        result(False, 'TLS handshake succeeded although plaintext was pipelined after <starttls/>')
    if a.expect_alpn and a.mode != 'plain':
        want = None if a.expect_alpn == 'none' else a.expect_alpn
        if p.alpn != want:
            result(False, f'ALPN negotiated {p.alpn!r}, expected {want!r}')

    if not (a.mode == 'starttls' and (a.pre_send is not None or a.pretls)) and \
            not (a.mode == 'starttls' and a.expect_error and p.buf and b'<stream:error' in p.buf):
        if not a.idle:
            try:
                p.send(payload(a))
            except OSError as e:
                p.note('SEND-FAIL', str(e))
        t_sent = time.monotonic()

    if a.expect_error:
        pat = r'<stream:error>.*?</stream:error>'
        m = p.recv_until(pat, a.timeout)
        elapsed = time.monotonic() - t_sent
        text = p.buf.decode('utf-8', 'replace')
        if not m:
            result(False, f'no stream error within {a.timeout}s (closed={p.close_how}, '
                          f'{elapsed:.1f}s); received {text[:500]!r}')
        err = m.group(0)
        cm = re.search(r"<([a-z-]+)\s+xmlns=['\"]urn:ietf:params:xml:ns:xmpp-streams['\"]", err)
        cond = cm.group(1) if cm else '?'
        had_header = '<stream:stream' in text[:m.start()] or '<stream ' in text[:m.start()]
        if cond not in a.expect_error.split('|'):
            result(False, f'stream error <{cond}/>, expected <{a.expect_error}/>: {err!r}')
        if a.within and elapsed > a.within:
            result(False, f'<{cond}/> after {elapsed:.1f}s, expected within {a.within}s')
        # the stream should end after a stream error
        p.recv_until(r'</stream:stream>', 3)
        closed = '</stream:stream>' in p.buf.decode('utf-8', 'replace')
        p.recv_until(r'$^', 2)  # wait for TCP/TLS close
        result(True, f'<{cond}/> after {elapsed:.1f}s; response header first={had_header}; '
                     f'</stream:stream>={closed}; connection closed={p.closed} ({p.close_how})')

    if a.step:
        run_steps(p, a, result)

    if a.expect_features or a.hold or a.second_starttls:
        m = p.recv_until(r'</stream:features>|<stream:features/>|<stream:error>.*?</stream:error>',
                         a.timeout)
        text = p.buf.decode('utf-8', 'replace')
        if not m or '<stream:error>' in m.group(0):
            result(False, f'no stream features after TLS (closed={p.close_how}): {text[:600]!r}')
        if re.search(r'<starttls', text):
            result(False, f'post-TLS features still offer <starttls/>: {text!r}')
        if a.second_starttls:
            p.buf = b''
            p.send(f"<starttls xmlns='{NS_TLS}'/>")
            m = p.recv_until(r'<proceed[^>]*/>|<failure[^>]*/?>|<stream:error>.*?</stream:error>',
                             a.timeout)
            got = m.group(0) if m else ''
            if got.startswith('<proceed'):
                result(False, f'a <starttls/> after TLS got <proceed/> (TLS-in-TLS with the '
                              f'backend possible): {p.buf!r}')
            if got.startswith('<failure') or got.startswith('<stream:error>'):
                p.recv_until(r'</stream:stream>', 3)
                result(True, f'second <starttls/> refused: {got[:120]!r}; '
                             f'closed={p.closed or "</stream:stream>" in p.buf.decode()}')
            if p.closed:
                result(True, f'second <starttls/>: connection closed ({p.close_how}) without proceed')
            result(False, f'no answer to a second <starttls/> within {a.timeout}s: {p.buf!r}')
        if not a.hold:
            result(True, f'post-TLS stream features, no <starttls/>: {m.group(0)[:80]!r}')
        # hold the idle stream open
        p.buf = b''
        t0 = time.monotonic()
        m = p.recv_until(r'<stream:error>.*?</stream:error>|</stream:stream>', a.hold)
        elapsed = time.monotonic() - t0
        text = p.buf.decode('utf-8', 'replace')
        if m is None and not p.closed:
            how = 'open'
        elif m and '<stream:error>' in m.group(0):
            cm = re.search(r"<([a-z-]+)\s+xmlns=['\"]urn:ietf:params:xml:ns:xmpp-streams['\"]",
                           m.group(0))
            how = f'error:{cm.group(1) if cm else "?"}'
        else:
            how = 'close'
        print(f'HOLD: stream ended as {how} after {elapsed:.1f}s ({p.close_how}); {text[:200]!r}')
        if a.hold_expect and not how.startswith(a.hold_expect):
            result(False, f'idle stream ended as {how}, expected {a.hold_expect}')
        result(True, f'idle stream: {how} after {elapsed:.1f}s')

    result(True, 'connected' + (f' (sent {len(payload(a))} bytes)' if not a.idle else ''))


if __name__ == '__main__':
    main()
