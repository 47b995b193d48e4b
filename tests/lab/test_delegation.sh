#!/usr/bin/env bash
# Proving tenants that have NO certificate of their own (issue 8, "Proving tenants"; design.md
# §2 "Which certificate a peer sees"; spec-digest §3, §5, §6): a tenant served with the
# hosting certificate (main file `"hosting"`, tenant file without certificate), which names
# only hosting.example, is proven to peers by secure delegation (DNSSEC-signed SRV of the
# tenant -> the hosting name, TLSA 3 1 1 of the hosting key there; RFC 7673) or by POSH
# delegation (the tenant's POSH document is a `url` reference to the hosting's; RFC 7711
# §3.4). What is published is exactly what `xmppfront records DOMAIN` prints.
#
# The world (tests/lab/lab.sh, LAB_DNSSEC=1, zone insecure.example without trust anchor):
#   xf1 (127.0.1.100 = hosting.example): hosting identity hosting.example, SELF-SIGNED (so
#       that no PKIX can prove anything: every acceptance below is a delegation proof);
#       tenants, all served with the hosting certificate, policy `trusted`, on one
#       plaintext backend Prosody (user xfbackend, redirected to xf1's outbound listener):
#         dele.example          signed SRV -> hosting.example (+ the hosting's TLSA)
#         p.insecure.example    insecure SRV -> hosting.example; POSH reference document
#         q.insecure.example    insecure SRV -> hosting.example; no POSH document (404)
#   xf2 (127.0.1.110 = hosting2.example): a second xmppfront as the remote server, hosting
#       identity hosting2.example (self-signed), tenant far.example (hosting-served, signed
#       SRV + TLSA, `trusted`) on its own backend Prosody (user xfbackend2, redirected to
#       xf2's outbound listener)
#   nginx (443 of hosting.example and of the tenants' web, lab-CA certificate): the tenants' and the hosting's web, serving
#       the POSH documents `xmppfront records` prints (xf1's hosting certificate is
#       self-signed, so its own 443 could not serve a document a peer's PKIX accepts)
#   Prosody 0.12 remotes, use_dane = true with an unbound trustfile of the lab's KSKs:
#       pdane.example   type 6 (s2s_secure_auth = true)
#       pdb.example     type 5 (s2s_secure_auth = false, dialback)
# Cases:
#   (1) pdane -> dele: REFUSED — Prosody 0.12 does DANE (OpenSSL DANE-EE makes the
#       self-signed chain valid) but then checks the certificate's names against the tenant
#       (mod_s2s_auth_certs: verify_identity(to_host)); it has no notion of the secure SRV
#       target as reference identity: "certificate is not valid for this name". Control
#       pdane -> q (insecure SRV, no DANE): "certificate is self-signed".
#   (2) dele -> far and far -> dele: delivered, SASL EXTERNAL both ways; every side proves
#       the other by DANE through the secure SRV target (inbound: proxy/s2s_in_proof.c,
#       outbound: remote_negotiate.c); p -> far: delivered by POSH delegation (no DANE:
#       insecure SRV); q -> far: refused (nothing proves it).
#   (3) dele -> pdb: Prosody cannot verify the tenant's client certificate (PKIX only
#       inbound), offers no EXTERNAL: xf1 falls back to dialback, delivered; pdb -> dele:
#       delivered (DANE chain valid, name invalid, allowed by its policy).
# Knobs: XF_BIN, XF_VERBOSE=1, XF_KEEP=1, LAB_DEBUG=1, LAB_S2S_TIMEOUT (5);
# DELEG_BREAK=notlsa publishes no TLSA for hosting.example (the test must then fail: the
# secure delegation of dele.example is gone; the POSH cases still pass).
# Usage: bash tests/lab/test_delegation.sh   (root; exit 0 only if every check passed)
# shellcheck disable=SC2034  # read by lab.sh
LAB_DNSSEC=1
# shellcheck disable=SC2034
LAB_ZONES="example insecure.example"
# shellcheck disable=SC2034
LAB_INSECURE_ZONES="insecure.example"
# shellcheck source=lab.sh
. "$(dirname "$0")/lab.sh"
T=delegation
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
NET=198.18.1
XF1=127.0.1.100; XF2=127.0.1.110
BK1=127.0.2.1;   BK2=127.0.2.2
OUT1=15269;      OUT2=15279
D1=dele.example; DP=p.insecure.example; DQ=q.insecure.example; DF=far.example
SEND_TIMEOUT=$(( ${LAB_S2S_TIMEOUT:-5} * 2 + 12 ))
NGINX=${NGINX:-/usr/sbin/nginx}
WK=.well-known/posh/xmpp-server.json

