# shellcheck shell=bash
# Helpers for xmppfront integration tests and for deploy/demo.sh. Source it; don't run it.
#
#   . tests/integration/lib.sh
#   xf_init NAME                  per-run temp dir ($XF_TMP) + cleanup trap (kills only our PIDs)
#   xf_free_ports N               N distinct free TCP ports on 127.0.0.1
#   xf_make_ca DIR CN             private test CA (DIR/ca.pem, DIR/ca.key)
#   xf_make_cert CADIR OUT CN SAN...   leaf cert OUT/{cert,fullchain,privkey}.pem
#   xf_prosody_start DIR ADDR C2S S2S DOMAIN...   Prosody (0.12 or 13) as user prosody
#   xf_prosody_register DIR USER HOST PASS
#   xf_tenant_write DIR DOMAIN ALIASES CERTDIR C2S S2S [PROXY_PROTOCOL]
#   xf_listener ADDR PORT TLS SERVICE  -> JSON object (collect, then xf_config_write)
#   xf_config_write FILE TENANTS_DIR LISTENERS_JSON LIMITS_JSON
#   xf_proxy_start CFG LOG PORT...     start $XF_BIN -c CFG, wait for its ports
#   xf_setup_standard             everything above for the usual two-tenant test world
#   xf_check DESC CMD...          run a check, record PASS/FAIL;  xf_finish NAME -> exit code
#
# Every wait is bounded. Only PIDs started here are ever signalled.

