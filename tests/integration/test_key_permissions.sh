#!/usr/bin/env bash
# Private key permissions ("key_permissions", docs/process.md): a tenant key readable by
# others (0644) gives one warning line naming the file and its mode (at start and with
# --check-config) and the proxy serves; "refuse" makes it a load error naming the
# tenant file, the key and the mode; "ignore" says nothing. Group-readable (0640) is
# fine with the group ssl-cert (Debian's key readers), warned about with another group.
# The hosting identity's key is checked the same way.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_netns.sh"
T=key_permissions
xf_init "$T" || xf_setup_failed "$T: init"
xf_ns_tenant_world || xf_setup_failed "$T: PKI"
read -r PORT < <(xf_free_ports 1)
XF_CFG="$XF_TMP/xf/xmppfront.json" XF_LOG="$XF_TMP/xf/xmppfront.log"
KEY="$XF_TMP/certs/a.example/privkey.pem"
LST=$(xf_listener 127.0.0.1 "$PORT" starttls client)
write_cfg() {  # [EXTRA top-level members]
  cat > "$XF_CFG" <<JSON
{ "workers": 1, "tenants": "tenants", "listeners": [$LST], "limits": {"drain_timeout_s": 1}${1:+, $1} }
JSON
}
check_cfg() { "$XF_BIN" --check-config -c "$XF_CFG" 2>&1; }
warn_re="warn key permissions: $XF_TMP/xf/tenants/a.example.json: key: $KEY is readable by"

chmod 0644 "$KEY"
write_cfg
xf_proxy_start "$XF_CFG" "$XF_LOG" "$PORT" || xf_setup_failed "$T: xmppfront did not start"
xf_check "0644 key: one warning line at start naming the file, 'others' and mode 0644" \
  bash -c "grep -F '$warn_re others (mode 0644' '$XF_LOG' && [ \$(grep -c 'key permissions' '$XF_LOG') = 1 ]"
xf_check "0644 key (warn): the proxy serves" \
  timeout 20 "$XF_PY" "$XF_IT_DIR/starttls_probe.py" "$PORT" "$XF_CA"
xf_stop_pid "$XF_PROXY_PID" 5

write_cfg '"key_permissions": "refuse"'
OUT=$(check_cfg); RC=$?
xf_check "0644 key, refuse: --check-config fails (rc $RC) naming tenant file, key and mode" \
  bash -c "printf '%s\n' \"\$0\"; [ $RC -ne 0 ] && printf '%s' \"\$0\" | grep -qF \
    'configuration error: $XF_TMP/xf/tenants/a.example.json: key: $KEY is readable by others (mode 0644'" "$OUT"
timeout 20 "$XF_BIN" -c "$XF_CFG" 2>"$XF_TMP/refuse.err"; RC=$?
xf_check "0644 key, refuse: the proxy does not start (rc $RC) and says key_permissions: refuse" \
  bash -c "cat '$XF_TMP/refuse.err'; [ $RC -ne 0 ] && [ $RC -ne 124 ] && grep -q 'key_permissions: refuse' '$XF_TMP/refuse.err'"

write_cfg '"key_permissions": "ignore"'
OUT=$(check_cfg); RC=$?
xf_check "0644 key, ignore: no warning, configuration OK" \
  bash -c "printf '%s\n' \"\$0\"; [ $RC = 0 ] && ! printf '%s' \"\$0\" | grep -q 'key permissions'" "$OUT"

write_cfg '"key_permissions": "refuse"'
chmod 0600 "$KEY"
OUT=$(check_cfg); RC=$?
xf_check "0600 key, refuse: configuration OK, no warning" \
  bash -c "printf '%s\n' \"\$0\"; [ $RC = 0 ] && ! printf '%s' \"\$0\" | grep -q 'key permissions'" "$OUT"
if getent group ssl-cert >/dev/null; then
  chgrp ssl-cert "$KEY"; chmod 0640 "$KEY"
  OUT=$(check_cfg); RC=$?
  xf_check "0640 root:ssl-cert key, refuse: accepted (Debian's ssl-cert pattern)" \
    bash -c "printf '%s\n' \"\$0\"; [ $RC = 0 ]" "$OUT"
fi
chgrp daemon "$KEY"; chmod 0640 "$KEY"
write_cfg
OUT=$(check_cfg); RC=$?
xf_check "0640 root:daemon key, warn: a warning about its group" \
  bash -c "printf '%s\n' \"\$0\"; [ $RC = 0 ] && printf '%s' \"\$0\" | grep -qF '$warn_re its group (mode 0640'" "$OUT"
write_cfg '"key_permissions": "sometimes"'
OUT=$(check_cfg); RC=$?
xf_check "a bad key_permissions value is a configuration error" \
  bash -c "printf '%s\n' \"\$0\"; [ $RC != 0 ] && printf '%s' \"\$0\" | grep -qF 'key_permissions: \"sometimes\" is not'" "$OUT"

# The hosting identity's key: the main file and hosting.key are named.
chmod 0600 "$KEY"; chgrp root "$KEY"
xf_make_cert "$XF_TMP/pki" "$XF_TMP/certs/host" host.example host.example || xf_setup_failed "$T: cert"
chmod 0604 "$XF_TMP/certs/host/privkey.pem"
write_cfg "\"key_permissions\": \"refuse\", \"hosting\": {\"name\": \"host.example\", \"certificate\": \"$XF_TMP/certs/host/fullchain.pem\", \"key\": \"$XF_TMP/certs/host/privkey.pem\"}"
OUT=$(check_cfg); RC=$?
xf_check "0604 hosting key, refuse: error names the main file and hosting.key" \
  bash -c "printf '%s\n' \"\$0\"; [ $RC != 0 ] && printf '%s' \"\$0\" | grep -qF '$XF_CFG: hosting.key: $XF_TMP/certs/host/privkey.pem is readable by others (mode 0604'" "$OUT"
xf_finish "$T"
