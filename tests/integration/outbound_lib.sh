# shellcheck shell=bash
# The world of the test_outbound_*.sh tests, on top of the federation lab (tests/lab/lab.sh):
#   - a plaintext backend Prosody (TLS off, dialback on, s2s_require_encryption=false) for
#     the tenants, run as `nobody` (not the lab remotes' user), c2s 127.0.0.1:15222;
#   - its outgoing s2s (TCP to 5269/5270 by uid nobody) redirected by the lab's nft rule to
#     xmppfront's transparent outbound listener 127.0.0.1:$OB_PORT;
#   - xmppfront in the namespace with the lab DNS as resolver, the lab CA as ca_file and a
#     dialback secret file ($OB_SECRET) that the scripted peers read too.
# Source after lab.sh:
#   ob_tenant DOMAIN POLICY [CERT_KIND]   tenant file + certificate (ca | self)
#   ob_backend_start DOMAIN...            the backend Prosody (users user1/pass1, user2/pass2)
#   ob_proxy_start                        xmppfront (after the tenants), with the redirect rule;
#                                         OB_EXTRA_LISTENERS: more listener objects (JSON)
#   ob_peer ARGS...                       tests/integration/outbound_peer.py in the namespace
OB_PORT=15270
OB_BACKEND_UID=65534
OB_BDIR=""
OB_SECRET=""
OB_LOG=""
OB_TENANTS=()

ob_tenant() {
  local d=$1 policy=$2 kind=${3:-ca} dir="$LAB_DIR/xf/certs/$1"
  lab_ca || return 1
  if [ "$kind" = self ]; then lab_self_signed "$dir" "$d"; else xf_make_cert "$LAB_DIR/pki" "$dir" "$d" "$d"; fi || return 1
  mkdir -p "$LAB_DIR/xf/tenants"
  cat > "$LAB_DIR/xf/tenants/$d.json" <<EOF
{ "domain": "$d", "certificate": "$dir/fullchain.pem", "key": "$dir/privkey.pem",
  "c2s_backend": "127.0.0.1:${OB_C2S:-15222}", "s2s_backend": "127.0.0.1:${OB_S2S:-15269}", "federation": "$policy" }
EOF
  OB_TENANTS+=("$d")
}

# OB_C2S / OB_S2S (default 15222 / 15269) and OB_BACKEND_TAG (a second backend: its own
# folder) select another backend; OB_BDIR is the last one started.
ob_backend_start() {
  local dir="$LAB_DIR/backend${OB_BACKEND_TAG:-}" d hd u vh="" c2s=${OB_C2S:-15222} s2s=${OB_S2S:-15269}
  OB_BDIR=$dir
  mkdir -p "$dir/data"
  for d in "$@"; do
    vh="${vh}VirtualHost \"$d\"
"
    hd=$(printf '%s' "$d" | sed -e 's/%/%25/g' -e 's/\./%2e/g' -e 's/-/%2d/g')
    mkdir -p "$dir/data/$hd/accounts"
    for u in 1 2; do
      printf 'return {\n\t["password"] = "pass%s";\n};\n' "$u" > "$dir/data/$hd/accounts/user$u.dat"
    done
  done
  cat > "$dir/prosody.cfg.lua" <<EOF
-- plaintext backend behind xmppfront (tests/integration/outbound_lib.sh)
pidfile = "$dir/prosody.pid"
data_path = "$dir/data"
log = { { levels = { min = "${OB_BACKEND_LOGLEVEL:-info}" }, to = "file", filename = "$dir/prosody.log" } }
interfaces = { "127.0.0.1" }
c2s_ports = { $c2s }
s2s_ports = { $s2s }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
http_ports = { }
https_ports = { }
component_ports = { }
modules_enabled = { "roster"; "saslauth"; "disco"; "ping"; "dialback" }
modules_disabled = { "tls" }
unbound = { resolvconf = true, hoststxt = true }
s2s_require_encryption = false
s2s_secure_auth = false
s2s_timeout = ${OB_BACKEND_S2S_TIMEOUT:-20}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
allow_registration = false
$vh
EOF
  chown -R "$OB_BACKEND_UID:$OB_BACKEND_UID" "$dir"
  chmod 700 "$dir"
  ip netns exec "$LAB_NS" setpriv --reuid="$OB_BACKEND_UID" --regid="$OB_BACKEND_UID" --clear-groups -- \
    env HOME="$dir" prosody --config "$dir/prosody.cfg.lua" > "$dir/prosody.stdout" 2>&1 &
  local pid=$!
  xf_track "$pid"
  lab_wait_port 127.0.0.1 "$c2s" 20 "$pid" "$dir/prosody.log" ||
    { lab_log "backend did not start"; tail -n 20 "$dir/prosody.stdout" "$dir/prosody.log" >&2; return 1; }
}

ob_proxy_start() {
  local x="$LAB_DIR/xf"
  OB_SECRET="$x/dialback.secret"
  OB_LOG="$x/xmppfront.log"
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$OB_SECRET"
  chmod 600 "$OB_SECRET"
  cat > "$x/xmppfront.json" <<EOF
{
  "workers": 1,
  "tenants": "tenants",
  "log_level": "${OB_LOG_LEVEL:-info}",
  "listeners": [
    { "address": "127.0.0.1", "port": $OB_PORT, "tls": "none", "service": "outbound", "transparent": true }${OB_EXTRA_LISTENERS:+, $OB_EXTRA_LISTENERS}
  ],
  "limits": { "handshake_timeout_s": 10, "drain_timeout_s": 2 },
  "federation": {
    "ca_file": "$LAB_DIR/pki/ca.pem",
    "resolvers": ["${LAB_RESOLVER:-$LAB_DNS4}"],
    "dialback_secret_file": "$OB_SECRET",
    "connect_timeout_s": ${OB_CONNECT_TIMEOUT:-2},
    "negotiation_timeout_s": ${OB_NEGOTIATION_TIMEOUT:-4}
  }
}
EOF
  ip netns exec "$LAB_NS" "$XF_BIN" -c "$x/xmppfront.json" 2> "$OB_LOG" &
  XF_PROXY_PID=$!
  xf_track "$XF_PROXY_PID"
  lab_wait_port 127.0.0.1 "$OB_PORT" 10 "$XF_PROXY_PID" ||
    { lab_log "xmppfront did not start"; tail -n 20 "$OB_LOG" >&2; return 1; }
  lab_redirect_uid "$OB_BACKEND_UID" "$OB_PORT" "5269, 5270"
}

ob_peer() { timeout "${OB_PEER_TIMEOUT:-40}" ip netns exec "$LAB_NS" "$XF_PY" "$XF_IT_DIR/outbound_peer.py" "$@"; }

# ob_send FROM_JID TO_JID TO_HOST [TIMEOUT] — user1@FROM (on the backend) sends TO; prints
# lab_xmpp's RESULT line. TO_HOST: "ADDR PORT" of the receiver's c2s, or "-" (nobody logs in
# there: only the sender's outcome matters, e.g. a bounce).
ob_send() {
  local from=$1 to=$2 host=$3 t=${4:-15} acc=()
  acc=(--account "$from" "pass${from:4:1}" 127.0.0.1 15222)
  # shellcheck disable=SC2206  # host is "ADDR PORT" on purpose
  [ "$host" != - ] && acc+=(--account "$to" "pass${to:4:1}" $host)
  lab_xmpp "${acc[@]}" --send "$from" "$to" --timeout "$t"
}
