#!/usr/bin/env bash
# The HTTPS side of a direct-TLS auto listener (issue 8 "HTTP on 443"; proxy/http.h):
# one port, XMPP and HTTPS. A hosting identity (its certificate also names the
# hosting-served tenant shared.example), own.example with a certificate of its own and
# Prosody behind it, web.example with an http_backend (a Python HTTP server on loopback).
#  (1) curl (ALPN http/1.1) gets both POSH documents of own.example and of the hosting
#      name: SHA-256/SHA-512 of the whole certificate DER (RFC 7711 §3.2) equal to
#      openssl's, application/json, Cache-Control: max-age = expires, Content-Length;
#      shared.example's are `url` references to the hosting's documents; HEAD works
#  (2) keep-alive: two requests on one connection; pipelined requests answered in order;
#      without ALPN (sniffed "GET ") the same documents
#  (3) refusals: 404 (unknown path, no http_backend; unknown host), 405 (POST on a POSH
#      path, with Allow), 421 (Host not covered by the certificate the SNI chose), 400 for
#      garbage, 431 for an oversized head, 408 for a request that never completes; each
#      logged with its reason, and the proxy keeps serving
#  (4) web.example: any other request reaches its http_backend, which sees the method,
#      the path, the body and our X-Forwarded-For (the client's forged one dropped) and
#      Connection: close; its answer comes back, also to a client that half-closed
#      after its request; an Upgrade keeps Connection: Upgrade and, after the 101,
#      bytes flow both ways; a dead http_backend -> 502
#  (5) XMPP on the same port: slixmpp logs in and messages with ALPN xmpp-client and with
#      no ALPN; an s2s stream with ALPN xmpp-server gets its features
. "$(dirname "$0")/lib.sh"
T=http_posh
xf_init "$T" || exit 1
cd "$XF_TMP" || exit 1

PKI="$XF_TMP/pki" CA="$XF_TMP/pki/ca.pem"
xf_make_ca "$PKI" "http test CA" &&
xf_make_cert "$PKI" certs/hosting hosting.example hosting.example shared.example &&
xf_make_cert "$PKI" certs/own own.example own.example &&
xf_make_cert "$PKI" certs/web web.example web.example ||
  xf_setup_failed "$T: certificates"

read -r P_AUTO P_PC2S P_PS2S P_WEB P_DEAD < <(xf_free_ports 5)
pd="$XF_TMP/prosody"
XF_PROSODY_TLS=0 xf_prosody_config "$pd" 127.0.0.1 "$P_PC2S" "$P_PS2S" own.example &&
xf_prosody_register "$pd" user1 own.example pass1 &&
xf_prosody_register "$pd" user2 own.example pass2 &&
xf_prosody_start "$pd" 127.0.0.1 "$P_PC2S" "$P_PS2S" || xf_setup_failed "$T: prosody"

