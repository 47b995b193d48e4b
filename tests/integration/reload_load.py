#!/usr/bin/python3
"""Load for the reload tests (test_reload_under_load.sh, test_reload_certs.sh).

  reload_load.py backend PORT
      Plaintext XMPP-ish backend: answers a stream header with its own header and an
      empty <stream:features/>, then echoes every byte. Runs until killed.

  reload_load.py load --port P [--starttls-port Q] --ca CA --sni a.example --streams N
                      --control DIR [--churn C]
      Opens N long-lived streams (direct TLS with SNI, and STARTTLS on Q when given,
      half each), proves each relays (an echoed <message/>), writes DIR/ready, then
      until DIR/stop appears: every stream relays a numbered message every ~0.3 s and
      C churn tasks open new connections continuously (handshake, header, features,
      one echo, close). At the stop every old stream must relay once more.
      Writes DIR/result.json and prints one summary line; exit 0 when nothing failed.

  reload_load.py hold --port P --ca CA --sni D --control DIR
      One stream held open: writes DIR/ready with the served certificate's serial, then
      relays a message every 0.3 s until DIR/stop; at the stop one more; exit 0 if every
      message came back (prints the serial and the count).
"""
import argparse, asyncio, json, os, socket, ssl, sys, time

HDR = ("<?xml version='1.0'?><stream:stream to='{d}' xmlns='jabber:client' "
       "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>")
BACKEND_HDR = (b"<?xml version='1.0'?><stream:stream from='backend' id='b1' "
               b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
               b"version='1.0'><stream:features/>")
TIMEOUT = 10


# ------------------------------------------------------------------ backend
async def backend_conn(r, w):
    buf = b''
    try:
        while b'<stream:stream' not in buf or b'>' not in buf[buf.find(b'<stream:stream'):]:
            d = await r.read(4096)
            if not d:
                return
            buf += d
        w.write(BACKEND_HDR)
        i = buf.find(b'<stream:stream')
        rest = buf[buf.find(b'>', i) + 1:]
        if rest:
            w.write(rest)
        while True:
            d = await r.read(65536)
            if not d:
                break
            w.write(d)
            await w.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        w.close()


async def backend(port):
    srv = await asyncio.start_server(backend_conn, '127.0.0.1', port, backlog=512)
    async with srv:
        await srv.serve_forever()


# ------------------------------------------------------------------ client streams
def tls_ctx(ca):
    c = ssl.create_default_context(cafile=ca)
    c.minimum_version = ssl.TLSVersion.TLSv1_2
    return c


async def read_until(r, token, buf=b''):
    while token not in buf:
        d = await asyncio.wait_for(r.read(65536), TIMEOUT)
        if not d:
            raise ConnectionError('EOF before %r (got %r)' % (token, buf[-200:]))
        buf += d
    return buf


async def open_stream(port, ca, sni, starttls=False):
    """A relayed stream: TLS (direct or STARTTLS) then the header; returns (r, w, serial)."""
    ctx = tls_ctx(ca)
    if not starttls:
        r, w = await asyncio.wait_for(
            asyncio.open_connection('127.0.0.1', port, ssl=ctx, server_hostname=sni), TIMEOUT)
    else:
        r, w = await asyncio.wait_for(asyncio.open_connection('127.0.0.1', port), TIMEOUT)
        w.write(HDR.format(d=sni).encode())
        await read_until(r, b'</stream:features>')
        w.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await read_until(r, b'<proceed')
        await asyncio.wait_for(w.start_tls(ctx, server_hostname=sni), TIMEOUT)
    sslobj = w.get_extra_info('ssl_object')
    der = sslobj.getpeercert(binary_form=True) if sslobj else None
    w.write(HDR.format(d=sni).encode())
    await read_until(r, b'<stream:features/>')
    return r, w, serial_of(der)


def serial_of(der):
    if not der:
        return '-'
    try:
        import subprocess
        out = subprocess.run(['openssl', 'x509', '-inform', 'DER', '-noout', '-serial'],
                             input=der, capture_output=True, timeout=10).stdout.decode()
        return out.strip().split('=', 1)[-1]
    except Exception as e:            # noqa: BLE001
        return 'error:%s' % e


async def echo(r, w, tag):
    msg = ("<message><body>%s</body></message>" % tag).encode()
    w.write(msg)
    await w.drain()
    await read_until(r, msg)


