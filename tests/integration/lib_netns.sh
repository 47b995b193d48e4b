# shellcheck shell=bash
# Network-namespace helpers for integration tests that need addresses, packet loss or
# many connections of their own (source after lib.sh; not a test itself):
#
#   xf_netns_init NAME          xf_init NAME + a fresh namespace $XF_NS (lo up), removed
#                               with its firewall rules on exit, by name
#   xf_ns CMD...                run CMD inside $XF_NS
#   xf_ns_tenant_world          PKI + tenant a.example (backends: dead ports) under $XF_TMP
#   xf_ns_proxy_start CFG LOG PORT...   xmppfront inside $XF_NS (tracked PID), waits for PORTs
#   xf_ns_proxy_stop            SIGTERM, wait (bounded); the log then ends with its counters
#   xf_counter LOG NAME         a counter from the proxy's "stopped; counters:" line
#   xf_counter_is LOG NAME WANT  ... equals WANT (prints the line)
#
# The machine's own interfaces, routes, firewall and resolver are never touched.

XF_NS=""

xf_netns_cleanup() {
  if [ -n "$XF_NS" ]; then
    ip netns exec "$XF_NS" nft flush ruleset 2>/dev/null
    ip netns del "$XF_NS" 2>/dev/null
  fi
}

xf_netns_init() {
  xf_init "$1" || return 1
  XF_NS="xfit-$1-$$"
  ip netns add "$XF_NS" || { XF_NS=""; xf_log "cannot create a network namespace"; return 1; }
  # lib.sh's cleanup stops our PIDs and exits with the test's status; drop the
  # namespace first (processes still inside keep it alive until they are stopped).
  trap 'xf_rc=$?; xf_netns_cleanup; (exit $xf_rc); xf_cleanup' EXIT
  ip netns exec "$XF_NS" ip link set lo up
}

xf_ns() { ip netns exec "$XF_NS" "$@"; }

xf_ns_listening() { xf_ns ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

xf_ns_tenant_world() {
  xf_make_ca "$XF_TMP/pki" "xmppfront test CA" &&
  xf_make_cert "$XF_TMP/pki" "$XF_TMP/certs/a.example" a.example a.example || return 1
  XF_CA="$XF_TMP/pki/ca.pem"
  xf_tenant_write "$XF_TMP/xf/tenants" a.example "" "$XF_TMP/certs/a.example" \
    "127.0.0.1:9" "127.0.0.1:9"
}

xf_ns_proxy_start() {
  local cfg=$1 log=$2 p i; shift 2
  [ -x "$XF_BIN" ] || { xf_log "no binary at $XF_BIN"; return 1; }
  ip netns exec "$XF_NS" "$XF_BIN" -c "$cfg" 2>"$log" &
  XF_PROXY_PID=$!                  # ip netns exec execs the binary: this is its PID
  xf_track "$XF_PROXY_PID"
  for p in "$@"; do
    for ((i = 0; i < 100; i++)); do
      xf_ns_listening "$p" && break
      kill -0 "$XF_PROXY_PID" 2>/dev/null || break
      sleep 0.1
    done
    xf_ns_listening "$p" || { xf_log "xmppfront did not listen on $p"; tail -20 "$log" >&2; return 1; }
  done
}

xf_ns_proxy_stop() {
  xf_stop_pid "$XF_PROXY_PID" 10
}

xf_counter() {
  grep -o "counters: .*" "$1" | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}

xf_counter_is() {
  local got
  got=$(xf_counter "$1" "$2")
  grep -o "counters: .*" "$1" | tail -1
  echo "$2=$got (want $3)"
  [ "$got" = "$3" ]
}