# The http_backend: records what it saw (one JSON line per request) and answers with it.
cat > backend.py <<'EOF'
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def handle_one(self):
        n = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(n).decode() if n else ''
        seen = {'method': self.command, 'path': self.path, 'body': body,
                'xff': self.headers.get_all('X-Forwarded-For'),
                'proto': self.headers.get('X-Forwarded-Proto'),
                'forwarded': self.headers.get('Forwarded'),
                'connection': self.headers.get_all('Connection'),
                'secret': self.headers.get('X-Secret'), 'host': self.headers.get('Host')}
        with open(sys.argv[2], 'a') as f:
            f.write(json.dumps(seen) + '\n')
        if self.headers.get('Upgrade'):      # a WebSocket-like upgrade: 101, then echo 4 bytes
            self.send_response(101)
            self.send_header('Upgrade', self.headers['Upgrade'])
            self.send_header('Connection', 'Upgrade')
            self.end_headers()
            self.wfile.flush()
            self.wfile.write(b'echo:' + self.rfile.read(4))
            self.close_connection = True
            return
        out = ('backend saw %s %s body=%s' % (self.command, self.path, body)).encode()
        self.send_response(201)
        self.send_header('Content-Type', 'text/plain')
        self.send_header('Content-Length', str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    do_GET = do_POST = do_PUT = handle_one
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
EOF
timeout 600 "$XF_PY" backend.py "$P_WEB" "$XF_TMP/backend.seen" 2>backend.err &
xf_track $!
xf_wait_port 127.0.0.1 "$P_WEB" 10 $! || xf_setup_failed "$T: http backend"

mkdir -p xf/tenants
cat > xf/tenants/own.json <<EOF
{"domain": "own.example", "certificate": "../../certs/own/fullchain.pem",
 "key": "../../certs/own/privkey.pem",
 "c2s_backend": "127.0.0.1:$P_PC2S", "s2s_backend": "127.0.0.1:$P_PS2S"}
EOF
cat > xf/tenants/shared.json <<EOF
{"domain": "shared.example", "c2s_backend": "127.0.0.1:$P_PC2S", "s2s_backend": "127.0.0.1:$P_PS2S"}
EOF
cat > xf/tenants/web.json <<EOF
{"domain": "web.example", "certificate": "../../certs/web/fullchain.pem",
 "key": "../../certs/web/privkey.pem", "c2s_backend": "127.0.0.1:$P_PC2S",
 "http_backend": "127.0.0.1:$P_WEB"}
EOF
cat > xf/tenants/dead.json <<EOF
{"domain": "dead.example", "c2s_backend": "127.0.0.1:$P_PC2S", "http_backend": "127.0.0.1:$P_DEAD"}
EOF
CFG="$XF_TMP/xf/xmppfront.json" XF_LOG="$XF_TMP/xf/xmppfront.log"
cat > "$CFG" <<EOF
{"workers": 2, "tenants": "tenants",
 "listeners": [$(xf_listener 127.0.0.1 "$P_AUTO" direct auto)],
 "limits": {"handshake_timeout_s": 3, "max_header_bytes": 4096},
 "hosting": {"name": "hosting.example", "certificate": "../certs/hosting/fullchain.pem",
             "key": "../certs/hosting/privkey.pem"}}
EOF
xf_proxy_start "$CFG" "$XF_LOG" "$P_AUTO" || xf_setup_failed "$T: xmppfront"

# curl NAME PATH [curl args...]: -D hdr.N, body to body.N; prints nothing.
N=0
hcurl() {
  local name=$1 path=$2; shift 2
  N=$((N + 1))
  curl -sS --max-time 10 --resolve "$name:$P_AUTO:127.0.0.1" --cacert "$CA" \
       -D "hdr.$N" -o "body.$N" "$@" "https://$name:$P_AUTO$path"
}
hdr() { tr -d '\r' < "hdr.$N" | awk -v k="$1" 'BEGIN{IGNORECASE=1} index(tolower($0), tolower(k) ":") == 1 { sub(/^[^:]*: */, ""); print }'; }
status() { head -1 "hdr.$N" | awk '{print $2}'; }
# fp HASH CERTDIR -> base64 of HASH over the whole certificate DER
fp() { openssl x509 -in "$2/cert.pem" -outform DER | openssl dgst "-$1" -binary | base64 -w0; }

# posh_ok NAME KIND CERTDIR: the document matches CERTDIR's certificate, with the
# right fields; the body's fingerprints are checked against openssl's.
posh_ok() {
  local name=$1 kind=$2 dir=$3
  hcurl "$name" "/.well-known/posh/xmpp-$kind.json" || return 1
  [ "$(status)" = 200 ] || { echo "status $(status)"; cat "hdr.$N"; return 1; }
  [ "$(hdr content-type)" = application/json ] || { echo "content-type: $(hdr content-type)"; return 1; }
  [ "$(hdr content-length)" = "$(stat -c %s "body.$N")" ] || { echo "content-length"; return 1; }
  "$XF_PY" - "body.$N" "$(fp sha256 "$dir")" "$(fp sha512 "$dir")" "$(hdr cache-control)" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
fps = doc['fingerprints']
assert fps == [{'sha-256': sys.argv[2], 'sha-512': sys.argv[3]}], (fps, sys.argv[2:4])
assert isinstance(doc['expires'], int) and doc['expires'] > 0, doc
assert sys.argv[4] == 'max-age=%d' % doc['expires'], (sys.argv[4], doc['expires'])
print('ok', doc)
EOF
}
reference_ok() {
  local kind=$1
  hcurl shared.example "/.well-known/posh/xmpp-$kind.json" || return 1
  [ "$(status)" = 200 ] && [ "$(hdr content-type)" = application/json ] || return 1
  "$XF_PY" - "body.$N" "$kind" "$(hdr cache-control)" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc == {'url': 'https://hosting.example/.well-known/posh/xmpp-%s.json' % sys.argv[2],
               'expires': doc['expires']} and doc['expires'] > 0, doc
assert sys.argv[3] == 'max-age=%d' % doc['expires']
print('ok', doc)
EOF
}

# tls_send NAME ALPN FILE [HOLD_S]: one TLS connection (SNI NAME, ALPN "" = none), sends
# FILE, prints everything until the server closes (or HOLD_S seconds pass).
cat > tls_send.py <<'EOF'
import socket, ssl, sys, time
name, port, alpn, path, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
hold = float(sys.argv[6]) if len(sys.argv) > 6 else 8
halfclose = len(sys.argv) > 7 and sys.argv[7] == 'halfclose'
ctx = ssl.create_default_context(cafile=ca)
if alpn:
    ctx.set_alpn_protocols(alpn.split(','))
s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', port), timeout=hold), server_hostname=name)
s.sendall(open(path, 'rb').read())
if halfclose:   # TCP FIN right after the request, TLS state kept (SSLSocket.shutdown drops it)
    socket.socket.shutdown(s, socket.SHUT_WR)
out, end = b'', time.time() + hold
try:
    while time.time() < end:
        d = s.recv(65536)
        if not d:
            break
        out += d
except (socket.timeout, ssl.SSLError, ConnectionResetError):
    pass
sys.stdout.write(out.decode('latin-1'))
print('\n[alpn=%s closed_after=%.1fs]' % (s.selected_alpn_protocol(), hold - (end - time.time())))
EOF
tls_send() { "$XF_PY" tls_send.py "$1" "$P_AUTO" "$2" "$3" "$CA" "${4:-8}" ${5:-}; }

echo "# (1) POSH documents"
xf_check "own.example xmpp-client.json: its certificate's fingerprints, JSON, caching" posh_ok own.example client certs/own
xf_check "own.example xmpp-server.json: its certificate's fingerprints" posh_ok own.example server certs/own
xf_check "hosting.example xmpp-server.json: the hosting certificate's fingerprints" posh_ok hosting.example server certs/hosting
xf_check "hosting.example xmpp-client.json: the hosting certificate's fingerprints" posh_ok hosting.example client certs/hosting
xf_check "shared.example (hosting-served) xmpp-server.json: url reference to the hosting's" reference_ok server
xf_check "shared.example (hosting-served) xmpp-client.json: url reference to the hosting's" reference_ok client
head_ok() {
  # curl -I prints the fields as its output: check the bytes on the wire instead.
  printf 'HEAD /.well-known/posh/xmpp-server.json HTTP/1.1\r\nHost: own.example\r\nConnection: close\r\n\r\n' > head.req
  local out; out=$(tls_send own.example http/1.1 head.req 5 | sed '$d'); echo "$out"
  grep -q '^HTTP/1.1 200 OK' <<<"$out" && grep -q '^Content-Type: application/json' <<<"$out" &&
    grep -Eq '^Content-Length: [1-9][0-9]{2}' <<<"$out" &&
    [ -z "$(tr -d '\r' <<<"$out" | sed '1,/^$/d')" ]     # nothing after the empty line
}
xf_check "HEAD: 200, the document's Content-Length, no body" head_ok
xf_check "ALPN http/1.1 was negotiated (close line alpn=\"http/1.1\", service=http)" \
  xf_log_has "$XF_LOG" 'service=http' 'alpn="http/1.1"' 'tenant="own.example"'

echo "# (2) keep-alive, pipelining, no ALPN"
keepalive_ok() {
  local out
  out=$(curl -sS --max-time 10 --resolve "own.example:$P_AUTO:127.0.0.1" --cacert "$CA" \
        -o /dev/null -o /dev/null -w '%{http_code} %{num_connects}\n' \
        "https://own.example:$P_AUTO/.well-known/posh/xmpp-client.json" \
        "https://own.example:$P_AUTO/.well-known/posh/xmpp-server.json") || return 1
  echo "$out"
  [ "$out" = "$(printf '200 1\n200 0')" ]
}
xf_check "two requests on one connection (keep-alive: the second needs no new connect)" keepalive_ok

printf 'GET /.well-known/posh/xmpp-client.json HTTP/1.1\r\nHost: own.example\r\n\r\nHEAD /.well-known/posh/xmpp-server.json HTTP/1.1\r\nHost: own.example\r\n\r\nGET /nothing HTTP/1.1\r\nHost: own.example\r\nConnection: close\r\n\r\n' > pipelined.req
pipelined_ok() {
  local out; out=$(tls_send own.example http/1.1 pipelined.req 5); echo "$out"
  [ "$(grep -o 'HTTP/1\.1 [0-9]*' <<<"$out" | awk '{print $2}' | tr '\n' ' ')" = "200 200 404 " ] &&
  grep -q 'closed_after=[0-3]\.' <<<"$out"      # closed after the Connection: close one
}
xf_check "three pipelined requests: 200, 200 (HEAD), 404, in order, then closed" pipelined_ok
printf 'GET /.well-known/posh/xmpp-server.json HTTP/1.1\r\nHost: own.example\r\nConnection: close\r\n\r\n' > noalpn.req
noalpn_ok() {
  local out; out=$(tls_send own.example "" noalpn.req 5); echo "$out"
  grep -q '^HTTP/1.1 200 OK' <<<"$out" && grep -q "\"sha-256\":\"$(fp sha256 certs/own)\"" <<<"$out" &&
  grep -q 'alpn=None' <<<"$out"
}
xf_check "no ALPN, first bytes 'GET ': the HTTP side answers (sniffed)" noalpn_ok
curl_noalpn_ok() { hcurl hosting.example /.well-known/posh/xmpp-client.json --no-alpn && [ "$(status)" = 200 ]; }
xf_check "curl --no-alpn gets the hosting document" curl_noalpn_ok

echo "# (3) refusals"
st_is() { local want=$1; shift; hcurl "$@" || return 1; [ "$(status)" = "$want" ] || { echo "got $(status)"; cat "hdr.$N" "body.$N"; return 1; }; }
xf_check "own.example /index.html (no http_backend): 404" st_is 404 own.example /index.html
xf_check "own.example POST on xmpp-client.json: 405" st_is 405 own.example /.well-known/posh/xmpp-client.json -X POST -d x=1
xf_check "... with Allow: GET, HEAD" bash -c "tr -d '\r' < hdr.$N | grep -qx 'Allow: GET, HEAD'"
xf_check "DELETE on the hosting's xmpp-server.json: 405" st_is 405 hosting.example /.well-known/posh/xmpp-server.json -X DELETE
xf_check "SNI own.example, Host shared.example: 421 Misdirected Request" \
  st_is 421 own.example /.well-known/posh/xmpp-server.json -H 'Host: shared.example'
xf_check "Host not served here: 404" st_is 404 own.example / -H 'Host: nobody.example'
xf_check "... log names the refusal" xf_log_has "$XF_LOG" 'http GET host="nobody.example"' '-> 404'
printf 'GARBAGE \x01\x02\r\n\r\n' > garbage.req
garbage_ok() {
  local out; out=$(tls_send own.example http/1.1 garbage.req 5); echo "$out"
  grep -q '^HTTP/1.1 400 Bad Request' <<<"$out" && grep -q 'Connection: close' <<<"$out"
}
xf_check "garbage with ALPN http/1.1: 400 and close" garbage_ok
xf_check "... logged with the parser's reason" xf_log_has "$XF_LOG" 'http 400:' 'HPE_INVALID_METHOD'
{ printf 'GET / HTTP/1.1\r\nHost: own.example\r\nX-Big: '; head -c 20000 /dev/zero | tr '\0' a; printf '\r\n\r\n'; } > big.req
big_ok() {
  local out; out=$(tls_send own.example http/1.1 big.req 5); echo "$out" | head -3
  grep -q '^HTTP/1.1 431 Request Header Fields Too Large' <<<"$out"
}
xf_check "a 20 kB header (limit 4 x max_header_bytes = 16384): 431" big_ok
xf_check "... logged" xf_log_has "$XF_LOG" 'http 431:' 'request head over 16384 bytes'
printf 'GET /.well-known/posh/xmpp-client.json HTTP/1.1\r\nHost: own.ex' > partial.req
partial_ok() {
  local out; out=$(tls_send own.example http/1.1 partial.req 8); echo "$out"
  grep -q '^HTTP/1.1 408 Request Timeout' <<<"$out" && grep -q 'closed_after=[2-5]\.' <<<"$out"
}
xf_check "a request never completed: 408 after handshake_timeout_s (3 s)" partial_ok
xf_check "... logged" xf_log_has "$XF_LOG" 'http 408:' 'handshake_timeout_s'
alive_ok() { kill -0 "$XF_PROXY_PID" && posh_ok own.example server certs/own; }
xf_check "the proxy is still running and serving after the bad requests" alive_ok

echo "# (4) http_backend"
backend_ok() {
  hcurl web.example '/some/page?q=1' -X POST -d 'hello-body' -H 'X-Forwarded-For: 6.6.6.6' \
        -H 'Connection: keep-alive, X-Secret' -H 'X-Secret: s' || return 1
  cat "hdr.$N" "body.$N"; echo
  [ "$(status)" = 201 ] && grep -qx 'backend saw POST /some/page?q=1 body=hello-body' "body.$N" || return 1
  tail -1 backend.seen
  "$XF_PY" - backend.seen <<'EOF'
import json, sys
seen = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert seen['method'] == 'POST' and seen['path'] == '/some/page?q=1', seen
assert seen['body'] == 'hello-body', seen
assert seen['xff'] == ['127.0.0.1'], seen             # the forged one is gone
assert seen['proto'] == 'https' and seen['forwarded'] == 'for=127.0.0.1;proto=https', seen
assert seen['connection'] == ['close'], seen          # hop-by-hop fields replaced
assert seen['secret'] is None, seen                   # named by Connection: dropped
assert seen['host'].startswith('web.example:'), seen
EOF
}
xf_check "web.example POST /some/page: reaches the http_backend (path, body, X-Forwarded-For), its answer returns" backend_ok
xf_check "... the log names the backend route" xf_log_has "$XF_LOG" 'http POST host="web.example" path="/some/page"' '-> backend'
webposh_ok() { posh_ok web.example client certs/web; }
printf 'GET /xmpp-websocket HTTP/1.1\r\nHost: web.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nping' > upgrade.req
upgrade_ok() {
  local out; out=$(tls_send web.example http/1.1 upgrade.req 5); echo "$out"
  grep -q '^HTTP/1.1 101' <<<"$out" && grep -q 'echo:ping' <<<"$out" || return 1
  tail -1 backend.seen
  "$XF_PY" -c '
import json, sys
seen = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert seen["path"] == "/xmpp-websocket" and seen["connection"] == ["Upgrade"], seen
assert seen["xff"] == ["127.0.0.1"], seen' backend.seen
}
xf_check "an Upgrade request keeps Connection: Upgrade; after the 101 bytes flow both ways" upgrade_ok
printf 'PUT /upload HTTP/1.1\r\nHost: web.example\r\nContent-Length: 4\r\n\r\ndata' > put.req
halfclose_backend_ok() {
  local out; out=$(tls_send web.example http/1.1 put.req 5 halfclose); echo "$out"
  grep -q '^HTTP/1.1 201' <<<"$out" && grep -q 'backend saw PUT /upload body=data' <<<"$out"
}
xf_check "a client that half-closes right after its request still gets the backend's answer" halfclose_backend_ok
halfclose_posh_ok() {
  local out; out=$(tls_send own.example "" noalpn.req 5 halfclose); echo "$out"
  grep -q '^HTTP/1.1 200 OK' <<<"$out"
}
xf_check "... and the POSH answer (no ALPN)" halfclose_posh_ok
xf_check "web.example's POSH document is still served by xmppfront, not the backend" webposh_ok
xf_check "web.example has no s2s_backend: no xmpp-server document, so it goes to the backend" \
  st_is 201 web.example /.well-known/posh/xmpp-server.json
xf_check "a dead http_backend: 502" st_is 502 dead.example / -k
xf_check "... logged" xf_log_has "$XF_LOG" 'http 502:' "http_backend 127.0.0.1:$P_DEAD"

echo "# (5) XMPP on the same port"
xf_check "ALPN xmpp-client: own.example login + message" \
  xf_client --port "$P_AUTO" --mode direct --ca "$CA" --domain own.example \
            --alpn xmpp-client --expect-alpn xmpp-client
xf_check "no ALPN: own.example login + message (routed by jabber:client)" \
  xf_client --port "$P_AUTO" --mode direct --ca "$CA" --domain own.example --expect-alpn none
xf_check "offer [http/1.1, xmpp-client]: the server picks xmpp-client, features" \
  xf_peer --port "$P_AUTO" --mode direct --to own.example --alpn http/1.1,xmpp-client \
          --expect-alpn xmpp-client --ca "$CA" --expect-features
xf_check "ALPN xmpp-server + jabber:server: s2s features" \
  xf_peer --port "$P_AUTO" --mode direct --to own.example --from remote.example --ns jabber:server \
          --alpn xmpp-server --expect-alpn xmpp-server --ca "$CA" --expect-features
xf_check "the proxy is still running" kill -0 "$XF_PROXY_PID"
xf_finish "$T"
