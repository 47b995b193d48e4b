#!/usr/bin/env bash
# DANE on xmppfront's outbound path (issue 8, "Verifying peers" / "Tests"; RFC 7673,
# spec-digest §6), on the wire with the lab's DNSSEC: knot signs the zones, a validating
# unbound on 127.0.1.54 (loopback: xmppfront trusts its AD bit) is the resolver.
#
# The world (tests/lab/lab.sh, one network namespace):
#   tenant a.example  certificate from the lab CA, policy `trusted`, on ONE plaintext
#                     backend Prosody (user xfbackend; its outgoing s2s redirected by uid
#                     to xmppfront's outbound listener, as in test_federation_matrix.sh)
#   remotes (Prosody 0.12, $NET.N), each with _xmpp-server/_xmpps-server SRV -> itself:
#   (a) dane-ok.example     type 4, SELF-SIGNED; signed zone; TLSA 3 1 1 of its key
#                           -> delivered: DANE-EE proves it, `trusted` is satisfied
#                              (without DANE: refused, no CA signed it); by SASL EXTERNAL
#                              from a.example; and by dialback over the DANE-proven
#                              certificate from b.example, a tenant with policy
#                              `encrypted` and a self-signed certificate the remote cannot
#                              verify (so it offers no EXTERNAL). (b.example under
#                              `trusted` would fail today: the remote's db:verify stream
#                              to xmppfront is judged by the inbound side, PKIX only, and
#                              refused — inbound DANE is a later part of issue 8.)
#   (b) dane-bad.example    type 5, lab-CA certificate (valid PKIX); signed zone; TLSA
#                           3 1 1 of ANOTHER key -> refused: usable TLSA that does not
#                           match, PKIX alone is not enough (without DANE: delivered)
#   (c) dane-bogus.example  type 5, lab-CA certificate; SRV/A secure, but its TLSA RRsets
#                           are zones of their own (_5269._tcp.dane-bogus.example and
#                           _5270...) whose anchors are wrong (LAB_BOGUS_ZONES): SERVFAIL
#                           -> every target aborted, refused and logged, no
#                           downgrade to PKIX (without DANE: delivered)
#   (d) r.insecure.example  type 5, lab-CA certificate; zone insecure.example without a
#                           trust anchor (LAB_INSECURE_ZONES, unsigned delegation: no AD);
#                           a WRONG TLSA is published there -> delivered by PKIX: insecure
#                           TLSA must be ignored
#   (e) dane-srv.example    type 5; its signed SRV points at xmpp.dane-host.example, and
#                           its lab-CA certificate names ONLY that target host (no TLSA)
#                           -> delivered: with a secure SRV the target is a reference
#                              identity (RFC 7673 §4)
#   (f) r2.insecure.example the same with an insecure SRV (target xmpp.r2.insecure.example)
#                           -> refused: the target host is not a reference identity then
#   (g) dane-nosrv.example  type 4, SELF-SIGNED, NO SRV records: xmppfront falls back to
#                           its A on 5269; the domain's signed address answer makes
#                           plain RFC 6698 TLSA at _5269._tcp.dane-nosrv.example apply
#                           (local policy, spec-digest §6) -> delivered by DANE
# Each case asserts on the delivery/bounce AND on xmppfront's log line naming the DANE
# verdict (dane: valid / invalid / error ... bogus / absent ... insecure).
# Knobs: XF_BIN, XF_VERBOSE=1, XF_KEEP=1, LAB_DEBUG=1, LAB_S2S_TIMEOUT (5).
# Usage: bash tests/lab/test_dane_outbound.sh   (root; exit 0 only if every check passed)
# shellcheck disable=SC2034  # read by lab.sh
LAB_DNSSEC=1
# shellcheck source=lab.sh
. "$(dirname "$0")/lab.sh"
T=dane_outbound
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
BACKEND_USER=${FED_BACKEND_USER:-xfbackend}
OUT_PORT=15269
NET=198.18.1                    # remotes outside 127/8, as in test_federation_matrix.sh
XF4=127.0.1.100                 # xmppfront (xf.example)
BK4=127.0.2.1                   # the backend
TENANT=a.example
TENANT_B=b.example              # self-signed tenant certificate (no EXTERNAL offered to it)
declare -A POLICY=([$TENANT]=trusted [$TENANT_B]=encrypted)
SEND_TIMEOUT=$(( ${LAB_S2S_TIMEOUT:-5} * 2 + 12 ))