XF_ROOT=${XF_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
XF_BIN=${XF_BIN:-build/xmppfront}
case "$XF_BIN" in /*) ;; *) XF_BIN="$XF_ROOT/$XF_BIN" ;; esac
XF_PY=/usr/bin/python3            # Debian's python (slixmpp lives there), not a pyenv shim
XF_IT_DIR="$XF_ROOT/tests/integration"
XF_PIDS=()
XF_TMP=""
XF_FAILS=0
XF_CHECKS=0
XF_PROXY_PID=""
XF_PROSODY_PID=""

xf_log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

# ---------------------------------------------------------------------------- lifecycle
xf_init() {
  local name=${1:-xf}
  XF_TMP=$(mktemp -d "/tmp/xfit-${name}.XXXXXX") || return 1
  chmod 755 "$XF_TMP"               # prosody must traverse it
  trap xf_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Registers a PID for cleanup.
xf_track() { XF_PIDS+=("$1"); }

# Stop one PID we started: TERM, wait up to $2 seconds (default 5), then KILL.
xf_stop_pid() {
  local pid=$1 grace=${2:-5} i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    # reap if it is our child so that kill -0 stops succeeding
    if ! ps -p "$pid" -o stat= 2>/dev/null | grep -qv Z; then break; fi
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null && ps -p "$pid" -o stat= 2>/dev/null | grep -qv Z; then
    kill -KILL "$pid" 2>/dev/null
  fi
  { wait "$pid"; } 2>/dev/null
  return 0
}

xf_cleanup() {
  local rc=$? i
  trap - EXIT
  for ((i = ${#XF_PIDS[@]} - 1; i >= 0; i--)); do
    xf_stop_pid "${XF_PIDS[$i]}" 5
  done
  if [ -n "$XF_TMP" ] && [ -d "$XF_TMP" ]; then
    if [ "${XF_KEEP:-0}" = 1 ] || { [ "$rc" -ne 0 ] && [ "${XF_KEEP_ON_FAIL:-0}" = 1 ]; }; then
      xf_log "keeping $XF_TMP"
    else
      rm -rf "$XF_TMP"
    fi
  fi
  exit "$rc"
}

# ---------------------------------------------------------------------------- ports
# Prints N distinct ports that were free on ADDR (default 127.0.0.1) a moment ago.
xf_free_ports() {
  local n=${1:-1} addr=${2:-127.0.0.1}
  "$XF_PY" - "$n" "$addr" <<'EOF'
import socket, sys
n, addr = int(sys.argv[1]), sys.argv[2]
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_INET6 if ':' in addr else socket.AF_INET)
    s.bind((addr, 0))
    socks.append(s)
print(' '.join(str(s.getsockname()[1]) for s in socks))
EOF
}

# True when something listens on ADDR:PORT (no connection is made).
xf_port_listening() {
  local addr=$1 port=$2
  ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && return 0
  return 1
}

# xf_wait_port ADDR PORT TIMEOUT_S [PID] — waits for a listener; fails early if PID died.
xf_wait_port() {
  local addr=$1 port=$2 t=${3:-10} pid=${4:-} i
  for ((i = 0; i < t * 10; i++)); do
    xf_port_listening "$addr" "$port" && return 0
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 2; fi
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------------------- PKI
# xf_make_ca DIR CN  -> DIR/ca.pem DIR/ca.key
xf_make_ca() {
  local dir=$1 cn=${2:-xmppfront test CA}
  mkdir -p "$dir"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 30 -subj "/CN=$cn" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1 ||
    { xf_log "CA generation failed"; return 1; }
}

# xf_make_cert CADIR OUTDIR CN SAN... -> OUTDIR/cert.pem fullchain.pem privkey.pem
# XF_KEY_TYPE=rsa for RSA-2048 leaves (default EC P-256).
xf_make_cert() {
  local cadir=$1 out=$2 cn=$3; shift 3
  local san="" d
  for d in "$@"; do san="${san:+$san,}DNS:$d"; done
  mkdir -p "$out"
  if [ "${XF_KEY_TYPE:-ec}" = rsa ]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$out/privkey.pem" 2>/dev/null
  else
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$out/privkey.pem" 2>/dev/null
  fi || { xf_log "key generation failed for $cn"; return 1; }
  cat > "$out/ext.cnf" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$san
EOF
  openssl req -new -key "$out/privkey.pem" -subj "/CN=$cn" -out "$out/req.csr" 2>/dev/null &&
  openssl x509 -req -in "$out/req.csr" -CA "$cadir/ca.pem" -CAkey "$cadir/ca.key" \
    -CAcreateserial -days 30 -sha256 -extfile "$out/ext.cnf" -out "$out/cert.pem" 2>/dev/null ||
    { xf_log "certificate generation failed for $cn"; return 1; }
  cat "$out/cert.pem" "$cadir/ca.pem" > "$out/fullchain.pem"
  rm -f "$out/req.csr"
}

# The usual test PKI under $1 (default $XF_TMP): pki/ca.pem and certs/{a,b,w}.example/.
xf_make_test_pki() {
  local base=${1:-$XF_TMP}
  xf_make_ca "$base/pki" "xmppfront test CA" &&
  xf_make_cert "$base/pki" "$base/certs/a.example" a.example a.example conference.a.example &&
  xf_make_cert "$base/pki" "$base/certs/b.example" b.example b.example &&
  xf_make_cert "$base/pki" "$base/certs/w.example" w.example '*.w.example' w.example
}

# ---------------------------------------------------------------------------- Prosody
XF_PROSODY_TEMPLATE="$XF_ROOT/deploy/prosody/prosody.cfg.lua.in"

# Prefix that runs a command as the prosody user (prosody refuses to run as root).
# setpriv and env exec, so a background job's $! is prosody's own PID and cleanup
# signals exactly it.  Usage: "${XF_AS_PROSODY[@]}" cmd...  (after xf_as_prosody_init DIR)
XF_AS_PROSODY=()
# NOTIFY_SOCKET is a test's stand-in for systemd, meant for xmppfront: Prosody 13 speaks
# sd_notify too when it sees the variable (and then does not start in the foreground as
# the tests run it), so it never gets it.
xf_as_prosody_init() {
  if [ "$(id -u)" -eq 0 ]; then
    XF_AS_PROSODY=(setpriv --reuid=prosody --regid=prosody --init-groups -- env -u NOTIFY_SOCKET HOME="$1")
  else
    XF_AS_PROSODY=(env -u NOTIFY_SOCKET HOME="$1")
  fi
}

# xf_prosody_config DIR ADDR C2S S2S DOMAIN...  -> DIR/prosody.cfg.lua
# XF_PROSODY_TLS=1 loads mod_tls with certificates from $XF_PROSODY_CERTS (a folder of
# DOMAIN/fullchain.pem + privkey.pem, copied into DIR/certs): Prosody then offers
# STARTTLS on its plaintext port, which xmppfront must strip.
xf_prosody_config() {
  local dir=$1 addr=$2 c2s=$3 s2s=$4; shift 4
  local vhosts="" d
  for d in "$@"; do vhosts="${vhosts}VirtualHost \"$d\"\n"; done
  mkdir -p "$dir/data" "$dir/certs"
  local extra="" disabled='"tls";'
  if [ "${XF_PROSODY_TLS:-0}" = 1 ] && [ -n "${XF_PROSODY_CERTS:-}" ]; then
    extra='"tls";' disabled=""
    for d in "$@"; do
      if [ -f "$XF_PROSODY_CERTS/$d/fullchain.pem" ]; then
        cp "$XF_PROSODY_CERTS/$d/fullchain.pem" "$dir/certs/$d.crt"
        cp "$XF_PROSODY_CERTS/$d/privkey.pem" "$dir/certs/$d.key"
      fi
    done
  fi
  sed -e "s|@RUN_DIR@|$dir|g" -e "s|@ADDRESS@|$addr|g" -e "s|@C2S_PORT@|$c2s|g" \
      -e "s|@S2S_PORT@|$s2s|g" -e "s|@VHOSTS@|$vhosts|" \
      -e "s|@EXTRA_MODULES@|$extra|" -e "s|@DISABLED_MODULES@|$disabled|" \
      "$XF_PROSODY_TEMPLATE" > "$dir/prosody.cfg.lua"
  if [ "$(id -u)" -eq 0 ]; then chown -R prosody:prosody "$dir"; fi
}

# xf_prosody_register DIR USER HOST PASS
xf_prosody_register() {
  local dir=$1
  xf_as_prosody_init "$dir"
  "${XF_AS_PROSODY[@]}" timeout 20 prosodyctl --config "$dir/prosody.cfg.lua" \
    register "$2" "$3" "$4" >>"$dir/prosodyctl.log" 2>&1 ||
    { xf_log "prosodyctl register $2@$3 failed:"; tail -5 "$dir/prosodyctl.log" >&2; return 1; }
}

# xf_prosody_start DIR ADDR C2S S2S DOMAIN...  (writes the config; users: register first
# with xf_prosody_register after xf_prosody_config, or after start — both work)
xf_prosody_start() {
  local dir=$1 addr=$2 c2s=$3 s2s=$4
  [ -f "$dir/prosody.cfg.lua" ] || xf_prosody_config "$@" || return 1
  xf_as_prosody_init "$dir"
  "${XF_AS_PROSODY[@]}" prosody --config "$dir/prosody.cfg.lua" \
    >"$dir/prosody.stdout" 2>&1 &
  XF_PROSODY_PID=$!
  xf_track "$XF_PROSODY_PID"
  if ! xf_wait_port "$addr" "$c2s" 15 "$XF_PROSODY_PID" ||
     ! xf_wait_port "$addr" "$s2s" 5 "$XF_PROSODY_PID"; then
    xf_log "prosody did not start on $addr:$c2s/$s2s"
    tail -20 "$dir/prosody.stdout" "$dir/prosody.log" "$dir/prosody.err" >&2 2>/dev/null
    return 1
  fi
}

# ---------------------------------------------------------------------------- xmppfront
# xf_tenant_write TENANTS_DIR DOMAIN "alias1 alias2" CERTDIR C2S_BACKEND S2S_BACKEND [PP]
xf_tenant_write() {
  local dir=$1 domain=$2 aliases=$3 certdir=$4 c2s=$5 s2s=$6 pp=${7:-none}
  local a json=""
  for a in $aliases; do json="${json:+$json, }\"$a\""; done
  mkdir -p "$dir"
  cat > "$dir/$domain.json" <<EOF
{
  "domain": "$domain",
  "aliases": [$json],
  "certificate": "$certdir/fullchain.pem",
  "key": "$certdir/privkey.pem",
  "c2s_backend": "$c2s",
  "s2s_backend": "$s2s",
  "proxy_protocol": "$pp"
}
EOF
}

# xf_listener ADDR PORT starttls|direct client|server|auto -> one JSON object
xf_listener() {
  printf '{"address": "%s", "port": %s, "tls": "%s", "service": "%s"}' "$1" "$2" "$3" "$4"
}

# xf_config_write FILE TENANTS_DIR LISTENERS_JSON_ARRAY_BODY LIMITS_JSON_OBJECT_BODY
xf_config_write() {
  local file=$1 tdir=$2 listeners=$3 limits=$4
  cat > "$file" <<EOF
{
  "workers": ${XF_WORKERS:-2},
  "tenants": "$tdir",
  "listeners": [$listeners],
  "limits": {$limits}
}
EOF
}

# xf_proxy_start CFG LOG PORT... — starts the proxy in the background, waits for the ports.
xf_proxy_start() {
  local cfg=$1 log=$2 p; shift 2
  if [ ! -x "$XF_BIN" ]; then xf_log "no binary at $XF_BIN"; return 1; fi
  "$XF_BIN" -c "$cfg" 2>"$log" &
  XF_PROXY_PID=$!
  xf_track "$XF_PROXY_PID"
  for p in "$@"; do
    if ! xf_wait_port 127.0.0.1 "$p" 10 "$XF_PROXY_PID"; then
      xf_log "xmppfront did not listen on $p; its log:"
      tail -20 "$log" >&2
      return 1
    fi
  done
}

# ---------------------------------------------------------------------------- standard world
# Sets: XF_TMP, XF_CA, ports P_PC2S P_PS2S (prosody), P_C2S (starttls client),
# P_C2S_TLS (direct client), P_S2S (starttls server), P_S2S_TLS (direct server),
# P_AUTO (direct auto, "443"), XF_CFG, XF_LOG, XF_PROXY_PID, XF_PROSODY_PID.
# Users user1/pass1 and user2/pass2 on a.example and b.example.
# Knobs: XF_HANDSHAKE_TIMEOUT (30), XF_BACKEND_TIMEOUT (10), XF_MAX_HEADER (8192),
#        XF_DRAIN_TIMEOUT (unset = proxy default), XF_B_C2S_BACKEND (override b's c2s;
#        "dead" = a free port where nothing listens), XF_W_C2S_BACKEND (override w's c2s).
xf_setup_standard() {
  local name=${1:-test}
  xf_init "$name" || return 1
  XF_CA="$XF_TMP/pki/ca.pem"
  xf_make_test_pki "$XF_TMP" || return 1
  read -r P_PC2S P_PS2S P_C2S P_C2S_TLS P_S2S P_S2S_TLS P_AUTO P_DEAD < <(xf_free_ports 8)
  export P_PC2S P_PS2S P_C2S P_C2S_TLS P_S2S P_S2S_TLS P_AUTO P_DEAD XF_CA
  # XF_B_C2S_BACKEND=dead: b.example's c2s backend is a port where nothing listens
  [ "${XF_B_C2S_BACKEND:-}" = dead ] && XF_B_C2S_BACKEND="127.0.0.1:$P_DEAD"
  local pd="$XF_TMP/prosody"
  XF_PROSODY_TLS=${XF_PROSODY_TLS:-1} XF_PROSODY_CERTS="$XF_TMP/certs" xf_prosody_config "$pd" 127.0.0.1 "$P_PC2S" "$P_PS2S" a.example b.example || return 1
  local h
  for h in a.example b.example; do
    xf_prosody_register "$pd" user1 "$h" pass1 || return 1
    xf_prosody_register "$pd" user2 "$h" pass2 || return 1
  done
  xf_prosody_start "$pd" 127.0.0.1 "$P_PC2S" "$P_PS2S" || return 1

  local td="$XF_TMP/xf/tenants" c="$XF_TMP/certs"
  xf_tenant_write "$td" a.example "conference.a.example" "$c/a.example" \
    "127.0.0.1:$P_PC2S" "127.0.0.1:$P_PS2S"
  xf_tenant_write "$td" b.example "" "$c/b.example" \
    "${XF_B_C2S_BACKEND:-127.0.0.1:$P_PC2S}" "127.0.0.1:$P_PS2S"
  xf_tenant_write "$td" w.example "chat.w.example" "$c/w.example" \
    "${XF_W_C2S_BACKEND:-127.0.0.1:$P_PC2S}" "127.0.0.1:$P_PS2S"
  local L
  L="$(xf_listener 127.0.0.1 "$P_C2S" starttls client), $(xf_listener 127.0.0.1 "$P_C2S_TLS" direct client)"
  L="$L, $(xf_listener 127.0.0.1 "$P_S2S" starttls server), $(xf_listener 127.0.0.1 "$P_S2S_TLS" direct server)"
  L="$L, $(xf_listener 127.0.0.1 "$P_AUTO" direct auto)"
  local lim="\"handshake_timeout_s\": ${XF_HANDSHAKE_TIMEOUT:-30}, \"max_header_bytes\": ${XF_MAX_HEADER:-8192}, \"backend_timeout_s\": ${XF_BACKEND_TIMEOUT:-10}"
  [ -n "${XF_DRAIN_TIMEOUT:-}" ] && lim="$lim, \"drain_timeout_s\": $XF_DRAIN_TIMEOUT"
  # XF_EXTRA_LIMITS: more "key": value pairs for the limits object
  [ -n "${XF_EXTRA_LIMITS:-}" ] && lim="$lim, $XF_EXTRA_LIMITS"
  XF_CFG="$XF_TMP/xf/xmppfront.json"
  XF_LOG="$XF_TMP/xf/xmppfront.log"
  xf_config_write "$XF_CFG" tenants "$L" "$lim"
  xf_proxy_start "$XF_CFG" "$XF_LOG" "$P_C2S" "$P_C2S_TLS" "$P_S2S" "$P_S2S_TLS" "$P_AUTO"
}

# ---------------------------------------------------------------------------- checks
# xf_check "description" cmd args... — output of cmd goes to $XF_TMP/check.N.out,
# shown on failure.
xf_check() {
  local desc=$1; shift
  XF_CHECKS=$((XF_CHECKS + 1))
  local out="${XF_TMP:-/tmp}/check.$XF_CHECKS.out"
  if "$@" >"$out" 2>&1; then
    echo "  ok   - $desc"
    [ "${XF_VERBOSE:-0}" = 1 ] && sed 's/^/         /' "$out"
    return 0
  fi
  XF_FAILS=$((XF_FAILS + 1))
  echo "  FAIL - $desc"
  echo "         command: $*"
  sed 's/^/         | /' "$out" | tail -40
  return 1
}

xf_fail_now() { XF_CHECKS=$((XF_CHECKS + 1)); XF_FAILS=$((XF_FAILS + 1)); echo "  FAIL - $*"; }

# xf_log_has FILE WORD... — some line of FILE contains every WORD (e.g. tenant=a.example
# reason=). Prints the matching lines.
xf_log_has() {
  local f=$1; shift
  [ -f "$f" ] || { echo "no log file $f"; return 1; }
  awk 'BEGIN { n = ARGC - 1; for (i = 1; i < ARGC; i++) w[i] = ARGV[i]; ARGC = 1 }
       { ok = 1; for (i = 1; i <= n; i++) if (index($0, w[i]) == 0) { ok = 0; break } }
       ok { print; found = 1 }
       END { exit found ? 0 : 1 }' "$@" < "$f" || {
    echo "no line of $f has all of: $*"; echo "--- last lines:"; tail -15 "$f"; return 1; }
}

# xf_wait_log FILE SECONDS WORD... — like xf_log_has, waiting up to SECONDS for the line.
xf_wait_log() {
  local f=$1 secs=$2 i; shift 2
  for ((i = 0; i < secs * 10; i++)); do
    xf_log_has "$f" "$@" >/dev/null 2>&1 && break
    sleep 0.1
  done
  xf_log_has "$f" "$@"
}

# xf_reload_backend PORT SECONDS — the reload tests' echo backend (reload_load.py) on
# 127.0.0.1:PORT for at most SECONDS, tracked; returns once it listens.
xf_reload_backend() {
  timeout "$2" "$XF_PY" "$XF_IT_DIR/reload_load.py" backend "$1" >"$XF_TMP/backend.log" 2>&1 &
  xf_track $!
  xf_wait_port 127.0.0.1 "$1" 10
}

# xf_wait_reload N — $XF_LOG says SIGHUP reload N finished (done or refused), within 15 s.
xf_wait_reload() {
  local i
  for ((i = 0; i < 150; i++)); do
    grep -qE "reload $1 \(SIGHUP\) (done|refused)" "$XF_LOG" && return 0
    sleep 0.1
  done
  return 1
}

# xf_sni_refused PORT NAME — a TLS handshake on 127.0.0.1:PORT with SNI NAME gets the
# unrecognized_name alert (the name is not served).
xf_sni_refused() {
  timeout 10 openssl s_client -connect "127.0.0.1:$1" -servername "$2" -CAfile "$XF_CA" \
    </dev/null 2>&1 | grep -qiE 'unrecognized name|unrecognized_name|alert number 112'
}

# Prints the proxy log's tail (for failure reports).
xf_show_proxy_log() {
  [ -n "${XF_LOG:-}" ] && [ -f "$XF_LOG" ] || return 0
  echo "  --- xmppfront stderr (last ${1:-25} lines) ---"
  tail -"${1:-25}" "$XF_LOG" | sed 's/^/  | /'
}

# xf_finish NAME — prints the PASS/FAIL line, returns the exit code for the test.
xf_finish() {
  local name=$1
  if [ "$XF_FAILS" -eq 0 ] && [ "$XF_CHECKS" -gt 0 ]; then
    echo "PASS: $name ($XF_CHECKS checks)"
    return 0
  fi
  xf_show_proxy_log 30
  echo "FAIL: $name ($XF_FAILS of $XF_CHECKS checks failed)"
  return 1
}

# For a setup failure: report and exit.
xf_setup_failed() {
  echo "  FAIL - setup: $*"
  xf_show_proxy_log 30
  echo "FAIL: ${1:-setup}"
  exit 1
}

# xf_blackhole PORT — a TCP listener that accepts and never answers (tracked PID).
xf_blackhole() {
  timeout 600 "$XF_PY" -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(64)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
' "$1" &
  xf_track $!
  xf_wait_port 127.0.0.1 "$1" 5 $!
}

# Python helpers, always through Debian's python and bounded.
xf_client() { timeout "${XF_CLIENT_TIMEOUT:-40}" "$XF_PY" "$XF_IT_DIR/xmpp_client.py" "$@"; }
xf_peer() { timeout "${XF_PEER_TIMEOUT:-40}" "$XF_PY" "$XF_IT_DIR/raw_peer.py" "$@"; }

# ---------------------------------------------------------------------------- ejabberd (added)
# ejabberd (Debian 12: 23.01, 13: 24.12) as an isolated backend: its own config dir, spool and logs under
# DIR, run as user ejabberd in the foreground, no epmd (ERL_DIST_PORT: the node listens for
# ejabberdctl on a port of its own and "-start_epmd false"). /etc/ejabberd is not used.
#   xf_ejabberd_start DIR C2S_PORT DIST_PORT DOMAIN...   sets XF_EJABBERD_PID (beam.smp)
#   xf_ejabberd_register DIR USER HOST PASS
#   xf_ejabberd_stop                                     TERM beam, then its process group
XF_EJABBERD_PID=""
XF_EJABBERD_PGID=""
xf_ejabberd_ctl() {
  local dir=$1; shift
  local as=(env)
  [ "$(id -u)" -eq 0 ] && as=(setpriv --reuid=ejabberd --regid=ejabberd --init-groups -- env)
  (cd "$dir" && "${as[@]}" HOME="$dir" ejabberdctl --config-dir "$dir" --logs "$dir/log" \
    --spool "$dir/spool" "$@")
}
# xf_ejabberd_knows ATOM — the installed ejabberd's c2s module mentions ATOM (an option
# name) in its atom table: feature detection for listener options, no version compare.
xf_ejabberd_knows() {
  local beam
  beam=$(find /usr/lib /usr/local/lib /opt -path '*ejabberd*/ebin/ejabberd_c2s.beam' 2>/dev/null | head -1)
  [ -n "$beam" ] && grep -qa -- "$1" "$beam"
}
xf_ejabberd_start() {
  local dir=$1 c2s=$2 dist=$3 d hosts=""; shift 3
  command -v ejabberdctl >/dev/null || { xf_log "ejabberdctl not installed"; return 3; }
  for d in "$@"; do hosts="$hosts  - $d"$'\n'; done
  mkdir -p "$dir/log" "$dir/spool"
  # ejabberd >= 24.x (Debian 13: 24.12) sets up SCRAM channel binding state only on
  # encrypted streams unless allow_unencrypted_sasl2 is on; without it, a plaintext
  # stream answers the gs2 flag "y" ("client can bind, server did not offer -PLUS", RFC
  # 5802 §6) with "Invalid channel binding" (processone/ejabberd#4322). Behind a TLS
  # terminator every TLS-capable client sends "y". The option exists only where the
  # listener knows it (23.01 rejects unknown options), so ask the installed code.
  local extra_listen=""
  xf_ejabberd_knows allow_unencrypted_sasl2 && extra_listen="    allow_unencrypted_sasl2: true"
  cat > "$dir/ejabberd.yml" <<EOC
hosts:
$hosts
loglevel: info
log_rotate_count: 0
certfiles: []
listen:
  -
    port: $c2s
    ip: "127.0.0.1"
    module: ejabberd_c2s
    starttls: false
    starttls_required: false
    max_stanza_size: 1048576
$extra_listen
auth_method: internal
auth_password_format: plain
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
modules:
  mod_roster: {}
  mod_disco: {}
  mod_ping: {}
EOC
  cat > "$dir/ejabberdctl.cfg" <<EOC
ERLANG_NODE=xfit$$@localhost
ERL_DIST_PORT=$dist
INET_DIST_INTERFACE=127.0.0.1
EOC
  : > "$dir/inetrc"
  [ "$(id -u)" -eq 0 ] && chown -R ejabberd:ejabberd "$dir"
  # setsid: its own process group, so that stop can take every helper (erl_child_setup,
  # inet_gethost, memsup ...) with it; the PID of that group is the ejabberdctl shell.
  local as=(env)
  [ "$(id -u)" -eq 0 ] && as=(setpriv --reuid=ejabberd --regid=ejabberd --init-groups -- env)
  (cd "$dir" && exec setsid "${as[@]}" HOME="$dir" ejabberdctl --config-dir "$dir" \
     --logs "$dir/log" --spool "$dir/spool" foreground) >"$dir/stdout" 2>&1 &
  local wrapper=$!        # the ejabberdctl shell (setsid/setpriv/env exec), beam's parent
  xf_track "$wrapper"
  XF_EJABBERD_PGID=$(ps -o pgid= -p "$wrapper" | tr -d ' ')
  local i
  for ((i = 0; i < 300; i++)); do
    # (ejabberdctl first runs a short-lived erl to parse INET_DIST_INTERFACE: skip it)
    XF_EJABBERD_PID=$(pgrep -P "$wrapper" -f 'beam.smp.* -s ejabberd' 2>/dev/null | head -1)
    [ -n "$XF_EJABBERD_PID" ] && break
    kill -0 "$wrapper" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$XF_EJABBERD_PID" ]; then
    xf_log "ejabberd: no beam.smp process"; tail -20 "$dir/stdout" >&2; return 3
  fi
  xf_track "$XF_EJABBERD_PID"
  if ! xf_wait_port 127.0.0.1 "$c2s" 40 "$XF_EJABBERD_PID"; then
    xf_log "ejabberd did not listen on 127.0.0.1:$c2s"
    tail -20 "$dir/stdout" "$dir/log/error.log" >&2 2>/dev/null
    return 3
  fi
}
xf_ejabberd_register() {
  local dir=$1
  timeout 30 bash -c "$(declare -f xf_ejabberd_ctl); xf_ejabberd_ctl \"\$@\"" _ "$dir" \
    register "$2" "$3" "$4" >>"$dir/ctl.log" 2>&1 ||
    { xf_log "ejabberdctl register $2@$3 failed:"; tail -5 "$dir/ctl.log" >&2; return 1; }
}
xf_ejabberd_stop() {
  [ -n "$XF_EJABBERD_PID" ] && xf_stop_pid "$XF_EJABBERD_PID" 10
  # whatever is left in the process group setsid made for our ejabberdctl (never ours)
  local g=$XF_EJABBERD_PGID i
  [ -n "$g" ] && [ "$g" != "$(ps -o pgid= -p $$ | tr -d ' ')" ] || return 0
  kill -TERM -- "-$g" 2>/dev/null || return 0
  for ((i = 0; i < 30; i++)); do
    pgrep -g "$g" >/dev/null 2>&1 || return 0
    sleep 0.1
  done
  kill -KILL -- "-$g" 2>/dev/null
  return 0
}