lab_init "$T" || exit 1
[ -x "$XF_BIN" ] || xf_setup_failed "$T: no xmppfront binary at $XF_BIN (build first)"
[ -x "$NGINX" ] || xf_setup_failed "$T: no nginx at $NGINX (deploy/install-deps.sh)"
lab_up || xf_setup_failed "$T: lab_up"
for u in xfbackend xfbackend2; do lab_user "$u" || xf_setup_failed "$T: cannot create user $u"; done

# ------------------------------------------------------------------------- the two xmppfronts
# xf_instance N ADDR HOSTING OUT_PORT BACKEND "TENANTS" — config dir $LAB_DIR/xfN with a
# self-signed hosting identity and hosting-served `trusted` tenants on BACKEND.
xf_instance() {
  local bk=$5 d dir="$LAB_DIR/xf$1"
  lab_xf_instance "$1" "$2" "$3" "$4" || return 1
  for d in $6; do
    printf '{"domain": "%s", "c2s_backend": "%s:5222", "s2s_backend": "%s:5269", "federation": "trusted"}\n' \
      "$d" "$bk" "$bk" > "$dir/tenants/$d.json"
  done
}
# publish N DOMAIN [noposh] — the DNS records `xmppfront records DOMAIN` prints for instance N
# (into the lab zone; instance 1's TLSA left out with DELEG_BREAK=notlsa); its POSH documents
# into nginx's root (none with noposh).
publish() {
  local out owner ttl cls type rdata url doc
  out=$("$XF_BIN" records "$2" --config "$LAB_DIR/xf$1/xmppfront.json") || return 1
  while read -r owner ttl cls type rdata; do
    case "$owner" in ''|';'*) continue ;; esac
    [ "$type" = TLSA ] && [ "$1" = 1 ] && [ "${DELEG_BREAK:-}" = notlsa ] && continue
    lab_rr "$owner" "$type" "$rdata"
  done <<< "$out"
  # "; https://HOST/.well-known/posh/xmpp-server.json" then ";   DOCUMENT"
  url=$(grep -o "https://[^ ]*/$WK" <<< "$out" | head -1)
  [ -n "$url" ] && [ "${3:-}" != noposh ] || return 0
  doc=$(grep -A1 -F "; $url" <<< "$out" | tail -1 | sed 's/^;[[:space:]]*//')
  mkdir -p "$WEB/root/$2/.well-known/posh" && printf '%s\n' "$doc" > "$WEB/root/$2/$WK"
}

lab_ca || xf_setup_failed "$T: CA"
WEB="$LAB_DIR/web"
mkdir -p "$WEB/logs"
xf_instance 1 "$XF1" hosting.example "$OUT1" "$BK1" "$D1 $DP $DQ" || xf_setup_failed "$T: xf1 config"
xf_instance 2 "$XF2" hosting2.example "$OUT2" "$BK2" "$DF" || xf_setup_failed "$T: xf2 config"
{ publish 1 hosting.example && publish 1 "$D1" && publish 1 "$DP" &&
  publish 2 hosting2.example && publish 2 "$DF"; } || xf_setup_failed "$T: xmppfront records"
