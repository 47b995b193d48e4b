#!/usr/bin/env bash
# Key rollover (issue 8, "Proving tenants" / Tests "Rollover"; docs/rollover.md):
# `xmppfront rollover DOMAIN` switches a tenant to its next_certificate / next_key only
# once DNS serves the next key's TLSA records securely for two TTLs, and a peer that
# verifies the tenant by DANE keeps accepting it before and after the switch.
#
# The world (tests/lab/lab.sh, LAB_DNSSEC=1, LAB_TTL=2 so that two TTLs are 4 s):
#   xf1 (127.0.1.100 = hosting.example, self-signed hosting identity): tenant own.example
#       with a SELF-SIGNED certificate of its own (no PKIX can prove it: only DANE) and a
#       second self-signed pair as next_certificate / next_key, `trusted`, on a plaintext
#       backend Prosody (user xfbackend, redirected to xf1's outbound listener). Its
#       records are what `xmppfront records own.example` prints (SRV -> the target
#       own-example.hosting.example, TLSA at _5269/_5270 of it), the next key's TLSA
#       left out at first.
#   xf2 (127.0.1.110 = hosting2.example): a second xmppfront as the peer, tenant
#       far.example (hosting-served, `trusted`, own backend, user xfbackend2): it proves
#       own.example's client certificate inbound by DANE (proxy/s2s_in_proof.c).
# Cases:
#   (0) own.example -> far.example with the old key: delivered, xf2 `dane: valid`.
#   (1) rollover with the next TLSA not published: exit 1, the reason, files unchanged;
#       with a resolver off loopback: exit 1 (AD not trusted).
#       A hosting-served tenant: exit 1 (it rolls with the hosting identity).
#   (2) next TLSA published (knotc, TTL 2): exit 1, "published since N s; switch allowed
#       after 2×TTL = M s", state file written, files unchanged; withdrawn at one port:
#       exit 1, the state is reset; published again: the wait starts from 0; the current
#       key's TLSA withdrawn at one port: a warning, the wait goes on.
#   The hosting identity of xf2 rolls too (next pair in the main file's "hosting" object,
#   its TLSA published from the start): refused with the wait, then switched.
#   (3) after 2 TTLs: exit 0; the tenant file names the new pair, no next_*, backup equal
#       to the old file, state gone, the configuration loads; xf1 restarted serves the
#       new key; own.example -> far.example: delivered, a new xf2 `dane: valid`.
# Knobs: XF_BIN, XF_VERBOSE=1, XF_KEEP=1, LAB_DEBUG=1, LAB_S2S_TIMEOUT (5).
# Usage: bash tests/lab/test_rollover.sh   (root; exit 0 only if every check passed)
# shellcheck disable=SC2034  # read by lab.sh
LAB_DNSSEC=1
# shellcheck disable=SC2034
LAB_TTL=2
# shellcheck source=lab.sh
. "$(dirname "$0")/lab.sh"
T=rollover
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
XF1=127.0.1.100; XF2=127.0.1.110
BK1=127.0.2.1;   BK2=127.0.2.2
OUT1=15269;      OUT2=15279
D1=own.example; DF=far.example; TGT=own-example.hosting.example
SEND_TIMEOUT=$(( ${LAB_S2S_TIMEOUT:-5} * 2 + 12 ))

lab_init "$T" || exit 1
[ -x "$XF_BIN" ] || xf_setup_failed "$T: no xmppfront binary at $XF_BIN (build first)"
lab_up || xf_setup_failed "$T: lab_up"
for u in xfbackend xfbackend2; do lab_user "$u" || xf_setup_failed "$T: cannot create user $u"; done

