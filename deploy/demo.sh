#!/usr/bin/env bash
# xmppfront demo on a fresh Debian machine:
#   installs dependencies (deploy/install-deps.sh), builds, makes a demo CA and
#   certificates for two tenants in .demo/, starts Prosody (as user prosody, plaintext
#   on loopback) hosting both tenants with users alice and bob, then runs xmppfront in
#   the foreground on 5222 (STARTTLS c2s), 5223 (direct TLS c2s), 5269 (STARTTLS s2s),
#   5270 (direct TLS s2s) and 443 (direct TLS, ALPN/namespace routed) — or on printed
#   unprivileged fallbacks when those are taken. Ctrl-C stops both.
#
# Knobs: DEMO_DOMAINS ("a.example b.example"), DEMO_ADDRESS (127.0.0.1),
#        DEMO_SKIP_INSTALL=1, DEMO_SKIP_BUILD=1,
#        DEMO_SELFTEST=1 (log alice -> bob in through every c2s port, then stop; exit code).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
DEMO="$ROOT/.demo"
read -r -a DOMAINS <<< "${DEMO_DOMAINS:-a.example b.example}"
ADDR=${DEMO_ADDRESS:-127.0.0.1}
say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }

if [ "${DEMO_SKIP_INSTALL:-0}" != 1 ]; then
  say "installing dependencies (deploy/install-deps.sh)"
  bash deploy/install-deps.sh || exit 1
fi
if [ "${DEMO_SKIP_BUILD:-0}" != 1 ]; then
  say "building (cmake -B build && cmake --build build)"
  { cmake -B build >/dev/null &&
    cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target xmppfront; } || exit 1
fi

export XF_BIN="$ROOT/build/xmppfront"
# shellcheck source=../tests/integration/lib.sh
. "$ROOT/tests/integration/lib.sh"
# shellcheck disable=SC2034  # read by xf_cleanup: empty keeps .demo/, only PIDs are cleaned up
XF_TMP=""
trap xf_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- certificates (kept across runs)
mkdir -p "$DEMO"
if [ ! -f "$DEMO/pki/ca.pem" ]; then
  say "creating the demo CA in .demo/pki"
  xf_make_ca "$DEMO/pki" "xmppfront demo CA" || exit 1
fi
for d in "${DOMAINS[@]}"; do
  if [ ! -f "$DEMO/certs/$d/fullchain.pem" ]; then
    say "certificate for $d (+ conference.$d)"
    xf_make_cert "$DEMO/pki" "$DEMO/certs/$d" "$d" "$d" "conference.$d" || exit 1
  fi
done

# ---- ports: the standard ones, else printed fallbacks
pick_port() {  # pick_port WANTED -> WANTED if usable, else WANTED+10000, else any free
  local want=$1
  if [ "$want" -lt 1024 ] && [ "$(id -u)" -ne 0 ]; then want=$((want + 10000)); fi
  if ! xf_port_listening "$ADDR" "$want"; then echo "$want"; return; fi
  if [ "$want" -lt 10000 ] && ! xf_port_listening "$ADDR" $((want + 10000)); then
    echo $((want + 10000)); return
  fi
  xf_free_ports 1 "$ADDR"
}
declare -A PORT
for p in 5222 5223 5269 5270 443; do
  PORT[$p]=$(pick_port "$p")
  [ "${PORT[$p]}" = "$p" ] || say "port $p is taken or privileged: using ${PORT[$p]} instead"
done
read -r PB_C2S PB_S2S < <(xf_free_ports 2 127.0.0.1)

# ---- Prosody backend (plaintext on loopback, as user prosody)
PD="$DEMO/prosody"
rm -f "$PD/prosody.cfg.lua"
XF_PROSODY_TLS=0 xf_prosody_config "$PD" 127.0.0.1 "$PB_C2S" "$PB_S2S" "${DOMAINS[@]}" || exit 1
for d in "${DOMAINS[@]}"; do
  xf_prosody_register "$PD" alice "$d" alice-demo || exit 1
  xf_prosody_register "$PD" bob "$d" bob-demo || exit 1