# shellcheck disable=SC2034  # read by lab.sh
LAB_ZONES="example _5269._tcp.dane-bogus.example _5270._tcp.dane-bogus.example insecure.example"
# shellcheck disable=SC2034
LAB_BOGUS_ZONES="_5269._tcp.dane-bogus.example _5270._tcp.dane-bogus.example"
# shellcheck disable=SC2034
LAB_INSECURE_ZONES="insecure.example"

lab_init "$T" || exit 1
[ -x "$XF_BIN" ] || xf_setup_failed "$T: no xmppfront binary at $XF_BIN (build first)"
lab_up || xf_setup_failed "$T: lab_up"
lab_user "$BACKEND_USER" || xf_setup_failed "$T: cannot create user $BACKEND_USER"
BK_UID=$(id -u "$BACKEND_USER")


lab_remote ok dane-ok.example 4 "$NET.11" || xf_setup_failed "$T: remote ok"
lab_remote bad dane-bad.example 5 "$NET.12" || xf_setup_failed "$T: remote bad"
lab_remote bogus dane-bogus.example 5 "$NET.13" || xf_setup_failed "$T: remote bogus"
lab_remote insec r.insecure.example 5 "$NET.14" || xf_setup_failed "$T: remote insec"
lab_remote srvt dane-srv.example 5 "$NET.15" || xf_setup_failed "$T: remote srvt"
lab_remote srvi r2.insecure.example 5 "$NET.16" || xf_setup_failed "$T: remote srvi"
lab_remote nosrv dane-nosrv.example 4 "$NET.17" || xf_setup_failed "$T: remote nosrv"
REMOTES="ok bad bogus insec srvt srvi nosrv"
# lab_rr_drop OWNER — forget the records of OWNER declared so far (lab_remote's SRV)
lab_rr_drop() {
  local rr keep=()
  for rr in "${LAB_RRS[@]}"; do [ "${rr%% *}" = "${1%.}." ] || keep+=("$rr"); done
  LAB_RRS=("${keep[@]}")
}
# srv_target_world NAME TARGET — NAME's SRV -> TARGET (same address), certificate for TARGET only
srv_target_world() {
  local name=$1 tgt=$2 d=${LAB_R_DOMAIN[$1]} dir="$LAB_DIR/remote/$1"
  lab_rr_drop "_xmpp-server._tcp.$d"; lab_rr_drop "_xmpps-server._tcp.$d"
  lab_host "$tgt" "${LAB_R_ADDR4[$name]}" && lab_xmpp_srv "$d" "$tgt" 5269 5270 &&
  xf_make_cert "$LAB_DIR/pki" "$dir/pem-target" "$tgt" "$tgt" &&
  cp "$dir/pem-target/fullchain.pem" "$dir/certs/$d.crt" &&
  cp "$dir/pem-target/privkey.pem" "$dir/certs/$d.key" &&
  chown -R "$LAB_RUN_AS:" "$dir"
}
srv_target_world srvt xmpp.dane-host.example || xf_setup_failed "$T: srvt world"
srv_target_world srvi xmpp.r2.insecure.example || xf_setup_failed "$T: srvi world"
lab_rr_drop _xmpp-server._tcp.dane-nosrv.example; lab_rr_drop _xmpps-server._tcp.dane-nosrv.example
lab_rr _5269._tcp.dane-nosrv.example TLSA "$(lab_tlsa311 "$LAB_DIR/remote/nosrv/pem/fullchain.pem")"
# a key nobody uses, for the mismatching records
lab_self_signed "$LAB_DIR/pki/other" other.example || xf_setup_failed "$T: other key"
OTHER=$(lab_tlsa311 "$LAB_DIR/pki/other/cert.pem")
lab_tlsa_for dane-ok.example "$(lab_tlsa311 "$LAB_DIR/remote/ok/pem/fullchain.pem")"
lab_tlsa_for dane-bad.example "$OTHER"
lab_tlsa_for dane-bogus.example "$(lab_tlsa311 "$LAB_DIR/remote/bogus/pem/fullchain.pem")"
lab_tlsa_for r.insecure.example "$OTHER"

