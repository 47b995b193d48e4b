#!/usr/bin/env bash
# Bulk relaying both ways at once, byte-exact, with slow readers on both ends, through
# direct TLS and through STARTTLS (the relay's copy-saving path: TLS reading straight
# from the socket's read buffer, records written with uv_try_write, partial writes
# queued, backpressure watermarks pausing and resuming each side):
#  a scripted backend (SASL <success/> at once, then raw bytes) and a client each send
#  BYTES of random data in writes of random sizes while reading the other's data slowly
#  (pauses of 30-80 ms, so both of the proxy's sides queue past buffer_high_bytes and
#  stop reading); the backend then sends the SHA-256 of what it sent and of what it
#  received, and the client checks both against its own (nothing lost, duplicated,
#  reordered or corrupted); the stream then ends cleanly (close_notify, EOF) and the
#  proxy's close line counts every byte. Then limits.idle_timeout_s: a stream with a
#  byte a second outlives the timeout, and is closed once quiet for that long.
. "$(dirname "$0")/lib.sh"
T=relay_bulk_sha
BYTES=${XF_BULK_BYTES:-6291456}
xf_init "$T" || exit 1
xf_make_test_pki "$XF_TMP" || xf_setup_failed "$T: PKI"
read -r P_BE P_TLS P_STARTTLS < <(xf_free_ports 3)
xf_tenant_write "$XF_TMP/tenants" a.example "" "$XF_TMP/certs/a.example" "127.0.0.1:$P_BE" "127.0.0.1:$P_BE"
XF_CFG="$XF_TMP/xmppfront.json"
XF_LOG="$XF_TMP/xmppfront.log"
# Small watermarks, so that the slow readers make both sides pause and resume often.
XF_WORKERS=1 xf_config_write "$XF_CFG" "$XF_TMP/tenants" \
  "$(xf_listener 127.0.0.1 "$P_TLS" direct client), $(xf_listener 127.0.0.1 "$P_STARTTLS" starttls client)" \
  '"buffer_high_bytes": 32768, "buffer_low_bytes": 8192, "idle_timeout_s": 3, "max_connections_per_ip": 0, "max_unauthenticated_per_ip": 0'
sed -i 's/^{$/{ "log_level": "info",/' "$XF_CFG"

cat > "$XF_TMP/bulk.py" <<'PYEOF'
import asyncio, hashlib, os, random, re, ssl, struct, sys
mode, be_port, port, ca, nbytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
HDR = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' to='a.example' "
       "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>").encode()
rnd = random.Random(20261201)

def blob(n):
    return os.urandom(n)

async def send_random(w, n, tag):
    """n random bytes in writes of random sizes; returns their SHA-256."""
    h = hashlib.sha256()
    left = n
    while left:
        k = min(left, rnd.choice((1, 7, 100, 1500, 4096, 16383, 16384, 16385, 40000, 70000)))
        d = blob(k)
        h.update(d)
        w.write(d)
        await w.drain()
        left -= k
    return h.digest()

async def recv_slowly(r, n):
    """Exactly n bytes, read in small pieces with pauses; returns their SHA-256."""
    h = hashlib.sha256()
    got = 0
    since = 0
    while got < n:
        d = await r.read(min(n - got, 8192))
        if not d:
            raise SystemExit(f'FAIL: EOF after {got} of {n} bytes')
        h.update(d)
        got += len(d)
        since += len(d)
        if since >= 256 * 1024:            # a slow reader: the other side's queue fills
            since = 0
            await asyncio.sleep(rnd.uniform(0.03, 0.08))
    return h.digest()

async def until(r, pat, buf=b''):
    while not re.search(pat, buf, re.S):
        d = await r.read(65536)
        if not d:
            raise SystemExit(f'FAIL: EOF waiting for {pat!r}, have {buf[-200:]!r}')
        buf += d
    m = re.search(pat, buf, re.S)
    return buf[m.end():]

