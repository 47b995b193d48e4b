#!/usr/bin/env bash
# c2s end to end: complete logins per second of a stock Prosody (Debian's) terminating TLS
# itself vs the same Prosody behind xmppfront (2 workers), same client load, one run.
# Also STARTTLS (and direct TLS) handshakes per CPU-second, native Prosody vs xmppfront.
# See tests/bench/README.md ("c2s logins"). Not part of CI pass/fail: it prints figures.
#
#   tests/bench/bench_c2s.sh                 # ~2 min
#   SECS=5 tests/bench/bench_c2s.sh          # quicker
#
# World (loopback only, no DNS: c2s needs none): one Prosody as user prosody from a temp
# dir (own config, data, pid, log; `env -u NOTIFY_SOCKET`), with a test domain a.example
# and its own EC P-256 certificate, offering STARTTLS on its c2s port and direct TLS
# (XEP-0368, c2s_direct_tls_ports) on another; c2s_require_encryption = false so that the
# same plaintext c2s port is xmppfront's backend (SCRAM is allowed on it; PLAIN is not).
# xmppfront: a STARTTLS and a direct-TLS client listener, tenant a.example -> Prosody's c2s
# port. NUSERS accounts are written straight into Prosody's internal_hashed store
# (SCRAM-SHA-1 StoredKey/ServerKey, ITER iterations; Prosody 0.12's default is 10000).
# Pinning (2 CPUs): Prosody and xmppfront on CPU SERVER_CPU (0), the client on CLIENT_CPU
# (1). Every loop is bounded in count and time; only PIDs started here are signalled.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH="$ROOT/tests/bench"
XF_BIN=${XF_BIN:-$ROOT/build-bench/xmppfront}
WORKERS=${WORKERS:-2}
CONC=${CONC:-20}            # concurrent client threads
SECS=${SECS:-10}            # per cell (phase x peer), split into ROUNDS slices
ROUNDS=${ROUNDS:-5}         # native and xmppfront alternate slice by slice
MAXCOUNT=${MAXCOUNT:-200000}
NUSERS=${NUSERS:-300}
ITER=${ITER:-10000}         # SCRAM iteration count stored for the accounts
AUTH=${AUTH:-internal_hashed}   # internal_plain: Prosody runs PBKDF2 (10000) on every login
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PERF=${PERF:-0}             # 1: perf record Prosody in each phase it works in (adds some load)
PASS=bench-pass-1
DOMAIN=a.example
PY=/usr/bin/python3
HZ=$(getconf CLK_TCK)

. "$BENCH/lib.sh"

# ------------------------------------------------------------------ lifecycle
bench_begin xfbench-c2s
chmod 755 "$TMP"                    # prosody must traverse it

# ------------------------------------------------------------------ prerequisites
command -v prosody >/dev/null || die "prosody missing: apt-get install prosody"
command -v openssl >/dev/null || die "openssl missing"
command -v cc >/dev/null || die "cc missing"
command -v taskset >/dev/null || die "taskset missing (util-linux)"
# (prosody --version would start a server in 0.12: ask dpkg)
PROSODY_VER=$(dpkg-query -W -f '${Version}' prosody 2>/dev/null || echo unknown)
if [ ! -x "$XF_BIN" ]; then
  log "building xmppfront (RelWithDebInfo) in build-bench"
  cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$ROOT/build-bench" -j2 --target xmppfront >/dev/null
fi
cc -O2 -Wall -o "$TMP/loginc" "$BENCH/loginc.c" -lssl -lcrypto -lpthread || die "building loginc"
ulimit -n 20000 2>/dev/null || true
[ "$NUSERS" -ge "$CONC" ] || die "NUSERS ($NUSERS) must be >= CONC ($CONC)"

# ------------------------------------------------------------------ world
read -r P_PC2S P_PTLS P_XS P_XD < <($PY - <<'EOF'
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
EOF
)

C="$TMP/certs"; PD="$TMP/prosody"
mkdir -p "$C" "$PD/certs" "$PD/data" "$TMP/xf/tenants"
bench_make_cert "$C" "$DOMAIN" a
# The same certificate and key for both servers.
cp "$C/a.pem" "$PD/certs/$DOMAIN.crt"
cp "$C/a.key" "$PD/certs/$DOMAIN.key"