# ---------------------------------------------------------------------------- haproxy (added)
# xf_haproxy_start CFG LOG PORT — HAProxy in the foreground (-db: no daemon, no master),
# its stdout/stderr (use "log stdout format raw local0" in CFG) to LOG; tracked PID in
# XF_HAPROXY_PID; waits for PORT on 127.0.0.1.
XF_HAPROXY_PID=""
xf_haproxy_start() {
  local cfg=$1 log=$2 port=$3
  command -v haproxy >/dev/null || { xf_log "haproxy not installed"; return 1; }
  haproxy -c -q -f "$cfg" >"$log.check" 2>&1 || { xf_log "haproxy config invalid:"; cat "$log.check" >&2; return 1; }
  haproxy -db -f "$cfg" >"$log" 2>&1 &
  XF_HAPROXY_PID=$!
  xf_track "$XF_HAPROXY_PID"
  xf_wait_port 127.0.0.1 "$port" 10 "$XF_HAPROXY_PID" ||
    { xf_log "haproxy did not listen on $port"; tail -20 "$log" >&2; return 1; }
}

# forge_key KEY: KEY with its last hex digit changed, so it never equals KEY (a
# forged dialback key for tests that expect type='invalid').
forge_key() {
  local k=$1 last=${1: -1}
  if [ "$last" = 0 ]; then printf '%s1' "${k%?}"; else printf '%s0' "${k%?}"; fi
}
