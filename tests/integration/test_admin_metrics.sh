#!/usr/bin/env bash
# The admin listener (docs/metrics.md), in a network namespace of its own with a
# scripted c2s backend and a real Prometheus (Debian's `prometheus`, which also ships
# promtool):
#  - /healthz 200 "ok", /readyz 200 "ready", 404 for another path, 405 for a POST;
#    keep-alive ends after 100 requests with Connection: close and a clean EOF;
#  - `promtool check metrics` accepts /metrics;
#  - known traffic gives exact values: 3 stream headers to an unknown host ->
#    xmppfront_refusals_total{reason="host-unknown"} 3; one relayed direct-TLS c2s
#    stream -> xmppfront_connections{service="client",state="relaying"} 1, its tenant's
#    row (per_tenant_metrics), an inbound handshake ok, bytes both ways; 4 client
#    connections accepted;
#  - Prometheus scrapes it: up{job="xmppfront"} 1, xmppfront_build_info 1 with the
#    binary's version, and the host-unknown count 3, read through its HTTP API;
#  - a second instance with the same explicit admin address refuses to start and says
#    why; one with "admin": false starts and binds no admin port;
#  - SIGTERM with the relayed stream still open: /readyz 503 "draining" and /healthz 200
#    while it drains, xmppfront_draining 1.
# Prometheus and every process are stopped by PID; the namespace is removed on exit.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_netns.sh"
T=admin_metrics
command -v prometheus >/dev/null && command -v promtool >/dev/null ||
  xf_setup_failed "$T: prometheus/promtool missing (apt-get install prometheus)"
xf_netns_init "$T" || xf_setup_failed "$T: no network namespace"

P_C2S=5222 P_C2S_TLS=5223 P_C2S_B=5224 P_BACKEND=15222 P_ADMIN=8269 P_PROM=9090
ADMIN="http://127.0.0.1:$P_ADMIN"
xf_make_ca "$XF_TMP/pki" "xmppfront test CA" &&
  xf_make_cert "$XF_TMP/pki" "$XF_TMP/certs/a.example" a.example a.example ||
  xf_setup_failed "$T: PKI"
XF_CA="$XF_TMP/pki/ca.pem"
xf_tenant_write "$XF_TMP/xf/tenants" a.example "" "$XF_TMP/certs/a.example" \
  "127.0.0.1:$P_BACKEND" "127.0.0.1:9"

# The c2s backend: answers each stream header with its own and SASL features, then
# keeps the connection open (reads and discards) until the client goes.
cat >"$XF_TMP/backend.py" <<'EOF'
import socket, sys, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', int(sys.argv[1])))
srv.listen(16)
def serve(c):
    buf = b''
    try:
        while b'<stream:stream' not in buf or not buf.rstrip().endswith(b'>'):
            d = c.recv(4096)
            if not d:
                return
            buf += d
        c.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                  b"xmlns:stream='http://etherx.jabber.org/streams' from='a.example' "
                  b"id='b1' version='1.0'><stream:features><mechanisms "
                  b"xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>"
                  b"</mechanisms></stream:features>")
        while c.recv(4096):
            pass
    except OSError:
        pass
    finally:
        c.close()
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
EOF
# (ip netns exec, not the xf_ns function: backgrounded, a function would be a subshell and
# $! not the process's PID.)
ip netns exec "$XF_NS" "$XF_PY" "$XF_TMP/backend.py" "$P_BACKEND" &
BACKEND_PID=$!
xf_track "$BACKEND_PID"

write_cfg() {   # FILE ADMIN_JSON LISTENER_PORTS...
  local f=$1 admin=$2 L="" p; shift 2
  L="$(xf_listener 127.0.0.1 "$1" starttls client)"
  [ -n "${2:-}" ] && L="$L, $(xf_listener 127.0.0.1 "$2" direct client)"
  cat >"$f" <<EOF
{
  "workers": 2,
  "tenants": "tenants",
  "listeners": [$L],
  "limits": {"drain_timeout_s": 8, "handshake_timeout_s": 10},
  "admin": $admin
}
EOF
}
XF_CFG="$XF_TMP/xf/xmppfront.json" XF_LOG="$XF_TMP/xf/xmppfront.log"
write_cfg "$XF_CFG" "{\"address\": \"127.0.0.1\", \"port\": $P_ADMIN, \"per_tenant_metrics\": true}" \
  "$P_C2S" "$P_C2S_TLS"
xf_ns_proxy_start "$XF_CFG" "$XF_LOG" "$P_C2S" "$P_C2S_TLS" "$P_ADMIN" ||
  xf_setup_failed "$T: xmppfront did not start"