# q.insecure.example: its records, but no POSH document (the control)
publish 1 "$DQ" noposh || xf_setup_failed "$T: xmppfront records $DQ"
# the tenants' web (nginx) is on the backend's address: the lab's slixmpp client connects
# to the domain's A record when there is one
{ lab_host "$DP" "$BK1" && lab_host "$DQ" "$BK1" && lab_addr "$BK2"; } || xf_setup_failed "$T: addresses"

lab_remote pdane pdane.example 6 "$NET.41" || xf_setup_failed "$T: remote pdane"
lab_remote pdb pdb.example 5 "$NET.42" || xf_setup_failed "$T: remote pdb"
lab_dns_start || xf_setup_failed "$T: DNS (knot + unbound)"
for r in pdane pdb; do
  lab_remote_extra "$r" "-- DANE (RFC 7673) with libunbound validating on its own: the lab's KSKs
use_dane = true
unbound = { resolvconf = true, hoststxt = true, trustfile = \"$LAB_ANCHORS\" }" ||
    xf_setup_failed "$T: remote $r DANE config"
done

dig_flags() { lab_dig +dnssec "$@" | grep '^;; Flags:'; }
dns_check() {
  lab_dig SRV "_xmpps-server._tcp.$D1" | grep -q 'SRV.* 5270 hosting.example.' &&
  dig_flags SRV "_xmpps-server._tcp.$D1" | grep -q ' ad' &&
  { [ "${DELEG_BREAK:-}" = notlsa ] || dig_flags TLSA _5270._tcp.hosting.example | grep -q ' ad'; } &&
  lab_dig SRV "_xmpp-server._tcp.$DP" | grep -q 'SRV.* 5269 hosting.example.' &&
  ! dig_flags SRV "_xmpp-server._tcp.$DP" | grep -q ' ad' &&
  lab_dig SRV "_xmpps-server._tcp.$DF" | grep -q 'SRV.* 5270 hosting2.example.'
}
xf_check "DNS from 'xmppfront records': signed SRV $D1 -> hosting.example and its TLSA (AD); $DP's SRV insecure; $DF -> hosting2.example" dns_check

# ------------------------------------------------------------------------- web, backends, start
xf_make_cert "$LAB_DIR/pki" "$WEB/cert" hosting.example hosting.example "$DP" "$DQ" || xf_setup_failed "$T: web cert"
lab_web_write "$WEB" "listen $BK1:443 ssl; listen $XF1:443 ssl;"
lab_backend_prosody "$LAB_DIR/bk1" "$BK1" xfbackend "$D1 $DP $DQ" || xf_setup_failed "$T: backend 1"
lab_backend_prosody "$LAB_DIR/bk2" "$BK2" xfbackend2 "$DF" || xf_setup_failed "$T: backend 2"

lab_web_start "$WEB"
lab_remotes_start || xf_setup_failed "$T: remote Prosody servers"
declare -A BKPID XFPID
for n in 1 2; do
  u=xfbackend; [ "$n" = 2 ] && u=xfbackend2
  ip netns exec "$LAB_NS" setpriv --reuid="$u" --regid="$u" --clear-groups -- \
    env HOME="$LAB_DIR/bk$n" prosody --config "$LAB_DIR/bk$n/prosody.cfg.lua" >"$LAB_DIR/bk$n/prosody.stdout" 2>&1 &
  BKPID[$n]=$!; xf_track $!
  ip netns exec "$LAB_NS" "$XF_BIN" -c "$LAB_DIR/xf$n/xmppfront.json" 2>"$LAB_DIR/xf$n/xmppfront.log" &
  XFPID[$n]=$!; xf_track $!
done
XL1="$LAB_DIR/xf1/xmppfront.log"; XL2="$LAB_DIR/xf2/xmppfront.log"
lab_wait_port "$XF1" 443 10 "$LAB_WEB_PID" || { cat "$WEB/logs/stdout" "$WEB/logs/error.log" >&2; xf_setup_failed "$T: nginx"; }
for n in 1 2; do
  a=$BK1; o=$OUT1; [ "$n" = 2 ] && { a=$BK2; o=$OUT2; }
  lab_wait_port "$a" 5269 20 "${BKPID[$n]}" "$LAB_DIR/bk$n/prosody.log" ||
    { tail -20 "$LAB_DIR/bk$n/prosody.stdout" "$LAB_DIR/bk$n/prosody.log" >&2; xf_setup_failed "$T: backend $n"; }
  lab_wait_port 127.0.0.1 "$o" 10 "${XFPID[$n]}" || { tail -5 "$LAB_DIR/xf$n/xmppfront.log" >&2; xf_setup_failed "$T: xf$n"; }
done
{ lab_redirect_uid "$(id -u xfbackend)" "$OUT1" "5269, 5270" &&
  lab_redirect_uid "$(id -u xfbackend2)" "$OUT2" "5269, 5270"; } || xf_setup_failed "$T: redirect rules"
echo "  lab up in $(elapsed)s: namespace $LAB_NS, resolver $LAB_RESOLVER"

hosting_check() {
  grep -a 'hosting identity hosting.example' "$XL1" | grep -q 'served for 3 tenants' &&
  grep -a 'hosting identity hosting2.example' "$XL2" | grep -q 'served for 1 tenants\?'
}
xf_check "both instances load their hosting identity and serve their tenants with it" hosting_check
web_check() {
  local c=(lab_exec curl -sS --max-time 5 --cacert "$LAB_DIR/pki/ca.pem")
  "${c[@]}" "https://$DP/$WK" | grep -q '"url":"https://hosting.example/.well-known/posh/xmpp-server.json"' &&
  "${c[@]}" "https://hosting.example/$WK" | grep -q '"fingerprints"' &&
  [ "$("${c[@]}" -o /dev/null -w '%{http_code}' "https://$DQ/$WK")" = 404 ]
}
xf_check "web: $DP's POSH document is a url reference to hosting.example's (fingerprints); 404 for $DQ" web_check

# ------------------------------------------------------------------------- sends
OUT="$LAB_DIR/sends.out"
acc() { printf -- '--account user%s@%s pass%s %s 5222 ' "$1" "$2" "$1" "$3"; }
# shellcheck disable=SC2046,SC2086  # word lists on purpose
lab_xmpp $(acc 1 "$D1" "$BK1") $(acc 2 "$D1" "$BK1") $(acc 1 "$DP" "$BK1") $(acc 1 "$DQ" "$BK1") \
  $(acc 1 "$DF" "$BK2") $(acc 2 "$DF" "$BK2") $(lab_account pdane user1 | sed 's/^/--account /') \
  $(lab_account pdb user1 | sed 's/^/--account /') \
  --send "user1@pdane.example" "user1@$D1" --send "user1@pdane.example" "user1@$DQ" \
  --send "user1@$D1" "user1@$DF" --send "user2@$DF" "user2@$D1" \
  --send "user1@$DP" "user2@$DF" --send "user1@$DQ" "user2@$DF" \
  --send "user2@$D1" "user1@pdb.example" --send "user1@pdb.example" "user1@$D1" \
  --timeout "$SEND_TIMEOUT" > "$OUT" 2>&1
RC=$?
xf_check "every account logged in, every send answered (lab_xmpp rc=$RC)" test "$RC" -eq 0
sleep 0.3

result_of() { awk -v f="$1" -v t="$2" '$1 == "RESULT" && $2 == f && $3 == t { print $4 }' "$OUT"; }
show() { echo "send $1 -> $2: $(result_of "$1" "$2")"; }
PD_LOG="$LAB_DIR/remote/pdane/prosody.log"; PB_LOG="$LAB_DIR/remote/pdb/prosody.log"

case_prosody_dane() {
  show "user1@pdane.example" "user1@$D1"; grep -a "Forbidding" "$PD_LOG" | cut -c1-300
  case "$(result_of "user1@pdane.example" "user1@$D1")" in error:*) ;; *) return 1 ;; esac
  # (mod_s2s friendly_cert_error: "not valid for this name" only once the chain is valid,
  # which for the self-signed hosting certificate only DANE can make it)
  grep -aq "Forbidding insecure connection to/from $D1 because its certificate is not valid for this name" "$PD_LOG"
}
xf_check "(1) Prosody (0.12 and 13 alike; use_dane, s2s_secure_auth) -> $D1: bounced; its DANE made the self-signed hosting chain valid, then the name check against $D1 refused it (Prosody takes no SRV-target reference identity)" case_prosody_dane