# Prosody: log at warn (like xmppfront below: no line per connection), no s2s/http.
cat >"$PD/prosody.cfg.lua" <<EOF
pidfile = "$PD/prosody.pid"
data_path = "$PD/data"
log = { warn = "$PD/prosody.log" }
interfaces = { "127.0.0.1" }
c2s_interfaces = { "127.0.0.1" }
c2s_ports = { $P_PC2S }
c2s_direct_tls_ports = { $P_PTLS }
s2s_ports = { }
s2s_direct_tls_ports = { }
http_ports = { }
https_ports = { }
component_ports = { }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; }
modules_disabled = { "s2s"; "dialback"; }
certificates = "$PD/certs"
authentication = "$AUTH"
storage = "internal"
default_iteration_count = $ITER
c2s_require_encryption = false
allow_unencrypted_plain_auth = false
allow_registration = false
VirtualHost "$DOMAIN"
EOF

# Accounts written straight into the internal store (prosodyctl register costs ~0.3 s of
# Lua start-up per user): data/<host, %-encoded>/accounts/<user>.dat.
log "writing $NUSERS accounts ($AUTH, $ITER iterations)"
# The client's SaltedPassword cache (what a client that logged in before holds) goes to
# $TMP/keys for loginc (LOGINC_KEYS); with internal_plain Prosody salts every login anew,
# so the client derives it every time.
$PY - "$PD/data" "$DOMAIN" "$NUSERS" "$PASS" "$ITER" "$AUTH" "$TMP/keys" <<'EOF'
import base64, hashlib, hmac, os, sys, secrets
data, host, n, pw, it, auth = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode(), int(sys.argv[5]), sys.argv[6]
keys = open(sys.argv[7], "w")
enc = "".join(c if c.isalnum() else "%%%02x" % ord(c) for c in host)
d = os.path.join(data, enc, "accounts")
os.makedirs(d, exist_ok=True)
for i in range(n):
    with open(os.path.join(d, "u%d.dat" % i), "w") as f:
        if auth == "internal_plain":
            f.write('return {\n\t["password"] = "%s";\n};\n' % pw.decode())
            continue
        salt = secrets.token_hex(16)          # Lua string, no escaping needed
        sp = hashlib.pbkdf2_hmac("sha1", pw, salt.encode(), it)
        ck = hmac.new(sp, b"Client Key", "sha1").digest()
        sk = hmac.new(sp, b"Server Key", "sha1").digest()
        f.write('return {\n\t["iteration_count"] = %d;\n\t["salt"] = "%s";\n'
                '\t["server_key"] = "%s";\n\t["stored_key"] = "%s";\n};\n'
                % (it, salt, sk.hex(), hashlib.sha1(ck).hexdigest()))
        keys.write("%d %s %d %s\n" % (i, base64.b64encode(salt.encode()).decode(), it, sp.hex()))
keys.close()
EOF
[ "$(id -u)" -eq 0 ] && chown -R prosody:prosody "$PD"

cat >"$TMP/xf/tenants/$DOMAIN.json" <<EOF
{ "domain": "$DOMAIN", "certificate": "../../certs/a.pem", "key": "../../certs/a.key",
  "c2s_backend": "127.0.0.1:$P_PC2S" }
EOF
cat >"$TMP/xf/main.json" <<EOF
{ "workers": $WORKERS, "tenants": "tenants", "log_level": "warn", "admin": false,
  "listeners": [ { "address": "127.0.0.1", "port": $P_XS, "tls": "starttls", "service": "client" },
                 { "address": "127.0.0.1", "port": $P_XD, "tls": "direct", "service": "client" } ],
  "limits": { "max_connections": 100000, "handshake_timeout_s": 30,
              "max_connections_per_ip": 0, "max_unauthenticated_per_ip": 0 } }
EOF