# publish N DOMAIN [SKIP_RDATA] — the records `xmppfront records DOMAIN` prints for instance
# N into the lab zone, except TLSA records with SKIP_RDATA
publish() {
  local out owner ttl cls type rdata
  out=$("$XF_BIN" records "$2" --config "$LAB_DIR/xf$1/xmppfront.json") || return 1
  while read -r owner ttl cls type rdata; do
    case "$owner" in ''|';'*) continue ;; esac
    [ "$type" = TLSA ] && [ -n "${3:-}" ] && [ "$rdata" = "$3" ] && continue
    lab_rr "$owner" "$type" "$rdata"
  done <<< "$out"
}

lab_ca || xf_setup_failed "$T: CA"
lab_xf_instance 1 "$XF1" hosting.example "$OUT1" || xf_setup_failed "$T: xf1 config"
lab_xf_instance 2 "$XF2" hosting2.example "$OUT2" || xf_setup_failed "$T: xf2 config"
# xf2's hosting identity rolls too (the next pair in the main file's "hosting" object)
MF2="$LAB_DIR/xf2/xmppfront.json"
lab_self_signed "$LAB_DIR/xf2/certs/hosting-next" hosting2.example || xf_setup_failed "$T: hosting2 next"
sed -i 's|"key": "certs/hosting/privkey.pem"}|"key": "certs/hosting/privkey.pem", "next_certificate": "certs/hosting-next/fullchain.pem", "next_key": "certs/hosting-next/privkey.pem"}|' "$MF2"
grep -q next_key "$MF2" || xf_setup_failed "$T: hosting2 next pair"
cp "$MF2" "$LAB_DIR/main2.orig"
HNEXT="3 1 1 $(lab_spki_sha256 "$LAB_DIR/xf2/certs/hosting-next/cert.pem")"
C1="$LAB_DIR/xf1/certs"
{ lab_self_signed "$C1/cur" "$D1" && lab_self_signed "$C1/next" "$D1"; } || xf_setup_failed "$T: tenant certificates"
TF="$LAB_DIR/xf1/tenants/$D1.json"
cat > "$TF" <<EOF
{
  "domain": "$D1",
  "certificate": "../certs/cur/fullchain.pem",
  "key": "../certs/cur/privkey.pem",
  "next_certificate": "../certs/next/fullchain.pem",
  "next_key": "../certs/next/privkey.pem",
  "c2s_backend": "$BK1:5222", "s2s_backend": "$BK1:5269",
  "federation": "trusted"
}
EOF
printf '{"domain": "%s", "c2s_backend": "%s:5222", "s2s_backend": "%s:5269", "federation": "trusted"}\n' \
  "$DF" "$BK2" "$BK2" > "$LAB_DIR/xf2/tenants/$DF.json"
cp "$TF" "$LAB_DIR/tenant.orig"
CUR="3 1 1 $(lab_spki_sha256 "$C1/cur/cert.pem")"; NEXT="3 1 1 $(lab_spki_sha256 "$C1/next/cert.pem")"
{ publish 1 "$D1" "$NEXT" && publish 2 hosting2.example && publish 2 "$DF"; } ||
  xf_setup_failed "$T: xmppfront records"
lab_host "$TGT" "$XF1" || xf_setup_failed "$T: target address"
{ lab_addr "$BK1" && lab_addr "$BK2"; } || xf_setup_failed "$T: addresses"
lab_dns_start || xf_setup_failed "$T: DNS (knot + unbound)"