code() { xf_ns curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@"; }
# metric 'NAME{labels}' -> its value in a fresh scrape (empty when absent)
metric() { xf_ns curl -s --max-time 5 "$ADMIN/metrics" | awk -v k="$1" '$1 == k { print $2 }'; }
metric_is() {
  local got; got=$(metric "$1")
  echo "$1 = '$got' (want $2)"
  [ "$got" = "$2" ]
}

body() { xf_ns curl -s --max-time 5 "$@"; }
xf_check "/healthz: 200 ok" bash -c "[ '$(body "$ADMIN/healthz")' = ok ] && [ $(code "$ADMIN/healthz") = 200 ]"
xf_check "/readyz: 200 (listeners up, configuration loaded)" test "$(code "$ADMIN/readyz")" = 200
xf_check "/nothing: 404" test "$(code "$ADMIN/nothing")" = 404
xf_check "POST /metrics: 405" test "$(code -X POST "$ADMIN/metrics")" = 405
xf_check "/metrics: Content-Type text/plain; version=0.0.4" \
  bash -c "ip netns exec $XF_NS curl -s -D - -o /dev/null --max-time 5 $ADMIN/metrics | tee /dev/stderr | grep -qi '^content-type: text/plain; version=0.0.4'"
xf_check "150 pipelined requests: exactly 100 answers, the last with Connection: close, then EOF (no reset)" \
  xf_ns timeout 20 "$XF_PY" - "$P_ADMIN" <<'PYEOF'
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)
s.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' * 150)
data = b''
while True:
    d = s.recv(65536)          # a reset raises here: the test fails
    if not d:
        break
    data += d
n, c = data.count(b'HTTP/1.1 200 OK'), data.count(b'Connection: close')
print(f'answers={n} close={c}')
sys.exit(0 if n == 100 and c == 1 and data.rstrip().endswith(b'ok') else 1)
PYEOF
xf_check "log names the admin listener" grep -q "admin listener on 127.0.0.1:$P_ADMIN" "$XF_LOG"

# Known traffic: exactly 3 stream headers to a host that is not served.
for i in 1 2 3; do
  xf_check "refusal $i: pre-TLS to='nothere.example' -> <host-unknown/>" \
    xf_ns "$XF_PY" "$XF_IT_DIR/raw_peer.py" --port "$P_C2S" --mode starttls --pretls \
      --to nothere.example --expect-error host-unknown
done
# One relayed c2s stream (direct TLS), held open.
OUT="$XF_TMP/held.out"
ip netns exec "$XF_NS" timeout 60 "$XF_PY" "$XF_IT_DIR/raw_peer.py" --port "$P_C2S_TLS" --mode direct \
  --to a.example --ca "$XF_CA" --hold 40 >"$OUT" 2>&1 &
HELD=$!
xf_track "$HELD"
for ((i = 0; i < 100; i++)); do
  grep -q '</stream:features>' "$OUT" 2>/dev/null && break
  sleep 0.1
done
xf_check "the held c2s stream got the backend's features" grep -q '</stream:features>' "$OUT"
sleep 0.3

xf_check "promtool check metrics accepts /metrics" \
  bash -c "ip netns exec $XF_NS curl -s --max-time 5 $ADMIN/metrics | promtool check metrics"
xf_check "xmppfront_refusals_total{reason=\"host-unknown\"} is exactly 3" \
  metric_is 'xmppfront_refusals_total{reason="host-unknown"}' 3
xf_check "xmppfront_connections client/relaying is 1" \
  metric_is 'xmppfront_connections{service="client",state="relaying"}' 1
xf_check "xmppfront_connections client/pre_tls is 0 (the refused ones are gone)" \
  metric_is 'xmppfront_connections{service="client",state="pre_tls"}' 0
xf_check "xmppfront_tenant_connections a.example/client is 1" \
  metric_is 'xmppfront_tenant_connections{tenant="a.example",service="client"}' 1
xf_check "xmppfront_connections_accepted_total client is 4" \
  metric_is 'xmppfront_connections_accepted_total{service="client"}' 4
xf_check "xmppfront_handshakes_total inbound ok is 1" \
  metric_is 'xmppfront_handshakes_total{side="inbound",result="ok"}' 1
metric_over() { local got; got=$(metric "$1"); echo "$1 = '$got' (want > $2)"; [ "${got:-0}" -gt "$2" ]; }
xf_check "xmppfront_bytes_total in > 200 (the client's header)" \
  metric_over 'xmppfront_bytes_total{direction="in"}' 200
xf_check "xmppfront_bytes_total out > 300 (header and features)" \
  metric_over 'xmppfront_bytes_total{direction="out"}' 300
xf_check "xmppfront_ready 1" metric_is xmppfront_ready 1
xf_check "xmppfront_tenants 1" metric_is xmppfront_tenants 1

