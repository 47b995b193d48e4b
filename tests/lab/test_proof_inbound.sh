#!/usr/bin/env bash
# DANE and POSH on xmppfront's INBOUND path (issue 8, "Verifying peers": a peer's client
# certificate verified by DANE as Prosody 13's mod_s2s_auth_dane_in does, and by POSH;
# docs/federation.md §3c), on the wire with the lab's DNSSEC (knot signs, a validating
# unbound on loopback is xmppfront's resolver) and an nginx serving POSH documents.
#
# The world (tests/lab/lab.sh, one network namespace):
#   tenant a.example  lab-CA certificate, policy `trusted`, on a plaintext backend Prosody
#                     (user xfbackend; its outgoing s2s redirected by uid to xmppfront's
#                     outbound listener, as in test_dane_outbound.sh)
#   nginx             0.0.0.0:443, lab-CA certificate for every remote name, documents
#                     under $WEB/root/<Host>/ (404 for the others)
#   remotes (Prosody 0.12, $NET.N, SRV -> itself, signed zone), each sending to
#   user1@a.example (Prosody presents its certificate as client certificate on s2s and
#   uses SASL EXTERNAL when it is offered):
#   (a) in-dane.example  type 4, SELF-SIGNED; TLSA 3 1 1 of its key at _5269/_5270._tcp
#                        -> EXTERNAL offered after the lookups, delivered; the
#                           authenticated and the close line: auth=sasl-external,
#                           dane: valid (pkix invalid)
#   (b) in-posh.example  type 4, SELF-SIGNED; no TLSA; its POSH document holds its
#                        fingerprint -> delivered by EXTERNAL, posh: valid
#   (c) in-bad.example   type 4, SELF-SIGNED; TLSA 3 1 1 of ANOTHER key -> no EXTERNAL;
#                        its dialback is refused under `trusted` (no proof): bounced at
#                        the sender, the refusal names dane: invalid
#   (d) in-ca.example    type 5, lab-CA certificate -> EXTERNAL by PKIX at once: no
#                        lookup, no wait line for it
#   (e) in-bogus.example type 4, SELF-SIGNED; its (matching) TLSA RRsets are zones of
#                        their own with wrong anchors (LAB_BOGUS_ZONES): SERVFAIL ->
#                        dane: error (bogus), never "absent": refused, bounced
#   (f) in-slow.example  type 4, SELF-SIGNED; its POSH document (fingerprint) comes slowly
#                        (nginx $limit_rate, ~1.5 s): the features wait for it, then
#                        EXTERNAL, delivered (the proofs line says how long)
#   (g) in-stall.example no Prosody: openssl s_client with a self-signed client
#                        certificate opens a stream from it and goes away after 1 s while
#                        its POSH document is still coming (the fetch would time out at 3 s): the stream closes during
#                        the wait (no proofs line), and xmppfront is still there after the
#                        cancelled fetch would have ended
#   (h) in-stall2.example the same, staying 5 s: the wait bound (negotiation_timeout_s =
#                        3 here, below the fetch's own 4 s bound) ends the wait: posh:
#                        error (timed out … wait bound), features with dialback only
# Knobs: XF_BIN, XF_VERBOSE=1, XF_KEEP=1, LAB_DEBUG=1, LAB_S2S_TIMEOUT (5).
# Usage: bash tests/lab/test_proof_inbound.sh   (root; exit 0 only if every check passed)
# shellcheck disable=SC2034  # read by lab.sh
LAB_DNSSEC=1
# shellcheck disable=SC2034
LAB_ZONES="example _5269._tcp.in-bogus.example _5270._tcp.in-bogus.example"
# shellcheck disable=SC2034
LAB_BOGUS_ZONES="_5269._tcp.in-bogus.example _5270._tcp.in-bogus.example"
# shellcheck source=lab.sh
. "$(dirname "$0")/lab.sh"
T=proof_inbound
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
BACKEND_USER=${FED_BACKEND_USER:-xfbackend}
OUT_PORT=15269
NET=198.18.1                    # remotes outside 127/8, as in test_federation_matrix.sh
XF4=127.0.1.100                 # xmppfront (xf.example)
BK4=127.0.2.1                   # the backend
TENANT=a.example
SEND_TIMEOUT=$(( ${LAB_S2S_TIMEOUT:-5} * 2 + 12 ))
NGINX=${NGINX:-/usr/sbin/nginx}