lab_backend_prosody "$LAB_DIR/bk1" "$BK1" xfbackend "$D1" || xf_setup_failed "$T: backend 1"
lab_backend_prosody "$LAB_DIR/bk2" "$BK2" xfbackend2 "$DF" || xf_setup_failed "$T: backend 2"
declare -A XFPID BKPID
xf_start() {
  ip netns exec "$LAB_NS" "$XF_BIN" -c "$LAB_DIR/xf$1/xmppfront.json" 2>>"$LAB_DIR/xf$1/xmppfront.log" &
  XFPID[$1]=$!; xf_track $!
  local o=$OUT1; [ "$1" = 2 ] && o=$OUT2
  lab_wait_port 127.0.0.1 "$o" 10 "${XFPID[$1]}" || { tail -5 "$LAB_DIR/xf$1/xmppfront.log" >&2; return 1; }
}
for n in 1 2; do
  u=xfbackend; [ "$n" = 2 ] && u=xfbackend2
  ip netns exec "$LAB_NS" setpriv --reuid="$u" --regid="$u" --clear-groups -- \
    env HOME="$LAB_DIR/bk$n" prosody --config "$LAB_DIR/bk$n/prosody.cfg.lua" >"$LAB_DIR/bk$n/prosody.stdout" 2>&1 &
  BKPID[$n]=$!; xf_track $!
  xf_start "$n" || xf_setup_failed "$T: xf$n"
done
for n in 1 2; do
  a=$BK1; [ "$n" = 2 ] && a=$BK2
  lab_wait_port "$a" 5269 20 "${BKPID[$n]}" "$LAB_DIR/bk$n/prosody.log" ||
    { tail -20 "$LAB_DIR/bk$n/prosody.stdout" "$LAB_DIR/bk$n/prosody.log" >&2; xf_setup_failed "$T: backend $n"; }
done
{ lab_redirect_uid "$(id -u xfbackend)" "$OUT1" "5269, 5270" &&
  lab_redirect_uid "$(id -u xfbackend2)" "$OUT2" "5269, 5270"; } || xf_setup_failed "$T: redirect rules"
XL1="$LAB_DIR/xf1/xmppfront.log"; XL2="$LAB_DIR/xf2/xmppfront.log"
echo "  lab up in $(elapsed)s: namespace $LAB_NS, resolver $LAB_RESOLVER"

# ------------------------------------------------------------------------- helpers
tlsa_at() {  # "3 1 1 hex" per record at _PORT._tcp.TGT, as the resolver answers
  lab_dig +short TLSA "_$1._tcp.$TGT" | awk '{ h = ""; for (i = 4; i <= NF; i++) h = h $i; print $1, $2, $3, tolower(h) }'
}
# send N [new]: user N of own.example -> user N of far.example; 0 iff delivered (and with
# `new`, xf2 logged a new inbound authentication of own.example by DANE: SASL EXTERNAL,
# dane: valid, and xf1 proved xf2 outbound by DANE; without it the stream of an earlier send may carry the message)
send() {
  local out before after ob oa
  before=$(lab_xf_in_lines "$XL2" "$D1" | grep 's2s authenticated' | grep 'auth=sasl-external' | grep -c 'dane: valid')
  ob=$(lab_xf_out_lines "$XL1" "$D1" "$DF" | grep 'authenticated auth=sasl-external' | grep -c 'dane: valid')
  # shellcheck disable=SC2046
  out=$(lab_xmpp --account "user$1@$D1" "pass$1" "$BK1" 5222 --account "user$1@$DF" "pass$1" "$BK2" 5222 \
    --send "user$1@$D1" "user$1@$DF" --timeout "$SEND_TIMEOUT" 2>&1)
  echo "$out" | grep '^RESULT'
  sleep 0.3
  after=$(lab_xf_in_lines "$XL2" "$D1" | grep 's2s authenticated' | grep 'auth=sasl-external' | grep -c 'dane: valid')
  oa=$(lab_xf_out_lines "$XL1" "$D1" "$DF" | grep 'authenticated auth=sasl-external' | grep -c 'dane: valid')
  lab_xf_in_lines "$XL2" "$D1" | grep 's2s authenticated' | tail -1 | cut -c1-400
  grep -q '^RESULT .* delivered' <<< "$out" && { [ "${2:-}" != new ] || { [ "$after" -gt "$before" ] && [ "$oa" -gt "$ob" ]; }; }
}
ROUT="$LAB_DIR/rollover.out"
rollover() { lab_exec "$XF_BIN" rollover "$D1" --config "$LAB_DIR/xf1/xmppfront.json" "$@" >"$ROUT" 2>&1; }
unchanged() { cmp -s "$TF" "$LAB_DIR/tenant.orig" && [ -z "$(find "$(dirname "$TF")" -maxdepth 1 -name "$D1.json.*.bak")" ]; }
STATE="$LAB_DIR/xf1/tenants/$D1.rollover-state"