# A real Prometheus scrapes it (1 s interval), on loopback inside the namespace.
PROM="$XF_TMP/prom"
mkdir -p "$PROM/data"
cat >"$PROM/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: xmppfront
    static_configs:
      - targets: ['127.0.0.1:$P_ADMIN']
EOF
xf_check "promtool check config accepts the scrape configuration" \
  promtool check config "$PROM/prometheus.yml"
ip netns exec "$XF_NS" prometheus --config.file="$PROM/prometheus.yml" \
  --storage.tsdb.path="$PROM/data" --web.listen-address="127.0.0.1:$P_PROM" \
  --log.level=warn >"$PROM/log" 2>&1 &
PROM_PID=$!
xf_track "$PROM_PID"
query() {   # PromQL -> the first sample's value (empty if none)
  xf_ns curl -s --max-time 5 -G "http://127.0.0.1:$P_PROM/api/v1/query" \
    --data-urlencode "query=$1" |
    "$XF_PY" -c 'import json,sys
d=json.load(sys.stdin); r=d.get("data",{}).get("result",[])
print(r[0]["value"][1] if r else "")' 2>/dev/null
}
scraped=0
for ((i = 0; i < 60; i++)); do
  [ "$(query 'up{job="xmppfront"}')" = 1 ] && [ "$(query 'xmppfront_build_info')" = 1 ] &&
    { scraped=1; break; }
  kill -0 "$PROM_PID" 2>/dev/null || break
  sleep 0.5
done
VERSION=$("$XF_BIN" --version | awk '{print $2}')
xf_check "Prometheus: target up and xmppfront_build_info 1 arrived (API query)" \
  bash -c "tail -5 '$PROM/log'; [ $scraped = 1 ]"
xf_check "Prometheus: build_info carries version $VERSION" \
  test "$(query "xmppfront_build_info{version=\"$VERSION\"}")" = 1
xf_check "Prometheus: host-unknown refusals 3" \
  test "$(query 'xmppfront_refusals_total{reason="host-unknown"}')" = 3
xf_check "Prometheus: one relaying client connection" \
  test "$(query 'sum(xmppfront_connections{state="relaying"})')" = 1
xf_stop_pid "$PROM_PID" 10
xf_check "Prometheus exited" bash -c "! kill -0 $PROM_PID 2>/dev/null"

# A second instance with the same explicit admin address: refused at start, with why.
CFG2="$XF_TMP/xf/second.json"
write_cfg "$CFG2" "{\"port\": $P_ADMIN}" "$P_C2S_B"
xf_check "second instance, same explicit admin port: exits 1 naming the admin listener" \
  bash -c "timeout 10 ip netns exec $XF_NS '$XF_BIN' -c '$CFG2' 2>'$XF_TMP/second.log'; rc=\$?;
           cat '$XF_TMP/second.log'; [ \$rc = 1 ] &&
           grep -q 'admin listener 127.0.0.1:$P_ADMIN: address already in use' '$XF_TMP/second.log'"
# "admin": false: runs without binding an admin port (the first instance keeps 8269).
write_cfg "$CFG2" false "$P_C2S_B"
ip netns exec "$XF_NS" "$XF_BIN" -c "$CFG2" 2>"$XF_TMP/third.log" &
THIRD=$!
xf_track "$THIRD"
for ((i = 0; i < 50; i++)); do xf_ns_listening "$P_C2S_B" && break; sleep 0.1; done
xf_check "\"admin\": false: the instance serves its listener and has no admin socket" \
  bash -c "ip netns exec $XF_NS ss -Hltnp 'sport = :$P_C2S_B' | grep -q 'pid=$THIRD,' &&
           ! ip netns exec $XF_NS ss -Hltnp | grep 'pid=$THIRD,' | grep -q ':$P_ADMIN '"
xf_stop_pid "$THIRD" 10

# SIGTERM while the held stream relays: the drain keeps the admin listener answering.
kill -TERM "$XF_PROXY_PID"
sleep 0.5
xf_check "during the drain: /readyz 503 draining" \
  bash -c "[ '$(body "$ADMIN/readyz")' = draining ] && [ $(code "$ADMIN/readyz") = 503 ]"
xf_check "during the drain: /healthz 200" test "$(code "$ADMIN/healthz")" = 200
xf_check "during the drain: xmppfront_draining 1" metric_is xmppfront_draining 1
xf_check "during the drain: xmppfront_ready 0" metric_is xmppfront_ready 0
exited=0
for ((i = 0; i < 150; i++)); do
  kill -0 "$XF_PROXY_PID" 2>/dev/null || { exited=1; break; }
  sleep 0.1
done
xf_check "xmppfront exited after the drain" test $exited = 1
xf_check "the admin port is closed after exit" bash -c "! ip netns exec $XF_NS ss -Hltn 'sport = :$P_ADMIN' | grep -q ."
xf_finish "$T"
