#!/usr/bin/env bash
# Reload benchmark (issue 9 "Reload"; docs/reload.md, tests/bench/README.md):
# N tenants (default 10,000), each with its own ECDSA P-256 certificate from one CA in
# its own certbot-like directory (generated once by gen_tenants.py, cached under
# /tmp/xf-bench-reload-N). Prints: start-up load time (exec -> listening) and RSS;
# reload time (the proxy's own "done in X ms") and RSS after each of RELOADS reloads;
# and a reload under load: STREAMS relaying streams plus new connections opening
# continuously during RELOADS_UNDER_LOAD reloads, which must drop no connection (the
# streams never authenticate: limits.auth_timeout_s is raised to 3600 for them).
# Then one tenant's certificate is renewed (a new key and certificate renamed over its
# files, as certbot does) and the reload that follows is timed: it must report that
# renewal (parsed again), the other N-1 pairs being reused from the snapshot in service.
# Not a pass/fail test of CI; exit 1 only when a connection failed or a reload did.
#   tests/bench/bench_reload.sh            N=1000 tests/bench/bench_reload.sh
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
XF_BIN=${XF_BIN:-$ROOT/build/xmppfront}
N=${N:-10000}
RELOADS=${RELOADS:-3}
RELOADS_UNDER_LOAD=${RELOADS_UNDER_LOAD:-3}
STREAMS=${STREAMS:-50}
WORKERS=${WORKERS:-2}
PY=/usr/bin/python3
CACHE=${CACHE:-/tmp/xf-bench-reload-$N}
IT="$ROOT/tests/integration"

. "$ROOT/tests/bench/lib.sh"
bench_begin xfbench-reload
[ -x "$XF_BIN" ] || { log "no binary at $XF_BIN (build first or set XF_BIN)"; exit 2; }

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
free_ports() {
  "$PY" -c 'import socket,sys
s=[socket.socket() for _ in range(int(sys.argv[1]))]
[x.bind(("127.0.0.1",0)) for x in s]; print(" ".join(str(x.getsockname()[1]) for x in s))' "$1"
}
wait_port() {
  local i
  for ((i = 0; i < ${2:-600} * 10; i++)); do
    ss -Hltn "sport = :$1" | grep -q . && return 0
    sleep 0.1
  done
  return 1
}

t0=$(date +%s.%N)
"$PY" "$ROOT/tests/bench/gen_tenants.py" certs "$CACHE" "$N" || exit 2
log "tenant certificates: $CACHE ($N, $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s, cached)"
read -r P_TLS P_BACK < <(free_ports 2)
"$PY" "$IT/reload_load.py" backend "$P_BACK" >"$TMP/backend.log" 2>&1 &
PIDS+=($!)
wait_port "$P_BACK" 10 || { log "backend did not start"; exit 2; }
"$PY" "$ROOT/tests/bench/gen_tenants.py" tenants "$CACHE" "$N" "127.0.0.1:$P_BACK" "$TMP/tenants"
# The last tenant's files are copied out of the shared cache: the renewal step replaces them.
RENEW_DOM=$(printf 't%05d.example' "$N")
mkdir -p "$TMP/renew"
cp "$CACHE/certs/$RENEW_DOM/fullchain.pem" "$CACHE/certs/$RENEW_DOM/privkey.pem" "$TMP/renew/"
printf '{"domain": "%s", "certificate": "%s/fullchain.pem", "key": "%s/privkey.pem", "c2s_backend": "127.0.0.1:%s"}\n' \
  "$RENEW_DOM" "$TMP/renew" "$TMP/renew" "$P_BACK" >"$TMP/tenants/$RENEW_DOM.json"
cat >"$TMP/xmppfront.json" <<EOF
{"workers": $WORKERS, "tenants": "tenants", "log_level": "info",
 "limits": {"max_connections_per_ip": 0, "auth_timeout_s": 3600},
 "listeners": [{"address": "127.0.0.1", "port": $P_TLS, "tls": "direct", "service": "client"}]}
EOF
ulimit -n 65536 2>/dev/null || true
XLOG="$TMP/xmppfront.log"
t0=$(date +%s.%N)
"$XF_BIN" -c "$TMP/xmppfront.json" 2>"$XLOG" &
XPID=$!
PIDS+=("$XPID")
wait_port "$P_TLS" 600 || { log "xmppfront did not listen"; tail "$XLOG"; exit 2; }
LOAD_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')
sleep 1
RSS0=$(rss_kb "$XPID")
INOTIFY=$(ls -l /proc/"$XPID"/fd 2>/dev/null | grep -c inotify)
echo "tenants: $N    workers: $WORKERS    inotify instances: $INOTIFY"
echo "load (exec -> listening): ${LOAD_S} s    RSS after load: $((RSS0 / 1024)) MiB"

