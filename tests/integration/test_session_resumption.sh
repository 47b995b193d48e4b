#!/usr/bin/env bash
# TLS session resumption on the public side (issue 10, docs/tls.md): tickets resume under
# TLS 1.3 (psk_dhe_ke) and TLS 1.2 (RFC 5077), only under the tenant name they were
# issued for, across instances that share a key_file and not across one with another
# secret; a short rotation_s expires them; "session_tickets": false issues none; no
# early data; none on server listeners (the peer certificate is needed for SASL
# EXTERNAL); a resumed c2s stream routes and relays. The metrics count both modes.
. "$(dirname "$0")/lib.sh"
T=session_resumption
xf_setup_standard "$T" || xf_setup_failed "$T: could not start Prosody + xmppfront"
R() { timeout 60 "$XF_PY" "$XF_IT_DIR/resume_client.py" --ca "$XF_CA" "$@"; }

# The standard instance: default settings (random per-process secret).
for v in 1.3 1.2; do
  xf_check "TLS $v: a ticket from a.example resumes on the same name; the resumed c2s stream routes and relays" \
    R --tls "$v" --first "$P_C2S_TLS:a.example" --expect reused --relay
  xf_check "TLS $v: a ticket from a.example does not resume under b.example (AAD = SNI)" \
    R --tls "$v" --first "$P_C2S_TLS:a.example" --second "$P_C2S_TLS:b.example" --expect new --relay
done
xf_check "STARTTLS, no SNI: a ticket issued for the stream's to=a.example resumes for a.example" \
  R --tls 1.3 --starttls --no-sni --first "$P_C2S:a.example" --expect reused --relay
xf_check "STARTTLS, no SNI: that ticket does not resume for to=b.example (AAD = the pre-TLS to)" \
  R --tls 1.3 --starttls --no-sni --first "$P_C2S:a.example" --second "$P_C2S:b.example" \
    --expect new --relay
xf_check "TLS 1.3: the auto listener resumes xmpp-client streams" \
  R --tls 1.3 --alpn xmpp-client --first "$P_AUTO:a.example" --expect reused --relay
for v in 1.3 1.2; do
  xf_check "TLS $v: no usable ticket on the direct server listener (SASL EXTERNAL needs the peer certificate)" \
    R --tls "$v" --ns server --first "$P_S2S_TLS:a.example" --expect new --expect-no-ticket
  xf_check "TLS $v: no usable ticket on the auto listener with ALPN xmpp-server" \
    R --tls "$v" --ns server --alpn xmpp-server --first "$P_AUTO:a.example" --expect new \
      --expect-no-ticket
done

# No 0-RTT: OpenSSL offers early data with a resumption ticket only when the ticket
# allows it; the server must never accept it.
sess="$XF_TMP/s13.pem"
printf '<?xml version="1.0"?><stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams" to="a.example" version="1.0">' > "$XF_TMP/early.txt"
(sleep 2) | timeout 10 openssl s_client -connect "127.0.0.1:$P_C2S_TLS" -servername a.example \
  -tls1_3 -CAfile "$XF_CA" -sess_out "$sess" -ign_eof >"$XF_TMP/s1.out" 2>&1 || true
(sleep 2) | timeout 10 openssl s_client -connect "127.0.0.1:$P_C2S_TLS" -servername a.example \
  -tls1_3 -CAfile "$XF_CA" -sess_in "$sess" -early_data "$XF_TMP/early.txt" >"$XF_TMP/s2.out" 2>&1 || true
no_early() {
  grep -q '^Reused, TLSv1.3' "$XF_TMP/s2.out" || { echo "openssl did not resume"; cat "$XF_TMP/s2.out"; return 1; }
  grep -qi 'Max Early Data: [1-9]' "$XF_TMP/s1.out" && { echo "ticket allows early data"; return 1; }
  grep -qi 'Early data was accepted' "$XF_TMP/s2.out" && { echo "early data accepted"; return 1; }
  return 0
}
xf_check "openssl s_client -early_data: resumed, but no early data allowed or accepted" no_early

# Instances that share a key file, one with another secret, one without tickets, one with
# a short rotation. Same tenants; one direct client listener each; no admin listener.
kf="$XF_TMP/ticket.key"; kf2="$XF_TMP/other.key"
(umask 077; openssl rand -base64 48 > "$kf"; openssl rand -base64 48 > "$kf2")
read -r PA PB PC PD PE PM < <(xf_free_ports 6)
inst() {   # inst NAME PORT SESSION_TICKETS_JSON [MORE_JSON_MEMBERS]
  local cfg="$XF_TMP/xf/$1.json"
  cat > "$cfg" <<EOF
{ "workers": 2, "tenants": "tenants", "admin": ${4:-false}, "session_tickets": $3,
  "listeners": [ {"address": "127.0.0.1", "port": $2, "tls": "direct", "service": "client"} ] }
EOF
  xf_proxy_start "$cfg" "$XF_TMP/xf/$1.log" "$2"
}
inst a "$PA" "{\"key_file\": \"$kf\"}" "{\"port\": $PM}, \"log_level\": \"debug\"" ||
  xf_setup_failed "$T: instance a"