XFD="$LAB_DIR/xf"
mkdir -p "$XFD/tenants"
xf_make_cert "$LAB_DIR/pki" "$XFD/certs/$TENANT" "$TENANT" "$TENANT" || xf_setup_failed "$T: cert"
lab_self_signed "$XFD/certs/$TENANT_B" "$TENANT_B" || xf_setup_failed "$T: cert b"
lab_host xf.example "$XF4" || xf_setup_failed "$T: xf address"
lab_xmpp_srv "$TENANT" xf.example 5269 5270
lab_xmpp_srv "$TENANT_B" xf.example 5269 5270
lab_addr "$BK4" || xf_setup_failed "$T: backend address"
lab_dns_start || xf_setup_failed "$T: DNS (knot + unbound)"

# ------------------------------------------------------------------------- DNS as set up
# The world is what the cases need (else a failure below would mean nothing).
dig_flags() { lab_dig +dnssec "$@" | grep '^;; Flags:'; }
dns_check() {
  lab_dig +dnssec TLSA _5270._tcp.dane-ok.example | grep -E 'status|Flags|TLSA' &&
  dig_flags SRV _xmpps-server._tcp.dane-ok.example | grep -q ' ad' &&
  dig_flags TLSA _5270._tcp.dane-ok.example | grep -q ' ad' &&
  dig_flags SRV _xmpps-server._tcp.dane-bogus.example | grep -q ' ad' &&
  lab_dig TLSA _5270._tcp.dane-bogus.example | grep -q 'status: SERVFAIL' &&
  lab_dig +cd TLSA _5270._tcp.dane-bogus.example | grep -q 'TLSA' &&
  lab_dig TLSA _5270._tcp.r.insecure.example | grep -q 'status: NOERROR' &&
  ! dig_flags TLSA _5270._tcp.r.insecure.example | grep -q ' ad' &&
  ! dig_flags SRV _xmpps-server._tcp.r.insecure.example | grep -q ' ad'
}
xf_check "DNS: signed SRV/TLSA (AD) for dane-ok; TLSA of dane-bogus SERVFAIL (data there with +cd); insecure.example answers without AD" dns_check

# ------------------------------------------------------------------------- backend
BKD="$LAB_DIR/backend"
lab_backend_prosody "$BKD" "$BK4" "$BACKEND_USER" "$TENANT $TENANT_B" ||
  xf_setup_failed "$T: backend config"

# ------------------------------------------------------------------------- xmppfront
for d in "$TENANT" "$TENANT_B"; do
  cat > "$XFD/tenants/$d.json" <<EOF
{
  "domain": "$d",
  "certificate": "../certs/$d/fullchain.pem",
  "key": "../certs/$d/privkey.pem",
  "c2s_backend": "$BK4:5222",
  "s2s_backend": "$BK4:5269",
  "federation": "${POLICY[$d]}"
}
EOF
done
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
    "connect_timeout_s": 3,
    "negotiation_timeout_s": ${LAB_S2S_TIMEOUT:-5}
  }
}
EOF
XF_LOG="$XFD/xmppfront.log"