done
say "starting Prosody (user prosody) on 127.0.0.1:$PB_C2S (c2s) / :$PB_S2S (s2s), log .demo/prosody/prosody.log"
xf_prosody_start "$PD" 127.0.0.1 "$PB_C2S" "$PB_S2S" || exit 1

# ---- xmppfront config
rm -rf "$DEMO/tenants"
for d in "${DOMAINS[@]}"; do
  xf_tenant_write "$DEMO/tenants" "$d" "conference.$d" "../certs/$d" \
    "127.0.0.1:$PB_C2S" "127.0.0.1:$PB_S2S"
done
L="$(xf_listener "$ADDR" "${PORT[5222]}" starttls client), $(xf_listener "$ADDR" "${PORT[5223]}" direct client)"
L="$L, $(xf_listener "$ADDR" "${PORT[5269]}" starttls server), $(xf_listener "$ADDR" "${PORT[5270]}" direct server)"
L="$L, $(xf_listener "$ADDR" "${PORT[443]}" direct auto)"
xf_config_write "$DEMO/xmppfront.json" tenants "$L" \
  '"handshake_timeout_s": 30, "max_header_bytes": 8192, "backend_timeout_s": 10'
"$XF_BIN" --check-config -c "$DEMO/xmppfront.json" || { say "config check failed"; exit 1; }

d0=${DOMAINS[0]}
cat <<EOF

  xmppfront demo — tenants: ${DOMAINS[*]}
  accounts (on each tenant): alice / alice-demo   bob / bob-demo
  demo CA: .demo/pki/ca.pem   (trust it in your client, or point it at this CA)

  STARTTLS c2s   $ADDR:${PORT[5222]}    openssl s_client -connect $ADDR:${PORT[5222]} -starttls xmpp -xmpphost $d0 -CAfile .demo/pki/ca.pem
  direct TLS c2s $ADDR:${PORT[5223]}    openssl s_client -connect $ADDR:${PORT[5223]} -servername $d0 -alpn xmpp-client -CAfile .demo/pki/ca.pem
  STARTTLS s2s   $ADDR:${PORT[5269]}    openssl s_client -connect $ADDR:${PORT[5269]} -starttls xmpp-server -xmpphost $d0 -CAfile .demo/pki/ca.pem
  direct TLS s2s $ADDR:${PORT[5270]}
  443-style      $ADDR:${PORT[443]}     (ALPN xmpp-client / xmpp-server, or by stream namespace)

  a real client:  /usr/bin/python3 tests/integration/xmpp_client.py --port ${PORT[5222]} \\
                    --ca .demo/pki/ca.pem --domain $d0 --user1 alice --pass1 alice-demo --user2 bob --pass2 bob-demo
  (the names resolve nowhere: connect to $ADDR and give the domain as SNI / stream 'to')

  Ctrl-C stops xmppfront and Prosody.

EOF

if [ "${DEMO_SELFTEST:-0}" = 1 ]; then
  xf_proxy_start "$DEMO/xmppfront.json" "$DEMO/xmppfront.log" \
    "${PORT[5222]}" "${PORT[5223]}" "${PORT[443]}" || exit 1
  rc=0
  for d in "${DOMAINS[@]}"; do
    for spec in "${PORT[5222]}:starttls" "${PORT[5223]}:direct" "${PORT[443]}:direct"; do
      xf_client --port "${spec%%:*}" --mode "${spec##*:}" --host "$ADDR" --ca "$DEMO/pki/ca.pem" \
        --domain "$d" --user1 alice --pass1 alice-demo --user2 bob --pass2 bob-demo |
        grep -E '^(OK|FAIL)' || rc=1
      [ "${PIPESTATUS[0]}" = 0 ] || rc=1
    done
  done
  say "self-test $([ $rc = 0 ] && echo passed || echo FAILED); xmppfront log: .demo/xmppfront.log"
  exit $rc
fi

say "starting xmppfront in the foreground (logs below)"
# Foreground: Ctrl-C reaches xmppfront directly; the EXIT trap then stops Prosody.
"$XF_BIN" -c "$DEMO/xmppfront.json"
rc=$?
say "xmppfront exited ($rc); stopping Prosody"
exit $rc