inst b "$PB" "{\"key_file\": \"$kf\"}" || xf_setup_failed "$T: instance b"
inst c "$PC" "{\"key_file\": \"$kf2\"}" || xf_setup_failed "$T: instance c"
inst d "$PD" "false" || xf_setup_failed "$T: instance d"
inst e "$PE" "{\"key_file\": \"$kf\", \"rotation_s\": 10}" || xf_setup_failed "$T: instance e"
for v in 1.3 1.2; do
  xf_check "TLS $v: instance b resumes a ticket of instance a (shared key_file)" \
    R --tls "$v" --first "$PA:a.example" --second "$PB:a.example" --expect reused --relay
  xf_check "TLS $v: instance c (another key file) does not resume it" \
    R --tls "$v" --first "$PA:a.example" --second "$PC:a.example" --expect new --relay
  xf_check "TLS $v: instance a does not resume its own a.example ticket under b.example" \
    R --tls "$v" --first "$PA:a.example" --second "$PA:b.example" --expect new --relay
  xf_check "TLS $v: \"session_tickets\": false issues no ticket" \
    R --tls "$v" --first "$PD:a.example" --expect new --expect-no-ticket
done
perm_refused() {
  local rc
  chmod 644 "$kf2"
  timeout 5 "$XF_BIN" -c "$XF_TMP/xf/c.json" >"$XF_TMP/perm.out" 2>&1
  rc=$?
  chmod 600 "$kf2"
  cat "$XF_TMP/perm.out"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q 'session_tickets.key_file.*accessible by all users' "$XF_TMP/perm.out"
}
# The refusal under another name is the server's (the client did offer the ticket).
xf_check "instance a logs the refused cross-tenant ticket (offered under b.example)" \
  xf_log_has "$XF_TMP/xf/a.log" 'session ticket not accepted for b.example'

# Metrics: full and resumed handshakes are counted.
xf_check "instance a resumes its own tickets" \
  R --tls 1.3 --first "$PA:a.example" --expect reused
metrics() { curl -s --max-time 5 "http://127.0.0.1:$PM/metrics"; }
has_modes() {
  metrics | grep xmppfront_tls_resumption_total
  metrics | grep -E '^xmppfront_tls_resumption_total\{mode="resumed"\} [1-9]' &&
  metrics | grep -E '^xmppfront_tls_resumption_total\{mode="full"\} [1-9]'
}
xf_check "xmppfront_tls_resumption_total counts full and resumed handshakes" has_modes

xf_check "a world-readable key file is refused at start, naming session_tickets.key_file" perm_refused

# Rotation: with rotation_s 10 a ticket is refused once older than 10 s (TLS 1.2: the
# client offers it whatever its age; the server decides).
xf_check "TLS 1.2, rotation_s 10: a fresh ticket resumes" \
  R --tls 1.2 --first "$PE:a.example" --expect reused
xf_check "TLS 1.2, rotation_s 10: the same ticket 12 s later is refused (full handshake)" \
  R --tls 1.2 --first "$PE:a.example" --sleep 12 --expect new --relay

# Reload: a new key file content applies without a restart (the watch sees it); tickets
# sealed under the old secret stop resuming, new ones resume.
cat > "$XF_TMP/rotate.sh" <<EOF
#!/bin/bash
log="$XF_TMP/xf/b.log"; kf="$kf"
n=\$(grep -c 'session_tickets changed' "\$log")
(umask 077; openssl rand -base64 48 > "\$kf.new") && mv "\$kf.new" "\$kf"
for _ in \$(seq 1 50); do
  [ "\$(grep -c 'session_tickets changed' "\$log")" -gt "\$n" ] && { sleep 0.3; exit 0; }
  sleep 0.2
done
echo "no reload logged"; exit 1
EOF
chmod +x "$XF_TMP/rotate.sh"
xf_check "a key file replaced on disk is reloaded; tickets of the old secret no longer resume" \
  R --tls 1.3 --first "$PB:a.example" --between "$XF_TMP/rotate.sh" --expect new --relay
xf_check "after the key change, new tickets resume" \
  R --tls 1.3 --first "$PB:a.example" --expect reused --relay

xf_finish "$T"