lab_init "$T" || exit 1
[ -x "$XF_BIN" ] || xf_setup_failed "$T: no xmppfront binary at $XF_BIN (build first)"
[ -x "$NGINX" ] || xf_setup_failed "$T: no nginx at $NGINX (deploy/install-deps.sh)"
lab_up || xf_setup_failed "$T: lab_up"
lab_user "$BACKEND_USER" || xf_setup_failed "$T: cannot create user $BACKEND_USER"
BK_UID=$(id -u "$BACKEND_USER")

# "3 1 1 <sha256 of the SPKI>" of the first certificate in a PEM file (RFC 7671 §5.1;
# as test_dane_outbound.sh)
# base64 SHA-256 of the whole certificate (RFC 7711 §3.2; as test_posh_outbound.sh)
fp256() { openssl x509 -in "$1" -outform DER | openssl dgst -sha256 -binary | base64 -w0; }
fpdoc() { printf '{"fingerprints":[{"sha-256":"%s"}],"expires":%s}\n' "$(fp256 "$1")" "$2"; }

lab_remote dane in-dane.example 4 "$NET.31" || xf_setup_failed "$T: remote dane"
lab_remote posh in-posh.example 4 "$NET.32" || xf_setup_failed "$T: remote posh"
lab_remote bad in-bad.example 4 "$NET.33" || xf_setup_failed "$T: remote bad"
lab_remote ca in-ca.example 5 "$NET.34" || xf_setup_failed "$T: remote ca"
lab_remote bogus in-bogus.example 4 "$NET.35" || xf_setup_failed "$T: remote bogus"
lab_remote slow in-slow.example 4 "$NET.36" || xf_setup_failed "$T: remote slow"
REMOTES="dane posh bad ca bogus slow"
lab_host in-stall.example "$NET.37" || xf_setup_failed "$T: in-stall address"
lab_self_signed "$LAB_DIR/pki/stall" in-stall.example || xf_setup_failed "$T: in-stall cert"
lab_host in-stall2.example "$NET.38" || xf_setup_failed "$T: in-stall2 address"
lab_self_signed "$LAB_DIR/pki/stall2" in-stall2.example || xf_setup_failed "$T: in-stall2 cert"
lab_self_signed "$LAB_DIR/pki/other" other.example || xf_setup_failed "$T: other key"
lab_tlsa_for in-dane.example "$(lab_tlsa311 "$LAB_DIR/remote/dane/pem/fullchain.pem")"
lab_tlsa_for in-bad.example "$(lab_tlsa311 "$LAB_DIR/pki/other/cert.pem")"
lab_tlsa_for in-bogus.example "$(lab_tlsa311 "$LAB_DIR/remote/bogus/pem/fullchain.pem")"

WEB="$LAB_DIR/web"
WK=.well-known/posh/xmpp-server.json
mkdir -p "$WEB/root/in-posh.example/.well-known/posh" "$WEB/logs"
fpdoc "$LAB_DIR/remote/posh/pem/fullchain.pem" 3600 > "$WEB/root/in-posh.example/$WK"
# headers and ~300 bytes at 400 bytes/s: about 1.5 s; at 50 bytes/s: about 6 s
mkdir -p "$WEB/root/in-slow.example/.well-known/posh" "$WEB/root/in-stall.example/.well-known/posh"
{ fpdoc "$LAB_DIR/remote/slow/pem/fullchain.pem" 3600; printf '%0200d\n' 0 | tr 0 ' '; } \
  > "$WEB/root/in-slow.example/$WK"
{ fpdoc "$LAB_DIR/pki/stall/cert.pem" 3600; printf '%0200d\n' 0 | tr 0 ' '; } \
  > "$WEB/root/in-stall.example/$WK"
mkdir -p "$WEB/root/in-stall2.example/.well-known/posh"
cp "$WEB/root/in-stall.example/$WK" "$WEB/root/in-stall2.example/$WK"
names="in-stall.example in-stall2.example"
for r in $REMOTES; do names="$names ${LAB_R_DOMAIN[$r]}"; done
# shellcheck disable=SC2086
xf_make_cert "$LAB_DIR/pki" "$WEB/cert" in-posh.example $names || xf_setup_failed "$T: web cert"
lab_web_write "$WEB" "" "if (\$host = in-slow.example) { set \$limit_rate 400; } if (\$host = in-stall.example) { set \$limit_rate 50; } if (\$host = in-stall2.example) { set \$limit_rate 50; }"