# Prosody's major version: 0.12 (Debian 12) and 13 (Debian 13) verify differently (13 has
# DANE for client certificates and other log texts). Not `prosody --version`: in 0.12
# that starts a server.
PROSODY_MAJOR=$(dpkg-query -W -f '${Version}' prosody 2>/dev/null | cut -d. -f1)
case_prosody_ctl() {
  show "user1@pdane.example" "user1@$DQ"
  grep -a "to/from $DQ" "$PD_LOG" | cut -c1-300
  case "$(result_of "user1@pdane.example" "user1@$DQ")" in error:*) ;; *) return 1 ;; esac
  # 0.12 says why; 13 refuses the same stream (a bounce) with other wording.
  [ "$PROSODY_MAJOR" != 0 ] ||
    grep -aq "Forbidding insecure connection to/from $DQ because its certificate is not trusted" "$PD_LOG"
}
xf_check "(1') control: the same Prosody -> $DQ (insecure SRV: no DANE): bounced, 'certificate is not trusted' (the chain, without DANE)" case_prosody_ctl

case_d1_far() {
  show "user1@$D1" "user1@$DF"
  local o i
  o=$(lab_xf_out_lines "$XL1" "$D1" "$DF"); i=$(lab_xf_in_lines "$XL2" "$D1")
  echo "$o" | grep 'authenticated auth=' | cut -c1-600; echo "$i" | grep 'inbound proofs\|s2s authenticated' | cut -c1-600
  [ "$(result_of "user1@$D1" "user1@$DF")" = delivered ] &&
    grep 'authenticated auth=sasl-external' <<< "$o" | grep 'dane: valid (record 1 (3 1 1): DANE-EE' | grep -q 'pkix: invalid' &&
    grep -q "inbound proofs .* from=$D1 .*dane: valid (\"record 1 (3 1 1): DANE-EE" <<< "$i" &&
    grep 's2s authenticated' <<< "$i" | grep 'auth=sasl-external' | grep 'dane: valid' | grep -q 'pkix: invalid'
}
xf_check "(2) $D1 (hosting-served, xf1) -> $DF (xf2, trusted): delivered by SASL EXTERNAL; xf2 proves $D1's client certificate by DANE via the secure SRV target (pkix invalid), xf1 proves xf2 by DANE" case_d1_far