# wait_reload K: the K-th reload finished; prints its "done in X ms" figure.
wait_reload() {
  local i
  for ((i = 0; i < 3000; i++)); do
    if grep -qE "reload $1 \(SIGHUP[^)]*\) refused" "$XLOG"; then echo refused; return 1; fi
    local ms; ms=$(sed -n "s/.*reload $1 (SIGHUP[^)]*) done in \([0-9.]*\) ms.*/\1/p" "$XLOG")
    [ -n "$ms" ] && { echo "$ms"; return 0; }
    sleep 0.1
  done
  echo timeout; return 1
}
# parsed_of K: "N" from reload K's "N certificate pairs parsed", or "all" (no reuse).
parsed_of() {
  local p; p=$(sed -n "s/.*reload $1 ([^)]*) done in .* \([0-9]*\) certificate pairs parsed.*/\1/p" "$XLOG")
  echo "${p:-all}"
}
k=0 fail=0
for ((r = 1; r <= RELOADS; r++)); do
  k=$((k + 1))
  kill -HUP "$XPID"
  ms=$(wait_reload "$k") || fail=1
  sleep 3                       # the workers drop the old snapshot; the trim follows 2 s later
  echo "reload $k (idle, nothing changed): ${ms} ms    pairs parsed: $(parsed_of "$k")    RSS after: $(($(rss_kb "$XPID") / 1024)) MiB    peak RSS so far: $(($(hwm_kb "$XPID") / 1024)) MiB"
done

# Coalescing: SIGHUPs that arrive while a reload runs make exactly one more reload
# (judged when the first one lasts longer than the 0.1 s the signals take).
kill -HUP "$XPID"; sleep 0.05; kill -HUP "$XPID"; sleep 0.05; kill -HUP "$XPID"
k=$((k + 1)); ms1=$(wait_reload "$k") || fail=1
k=$((k + 1)); ms2=$(wait_reload "$k") || fail=1
sleep 3
if awk -v m="$ms1" 'BEGIN { exit !(m < 200) }'; then
  grep -qE "reload $((k + 1)) \(" "$XLOG" && k=$((k + 1))
  echo "coalescing: not judged (a reload of ${ms1} ms is shorter than the signals' spacing)"
elif grep -qE "reload $((k + 1)) \(" "$XLOG"; then
  echo "coalescing: 3 SIGHUPs during a reload made more than 2 reloads"; fail=1; k=$((k + 1))
else
  echo "coalescing: 3 SIGHUPs within 0.1 s -> 2 reloads (${ms1} ms, then ${ms2} ms)"
fi

# One certificate renewed (new files renamed over the old ones, as certbot does): the
# file watcher starts the reload by itself; only that pair is parsed again.
"$PY" "$ROOT/tests/bench/gen_tenants.py" renew "$TMP/renew/fullchain.pem" "$TMP/renew/privkey.pem" "$RENEW_DOM"
rk=""
for ((i = 0; i < 3000; i++)); do
  rk=$(sed -n "s/.*reload \([0-9]*\): certificate renewed for tenant $RENEW_DOM.*/\1/p" "$XLOG" | head -1)
  [ -n "$rk" ] && grep -qE "reload $rk \([^)]*\) done in" "$XLOG" && break
  sleep 0.1
done
if [ -n "$rk" ]; then
  line=$(grep -E "reload $rk \([^)]*\) done in" "$XLOG" | head -1)
  ms=$(sed -n 's/.* done in \([0-9.]*\) ms.*/\1/p' <<<"$line")
  parsed=$(sed -n 's/.* \([0-9]*\) certificate pairs parsed.*/\1/p' <<<"$line")
  echo "reload $rk (watcher, 1 certificate renewed, $RENEW_DOM): ${ms} ms    pairs parsed: ${parsed:-all (no reuse)}    RSS after: $(($(rss_kb "$XPID") / 1024)) MiB"
else
  echo "1 certificate renewed: no reload reported the renewal of $RENEW_DOM"; fail=1
fi
sleep 3
# Reloads the watcher made (one, or two when it saw the files apart) count for k.
k=$(sed -n 's/.*reload \([0-9]*\) ([^)]*) \(done in\|refused\).*/\1/p' "$XLOG" | sort -n | tail -1)
grep -qE "reload [0-9]+ \(file change[^)]*\) refused" "$XLOG" && echo "(a watcher reload was refused: it saw the new key before the new certificate)"

mkdir -p "$TMP/ctl"
timeout 600 "$PY" "$IT/reload_load.py" load --port "$P_TLS" --ca "$CACHE/pki/ca.pem" \
  --sni t00001.example --streams "$STREAMS" --churn 3 --control "$TMP/ctl" >"$TMP/load.out" 2>&1 &
LPID=$!
PIDS+=("$LPID")
for ((i = 0; i < 600; i++)); do [ -f "$TMP/ctl/ready" ] && break; kill -0 "$LPID" 2>/dev/null || break; sleep 0.1; done
[ -f "$TMP/ctl/ready" ] || { log "load did not start"; cat "$TMP/load.out"; exit 1; }
for ((r = 1; r <= RELOADS_UNDER_LOAD; r++)); do
  k=$((k + 1))
  kill -HUP "$XPID"
  ms=$(wait_reload "$k") || fail=1
  echo "reload $k (under load: $STREAMS streams + 3 clients connecting): ${ms} ms    RSS after: $(($(rss_kb "$XPID") / 1024)) MiB"
  sleep 1
done
touch "$TMP/ctl/stop"
wait "$LPID"; lrc=$?
echo "load during the reloads: $(cat "$TMP/load.out" | head -1)"
[ $lrc = 0 ] || { fail=1; sed -n '2,6p' "$TMP/load.out"; }
sleep 2
echo "RSS at the end: $(($(rss_kb "$XPID") / 1024)) MiB    peak: $(($(hwm_kb "$XPID") / 1024)) MiB"
[ $fail = 0 ] && echo "bench_reload: no failed connection, no failed reload" || echo "bench_reload: FAILURES (see above)"
exit $fail
