#!/usr/bin/env python3
"""Load for test_binary_upgrade.sh: K relaying c2s streams plus a loop of new TLS
connections, with SIGUSR2 sent to the proxy in the middle.

  upgrade_load.py --port P --ca CA --pid PID [--streams K] [--duration S]
                  [--signal-at S] [--connectors C] [--max-conns N] [--ports P2,...]

Streams: direct TLS, SASL PLAIN user1@a.example, bind, then an XMPP ping
(urn:xmpp:ping) every 0.25 s, each answered within 5 s, until --duration seconds after
all are bound; then </stream:stream> both ways. A stream fails on any unanswered ping,
error or early EOF.
Connectors: from the moment the streams are bound until 1 s before their end, each opens
TLS connections one after another (the ports rotate over --port and --ports): connect,
handshake verified against CA, stream header, </stream:features> relayed from the
backend; any refusal, reset, TLS failure or missing features counts as a failure.
SIGUSR2 goes to PID --signal-at seconds after the streams are bound.
Exit 0 only when no stream and no connection failed and at least 30 connections ran.
"""
import argparse, base64, os, re, signal, socket, ssl, sys, threading, time

HDR = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
       "xmlns:stream='http://etherx.jabber.org/streams' to='a.example' version='1.0'>")


class Conn:
    def __init__(self, port, ctx, timeout=5):
        s = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        self.t = ctx.wrap_socket(s, server_hostname='a.example')
        self.buf = b''

    def send(self, x):
        self.t.sendall(x.encode())

    def until(self, pat, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pat, self.buf, re.S)
            if m:
                r = self.buf[:m.end()]
                self.buf = self.buf[m.end():]
                return r
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f'timeout waiting for {pat!r}; have {self.buf[-200:]!r}')
            self.t.settimeout(left)
            d = self.t.recv(65536)
            if not d:
                raise RuntimeError(f'EOF waiting for {pat!r}; have {self.buf[-200:]!r}')
            self.buf += d


def stream(i, a, ctx, bound, start, res):
    r = res[i] = {'pings': 0, 'ok': False, 'err': None}
    try:
        c = Conn(a.port, ctx, 10)
        c.send(HDR); c.until(rb'</stream:features>', 10)
        c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>"
               + base64.b64encode(b'\0user1\0pass1').decode() + '</auth>')
        c.until(rb'<success[^>]*(/>|</success>)', 10)
        c.send(HDR); c.until(rb'</stream:features>', 10)
        c.send(f"<iq type='set' id='b{i}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
               f"<resource>up{i}</resource></bind></iq>")
        c.until(rb"<iq[^>]*id=['\"]b%d['\"].*?</iq>" % i, 10)
        bound.release()
        start.wait(30)
        end = a.t0 + a.duration
        n = 0
        while time.monotonic() < end:
            n += 1
            c.send(f"<iq type='get' id='p{n}' to='a.example'><ping xmlns='urn:xmpp:ping'/></iq>")
            tag = c.until(rb"<iq\b[^>]*?id=['\"]p%d['\"][^>]*>" % n, 5)
            if re.search(rb"type=['\"]result['\"]", tag[tag.rfind(b'<iq'):]) is None:
                raise RuntimeError(f'ping {n} answered with {tag[-200:]!r}')
            r['pings'] = n
            time.sleep(0.25)
        c.send('</stream:stream>')
        c.until(rb'</stream:stream>', 5)
        c.t.close()
        r['ok'] = True
    except Exception as e:  # noqa: BLE001 - every failure is a result
        r['err'] = f'{type(e).__name__}: {e}'
        bound.release()


def connector(k, a, ctx, stop, res, lock):
    ports = [a.port] + a.more_ports
    j = k
    while not stop.is_set():
        with lock:
            if res['n'] >= a.max_conns:
                return
            res['n'] += 1
        port = ports[j % len(ports)]
        j += 1
        t = time.monotonic() - a.t0
        try:
            c = Conn(port, ctx, 5)
            c.send(HDR)
            c.until(rb'</stream:features>', 5)
            c.t.close()
            with lock:
                res['ok'] += 1
        except Exception as e:  # noqa: BLE001
            with lock:
                res['fail'] += 1
                if len(res['errs']) < 10:
                    res['errs'].append(f't={t:.2f}s port {port}: {type(e).__name__}: {e}')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, required=True)
    ap.add_argument('--ports', default='')
    ap.add_argument('--ca', required=True)
    ap.add_argument('--pid', type=int, required=True)
    ap.add_argument('--streams', type=int, default=8)
    ap.add_argument('--duration', type=float, default=10)
    ap.add_argument('--signal-at', type=float, default=2)
    ap.add_argument('--connectors', type=int, default=4)
    ap.add_argument('--max-conns', type=int, default=3000)
    a = ap.parse_args()
    a.more_ports = [int(p) for p in a.ports.split(',') if p]
    ctx = ssl.create_default_context(cafile=a.ca)

    bound = threading.Semaphore(0)
    start = threading.Event()
    sres = [None] * a.streams
    th = [threading.Thread(target=stream, args=(i, a, ctx, bound, start, sres))
          for i in range(a.streams)]
    a.t0 = time.monotonic() + 3600
    for t in th:
        t.start()
    for _ in range(a.streams):
        if not bound.acquire(timeout=30):
            break
    a.t0 = time.monotonic()
    start.set()
    print(f'{sum(1 for r in sres if r and not r["err"])}/{a.streams} streams bound', flush=True)

    stop = threading.Event()
    cres = {'n': 0, 'ok': 0, 'fail': 0, 'errs': []}
    lock = threading.Lock()
    ct = [threading.Thread(target=connector, args=(k, a, ctx, stop, cres, lock))
          for k in range(a.connectors)]
    for t in ct:
        t.start()
    time.sleep(a.signal_at)
    os.kill(a.pid, signal.SIGUSR2)
    print(f'SIGUSR2 sent to {a.pid} at t={time.monotonic() - a.t0:.2f}s', flush=True)
    time.sleep(max(0.0, a.duration - 1 - a.signal_at))
    stop.set()
    for t in ct:
        t.join(20)
    print(f'connections: {cres["ok"]} ok, {cres["fail"]} failed of {cres["n"]}')
    for e in cres['errs']:
        print('  connection failure:', e)
    for t in th:
        t.join(a.duration + 30)
    bad = 0
    for i, r in enumerate(sres):
        ok = r is not None and r['ok']
        bad += not ok
        print(f'stream {i}: {"ok" if ok else "FAIL"}, {r and r["pings"]} pings answered'
              f'{"" if ok else "; " + str(r and r["err"])}')
    okc = cres['fail'] == 0 and cres['ok'] >= 30
    print('RESULT', 'ok' if (okc and bad == 0) else 'fail')
    return 0 if (okc and bad == 0) else 1


if __name__ == '__main__':
    sys.exit(main())
