#!/usr/bin/env bash
# Hot reload under load (issue 9 "Reload"; proxy/reload.c, docs/reload.md):
#  - 20 relaying c2s streams (10 direct TLS, 10 STARTTLS) to an echo backend, each
#    relaying a message every 0.3 s, and 3 clients opening new connections continuously;
#  - meanwhile 20 SIGHUP reloads, alternately adding and removing tenant n.example;
#  - after every add, a fresh handshake with SNI n.example gets n's certificate; after
#    every remove, the unrecognized_name alert; every reload is logged "done" with what
#    changed ("tenants added (1): n.example" / "tenants removed (1): n.example");
#  - zero failed connections, and every old stream still relays after the 20 reloads.
# "watch": false here, so that only the SIGHUPs reload (the watch has its own test).
. "$(dirname "$0")/lib.sh"
T=reload_under_load
RELOADS=20
STREAMS=20
xf_init "$T" || xf_setup_failed "$T: init"
XF_CA="$XF_TMP/pki/ca.pem"
xf_make_ca "$XF_TMP/pki" "reload test CA" &&
  xf_make_cert "$XF_TMP/pki" "$XF_TMP/certs/a.example" a.example a.example &&
  xf_make_cert "$XF_TMP/pki" "$XF_TMP/certs/n.example" n.example n.example ||
  xf_setup_failed "$T: PKI"
read -r P_TLS P_STLS P_BACK < <(xf_free_ports 3)
xf_reload_backend "$P_BACK" 600 || xf_setup_failed "$T: echo backend"

TD="$XF_TMP/xf/tenants"
xf_tenant_write "$TD" a.example "" "$XF_TMP/certs/a.example" "127.0.0.1:$P_BACK" "127.0.0.1:$P_BACK"
# n.example's file lives aside and is copied in / removed by the loop.
xf_tenant_write "$XF_TMP/spare" n.example "" "$XF_TMP/certs/n.example" "127.0.0.1:$P_BACK" "127.0.0.1:$P_BACK"
XF_CFG="$XF_TMP/xf/xmppfront.json"
XF_LOG="$XF_TMP/xf/xmppfront.log"
cat >"$XF_CFG" <<EOF
{
  "workers": 2,
  "tenants": "tenants",
  "watch": false,
  "limits": {"auth_timeout_s": 3600},
  "listeners": [$(xf_listener 127.0.0.1 "$P_TLS" direct client), $(xf_listener 127.0.0.1 "$P_STLS" starttls client)]
}
EOF
xf_proxy_start "$XF_CFG" "$XF_LOG" "$P_TLS" "$P_STLS" || xf_setup_failed "$T: xmppfront"

CTL="$XF_TMP/ctl"
mkdir -p "$CTL"
timeout 300 "$XF_PY" "$XF_IT_DIR/reload_load.py" load --port "$P_TLS" --starttls-port "$P_STLS" \
  --ca "$XF_CA" --sni a.example --streams "$STREAMS" --churn 3 --control "$CTL" \
  >"$XF_TMP/load.out" 2>&1 &
LOAD=$!
xf_track "$LOAD"
for ((i = 0; i < 300; i++)); do
  [ -f "$CTL/ready" ] && break
  kill -0 "$LOAD" 2>/dev/null || break
  sleep 0.1
done
xf_check "$STREAMS streams open and relaying before the reloads" \
  bash -c "cat '$XF_TMP/load.out'; [ -f '$CTL/ready' ]"

# sni_cert NAME: handshake with SNI NAME verified against the CA, leaf SAN has NAME.
sni_cert() {
  local out
  out=$(timeout 10 openssl s_client -connect "127.0.0.1:$P_TLS" -servername "$1" -CAfile "$XF_CA" \
    -verify_return_error -verify_hostname "$1" </dev/null 2>&1)
  echo "$out" | grep -q 'Verify return code: 0 (ok)' &&
    echo "$out" | openssl x509 -noout -ext subjectAltName 2>/dev/null | grep -q "DNS:$1"
}

bad=0 badmsg=""
for ((k = 1; k <= RELOADS; k++)); do
  if ((k % 2)); then cp "$XF_TMP/spare/n.example.json" "$TD/"; else rm -f "$TD/n.example.json"; fi
  kill -HUP "$XF_PROXY_PID"
  if ! xf_wait_reload "$k"; then bad=$((bad + 1)); badmsg="$badmsg; reload $k not finished"; continue; fi
  grep -qE "reload $k \(SIGHUP\) done" "$XF_LOG" || { bad=$((bad + 1)); badmsg="$badmsg; reload $k refused"; }
  if ((k % 2)); then
    grep -q "reload $k: tenants added (1): n.example" "$XF_LOG" || { bad=$((bad + 1)); badmsg="$badmsg; reload $k: no 'added' line"; }
    sni_cert n.example || { bad=$((bad + 1)); badmsg="$badmsg; reload $k: n.example not served after the add"; }
  else
    grep -q "reload $k: tenants removed (1): n.example" "$XF_LOG" || { bad=$((bad + 1)); badmsg="$badmsg; reload $k: no 'removed' line"; }
    xf_sni_refused "$P_TLS" n.example || { bad=$((bad + 1)); badmsg="$badmsg; reload $k: n.example still served after the remove"; }
  fi
  sleep 0.2
done
xf_check "$RELOADS reloads done, n.example served after each add and refused after each remove" \
  bash -c "echo 'problems: ${badmsg:-none}'; grep -E 'reload [0-9]+' '$XF_LOG' | tail -6; [ $bad = 0 ]"
xf_check "after the reloads the proxy is alive and a.example still served" sni_cert a.example

sleep 1
touch "$CTL/stop"
for ((i = 0; i < 300; i++)); do kill -0 "$LOAD" 2>/dev/null || break; sleep 0.1; done
wait "$LOAD"; rc=$?
xf_check "zero failed connections: every old stream relayed after the reloads, every new one served" \
  bash -c "cat '$XF_TMP/load.out'; [ $rc = 0 ]"
xf_check "new connections were opened during the reloads (churn > 50)" \
  bash -c "n=\$(sed -n 's/.*new_ok=\([0-9]*\).*/\1/p' '$XF_TMP/load.out'); echo new_ok=\$n; [ \"\${n:-0}\" -gt 50 ]"
xf_check "no worker error in the log (no 'refused', no 'error')" \
  bash -c "! grep -E ' (error|ERROR) |refused:' '$XF_LOG' | grep -v 'stream error' | head -5 | grep ."
kill -TERM "$XF_PROXY_PID"
for ((i = 0; i < 100; i++)); do kill -0 "$XF_PROXY_PID" 2>/dev/null || break; sleep 0.1; done
xf_check "counters at exit: reload_ok=$RELOADS reload_failed=0" \
  xf_log_has "$XF_LOG" "reload_ok=$RELOADS" "reload_failed=0"
xf_finish "$T"
