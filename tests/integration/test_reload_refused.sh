#!/usr/bin/env bash
# A bad reload is refused and the old configuration keeps serving (issue 9 "Reload";
# proxy/reload.c):
#  (1) broken JSON in a new tenant file: ONE log line "reload 1 (SIGHUP) refused:
#      FILE: (document): invalid JSON ...", naming the file; a.example and b.example
#      still served with their certificates, the unhosted x.example refused;
#  (2) b.example's key replaced by a.example's (not matching b's certificate): ONE line
#      naming b.example.json and the key "key"; b still served (old snapshot);
#  (3) both fixed: reload 3 done, "no change";
#  (4) a listener added to the main file: reload 4 done with one warning "listeners
#      changed: kept as they are until a restart", the new port not listening;
#  (5) a stream opened before (1) relays throughout; the exit counters say
#      reload_ok=2 reload_failed=2.
. "$(dirname "$0")/lib.sh"
T=reload_refused
xf_init "$T" || xf_setup_failed "$T: init"
XF_CA="$XF_TMP/pki/ca.pem"
xf_make_ca "$XF_TMP/pki" "reload test CA" &&
  xf_make_cert "$XF_TMP/pki" "$XF_TMP/certs/a.example" a.example a.example &&
  xf_make_cert "$XF_TMP/pki" "$XF_TMP/certs/b.example" b.example b.example ||
  xf_setup_failed "$T: PKI"
read -r P_TLS P_BACK P_NEW < <(xf_free_ports 3)
xf_reload_backend "$P_BACK" 300 || xf_setup_failed "$T: echo backend"
TD="$XF_TMP/xf/tenants"
for d in a.example b.example; do
  xf_tenant_write "$TD" "$d" "" "$XF_TMP/certs/$d" "127.0.0.1:$P_BACK" "127.0.0.1:$P_BACK"
done
XF_CFG="$XF_TMP/xf/xmppfront.json"
XF_LOG="$XF_TMP/xf/xmppfront.log"
write_main() {
  cat >"$XF_CFG" <<EOF
{
  "workers": 2,
  "tenants": "tenants",
  "watch": false,
  "limits": {"auth_timeout_s": 3600},
  "listeners": [$1]
}
EOF
}
write_main "$(xf_listener 127.0.0.1 "$P_TLS" direct client)"
xf_proxy_start "$XF_CFG" "$XF_LOG" "$P_TLS" || xf_setup_failed "$T: xmppfront"

CTL="$XF_TMP/ctl"
mkdir -p "$CTL"
timeout 120 "$XF_PY" "$XF_IT_DIR/reload_load.py" hold --port "$P_TLS" --ca "$XF_CA" \
  --sni b.example --control "$CTL" >"$XF_TMP/hold.out" 2>&1 &
HOLD=$!
xf_track "$HOLD"
for ((i = 0; i < 100; i++)); do [ -f "$CTL/ready" ] && break; sleep 0.1; done

serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }
SER_A=$(serial_of "$XF_TMP/certs/a.example/cert.pem")
SER_B=$(serial_of "$XF_TMP/certs/b.example/cert.pem")
# served NAME SERIAL: a fresh handshake with SNI NAME verifies and has that serial.
served() {
  local out
  out=$(timeout 10 openssl s_client -connect "127.0.0.1:$P_TLS" -servername "$1" -CAfile "$XF_CA" \
    -verify_return_error -verify_hostname "$1" </dev/null 2>&1)
  echo "$out" | grep -E 'Verify return code|alert' | head -3
  local s; s=$(echo "$out" | openssl x509 -noout -serial 2>/dev/null | cut -d= -f2)
  echo "serial $s (want $2)"
  echo "$out" | grep -q 'Verify return code: 0 (ok)' && [ "$s" = "$2" ]
}
refused() { xf_sni_refused "$P_TLS" "$1"; }
# one_line N WORD...: exactly one log line of reload N is at warn/error level, and it
# has every WORD.
one_line() {
  local n=$1; shift
  local lines; lines=$(grep -E "reload $n[ :]" "$XF_LOG" | grep -vE "\] info |reload $n \(SIGHUP\): loading")
  echo "$lines"
  [ "$(printf '%s\n' "$lines" | grep -c .)" = 1 ] || { echo "want exactly one line"; return 1; }
  local w; for w in "$@"; do printf '%s' "$lines" | grep -qF -- "$w" || { echo "missing: $w"; return 1; }; done
}