wait_port() {
  local port=$1 pid=$2 i
  for ((i = 0; i < 150; i++)); do
    ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && return 0
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

AS_PROSODY=(env -u NOTIFY_SOCKET HOME="$PD")
[ "$(id -u)" -eq 0 ] && AS_PROSODY=(setpriv --reuid=prosody --regid=prosody --init-groups -- env -u NOTIFY_SOCKET HOME="$PD")
# taskset, setpriv and env all exec: $! is prosody's own PID.
taskset -c "$SERVER_CPU" "${AS_PROSODY[@]}" prosody --config "$PD/prosody.cfg.lua" >"$PD/stdout" 2>&1 &
PR_PID=$!
PIDS+=("$PR_PID")
wait_port "$P_PC2S" "$PR_PID" && wait_port "$P_PTLS" "$PR_PID" ||
  { tail -20 "$PD/stdout" "$PD/prosody.log" >&2 2>/dev/null; die "prosody did not start"; }

"$XF_BIN" --check-config -c "$TMP/xf/main.json" >/dev/null 2>&1 ||
  { "$XF_BIN" --check-config -c "$TMP/xf/main.json"; die "xmppfront config refused"; }
taskset -c "$SERVER_CPU" "$XF_BIN" -c "$TMP/xf/main.json" 2>"$TMP/xf/xmppfront.log" &
XF_PID=$!
PIDS+=("$XF_PID")
wait_port "$P_XS" "$XF_PID" && wait_port "$P_XD" "$XF_PID" ||
  { cat "$TMP/xf/xmppfront.log" >&2; die "xmppfront did not start"; }
sleep 0.5

cpu_ticks() {
  local f
  f=$(cut -d')' -f2- "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
  set -- $f
  echo $((${12} + ${13}))
}
kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }
secs() { awk -v t="$1" -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }'; }

declare -A R TLSPART  # R[peer.phase.tls.metric], summed over the rounds
SLICE=$(awk -v s="$SECS" -v r="$ROUNDS" 'BEGIN { printf "%.2f", s / r }')
# run_slice PEER(native|xf) PHASE(hs|login) TLS(starttls|direct): one SLICE of load,
# added to the cell's totals (ok, errors, seconds, CPU ticks, client CPU, samples file).
run_slice() {
  local peer=$1 ph=$2 tls=$3 port k="$1.$2.$3" line p0 x0 perfpid="" v
  if [ "$peer" = native ]; then
    if [ "$tls" = starttls ]; then port=$P_PC2S; else port=$P_PTLS; fi
  else
    if [ "$tls" = starttls ]; then port=$P_XS; else port=$P_XD; fi
  fi
  if [ "$PERF" = 1 ] && [ "$k" != xf.hs.starttls ] && [ "$k" != xf.hs.direct ] &&
     [ ! -f "$TMP/perf.$k.data" ] && command -v perf >/dev/null; then
    perf record -o "$TMP/perf.$k.data" -p "$PR_PID" -- sleep "$SLICE" >/dev/null 2>&1 &
    perfpid=$!
    PIDS+=("$perfpid")
  fi
  p0=$(cpu_ticks "$PR_PID"); x0=$(cpu_ticks "$XF_PID")
  if [ "$ph" = login ]; then
    line=$(LOGINC_KEYS=$TMP/keys LOGINC_SAMPLES=$TMP/samples.$k timeout $((SECS + 60)) \
           taskset -c "$CLIENT_CPU" "$TMP/loginc" login 127.0.0.1 "$port" \
           "$DOMAIN" "$tls" "$CONC" "$SLICE" "$NUSERS" "$PASS" "$MAXCOUNT") || true
  else
    line=$(LOGINC_SAMPLES=$TMP/samples.$k timeout $((SECS + 60)) \
           taskset -c "$CLIENT_CPU" "$TMP/loginc" hs 127.0.0.1 "$port" \
           "$DOMAIN" "$tls" "$CONC" "$SLICE" "$MAXCOUNT") || true
  fi
  R[$k.tpr]=$(( ${R[$k.tpr]:-0} + $(cpu_ticks "$PR_PID") - p0 ))
  R[$k.txf]=$(( ${R[$k.txf]:-0} + $(cpu_ticks "$XF_PID") - x0 ))
  [ -z "$perfpid" ] || stop_pid "$perfpid"
  R[$k.ok]=$(( ${R[$k.ok]:-0} + $(v=$(kv ok "$line"); echo "${v:-0}") ))
  R[$k.err]=$(( ${R[$k.err]:-0} + $(v=$(kv errors "$line"); echo "${v:-0}") ))
  R[$k.secs]=$(awk -v a="${R[$k.secs]:-0}" -v b="$(kv secs "$line")" 'BEGIN { printf "%.2f", a + b }')
  R[$k.cpu_cl]=$(awk -v a="${R[$k.cpu_cl]:-0}" -v b="$(kv client_cpu_s "$line")" 'BEGIN { printf "%.2f", a + b }')
  v=$(kv mech "$line"); [ -z "$v" ] || [ "$v" = - ] || R[$k.mech]=$v
  [ -n "$line" ] || R[$k.err]=$(( ${R[$k.err]:-0} + 1 ))     # loginc itself failed
  log "$k: $line"
}
# finish_cell KEY: rate, percentiles over all rounds' samples, CPU seconds.
finish_cell() {
  local k=$1 f="$TMP/samples.$1" n
  R[$k.rate]=$(awk -v a="${R[$k.ok]:-0}" -v s="${R[$k.secs]:-0}" 'BEGIN { if (s > 0) printf "%.1f", a / s }')
  R[$k.cpu_pr]=$(secs "${R[$k.tpr]:-0}"); R[$k.cpu_xf]=$(secs "${R[$k.txf]:-0}")
  if [ -s "$f" ]; then
    n=$(wc -l <"$f")
    sort -n "$f" -o "$f.sorted"     # (a pipe into an awk that exits early: SIGPIPE + pipefail)
    R[$k.p50]=$(awk -v n="$n" 'NR == int(0.50 * (n - 1) + 1.5) { printf "%.1f", $1 }' "$f.sorted")
    R[$k.p99]=$(awk -v n="$n" 'NR == int(0.99 * (n - 1) + 1.5) { printf "%.1f", $1 }' "$f.sorted")
  fi
}

log "prosody $PROSODY_VER pid $PR_PID (c2s $P_PC2S, direct TLS $P_PTLS) | xmppfront pid $XF_PID (starttls $P_XS, direct $P_XD) | server CPU $SERVER_CPU, client CPU $CLIENT_CPU, $CONC clients, ${SECS}s per cell in $ROUNDS interleaved rounds"
LOAD0=$(cut -d" " -f1-3 /proc/loadavg)
T0=$(date +%s)
# a short warm-up: Prosody loads the roster store etc. on first use
LOGINC_KEYS=$TMP/keys timeout 30 taskset -c "$CLIENT_CPU" "$TMP/loginc" login 127.0.0.1 "$P_XS" "$DOMAIN" starttls \
  "$CONC" 2 "$NUSERS" "$PASS" "$NUSERS" >/dev/null || true
# The peers alternate slice by slice, so that both see the same (shared, noisy) machine.
for ph in hs login; do
  for tls in starttls direct; do
    for ((r = 0; r < ROUNDS; r++)); do
      for peer in native xf; do run_slice "$peer" "$ph" "$tls"; done
    done
    for peer in native xf; do finish_cell "$peer.$ph.$tls"; done
  done
done
for p in "$PR_PID" "$XF_PID"; do kill -0 "$p" 2>/dev/null || log "WARNING: pid $p exited during the run"; done

# ------------------------------------------------------------------ report
div() { awk -v a="$1" -v b="$2" -v m="${3:-1}" 'BEGIN { if (a != "" && b != "" && b + 0 > 0) printf "%.3f", a * m / b; else print "-" }'; }
add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a + b }'; }
row() { printf '| %-50s | %11s | %11s | %7s |\n' "$1" "${2:--}" "${3:--}" "$(div "${3:-}" "${2:-}")"; }