class Stats:
    def __init__(self):
        self.rounds = 0
        self.stream_fail = []
        self.new_ok = 0
        self.new_fail = []


async def stream_task(i, port, ca, sni, starttls, ctl, st, ready):
    try:
        r, w, _ = await open_stream(port, ca, sni, starttls)
        await echo(r, w, 's%d-first' % i)
    except Exception as e:            # noqa: BLE001
        st.stream_fail.append('stream %d open: %r' % (i, e))
        ready.set_result(False) if not ready.done() else None
        return
    ready_count[0] += 1
    if ready_count[0] == ready_count[1] and not ready.done():
        ready.set_result(True)
    n = 0
    try:
        while not os.path.exists(os.path.join(ctl, 'stop')):
            n += 1
            await echo(r, w, 's%d-%d' % (i, n))
            st.rounds += 1
            await asyncio.sleep(0.3)
        await echo(r, w, 's%d-final' % i)
        w.close()
    except Exception as e:            # noqa: BLE001
        st.stream_fail.append('stream %d round %d: %r' % (i, n, e))


async def churn_task(k, port, ca, sni, ctl, st):
    j = 0
    while not os.path.exists(os.path.join(ctl, 'stop')):
        j += 1
        try:
            r, w, _ = await open_stream(port, ca, sni)
            await echo(r, w, 'c%d-%d' % (k, j))
            w.close()
            st.new_ok += 1
        except Exception as e:        # noqa: BLE001
            st.new_fail.append('churn %d #%d: %r' % (k, j, e))
        await asyncio.sleep(0.02)


ready_count = [0, 0]


async def load(a):
    st = Stats()
    ready = asyncio.get_running_loop().create_future()
    ready_count[1] = a.streams
    tasks = []
    for i in range(a.streams):
        stls = a.starttls_port is not None and i % 2 == 1
        tasks.append(asyncio.create_task(stream_task(
            i, a.starttls_port if stls else a.port, a.ca, a.sni, stls, a.control, st, ready)))
    ok = await asyncio.wait_for(ready, 60)
    if ok:
        open(os.path.join(a.control, 'ready'), 'w').write('%d\n' % a.streams)
    for k in range(a.churn):
        tasks.append(asyncio.create_task(churn_task(k, a.port, a.ca, a.sni, a.control, st)))
    await asyncio.gather(*tasks)
    res = {'streams': a.streams, 'rounds': st.rounds, 'stream_failures': st.stream_fail,
           'new_ok': st.new_ok, 'new_failures': st.new_fail}
    json.dump(res, open(os.path.join(a.control, 'result.json'), 'w'), indent=1)
    print('streams=%d rounds=%d stream_failures=%d new_ok=%d new_failures=%d'
          % (a.streams, st.rounds, len(st.stream_fail), st.new_ok, len(st.new_fail)))
    for f in (st.stream_fail + st.new_fail)[:10]:
        print('  ' + f)
    return 0 if ok and not st.stream_fail and not st.new_fail and st.new_ok > 0 else 1


async def hold(a):
    r, w, serial = await open_stream(a.port, a.ca, a.sni)
    await echo(r, w, 'h-first')
    open(os.path.join(a.control, 'ready'), 'w').write(serial + '\n')
    n = 0
    while not os.path.exists(os.path.join(a.control, 'stop')):
        n += 1
        await echo(r, w, 'h-%d' % n)
        await asyncio.sleep(0.3)
    await echo(r, w, 'h-final')
    w.close()
    print('serial=%s rounds=%d' % (serial, n))
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument('mode', choices=['backend', 'load', 'hold'])
    p.add_argument('bport', nargs='?', type=int)
    p.add_argument('--port', type=int)
    p.add_argument('--starttls-port', type=int)
    p.add_argument('--ca')
    p.add_argument('--sni', default='a.example')
    p.add_argument('--streams', type=int, default=20)
    p.add_argument('--churn', type=int, default=2)
    p.add_argument('--control')
    a = p.parse_args()
    if a.mode == 'backend':
        asyncio.run(backend(a.bport))
        return 0
    try:
        return asyncio.run(load(a) if a.mode == 'load' else hold(a))
    except Exception as e:            # noqa: BLE001
        print('FAIL: %r' % e)
        return 1


if __name__ == '__main__':
    sys.exit(main())