XFD="$LAB_DIR/xf"
mkdir -p "$XFD/tenants"
xf_make_cert "$LAB_DIR/pki" "$XFD/certs/$TENANT" "$TENANT" "$TENANT" || xf_setup_failed "$T: cert"
lab_host xf.example "$XF4" || xf_setup_failed "$T: xf address"
lab_xmpp_srv "$TENANT" xf.example 5269 5270
lab_addr "$BK4" || xf_setup_failed "$T: backend address"
lab_dns_start || xf_setup_failed "$T: DNS (knot + unbound)"

dig_flags() { lab_dig +dnssec "$@" | grep '^;; Flags:'; }
dns_check() {
  dig_flags SRV _xmpp-server._tcp.in-dane.example | grep -q ' ad' &&
  dig_flags TLSA _5269._tcp.in-dane.example | grep -q ' ad' &&
  lab_dig TLSA _5269._tcp.in-bad.example | grep -q 'TLSA' &&
  lab_dig TLSA _5269._tcp.in-posh.example | grep -q 'status: NXDOMAIN' &&
  dig_flags SRV _xmpp-server._tcp.in-bogus.example | grep -q ' ad' &&
  lab_dig TLSA _5269._tcp.in-bogus.example | grep -q 'status: SERVFAIL' &&
  lab_dig +cd TLSA _5269._tcp.in-bogus.example | grep -q 'TLSA'
}
xf_check "DNS: signed SRV and TLSA (AD) for in-dane; a TLSA for in-bad; none for in-posh; in-bogus's TLSA SERVFAIL (there with +cd)" dns_check

# ------------------------------------------------------------------------- backend
BKD="$LAB_DIR/backend"
lab_backend_prosody "$BKD" "$BK4" "$BACKEND_USER" "$TENANT" ||
  xf_setup_failed "$T: backend config"

# ------------------------------------------------------------------------- xmppfront
cat > "$XFD/tenants/$TENANT.json" <<EOF
{
  "domain": "$TENANT",
  "certificate": "../certs/$TENANT/fullchain.pem",
  "key": "../certs/$TENANT/privkey.pem",
  "c2s_backend": "$BK4:5222",
  "s2s_backend": "$BK4:5269",
  "federation": "trusted"
}
EOF
cat > "$XFD/xmppfront.json" <<EOF
{
  "workers": 2,
  "tenants": "tenants",
  "log_level": "info",
  "listeners": [$(xf_listener "$XF4" 5269 starttls server), $(xf_listener "$XF4" 5270 direct server),
    {"address": "127.0.0.1", "port": $OUT_PORT, "tls": "none", "service": "outbound", "transparent": true}],
  "limits": { "handshake_timeout_s": 10, "backend_timeout_s": 5, "auth_timeout_s": 20, "drain_timeout_s": 0 },
  "federation": {
    "ca_file": "$LAB_DIR/pki/ca.pem",
    "resolvers": ["$LAB_RESOLVER"],
    "connect_timeout_s": 4,
    "negotiation_timeout_s": 3
  }
}
EOF
XF_LOG="$XFD/xmppfront.log"

lab_web_start "$WEB"
lab_remotes_start || xf_setup_failed "$T: remote Prosody servers"
lab_backend_prosody_start "$BKD" "$BACKEND_USER"
lab_xf_start "$XFD/xmppfront.json" "$XF_LOG"; XF_PID=$LAB_XF_PID
lab_wait_port 0.0.0.0 443 10 "$LAB_WEB_PID" ||
  { cat "$WEB/logs/stdout" "$WEB/logs/error.log" >&2; xf_setup_failed "$T: nginx"; }
lab_backend_prosody_wait "$BKD" "$BK4" || xf_setup_failed "$T: backend"
lab_xf_wait 127.0.0.1 "$OUT_PORT" "$XF_LOG" || xf_setup_failed "$T: xmppfront"
lab_redirect_uid "$BK_UID" "$OUT_PORT" "5269, 5270" || xf_setup_failed "$T: redirect rule"
echo "  lab up in $(elapsed)s: namespace $LAB_NS, resolver $LAB_RESOLVER, remotes: $REMOTES"