# ------------------------------------------------------------------------- (0) old key
dns0() { tlsa_at 5269 | grep -qx "$CUR" && ! tlsa_at 5269 | grep -qx "$NEXT" && tlsa_at 5270 | grep -qx "$CUR"; }
xf_check "DNS: the current key's TLSA at _5269/_5270._tcp.$TGT, not the next key's" dns0
xf_check "(0) $D1 (old key) -> $DF (xf2, trusted): delivered; xf2 proves $D1 by DANE (dane: valid, SASL EXTERNAL)" send 1 new

# ------------------------------------------------------------------------- (1) not published
case1() {
  rollover; local rc=$?; cat "$ROUT"
  [ "$rc" = 1 ] && [ "$(wc -l < "$ROUT")" = 1 ] &&
    grep -q "refused: the next key's TLSA at _5269._tcp.$TGT.: not published" "$ROUT" &&
    unchanged && [ ! -e "$STATE" ]
}
xf_check "(1) rollover before the next TLSA is published: exit 1, one line naming the reason, files unchanged, no state" case1
case1b() {
  rollover --resolver 198.18.1.1:53; local rc=$?; cat "$ROUT"
  [ "$rc" = 1 ] && grep -q "refused: the resolver (198.18.1.1:53) is not on loopback" "$ROUT" && unchanged
}
xf_check "(1') rollover through a resolver off loopback: exit 1 (AD not trusted), files unchanged" case1b

case1c() {
  lab_exec "$XF_BIN" rollover "$DF" --config "$LAB_DIR/xf2/xmppfront.json" >"$ROUT" 2>&1; local rc=$?; cat "$ROUT"
  [ "$rc" = 1 ] && grep -q "refused: $DF is served with the hosting certificate and rolls with the hosting identity: .xmppfront rollover hosting2.example." "$ROUT" &&
  { lab_exec "$XF_BIN" rollover nope.example --config "$LAB_DIR/xf1/xmppfront.json"; [ $? = 2 ]; }
}
xf_check "(1'') a hosting-served tenant: exit 1 (it rolls with the hosting identity); an unknown domain: exit 2" case1c

# ------------------------------------------------------------------------- (2) published
KC=(knotc -c "$LAB_DIR/dns/knot.conf")
# zone_next set|unset PORT... — the next key's TLSA at _PORT._tcp.TGT in the signed zone
# (REC: another record's data)
zone_next() {
  local op=$1 p rec=${REC:-$NEXT}; shift
  "${KC[@]}" zone-begin example >/dev/null || return 1
  for p in "$@"; do
    if [ "$op" = set ]; then "${KC[@]}" zone-set example "_$p._tcp.$TGT." 2 TLSA "$rec"
    else "${KC[@]}" zone-unset example "_$p._tcp.$TGT." TLSA "$rec"; fi >/dev/null ||
      { "${KC[@]}" zone-abort example >/dev/null; return 1; }
  done
  "${KC[@]}" zone-commit example >/dev/null
}
# dns_next yes|no PORT — wait until the resolver serves (or no longer serves) the next key there
dns_next() {
  local i
  for ((i = 0; i < 80; i++)); do
    if tlsa_at "$2" | grep -qx "$NEXT"; then [ "$1" = yes ] && tlsa_at "$2" | grep -qx "$CUR" && return 0
    else [ "$1" = no ] && return 0; fi
    sleep 0.1
  done
  return 1
}
xf_check "the next key's TLSA added to the signed zone (knotc, TTL 2); the resolver serves both keys at _5269 and _5270" \
  eval 'zone_next set 5269 5270 && dns_next yes 5269 && dns_next yes 5270'