async def backend(r, w):
    rest = await until(r, rb'<stream:stream[^>]*>')
    w.write(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            b"xmlns:stream='http://etherx.jabber.org/streams' from='a.example' id='b1' "
            b"version='1.0'><stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
            b"<mechanism>PLAIN</mechanism></mechanisms></stream:features>")
    rest = await until(r, rb'</auth>', rest)
    assert rest == b'', rest
    w.write(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
    await w.drain()
    # After <success/> the proxy relays bytes as they are: random data both ways.
    n = struct.unpack('!Q', await r.readexactly(8))[0]
    sent_task = asyncio.ensure_future(send_random(w, nbytes, 'backend'))
    got = await recv_slowly(r, n)
    sent = await sent_task
    w.write(sent + got)
    await w.drain()
    await r.read()                          # until the client's side ends
    w.close()

async def client():
    ctx = ssl.create_default_context(cafile=ca)
    if mode in ('direct', 'idle'):
        r, w = await asyncio.open_connection('127.0.0.1', port, ssl=ctx, server_hostname='a.example')
    else:
        r, w = await asyncio.open_connection('127.0.0.1', port)
        w.write(HDR)
        await until(r, rb'</stream:features>')
        w.write(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        await until(r, rb'<proceed[^>]*/>')
        await w.start_tls(ctx, server_hostname='a.example')
    w.write(HDR)
    await until(r, rb'</stream:features>')
    w.write(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AHVzZXIxAGdvb2Q=</auth>")
    await until(r, rb'<success[^>]*/>')
    if mode == 'idle':
        return await idle(r, w)
    w.write(struct.pack('!Q', nbytes))
    sent_task = asyncio.ensure_future(send_random(w, nbytes, 'client'))
    got = await recv_slowly(r, nbytes)
    sent = await sent_task
    trailer = await r.readexactly(64)
    ok = True
    if trailer[:32] != got:
        print(f'FAIL: backend->client: received sha256 {got.hex()[:16]}, backend sent {trailer[:32].hex()[:16]}')
        ok = False
    if trailer[32:] != sent:
        print(f'FAIL: client->backend: backend received sha256 {trailer[32:].hex()[:16]}, client sent {sent.hex()[:16]}')
        ok = False
    if ok:
        print(f'{mode}: {nbytes} bytes each way, SHA-256 identical on both ends')
    w.close()                               # close_notify + FIN
    try:
        await asyncio.wait_for(w.wait_closed(), 10)
    except (ssl.SSLError, ConnectionError, asyncio.TimeoutError) as e:
        print(f'close: {e!r}')
    return 0 if ok else 1

async def idle(r, w):
    """limits.idle_timeout_s (IDLE): one byte a second for longer than IDLE keeps the
    stream; then, quiet, the proxy closes it no earlier than IDLE after the last byte."""
    idle_s = float(os.environ['IDLE'])
    t0 = asyncio.get_running_loop().time
    start = t0()
    n = int(idle_s * 2) + 1
    w.write(struct.pack('!Q', n))
    for i in range(n):
        if i:
            await asyncio.sleep(1)
        w.write(b'x')
        await w.drain()
    trailer = await r.readexactly(64)       # the backend's digests: still relaying
    last = t0()
    print(f'stream alive {last - start:.1f}s with one byte a second (idle_timeout_s {idle_s:g})')
    try:
        d = await asyncio.wait_for(r.read(), idle_s + 20)
    except (ssl.SSLError, ConnectionError) as e:
        d = repr(e)
    quiet = t0() - last
    print(f'closed by the proxy after {quiet:.1f}s of quiet, read {d!r}')
    return 0 if quiet >= idle_s - 0.5 and last - start > idle_s else 1

async def main():
    srv = await asyncio.start_server(backend, '127.0.0.1', be_port)
    try:
        return await asyncio.wait_for(client(), 120)
    finally:
        srv.close()

sys.exit(asyncio.run(main()))
PYEOF

xf_proxy_start "$XF_CFG" "$XF_LOG" "$P_TLS" "$P_STARTTLS" || xf_setup_failed "$T: xmppfront did not start"

for m in direct starttls; do
  p=$P_TLS; [ $m = starttls ] && p=$P_STARTTLS
  xf_check "$m: $BYTES random bytes each way at once, slow readers both ends, SHA-256 identical" \
    timeout 150 "$XF_PY" "$XF_TMP/bulk.py" "$m" "$P_BE" "$p" "$XF_TMP/pki/ca.pem" "$BYTES"
done
# The idle timer (pushed back lazily: noted per read, re-armed when it fires).
xf_check "idle_timeout_s 3: one byte a second for 6 s keeps the stream, then quiet closes it after >= 3 s" \
  env IDLE=3 timeout 60 "$XF_PY" "$XF_TMP/bulk.py" idle "$P_BE" "$P_TLS" "$XF_TMP/pki/ca.pem" 0
xf_check "its close line says idle timeout" xf_wait_log "$XF_LOG" 5 'reason="idle timeout"'
# Each stream's close line: closed by a peer (not an error), and every byte counted
# (in = the client's plaintext after TLS, out = the backend's; both at least BYTES).
xf_check "close lines: both streams ended by a peer, each with at least $BYTES bytes in and out" \
  bash -c "sleep 1; n=\$(grep -E 'reason=\"(client|backend) closed' '$XF_LOG' | awk -v b=$BYTES '
    { i = o = 0; for (k = 1; k <= NF; k++) { if (\$k ~ /^in=/) i = substr(\$k, 4) + 0; if (\$k ~ /^out=/) o = substr(\$k, 5) + 0 }
      if (i >= b && o >= b) n++ } END { print n + 0 }'); echo \"\$n streams\"; [ \"\$n\" -eq 2 ]"
xf_check "no write or TLS error in the proxy log" bash -c "! grep -E 'failed|out of memory' '$XF_LOG'"
xf_check "proxy still running" kill -0 "$XF_PROXY_PID"
xf_finish "$T"