web_check() {
  local c=(lab_exec curl -sS --max-time 5 --cacert "$LAB_DIR/pki/ca.pem")
  "${c[@]}" "https://in-posh.example/$WK" | grep -q '"fingerprints"' &&
  [ "$("${c[@]}" -o /dev/null -w '%{http_code}' "https://in-dane.example/$WK")" = 404 ]
}
xf_check "web: nginx serves in-posh.example's POSH document, 404 for the others" web_check

# ------------------------------------------------------------------------- sends
OUT="$LAB_DIR/sends.out"
ACC=(--account "user1@$TENANT" pass1 "$BK4" 5222)
SENDS=()
for r in $REMOTES; do
  read -r -a a < <(lab_account "$r" user1)
  ACC+=(--account "${a[@]}")
  SENDS+=(--send "user1@${LAB_R_DOMAIN[$r]}" "user1@$TENANT")
done
lab_xmpp "${ACC[@]}" "${SENDS[@]}" --timeout "$SEND_TIMEOUT" > "$OUT" 2>&1
RC=$?
xf_check "every account logged in, every send answered (lab_xmpp rc=$RC)" test "$RC" -eq 0

# (g) a stream from in-stall.example that goes away during the wait
HDR="<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='in-stall.example' to='$TENANT' version='1.0'>"
{ printf '%s' "$HDR"; sleep 1; } | timeout 10 ip netns exec "$LAB_NS" openssl s_client -quiet -no_ign_eof \
  -connect "$XF4:5270" -servername "$TENANT" -alpn xmpp-server \
  -cert "$LAB_DIR/pki/stall/cert.pem" -key "$LAB_DIR/pki/stall/privkey.pem" \
  > "$LAB_DIR/stall.out" 2>&1
# (h) the same from in-stall2.example, staying beyond the wait bound (in the background)
{ printf '%s' "${HDR//in-stall.example/in-stall2.example}"; sleep 5; } | timeout 10 ip netns exec "$LAB_NS" \
  openssl s_client -quiet -no_ign_eof -connect "$XF4:5270" -servername "$TENANT" -alpn xmpp-server \
  -cert "$LAB_DIR/pki/stall2/cert.pem" -key "$LAB_DIR/pki/stall2/privkey.pem" \
  > "$LAB_DIR/stall2.out" 2>&1 &
STALL2=$!
# the remotes go away: their streams to xmppfront close, with close lines
for r in $REMOTES; do lab_remote_stop "$r"; done
sleep 1

# result_of REMOTE — the sender's view of user1@REMOTE -> user1@a.example
result_of() {
  awk -v f="user1@${LAB_R_DOMAIN[$1]}" -v t="user1@$TENANT" '$1 == "RESULT" && $2 == f && $3 == t { print $4 }' "$OUT"
}
# conn_lines DOMAIN — the lines of xmppfront's inbound connections from DOMAIN (its proof,
# refusal or authenticated lines name it)
conn_lines() { lab_xf_in_lines "$XF_LOG" "$1"; }
show() { echo "send: $(result_of "$1")"; conn_lines "${LAB_R_DOMAIN[$1]}" | cut -c1-1000; }

case_dane() {
  show dane
  local l
  l=$(conn_lines in-dane.example)
  [ "$(result_of dane)" = delivered ] &&
    grep -q 'waiting for dane and posh' <<<"$l" &&
    grep -q 'inbound proofs .* dane: valid ("record 1 (3 1 1): DANE-EE' <<<"$l" &&
    grep 's2s authenticated' <<<"$l" | grep 'auth=sasl-external' | grep 'dane: valid' | grep -q 'pkix: invalid' &&
    grep ' close ' <<<"$l" | grep -q 'auth=sasl-external verdict=.*decided by dane; dane: valid'
}
xf_check "(a) self-signed in-dane.example with a matching TLSA 3 1 1 (signed zone) -> a.example (trusted): delivered by SASL EXTERNAL, dane: valid (pkix invalid), close line too" case_dane

case_posh() {
  show posh
  local l
  l=$(conn_lines in-posh.example)
  [ "$(result_of posh)" = delivered ] &&
    grep -Eq 'inbound proofs .* dane: absent \("no TLSA at _(5269|5270)._tcp.in-posh.example' <<<"$l" &&
    grep 's2s authenticated' <<<"$l" | grep 'auth=sasl-external' | grep -q 'posh: valid' &&
    grep ' close ' <<<"$l" | grep -q 'auth=sasl-external verdict=.*decided by posh;.*posh: valid'
}
xf_check "(b) self-signed in-posh.example with its fingerprint in a POSH document (no TLSA): delivered by SASL EXTERNAL, posh: valid" case_posh

case_bad() {
  show bad
  local l
  l=$(conn_lines in-bad.example)
  case "$(result_of bad)" in error:*) ;; *) return 1 ;; esac
  grep -q 'inbound proofs .* dane: invalid ("TLSA mismatch' <<<"$l" &&
    grep 's2s refused' <<<"$l" | grep 'policy trusted' | grep -q 'dane: invalid' &&
    ! grep -q 's2s authenticated\|pair accepted' <<<"$l"
}
xf_check "(c) self-signed in-bad.example whose TLSA names another key: not authenticated under trusted (bounce at the sender), refusal logged with dane: invalid" case_bad

