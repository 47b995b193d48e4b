#!/usr/bin/python3
"""Federation lab client: log several users in (each on its own server), send messages
between them and report, per message, whether it arrived or bounced.

  lab_xmpp.py --account JID PASS HOST PORT [--account ...]
              --send FROM_JID TO_JID [--send ...] [--timeout 20]

Logins are plaintext c2s with PLAIN (the lab's remote servers allow it on the lab's
loopback; the federation under test is s2s). Uses tests/integration/xmpp_client.Client.
Every --send is one chat message with a unique body and id. Prints one line per send:

  RESULT <from> <to> delivered <seconds>
  RESULT <from> <to> error:<condition> <seconds>     (the sender's server bounced it)
  RESULT <from> <to> timeout <seconds>

then exits 0 when every account logged in (whatever the results), 2 when a login failed.
"""
import argparse
import asyncio
import logging
import os
import sys
import time
import types
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'integration'))
logging.basicConfig(level=logging.CRITICAL)
import xmpp_client  # noqa: E402


class Opts:
    """The attributes xmpp_client.Client reads from its argparse namespace."""
    def __init__(self, domain):
        self.mode, self.ca, self.alpn, self.domain = 'plain', None, None, domain


class LabClient(xmpp_client.Client):
    def __init__(self, jid, password, tag):
        super().__init__(jid, password, Opts(jid.split('@', 1)[1].split('/')[0]), tag)
        self.errors = asyncio.Queue()
        self.add_event_handler('message_error', self.on_error)

    def log(self, msg):
        if os.environ.get('LAB_XMPP_VERBOSE'):
            print(f'[{self.tag}] {msg}', flush=True)

    def on_error(self, msg):
        self.errors.put_nowait(msg)


async def run(args):
    clients = {}
    for jid, pw, host, port in args.account:
        c = LabClient(jid + '/lab', pw, jid)
        # plaintext to the user's own server (slixmpp 1.8 and 1.10: xmpp_client.connect)
        xmpp_client.connect(c, types.SimpleNamespace(mode='plain', host=host, port=int(port)))
        clients[jid] = c
    deadline = time.monotonic() + args.login_timeout
    if not await xmpp_client.wait_started(clients.values(), deadline):
        for jid, c in clients.items():
            if not c.started.is_set():
                print(f'LOGIN-FAILED {jid} {c.failed or "timeout"}', flush=True)
        return 2
    t0 = time.monotonic()
    pending = {}       # id -> (from, to, body)
    results = {}
    for frm, to in args.send:
        if frm not in clients:
            print(f'no --account for {frm}')
            return 2
        mid = 'lab-' + uuid.uuid4().hex[:12]
        body = f'lab {frm} -> {to} {mid}'
        if len(body) < args.body_bytes:   # --body-bytes: padded, to span several TLS records
            body += ' ' + ''.join(chr(0x61 + i % 26) for i in range(args.body_bytes - len(body) - 1))
        m = clients[frm].make_message(mto=to, mbody=body, mtype='chat')
        m['id'] = mid
        m.send()
        pending[mid] = (frm, to, body)

    async def watch_inbox(c):
        while True:
            msg = await c.inbox.get()
            mid = msg['id']
            if mid in pending and msg['body'] == pending[mid][2] and mid not in results:
                results[mid] = ('delivered', time.monotonic() - t0)

    async def watch_errors(c):
        while True:
            msg = await c.errors.get()
            mid = msg['id']
            if mid in pending and mid not in results:
                cond = msg['error']['condition'] or 'unknown'
                results[mid] = (f'error:{cond}', time.monotonic() - t0)

    tasks = [asyncio.ensure_future(w(c)) for c in clients.values()
             for w in (watch_inbox, watch_errors)]
    end = t0 + args.timeout
    while len(results) < len(pending) and time.monotonic() < end:
        await asyncio.sleep(0.05)
    for t in tasks:
        t.cancel()
    for mid, (frm, to, _) in pending.items():
        what, dt = results.get(mid, ('timeout', time.monotonic() - t0))
        print(f'RESULT {frm} {to} {what} {dt:.2f}', flush=True)
    for c in clients.values():
        c.disconnect(wait=0.5)
    await asyncio.sleep(0.2)
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--account', nargs=4, action='append', required=True,
                    metavar=('JID', 'PASS', 'HOST', 'PORT'))
    ap.add_argument('--send', nargs=2, action='append', default=[], metavar=('FROM', 'TO'))
    ap.add_argument('--timeout', type=float, default=20, help='for all sends together')
    ap.add_argument('--body-bytes', type=int, default=0,
                    help='pad each body to this many characters (delivery compares it whole)')
    ap.add_argument('--login-timeout', type=float, default=15)
    args = ap.parse_args()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        rc = loop.run_until_complete(
            asyncio.wait_for(run(args), args.login_timeout + args.timeout + 10))
    except asyncio.TimeoutError:
        print('overall timeout')
        rc = 2
    sys.exit(rc)


if __name__ == '__main__':
    main()