echo
echo "c2s: Prosody $PROSODY_VER native TLS vs behind xmppfront ($WORKERS workers), $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo -)"
echo "TLS 1.3 TLS_AES_256_GCM_SHA384 X25519, EC P-256 cert; $AUTH, $ITER iterations, mechanism ${R[native.login.starttls.mech]:-?}; $CONC clients on CPU $CLIENT_CPU, servers on CPU $SERVER_CPU; ${SECS}s per cell in $ROUNDS alternating slices"
echo "load average before/after: $LOAD0 / $(cut -d' ' -f1-3 /proc/loadavg)"
echo
printf '| %-50s | %11s | %11s | %7s |\n' "metric" "Prosody TLS" "xmppfront" "xf/Pros"
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..52})" "$(printf -- '-%.0s' {1..13})" "$(printf -- '-%.0s' {1..13})" "$(printf -- '-%.0s' {1..9})"
for tls in starttls direct; do
  n=native.hs.$tls x=xf.hs.$tls
  row "$tls handshakes/s (no SASL)" "${R[$n.rate]:-}" "${R[$x.rate]:-}"
  row "  failed" "${R[$n.err]:-}" "${R[$x.err]:-}"
  row "  TLS-terminator CPU ms per handshake" "$(div "${R[$n.cpu_pr]:-}" "${R[$n.ok]:-}" 1000)" "$(div "${R[$x.cpu_xf]:-}" "${R[$x.ok]:-}" 1000)"
  row "  handshakes per terminator CPU-second" "$(div "${R[$n.ok]:-}" "${R[$n.cpu_pr]:-}")" "$(div "${R[$x.ok]:-}" "${R[$x.cpu_xf]:-}")"
  row "  client CPU ms per handshake" "$(div "${R[$n.cpu_cl]:-}" "${R[$n.ok]:-}" 1000)" "$(div "${R[$x.cpu_cl]:-}" "${R[$x.ok]:-}" 1000)"