case_far_d1() {
  show "user2@$DF" "user2@$D1"
  local o i
  o=$(lab_xf_out_lines "$XL2" "$DF" "$D1"); i=$(lab_xf_in_lines "$XL1" "$DF")
  echo "$o" | grep 'authenticated auth=' | cut -c1-600; echo "$i" | grep 'inbound proofs\|s2s authenticated' | cut -c1-600
  [ "$(result_of "user2@$DF" "user2@$D1")" = delivered ] &&
    grep 'authenticated auth=sasl-external' <<< "$o" | grep 'dane: valid (record 1 (3 1 1): DANE-EE' | grep -q 'pkix: invalid' &&
    grep 's2s authenticated' <<< "$i" | grep 'auth=sasl-external' | grep 'dane: valid' | grep -q 'pkix: invalid'
}
xf_check "(2') back: $DF (xf2) -> $D1 (xf1, trusted): delivered by SASL EXTERNAL; xf2 proves the hosting certificate for $D1 by DANE (secure SRV target), xf1 proves $DF inbound by DANE" case_far_d1

case_posh() {
  show "user1@$DP" "user2@$DF"
  local i
  i=$(lab_xf_in_lines "$XL2" "$DP"); echo "$i" | grep 'inbound proofs\|s2s authenticated' | cut -c1-700
  [ "$(result_of "user1@$DP" "user2@$DF")" = delivered ] &&
    grep -q "inbound proofs .* from=$DP .*dane: absent (\"not applicable: SRV answer insecure" <<< "$i" &&
    grep 's2s authenticated' <<< "$i" | grep 'auth=sasl-external' |
      grep 'posh: valid (.*delegated to https://hosting.example/.well-known/posh/xmpp-server.json' | grep -q 'pkix: invalid'
}
xf_check "(2'') $DP (hosting-served, insecure SRV, no TLSA) -> $DF (trusted): delivered, xf2 proves it by POSH delegation (url -> hosting.example's document)" case_posh