lab_remotes_start || xf_setup_failed "$T: remote Prosody servers"
lab_backend_prosody_start "$BKD" "$BACKEND_USER"
lab_xf_start "$XFD/xmppfront.json" "$XF_LOG"; XF_PID=$LAB_XF_PID
lab_backend_prosody_wait "$BKD" "$BK4" || xf_setup_failed "$T: backend"
lab_xf_wait 127.0.0.1 "$OUT_PORT" "$XF_LOG" || xf_setup_failed "$T: xmppfront"
lab_redirect_uid "$BK_UID" "$OUT_PORT" "5269, 5270" || xf_setup_failed "$T: redirect rule"
echo "  lab up in $(elapsed)s: namespace $LAB_NS, resolver $LAB_RESOLVER, remotes: $REMOTES"

# ------------------------------------------------------------------------- the four cases
OUT="$LAB_DIR/sends.out"
ACC=(--account "user1@$TENANT" pass1 "$BK4" 5222 --account "user1@$TENANT_B" pass1 "$BK4" 5222)
SENDS=(--send "user1@$TENANT_B" "user1@dane-ok.example")
for r in $REMOTES; do
  read -r -a a < <(lab_account "$r" user1)
  ACC+=(--account "${a[@]}")
  SENDS+=(--send "user1@$TENANT" "user1@${LAB_R_DOMAIN[$r]}")
done
lab_xmpp "${ACC[@]}" "${SENDS[@]}" --timeout "$SEND_TIMEOUT" > "$OUT" 2>&1
RC=$?
sleep 0.3
xf_check "every account logged in, every send answered (lab_xmpp rc=$RC)" test "$RC" -eq 0

# result_of REMOTE [FROM_TENANT]
result_of() {
  awk -v f="user1@${2:-$TENANT}" -v t="user1@${LAB_R_DOMAIN[$1]}" '$1 == "RESULT" && $2 == f && $3 == t { print $4 }' "$OUT"
}
# xmppfront's lines about remote R from tenant D (its "remote D->R" and "outbound ...
# tenant=D remote=R" lines)
xf_lines() { lab_xf_out_lines "$XF_LOG" "${2:-$TENANT}" "$1"; }
show() { echo "send: $(result_of "$1")"; xf_lines "${LAB_R_DOMAIN[$1]}" | cut -c1-900; }

case_ok() {
  show ok
  [ "$(result_of ok)" = delivered ] &&
    xf_lines dane-ok.example | grep -q 'dane: valid (record 1 (3 1 1): DANE-EE' &&
    xf_lines dane-ok.example | grep 'authenticated auth=' | grep -q 'decided by dane; dane: valid' &&
    # the PKIX verdict of that self-signed certificate is invalid: DANE alone proved it
    xf_lines dane-ok.example | grep 'authenticated auth=' | grep -q 'pkix: invalid'
}
xf_check "(a) self-signed dane-ok.example with a matching TLSA 3 1 1 in a signed zone: delivered under policy trusted, proven by dane (pkix invalid)" case_ok

case_ok_dialback() {
  echo "send: $(result_of ok "$TENANT_B")"; xf_lines dane-ok.example "$TENANT_B" | cut -c1-900
  [ "$(result_of ok "$TENANT_B")" = delivered ] &&
    xf_lines dane-ok.example "$TENANT_B" | grep 'authenticated auth=dialback' |
      grep 'policy encrypted; tls; decided by dane; dane: valid' | grep 'pkix: invalid' | grep -q 'dialback: valid' &&
    grep -q "lab-s2s dir=incoming from=$TENANT_B to=dane-ok.example .*mechanism=dialback" \
      "$LAB_DIR/remote/ok/prosody.log"
}
xf_check "(a') self-signed tenant b.example (encrypted) -> dane-ok.example: no EXTERNAL offered, dialback over the DANE-proven certificate, delivered" case_ok_dialback