done
for tls in starttls direct; do
  n=native.login.$tls x=xf.login.$tls
  row "$tls logins/s (TLS, SCRAM, bind, close)" "${R[$n.rate]:-}" "${R[$x.rate]:-}"
  row "  failed" "${R[$n.err]:-}" "${R[$x.err]:-}"
  row "  login time p50 (ms, connect -> bind result)" "${R[$n.p50]:-}" "${R[$x.p50]:-}"
  row "  login time p99 (ms)" "${R[$n.p99]:-}" "${R[$x.p99]:-}"
  row "  Prosody CPU ms per login" "$(div "${R[$n.cpu_pr]:-}" "${R[$n.ok]:-}" 1000)" "$(div "${R[$x.cpu_pr]:-}" "${R[$x.ok]:-}" 1000)"
  row "  xmppfront CPU ms per login" "-" "$(div "${R[$x.cpu_xf]:-}" "${R[$x.ok]:-}" 1000)"
  row "  server CPU ms per login (Prosody + xmppfront)" "$(div "${R[$n.cpu_pr]:-}" "${R[$n.ok]:-}" 1000)" \
      "$(div "$(add "${R[$x.cpu_pr]:-0}" "${R[$x.cpu_xf]:-0}")" "${R[$x.ok]:-}" 1000)"
  row "  client CPU ms per login" "$(div "${R[$n.cpu_cl]:-}" "${R[$n.ok]:-}" 1000)" "$(div "${R[$x.cpu_cl]:-}" "${R[$x.ok]:-}" 1000)"
  row "  logins per Prosody CPU-second" "$(div "${R[$n.ok]:-}" "${R[$n.cpu_pr]:-}")" "$(div "${R[$x.ok]:-}" "${R[$x.cpu_pr]:-}")"
  TLSPART[$tls]=$(awk -v a="$(div "${R[$n.cpu_pr]:-}" "${R[$n.ok]:-}" 1000)" -v b="$(div "${R[$x.cpu_pr]:-}" "${R[$x.ok]:-}" 1000)" \
    'BEGIN { if (a != "-" && b != "-") printf "%.2f", a - b; else print "-" }')
done
echo
for tls in starttls direct; do
  echo "$tls: Prosody's own TLS (and STARTTLS) work per login = native minus behind-xmppfront Prosody CPU: ${TLSPART[$tls]} ms"
done
echo
nw=$(grep -c . "$TMP/xf/xmppfront.log" 2>/dev/null || true)
[ "${nw:-0}" -eq 0 ] || { echo "xmppfront log (warn and above), $nw lines, first 5:"; head -5 "$TMP/xf/xmppfront.log"; }
nw=$(grep -c . "$PD/prosody.log" 2>/dev/null || true)
[ "${nw:-0}" -eq 0 ] || { echo "prosody log (warn and above), $nw lines, first 5:"; head -5 "$PD/prosody.log"; }
for f in "$TMP"/perf.*.data; do
  [ -f "$f" ] || continue
  k=${f#"$TMP/perf."}; k=${k%.data}
  echo "Prosody profile by shared object during $k (perf record -p, its first ${SLICE}s slice):"
  perf report -i "$f" --sort dso --stdio 2>/dev/null | grep -v '^#' | grep . | head -7
done
log "phases took $(($(date +%s) - T0)) s"