case_posh_ctl() {
  show "user1@$DQ" "user2@$DF"
  local i
  i=$(lab_xf_in_lines "$XL2" "$DQ"); echo "$i" | grep 'inbound proofs\|refused' | cut -c1-700
  case "$(result_of "user1@$DQ" "user2@$DF")" in error:*) ;; *) return 1 ;; esac
  grep 's2s refused' <<< "$i" | grep 'policy trusted' | grep -q 'posh: absent' &&
    ! grep -q 's2s authenticated' <<< "$i"
}
xf_check "(2''') control: $DQ (the same, no POSH document) -> $DF: refused under trusted (posh: absent), bounced" case_posh_ctl

case_dialback() {
  show "user2@$D1" "user1@pdb.example"
  local o
  o=$(lab_xf_out_lines "$XL1" "$D1" pdb.example); echo "$o" | grep 'authenticated auth=' | cut -c1-600
  grep -a "lab-s2s dir=incoming from=$D1 " "$PB_LOG" | cut -c1-300
  [ "$(result_of "user2@$D1" "user1@pdb.example")" = delivered ] || return 1
  if [ "$PROSODY_MAJOR" = 0 ]; then
    # 0.12 verifies client certificates by PKIX only: no EXTERNAL, dialback.
    grep 'authenticated auth=dialback' <<< "$o" | grep -q 'pkix: valid' &&
      grep -aq "lab-s2s dir=incoming from=$D1 to=pdb.example .*mechanism=dialback secure=true chain=invalid" "$PB_LOG"
  else
    # 13 verifies the client certificate by DANE through the secure SRV target itself,
    # so it offers EXTERNAL and xmppfront takes it.
    grep -q 'authenticated auth=sasl-external' <<< "$o" &&
      grep -aq "lab-s2s dir=incoming from=$D1 to=pdb.example .*mechanism=EXTERNAL secure=true chain=valid identity=valid" "$PB_LOG"
  fi
}
xf_check "(3) $D1 -> Prosody pdb.example (s2s_secure_auth = false): delivered — Prosody 0.12 cannot verify the hosting certificate as client certificate (PKIX only): dialback; Prosody 13 verifies it by DANE: EXTERNAL" case_dialback

case_pdb_in() {
  show "user1@pdb.example" "user1@$D1"
  grep -a "to/from $D1\|lab-s2s dir=outgoing .*to=$D1" "$PB_LOG" | cut -c1-300
  [ "$(result_of "user1@pdb.example" "user1@$D1")" = delivered ] &&
    grep -aq "lab-s2s dir=outgoing from=pdb.example to=$D1 .*chain=valid identity=invalid" "$PB_LOG"
}
xf_check "(3') Prosody pdb.example -> $D1: delivered; Prosody's DANE found the self-signed chain valid, the name invalid, which its policy allows" case_pdb_in

# shellcheck disable=SC2016
xf_check "both xmppfronts trusted their loopback resolver (no 'not on loopback' warning)" \
  bash -c '! grep -a "not on loopback" "$1" "$2"' _ "$XL1" "$XL2"

lab_down
NS=$LAB_NS
down_check() { local left; left=$(lab_leftovers "$NS") && return 0; echo "$left"; return 1; }
xf_check "lab_down: no process, namespace, /etc/netns entry or nft table left" down_check
echo "  total $(elapsed)s"
xf_finish "$T"