WAIT=""
# case_wait — exit 1 "published since N s; switch allowed after 2×TTL = M s (at ...)", WAIT=M
case_wait() {
  rollover; local rc=$?; cat "$ROUT"; cat "$STATE" 2>/dev/null
  WAIT=$(sed -n 's/.*switch allowed after 2×TTL = \([0-9]*\) s (at .*/\1/p' "$ROUT")
  [ "$rc" = 1 ] && [ "$(wc -l < "$ROUT")" = 1 ] &&
    grep -q "refused: the next key's TLSA published since [01] s; switch allowed after 2×TTL = [0-9]* s (at 20" "$ROUT" &&
    [ -n "$WAIT" ] && [ "$WAIT" -ge 2 ] && [ "$WAIT" -le 4 ] &&
    grep -q "\"next_tlsa\":\"$NEXT\"" "$STATE" && unchanged
}
xf_check "(2) published, not yet two TTLs: exit 1 'published since N s; switch allowed after 2×TTL = M s', state file written, files unchanged" case_wait
case_reset() {
  zone_next unset 5270 && dns_next no 5270 || return 1
  rollover; local rc=$?; cat "$ROUT"
  [ "$rc" = 1 ] && grep -q "refused: the next key's TLSA at _5270._tcp.$TGT.: not published.*the wait starts again" "$ROUT" &&
    [ ! -e "$STATE" ] && unchanged
}
case_hwait() {
  lab_exec "$XF_BIN" rollover hosting2.example --config "$MF2" >"$ROUT" 2>&1; local rc=$?; cat "$ROUT"
  [ "$rc" = 1 ] && grep -q "refused: the next key's TLSA published since [0-9]* s; switch allowed after 2×TTL" "$ROUT" &&
    grep -q "\"next_tlsa\":\"$HNEXT\"" "$LAB_DIR/xf2/hosting2.example.rollover-state" && cmp -s "$MF2" "$LAB_DIR/main2.orig"
}
xf_check "(2h) the hosting identity hosting2.example (next TLSA published from the start): exit 1 with the wait, state next to the main file" case_hwait
xf_check "(2') the next TLSA withdrawn at _5270: exit 1 'not published', the state is reset" case_reset
xf_check "(2'') published again: the wait starts from 0" eval 'zone_next set 5270 && dns_next yes 5270 && case_wait'
# dns_cur yes|no PORT — wait until the resolver serves (or no longer serves) the current key there
dns_cur() {
  local i
  for ((i = 0; i < 80; i++)); do
    if tlsa_at "$2" | grep -qx "$CUR"; then [ "$1" = yes ] && return 0; else [ "$1" = no ] && return 0; fi
    sleep 0.1
  done
  return 1
}
case_cur() {
  REC=$CUR zone_next unset 5270 && dns_cur no 5270 || return 1
  rollover; local rc=$?; cat "$ROUT"
  REC=$CUR zone_next set 5270 && dns_cur yes 5270 || return 1
  [ "$rc" = 1 ] && [ "$(wc -l < "$ROUT")" = 2 ] &&
    grep -q "warning: the current key's TLSA _5270._tcp.$TGT. TLSA $CUR: not published" "$ROUT" &&
    grep -q "refused: the next key's TLSA published since [0-9]* s" "$ROUT" && [ -e "$STATE" ] && unchanged
}
xf_check "(2c) the current key's TLSA withdrawn at _5270 (then restored): a warning line, the wait goes on" case_cur

