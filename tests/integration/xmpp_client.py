#!/usr/bin/python3
"""Log two users of one domain in through xmppfront (or straight to Prosody) with
slixmpp, send a message from the first to the second and check it arrives intact.

  xmpp_client.py --host 127.0.0.1 --port 5222 --mode starttls --ca ca.pem --domain a.example
  modes: starttls (TLS required: force_starttls), direct (XEP-0368 direct TLS, SNI = domain),
         plain (no TLS at all; only for talking to Prosody directly)
  --alpn xmpp-client    offer ALPN (repeatable) through slixmpp's ssl_context
  --expect-alpn NAME    the negotiated ALPN must be NAME ('none' = nothing negotiated)

The server certificate is always verified against --ca for the domain name (hostname
check on), except in plain mode. Exit 0 only when both logins and the message worked.
"""
import argparse
import asyncio
import logging
import ssl
import sys
import time
import uuid

# slixmpp warns at import time (slow stringprep); keep the output to our own lines.
logging.basicConfig(level=logging.CRITICAL)
import slixmpp  # noqa: E402


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, args, tag):
        super().__init__(jid, password)
        self.tag = tag
        self.args = args
        self.started = asyncio.Event()
        self.failed = None
        self.inbox = asyncio.Queue()
        self.negotiated_alpn = None
        self.tls_version = None
        self.peer_cert_subject = None
        if args.mode == 'plain':
            # Prosody over loopback plaintext: allow PLAIN without TLS.
            self['feature_mechanisms'].unencrypted_plain = True
        else:
            ctx = ssl.create_default_context(cafile=args.ca)
            ctx.check_hostname = True
            ctx.verify_mode = ssl.CERT_REQUIRED
            if args.alpn:
                ctx.set_alpn_protocols(args.alpn)
            self.ssl_context = ctx
            self.ca_certs = args.ca
        # slixmpp uses default_domain as the TLS server_hostname (SNI + name check) and
        # leaves it '' when connect() gets an IP address -- and asyncio treats '' as
        # "skip hostname matching". Pin it to the XMPP domain so the name is verified.
        self.default_domain = args.domain
        self.add_event_handler('session_start', self.on_start)
        self.add_event_handler('failed_auth', self.on_fail('authentication failed'))
        self.add_event_handler('ssl_invalid_chain', self.on_fail('invalid certificate chain'))
        self.add_event_handler('stream_error', self.on_stream_error)
        self.add_event_handler('connection_failed', self.on_fail('connection failed'))
        self.add_event_handler('disconnected', self.on_disconnected)
        self.add_event_handler('message', self.on_message)
        self.add_event_handler('tls_success', self.on_tls)
        self.add_event_handler('connected', self.on_connected)

    def log(self, msg):
        print(f'[{self.tag}] {msg}', flush=True)

    def record_tls(self):
        if self.transport is None:
            return
        sslobj = self.transport.get_extra_info('ssl_object')
        if sslobj is None:
            return
        self.negotiated_alpn = sslobj.selected_alpn_protocol()
        self.tls_version = sslobj.version()
        cert = sslobj.getpeercert()
        self.peer_cert_subject = cert.get('subjectAltName') if cert else None
        names = [v for k, v in (self.peer_cert_subject or ()) if k == 'DNS']
        if not any(n == self.args.domain or
                   (n.startswith('*.') and self.args.domain.split('.', 1)[-1] == n[2:])
                   for n in names):
            self.tls_name_ok = False
            self.log(f'FAILED: certificate names {names} do not cover {self.args.domain}')
        else:
            self.tls_name_ok = True
        self.log(f'TLS {self.tls_version} cipher={sslobj.cipher()[0]} '
                 f'alpn={self.negotiated_alpn} san={self.peer_cert_subject}')

    def on_connected(self, _):
        self.log('connected')

    def on_tls(self, _):
        self.log('STARTTLS done')

    def on_fail(self, why):
        def handler(ev):
            self.log(f'FAILED: {why}: {ev!r}'[:500])
            if self.failed is None:
                self.failed = why
        return handler

    def on_stream_error(self, err):
        cond = err['condition'] if err is not None else '?'
        self.log(f'stream error: {cond} {err}')
        if self.failed is None:
            self.failed = f'stream error {cond}'

    def on_disconnected(self, reason):
        if not self.started.is_set() and self.failed is None:
            self.failed = f'disconnected before session start: {reason}'
            self.log(self.failed)

    async def on_start(self, _):
        if self.args.mode != 'plain':
            self.record_tls()
        self.log(f'session started as {self.boundjid.full}')
        self.send_presence()
        self.started.set()

    def on_message(self, msg):
        if msg['type'] in ('chat', 'normal'):
            self.inbox.put_nowait(msg)