case_ca() {
  show ca
  local l
  l=$(conn_lines in-ca.example)
  [ "$(result_of ca)" = delivered ] &&
    grep 's2s authenticated' <<<"$l" | grep 'auth=sasl-external' | grep -q 'pkix: valid' &&
    ! grep -q 'waiting for dane\|inbound proofs' <<<"$l"
}
xf_check "(d) CA-signed in-ca.example: SASL EXTERNAL by PKIX at once, no DANE/POSH lookup or wait" case_ca

case_bogus() {
  show bogus
  local l
  l=$(conn_lines in-bogus.example)
  case "$(result_of bogus)" in error:*) ;; *) return 1 ;; esac
  grep -Eq 'inbound proofs .* dane: error \("TLSA _(5269|5270)._tcp.in-bogus.example bogus \(SERVFAIL' <<<"$l" &&
    grep 's2s refused' <<<"$l" | grep 'policy trusted' | grep -q 'dane: error (TLSA _52[67][09]._tcp.in-bogus.example bogus' &&
    ! grep -q 's2s authenticated\|pair accepted' <<<"$l"
}
xf_check "(e) self-signed in-bogus.example whose TLSA answers are bogus (SERVFAIL): dane: error, not authenticated under trusted (bounce)" case_bogus

case_slow() {
  show slow
  local l ms
  l=$(conn_lines in-slow.example)
  ms=$(grep -o 'from=in-slow.example after [0-9]* ms' <<<"$l" | grep -o '[0-9]* ms' | cut -d' ' -f1)
  echo "proofs after ${ms:-?} ms"
  [ "$(result_of slow)" = delivered ] && [ -n "$ms" ] && [ "$ms" -ge 800 ] &&
    grep 's2s authenticated' <<<"$l" | grep 'auth=sasl-external' | grep -q 'posh: valid'
}
xf_check "(f) self-signed in-slow.example whose POSH document comes in ~1.5 s: the features wait for it, then SASL EXTERNAL, delivered" case_slow

case_stall() {
  local id
  sleep 3                             # the cancelled fetch would have timed out by now
  id=$(grep -a 's2s stream from=in-stall.example: pkix did not prove it' "$XF_LOG" |
    sed -E 's/.*conn id=([0-9]+) .*/\1/' | head -1)
  echo "conn id=${id:-?}"; [ -n "$id" ] && grep -a "conn id=$id " "$XF_LOG" | cut -c1-600
  [ -n "$id" ] &&
    grep -a "conn id=$id " "$XF_LOG" | grep -q 'waiting for dane and posh' &&
    grep -a "conn id=$id close" "$XF_LOG" | grep -q 'auth=none' &&
    ! grep -a "conn id=$id s2s inbound proofs" "$XF_LOG" &&
    kill -0 "$XF_PID" 2>/dev/null &&
    lab_exec bash -c "exec 3<>/dev/tcp/$XF4/5269" 2>/dev/null
}
xf_check "(g) a stream from in-stall.example closing while its POSH fetch runs: closed during the wait, lookups cancelled, xmppfront still serving" case_stall

case_bound() {
  local l
  wait "$STALL2"
  l=$(grep -a 's2s inbound proofs .* from=in-stall2.example ' "$XF_LOG")
  echo "$l" | cut -c1-600; grep -o '<stream:features>.*</stream:features>' "$LAB_DIR/stall2.out"
  grep -Eq 'after (29[0-9][0-9]|3[0-9][0-9][0-9]) ms: .*posh: error \("timed out after 3000 ms \(inbound proof wait bound\)' <<<"$l" &&
    grep -q '<stream:features><dialback' "$LAB_DIR/stall2.out" &&
    ! grep -q 'EXTERNAL' "$LAB_DIR/stall2.out"
}
xf_check "(h) in-stall2.example's POSH document slower than the wait bound (3 s): the wait ends at the bound (posh: error ... wait bound), features offer dialback only" case_bound

# shellcheck disable=SC2016
xf_check "xmppfront trusted its loopback resolver (no 'not on loopback' warning)" \
  bash -c '! grep -a "not on loopback" "$1"' _ "$XF_LOG"

lab_down
NS=$LAB_NS
down_check() { local left; left=$(lab_leftovers "$NS") && return 0; echo "$left"; return 1; }
xf_check "lab_down: no process, namespace, /etc/netns entry or nft table left" down_check
echo "  total $(elapsed)s"
xf_finish "$T"