case_bad() {
  show bad
  case "$(result_of bad)" in error:*) ;; *) return 1 ;; esac
  xf_lines dane-bad.example | grep -q 'aborted: dane: invalid (TLSA mismatch, PKIX not enough' &&
    xf_lines dane-bad.example | grep 'refused' | grep -q 'dane: invalid' &&
    ! xf_lines dane-bad.example | grep -q 'authenticated auth='
}
xf_check "(b) CA-signed dane-bad.example (valid PKIX) whose TLSA does not match: refused (bounce), logged dane: invalid" case_bad

case_bogus() {
  show bogus
  case "$(result_of bogus)" in error:*) ;; *) return 1 ;; esac
  xf_lines dane-bogus.example | grep -q 'aborted: dane: error (TLSA _5270._tcp.dane-bogus.example bogus (SERVFAIL' &&
    xf_lines dane-bogus.example | grep -q 'aborted: dane: error (TLSA _5269._tcp.dane-bogus.example bogus (SERVFAIL' &&
    xf_lines dane-bogus.example | grep 'refused' | grep -q 'bogus' &&
    ! xf_lines dane-bogus.example | grep -q 'authenticated auth='
}
xf_check "(c) dane-bogus.example with bogus TLSA (SERVFAIL from the validating resolver): every target aborted, refused and logged, no PKIX downgrade" case_bogus

case_insec() {
  show insec
  [ "$(result_of insec)" = delivered ] &&
    xf_lines r.insecure.example | grep 'authenticated auth=' |
      grep 'dane: absent (not applicable: SRV answer insecure' | grep -q 'pkix: valid'
}
xf_check "(d) CA-signed r.insecure.example in an insecure zone (a wrong TLSA published there): delivered by PKIX, dane absent (SRV insecure)" case_insec

case_srvt() {
  show srvt
  [ "$(result_of srvt)" = delivered ] &&
    xf_lines dane-srv.example | grep 'authenticated auth=' |
      grep -E 'dane: absent \(no TLSA at _(5269|5270)._tcp.xmpp.dane-host.example' |
      grep -q 'pkix: valid (chain valid; DNS-ID xmpp.dane-host.example matches xmpp.dane-host.example'
}
xf_check "(e) dane-srv.example, signed SRV -> xmpp.dane-host.example, certificate only for the target: delivered (the secure SRV target is a reference identity)" case_srvt

case_srvi() {
  show srvi
  case "$(result_of srvi)" in error:*) ;; *) return 1 ;; esac
  xf_lines r2.insecure.example | grep 'refused' | grep 'dane: absent (not applicable: SRV answer insecure' |
    grep -q 'pkix: invalid'
}
xf_check "(f) r2.insecure.example, insecure SRV -> a target named only in the certificate: refused (the target is no reference identity)" case_srvi

case_nosrv() {
  show nosrv
  [ "$(result_of nosrv)" = delivered ] &&
    xf_lines dane-nosrv.example | grep 'authenticated auth=' | grep 'remote_addr=198.18.1.17:5269 ' |
      grep 'dane: valid (record 1 (3 1 1)' | grep -q 'pkix: invalid'
}
xf_check "(g) self-signed dane-nosrv.example without SRV, TLSA at _5269._tcp.DOMAIN in a signed zone: delivered by DANE (A/AAAA fallback)" case_nosrv

# the AD bit is trusted (loopback resolver): no warning about it at start
# shellcheck disable=SC2016  # $1 of the inner shell
xf_check "xmppfront trusted its loopback resolver (no 'not on loopback' warning)" \
  bash -c '! grep -a "not on loopback" "$1"' _ "$XF_LOG"

lab_down
NS=$LAB_NS
down_check() { local left; left=$(lab_leftovers "$NS") && return 0; echo "$left"; return 1; }
xf_check "lab_down: no process, namespace, /etc/netns entry or nft table left" down_check
echo "  total $(elapsed)s"
xf_finish "$T"