# (direct TLS, STARTTLS, plaintext) allowed for each --mode
TRANSPORTS = {'plain': (False, False, True), 'starttls': (False, True, False),
              'direct': (True, False, False)}


def connect(client, args):
    """Starts the connection with exactly the transport of args.mode. slixmpp 1.10 has
    per-transport switches (enable_direct_tls / enable_starttls / enable_plaintext) and
    connect(host, port); older ones (1.8) take connect(address, use_ssl=,
    force_starttls=, disable_starttls=). Detected by the attributes, not the version."""
    direct, starttls, plaintext = TRANSPORTS[args.mode]
    if all(hasattr(client, a) for a in
           ('enable_direct_tls', 'enable_starttls', 'enable_plaintext')):
        client.enable_direct_tls = direct
        client.enable_starttls = starttls
        client.enable_plaintext = plaintext
        client.connect(args.host, args.port)
    else:
        client.connect((args.host, args.port), use_ssl=direct, force_starttls=starttls,
                       disable_starttls=not starttls)


async def wait_started(clients, deadline):
    while True:
        if all(c.started.is_set() for c in clients):
            return True
        for c in clients:
            if c.failed:
                return False
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)


async def run(args):
    dom = args.domain
    c1 = Client(f'{args.user1}@{dom}/it1', args.pass1, args, 'user1')
    c2 = Client(f'{args.user2}@{dom}/it2', args.pass2, args, 'user2')
    deadline = time.monotonic() + args.timeout
    for c in (c1, c2):
        connect(c, args)
    ok = await wait_started((c1, c2), deadline)
    if not ok:
        for c in (c1, c2):
            if not c.started.is_set():
                print(f'FAIL: {c.tag}@{dom} did not log in: {c.failed or "timeout"}')
        return 1
    if args.mode != 'plain':
        for c in (c1, c2):
            if c.tls_version is None:
                print(f'FAIL: {c.tag}: session has no TLS')
                return 1
            if not getattr(c, 'tls_name_ok', False):
                print(f'FAIL: {c.tag}: server certificate {c.peer_cert_subject} '
                      f'is not for {dom}')
                return 1
            if args.expect_alpn:
                want = None if args.expect_alpn == 'none' else args.expect_alpn
                if c.negotiated_alpn != want:
                    print(f'FAIL: {c.tag}: ALPN negotiated {c.negotiated_alpn!r}, want {want!r}')
                    return 1
    body = f'{args.body} {uuid.uuid4()} <&> ünïcødé'
    c1.send_message(mto=c2.boundjid.bare, mbody=body, mtype='chat')
    c1.log(f'sent to {c2.boundjid.bare}: {body!r}')
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise asyncio.TimeoutError
            msg = await asyncio.wait_for(c2.inbox.get(), timeout=left)
            if msg['body'] == body and msg['from'].bare == c1.boundjid.bare:
                c2.log(f'received from {msg["from"]}: {msg["body"]!r}')
                break
            c2.log(f'ignoring message {msg}')
    except asyncio.TimeoutError:
        print(f'FAIL: message {body!r} not received by {c2.boundjid.bare} in time')
        return 1
    for c in (c1, c2):
        c.disconnect(wait=1.0)
    await asyncio.sleep(0.3)
    print(f'OK: {args.user1}@{dom} -> {args.user2}@{dom} via {args.host}:{args.port} '
          f'mode={args.mode} alpn={c1.negotiated_alpn} tls={c1.tls_version}')
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--host', default='127.0.0.1')
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--mode', choices=('starttls', 'direct', 'plain'), default='starttls')
    ap.add_argument('--ca')
    ap.add_argument('--domain', default='a.example')
    ap.add_argument('--user1', default='user1')
    ap.add_argument('--pass1', default='pass1')
    ap.add_argument('--user2', default='user2')
    ap.add_argument('--pass2', default='pass2')
    ap.add_argument('--alpn', action='append')
    ap.add_argument('--expect-alpn')
    ap.add_argument('--body', default='hello from xmppfront integration')
    ap.add_argument('--timeout', type=float, default=20)
    ap.add_argument('--debug', action='store_true')
    args = ap.parse_args()
    if args.mode != 'plain' and not args.ca:
        ap.error('--ca is required with TLS (verification is never disabled)')
    if args.debug:
        logging.getLogger().setLevel(logging.DEBUG)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        rc = loop.run_until_complete(asyncio.wait_for(run(args), args.timeout + 5))
    except asyncio.TimeoutError:
        print('FAIL: overall timeout')
        rc = 1
    sys.exit(rc)


if __name__ == '__main__':
    main()