xf_check "the stream held on b.example relays" bash -c "[ -f '$CTL/ready' ] && cat '$CTL/ready'"

# (1) broken JSON
printf '{ "domain": "x.example", ' >"$TD/x.example.json"
kill -HUP "$XF_PROXY_PID"
xf_wait_reload 1
xf_check "(1) broken JSON refused in one line naming the file and the problem" \
  one_line 1 "reload 1 (SIGHUP) refused:" "$TD/x.example.json: (document): invalid JSON" "old configuration stays"
xf_check "(1) a.example still served with its certificate" served a.example "$SER_A"
xf_check "(1) b.example still served with its certificate" served b.example "$SER_B"
xf_check "(1) x.example (only in the refused configuration) not served" refused x.example
rm -f "$TD/x.example.json"

# (2) a key that does not match the certificate
sed -i "s|certs/b.example/privkey.pem|certs/a.example/privkey.pem|" "$TD/b.example.json"
kill -HUP "$XF_PROXY_PID"
xf_wait_reload 2
xf_check "(2) mismatched key refused in one line naming the tenant file and the key" \
  one_line 2 "reload 2 (SIGHUP) refused:" "$TD/b.example.json: key:" "does not match the certificate"
xf_check "(2) b.example still served with its own certificate" served b.example "$SER_B"

# (3) fixed
sed -i "s|certs/a.example/privkey.pem|certs/b.example/privkey.pem|" "$TD/b.example.json"
kill -HUP "$XF_PROXY_PID"
xf_wait_reload 3
xf_check "(3) fixed: reload 3 done, 'no change'" \
  bash -c "grep -F 'reload 3' '$XF_LOG'; grep -q 'reload 3 (SIGHUP) done' '$XF_LOG' && grep -q 'reload 3: no change' '$XF_LOG'"

# (4) a restart-only key
write_main "$(xf_listener 127.0.0.1 "$P_TLS" direct client), $(xf_listener 127.0.0.1 "$P_NEW" direct client)"
kill -HUP "$XF_PROXY_PID"
xf_wait_reload 4
xf_check "(4) listener added: reload done, one warning that listeners need a restart" \
  bash -c "grep -F 'reload 4' '$XF_LOG'; grep -q 'reload 4 (SIGHUP) done' '$XF_LOG' &&
           [ \$(grep -c 'reload 4: listeners changed: kept as they are until a restart' '$XF_LOG') = 1 ]"
xf_check "(4) the new listener's port is not listening (needs a restart)" \
  bash -c "! ss -Hltn 'sport = :$P_NEW' | grep ."
xf_check "(4) a.example and b.example served after reload 4" \
  bash -c "$(declare -f served); P_TLS=$P_TLS XF_CA='$XF_CA'; served a.example '$SER_A' && served b.example '$SER_B'"

touch "$CTL/stop"
wait "$HOLD"; rc=$?
xf_check "(5) the stream opened before the bad reloads relayed throughout and after" \
  bash -c "cat '$XF_TMP/hold.out'; [ $rc = 0 ]"
kill -TERM "$XF_PROXY_PID"
for ((i = 0; i < 100; i++)); do kill -0 "$XF_PROXY_PID" 2>/dev/null || break; sleep 0.1; done
xf_check "(5) exit counters: reload_ok=2 reload_failed=2" \
  xf_log_has "$XF_LOG" "reload_ok=2" "reload_failed=2"
xf_finish "$T"