# ------------------------------------------------------------------------- (3) switch
case3() {
  local i rc=1
  [ -n "$WAIT" ] || return 1
  sleep "$WAIT"
  for ((i = 0; i < 4 && rc != 0; i++)); do
    rollover; rc=$?; [ "$rc" = 0 ] || { cat "$ROUT"; sleep 1; }
  done
  cat "$ROUT"
  local bak; bak=$(find "$(dirname "$TF")" -maxdepth 1 -name "$D1.json.*.bak" | head -1)
  [ "$rc" = 0 ] && [ "$i" = 1 ] && grep -q "$D1 switched keys" "$ROUT" && grep -q 'reloads the rewritten file' "$ROUT" &&
    grep -q '"certificate": "../certs/next/fullchain.pem"' "$TF" &&
    grep -q '"key": "../certs/next/privkey.pem"' "$TF" && ! grep -q next_ "$TF" &&
    grep -q '"federation": "trusted"' "$TF" &&
    [ -n "$bak" ] && cmp -s "$bak" "$LAB_DIR/tenant.orig" && [ ! -e "$STATE" ] &&
    "$XF_BIN" --check-config -c "$LAB_DIR/xf1/xmppfront.json" >/dev/null
}
xf_check "(3) after 2×TTL: exit 0; tenant file names the next pair (no next_*, other keys kept), backup = old file, state gone, configuration loads" case3
case3b() { rollover; local rc=$?; cat "$ROUT"; [ "$rc" = 1 ] && grep -q "names no next_certificate" "$ROUT"; }
case_hswitch() {
  lab_exec "$XF_BIN" rollover hosting2.example --config "$MF2" >"$ROUT" 2>&1; local rc=$?; cat "$ROUT"
  local bak; bak=$(find "$LAB_DIR/xf2" -maxdepth 1 -name "xmppfront.json.*.bak" | head -1)
  [ "$rc" = 0 ] && grep -q "hosting2.example switched keys" "$ROUT" &&
    grep -q '"certificate": "certs/hosting-next/fullchain.pem"' "$MF2" && ! grep -q next_ "$MF2" &&
    grep -q '"negotiation_timeout_s"' "$MF2" && grep -q '"outbound"' "$MF2" &&
    [ -n "$bak" ] && cmp -s "$bak" "$LAB_DIR/main2.orig" &&
    "$XF_BIN" --check-config -c "$MF2" | grep 'hosting identity hosting2.example' | grep -vq 'next certificate'
}
xf_check "(3h) hosting2.example after 2×TTL: exit 0; the main file's hosting object names the next pair (other members kept), backup, loads" case_hswitch
xf_check "(3b) once more: exit 1, no next key left to switch to" case3b
xf_check "peers keep verifying after the rewrite, before the restart (old key still served)" send 2
restart() {
  xf_stop_pid "${XFPID[1]}" 5 && xf_stop_pid "${XFPID[2]}" 5
  xf_start 1 && xf_start 2
}
xf_check "xf1 and xf2 restarted" restart
# served ADDR DOMAIN — "3 1 1 hex" of the key served for DOMAIN (STARTTLS on 5269)
served() {
  local got
  got=$(lab_exec timeout 5 openssl s_client -connect "$1:5269" -starttls xmpp-server -xmpphost "$2" \
        -servername "$2" </dev/null 2>/dev/null | openssl x509 -pubkey -noout |
        openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
  echo "3 1 1 $got"
}
xf_check "xf1 now serves the new key for $D1, xf2 the new hosting key for $DF (STARTTLS on 5269)" \
  eval '[ "$(served "$XF1" "$D1")" = "$NEXT" ] && [ "$(served "$XF2" "$DF")" = "$HNEXT" ]'
xf_check "(3c) $D1 (new key) -> $DF (new hosting key): delivered; xf2 proves $D1 by DANE with the new key (dane: valid), xf1 proves xf2 by DANE" send 1 new

lab_down
NS=$LAB_NS
down_check() { local left; left=$(lab_leftovers "$NS") && return 0; echo "$left"; return 1; }
xf_check "lab_down: no process, namespace, /etc/netns entry or nft table left" down_check
echo "  total $(elapsed)s"
xf_finish "$T"
