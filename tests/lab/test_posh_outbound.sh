#!/usr/bin/env bash
# POSH on xmppfront's outbound path (issue 8, "Verifying peers" / "Tests"; RFC 7711,
# spec-digest §5), on the wire: xmppfront fetches
# https://REMOTE/.well-known/posh/xmpp-server.json from an nginx inside the lab's
# namespace (its certificate from the lab CA, which xmppfront trusts through
# federation.ca_file) and matches the remote Prosody's certificate against it.
#
# The world (tests/lab/lab.sh, one network namespace, DNS by knot without DNSSEC: DANE
# never applies here, so only PKIX and POSH can prove a remote):
#   tenants a.example, b.example, c.example  lab-CA certificates, policy `trusted`, on ONE
#                     plaintext backend Prosody (user xfbackend; its outgoing s2s
#                     redirected by uid to xmppfront's outbound listener)
#   nginx             0.0.0.0:443 in the namespace, one certificate for every name below,
#                     documents under $WEB/root/<Host>/, access log "$msec $host $uri $status"
#   remotes (Prosody 0.12, $NET.N, SRV -> itself):
#   (a) posh-ok.example     type 4, SELF-SIGNED; its document holds its fingerprint
#                           -> delivered under `trusted` (pkix invalid, posh valid)
#   (b) posh-deleg.example  type 4, SELF-SIGNED; its document is a reference
#                           {"url": "https://posh-host.example/deleg/posh-deleg.json"} whose
#                           target holds the fingerprint -> delivered, both fetched once
#   (c) posh-none.example   type 4, SELF-SIGNED; no document (404) -> refused (bounce),
#                           posh: absent;  posh-ca.example type 5 (lab CA), no document
#                           -> delivered by PKIX
#   (d) posh-wrong.example  type 4, SELF-SIGNED; its document holds ANOTHER certificate's
#                           fingerprint -> refused, posh: invalid
#   (f) posh-slow.example   type 4, SELF-SIGNED; nginx sends its document slowly ($limit_rate):
#                           TLS is up before the answer, neither DANE nor PKIX proved the
#                           peer, so the stream waits for POSH (logged) -> delivered
#   (g) posh-stall.example  type 4, SELF-SIGNED; its document comes slower than the fetch's
#                           time bound (connect_timeout_s = 3) -> refused, posh: error
#                           (timed out)
#   (h) posh-redir.example  type 4, SELF-SIGNED; its document URL answers 301 to
#                           https://posh-host.example/redir/posh-redir.json (fingerprint)
#                           -> followed, delivered;  posh-http.example (type 4, self-signed):
#                           301 to an http:// URL -> not followed (HTTPS only): refused,
#                           posh: error
#   (e) posh-cache.example  type 4, SELF-SIGNED; document with expires=$CACHE_EXPIRES:
#                           a.example's message fetches it, b.example's (a new stream,
#                           within expires) takes it from the worker's cache (nginx's
#                           access log still counts 1), c.example's after expiry fetches
#                           it again (count 2). xmppfront runs one worker: the cache is
#                           per worker.
# Each case asserts on the delivery/bounce AND on xmppfront's log (`posh: ...`).
# Knobs: XF_BIN, XF_VERBOSE=1, XF_KEEP=1, LAB_DEBUG=1, LAB_S2S_TIMEOUT (5).
# Usage: bash tests/lab/test_posh_outbound.sh   (root; exit 0 only if every check passed)
# shellcheck source=lab.sh
. "$(dirname "$0")/lab.sh"
T=posh_outbound
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
BACKEND_USER=${FED_BACKEND_USER:-xfbackend}
OUT_PORT=15269
NET=198.18.1                    # remotes outside 127/8, as in test_federation_matrix.sh
XF4=127.0.1.100                 # xmppfront (xf.example)
BK4=127.0.2.1                   # the backend
WEB4=127.0.1.80                 # posh-host.example (the delegation's target)
TENANTS="a.example b.example c.example"
SEND_TIMEOUT=$(( ${LAB_S2S_TIMEOUT:-5} * 2 + 12 ))
CACHE_EXPIRES=5
NGINX=${NGINX:-/usr/sbin/nginx}

lab_init "$T" || exit 1
[ -x "$XF_BIN" ] || xf_setup_failed "$T: no xmppfront binary at $XF_BIN (build first)"
[ -x "$NGINX" ] || xf_setup_failed "$T: no nginx at $NGINX (deploy/install-deps.sh)"
lab_up || xf_setup_failed "$T: lab_up"
lab_user "$BACKEND_USER" || xf_setup_failed "$T: cannot create user $BACKEND_USER"
BK_UID=$(id -u "$BACKEND_USER")

lab_remote ok posh-ok.example 4 "$NET.21" || xf_setup_failed "$T: remote ok"
lab_remote deleg posh-deleg.example 4 "$NET.22" || xf_setup_failed "$T: remote deleg"
lab_remote none posh-none.example 4 "$NET.23" || xf_setup_failed "$T: remote none"
lab_remote ca posh-ca.example 5 "$NET.24" || xf_setup_failed "$T: remote ca"
lab_remote wrong posh-wrong.example 4 "$NET.25" || xf_setup_failed "$T: remote wrong"
lab_remote cache posh-cache.example 4 "$NET.26" || xf_setup_failed "$T: remote cache"
lab_remote slow posh-slow.example 4 "$NET.27" || xf_setup_failed "$T: remote slow"
lab_remote stall posh-stall.example 4 "$NET.28" || xf_setup_failed "$T: remote stall"
lab_remote redir posh-redir.example 4 "$NET.29" || xf_setup_failed "$T: remote redir"
lab_remote http posh-http.example 4 "$NET.30" || xf_setup_failed "$T: remote http"
REMOTES="ok deleg none ca wrong cache slow stall redir http"
lab_host posh-host.example "$WEB4" || xf_setup_failed "$T: web address"

# ------------------------------------------------------------------------- POSH documents
# fp256 PEM — base64 of the SHA-256 of the certificate's DER (RFC 7711 §3.2: the whole
# certificate, not the SPKI)
fp256() { openssl x509 -in "$1" -outform DER | openssl dgst -sha256 -binary | base64 -w0; }
fpdoc() { printf '{"fingerprints":[{"sha-256":"%s"}],"expires":%s}\n' "$(fp256 "$1")" "$2"; }
WEB="$LAB_DIR/web"
doc() { mkdir -p "$(dirname "$WEB/root/$1")" && cat > "$WEB/root/$1"; }
WK=.well-known/posh/xmpp-server.json
lab_self_signed "$LAB_DIR/pki/other" other.example || xf_setup_failed "$T: other key"
fpdoc "$LAB_DIR/remote/ok/pem/fullchain.pem" 3600 | doc "posh-ok.example/$WK"
printf '{"url":"https://posh-host.example/deleg/posh-deleg.json","expires":3600}\n' |
  doc "posh-deleg.example/$WK"
fpdoc "$LAB_DIR/remote/deleg/pem/fullchain.pem" 3600 | doc "posh-host.example/deleg/posh-deleg.json"
fpdoc "$LAB_DIR/pki/other/cert.pem" 3600 | doc "posh-wrong.example/$WK"
fpdoc "$LAB_DIR/remote/cache/pem/fullchain.pem" "$CACHE_EXPIRES" | doc "posh-cache.example/$WK"
# headers and ~300 bytes at 400 bytes/s: about 1.5 s (JSON allows the padding); at 50
# bytes/s: beyond the 3 s bound
for r in slow stall; do
  { fpdoc "$LAB_DIR/remote/$r/pem/fullchain.pem" 3600; printf '%0200d\n' 0 | tr 0 ' '; } |
    doc "posh-$r.example/$WK"
done
fpdoc "$LAB_DIR/remote/redir/pem/fullchain.pem" 3600 | doc "posh-host.example/redir/posh-redir.json"
fpdoc "$LAB_DIR/remote/http/pem/fullchain.pem" 3600 | doc "posh-host.example/redir/posh-http.json"
mkdir -p "$WEB/root/posh-none.example" "$WEB/root/posh-ca.example" "$WEB/logs"
# ... and the web server's certificate: the lab CA, every name
names="posh-host.example"
for r in $REMOTES; do names="$names ${LAB_R_DOMAIN[$r]}"; done
# shellcheck disable=SC2086
xf_make_cert "$LAB_DIR/pki" "$WEB/cert" posh-host.example $names || xf_setup_failed "$T: web cert"
lab_web_write "$WEB" "" "if (\$host = posh-slow.example) { set \$limit_rate 400; } if (\$host = posh-stall.example) { set \$limit_rate 50; } if (\$host = posh-redir.example) { return 301 https://posh-host.example/redir/posh-redir.json; } if (\$host = posh-http.example) { return 301 http://posh-host.example/redir/posh-http.json; }"

# ------------------------------------------------------------------------- xmppfront, backend
XFD="$LAB_DIR/xf"
mkdir -p "$XFD/tenants"
for d in $TENANTS; do
  xf_make_cert "$LAB_DIR/pki" "$XFD/certs/$d" "$d" "$d" || xf_setup_failed "$T: cert $d"
  lab_xmpp_srv "$d" xf.example 5269 5270
done
lab_host xf.example "$XF4" || xf_setup_failed "$T: xf address"
lab_addr "$BK4" || xf_setup_failed "$T: backend address"
lab_dns_start || xf_setup_failed "$T: DNS (knot)"

BKD="$LAB_DIR/backend"
lab_backend_prosody "$BKD" "$BK4" "$BACKEND_USER" "$TENANTS" ||
  xf_setup_failed "$T: backend config"
for d in $TENANTS; do
  cat > "$XFD/tenants/$d.json" <<EOF
{
  "domain": "$d",
  "certificate": "../certs/$d/fullchain.pem",
  "key": "../certs/$d/privkey.pem",
  "c2s_backend": "$BK4:5222",
  "s2s_backend": "$BK4:5269",
  "federation": "trusted"
}
EOF
done
cat > "$XFD/xmppfront.json" <<EOF
{
  "workers": 1,
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
ACCESS="$WEB/logs/access.log"

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

# the web side is what the cases need: curl (lab CA only) gets the documents, 404 otherwise
web_check() {
  local c=(lab_exec curl -sS --max-time 5 --cacert "$LAB_DIR/pki/ca.pem")
  "${c[@]}" "https://posh-ok.example/$WK" | grep -q '"fingerprints"' &&
  "${c[@]}" "https://posh-deleg.example/$WK" | grep -q '"url"' &&
  "${c[@]}" "https://posh-host.example/deleg/posh-deleg.json" | grep -q '"fingerprints"' &&
  [ "$("${c[@]}" -o /dev/null -w '%{http_code}' "https://posh-none.example/$WK")" = 404 ]
}
xf_check "web: nginx serves the POSH documents over HTTPS with the lab CA, 404 for posh-none" web_check
: > "$ACCESS"                       # count xmppfront's fetches only

# ------------------------------------------------------------------------- sends
# send OUT FROM_TENANT REMOTE... — one lab_xmpp run: user1@FROM -> user1@REMOTE each
send() {
  local out=$1 from=$2 r a; shift 2
  local acc=(--account "user1@$from" pass1 "$BK4" 5222) sends=()
  for r in "$@"; do
    read -r -a a < <(lab_account "$r" user1)
    acc+=(--account "${a[@]}")
    sends+=(--send "user1@$from" "user1@${LAB_R_DOMAIN[$r]}")
  done
  lab_xmpp "${acc[@]}" "${sends[@]}" --timeout "$SEND_TIMEOUT" > "$out" 2>&1
}
# result_of OUT REMOTE [FROM_TENANT]
result_of() {
  awk -v f="user1@${3:-a.example}" -v t="user1@${LAB_R_DOMAIN[$2]}" \
    '$1 == "RESULT" && $2 == f && $3 == t { print $4 }' "$1"
}
# xmppfront's lines about remote R from tenant D
xf_lines() { lab_xf_out_lines "$XF_LOG" "${2:-a.example}" "$1"; }
# fetches PATH — how often nginx served PATH (any host)
fetches() { grep -c " $1 " "$ACCESS" 2>/dev/null || true; }
verdict() { xf_lines "$@" | grep -E 'authenticated auth=|refused'; }

OUT1="$LAB_DIR/sends1.out"
send "$OUT1" a.example ok deleg none ca wrong slow stall redir http
RC=$?
sleep 0.3
xf_check "every account logged in, every send answered (lab_xmpp rc=$RC)" test "$RC" -eq 0
show() { echo "send: $(result_of "$OUT1" "$1")"; xf_lines "${LAB_R_DOMAIN[$1]}" | cut -c1-900; }

case_ok() {
  show ok
  [ "$(result_of "$OUT1" ok)" = delivered ] &&
    xf_lines posh-ok.example | grep -q 'posh: valid (fingerprint 1 (sha-256) matches the certificate; document https://posh-ok.example/.well-known/posh/xmpp-server.json' &&
    verdict posh-ok.example | grep 'authenticated auth=' | grep 'pkix: invalid' | grep -q 'posh: valid'
}
xf_check "(a) self-signed posh-ok.example whose POSH document holds its fingerprint: delivered under trusted, proven by posh (pkix invalid)" case_ok

case_deleg() {
  show deleg
  echo "fetches: own $(fetches "/$WK") (all hosts), delegated $(fetches /deleg/posh-deleg.json)"
  grep -a 'posh-deleg\|posh-host' "$ACCESS"
  [ "$(result_of "$OUT1" deleg)" = delivered ] &&
    verdict posh-deleg.example | grep 'authenticated auth=' | grep 'pkix: invalid' |
      grep -q 'posh: valid (fingerprint 1 (sha-256) matches the certificate; delegated to https://posh-host.example/deleg/posh-deleg.json' &&
    [ "$(grep -c "posh-deleg.example /$WK 200" "$ACCESS")" = 1 ] &&
    [ "$(grep -c 'posh-host.example /deleg/posh-deleg.json 200' "$ACCESS")" = 1 ]
}
xf_check "(b) posh-deleg.example: a url reference to posh-host.example's document with the fingerprint: followed (one fetch each), delivered" case_deleg

case_none() {
  show none; show ca
  case "$(result_of "$OUT1" none)" in error:*) ;; *) return 1 ;; esac
  verdict posh-none.example | grep 'refused' | grep 'pkix: invalid' |
    grep -q 'posh: absent (https://posh-none.example/.well-known/posh/xmpp-server.json: HTTP 404 (no POSH document))' &&
    ! xf_lines posh-none.example | grep -q 'authenticated auth=' &&
    [ "$(result_of "$OUT1" ca)" = delivered ] &&
    verdict posh-ca.example | grep 'authenticated auth=' | grep -q 'pkix: valid' &&
    ! verdict posh-ca.example | grep -q 'posh: valid'
}
xf_check "(c) POSH 404: self-signed posh-none.example refused under trusted (posh: absent); CA-signed posh-ca.example delivered by PKIX" case_none

case_wrong() {
  show wrong
  case "$(result_of "$OUT1" wrong)" in error:*) ;; *) return 1 ;; esac
  verdict posh-wrong.example | grep 'refused' |
    grep -q 'posh: invalid (none of 1 fingerprints matches the certificate; document https://posh-wrong.example' &&
    ! xf_lines posh-wrong.example | grep -q 'authenticated auth='
}
xf_check "(d) posh-wrong.example whose document holds another certificate's fingerprint: refused, posh: invalid" case_wrong

case_slow() {
  show slow
  [ "$(result_of "$OUT1" slow)" = delivered ] &&
    xf_lines posh-slow.example | grep -q 'neither dane nor pkix proved it: waiting for the posh document' &&
    verdict posh-slow.example | grep 'authenticated auth=' | grep 'pkix: invalid' | grep -q 'posh: valid'
}
xf_check "(f) posh-slow.example, its document served slowly: the stream waits for POSH after TLS (logged), then delivered" case_slow

case_stall() {
  show stall
  case "$(result_of "$OUT1" stall)" in error:*) ;; *) return 1 ;; esac
  verdict posh-stall.example | grep 'refused' |
    grep -q 'posh: error (fetch https://posh-stall.example/.well-known/posh/xmpp-server.json: timed out)' &&
    ! xf_lines posh-stall.example | grep -q 'authenticated auth='
}
xf_check "(g) posh-stall.example, its document slower than the fetch's time bound: refused, posh: error (timed out)" case_stall

case_redir() {
  show redir; show http
  grep -a 'redir' "$ACCESS"
  [ "$(result_of "$OUT1" redir)" = delivered ] &&
    verdict posh-redir.example | grep 'authenticated auth=' | grep 'pkix: invalid' | grep -q 'posh: valid' &&
    grep -q 'posh-redir.example /.well-known/posh/xmpp-server.json 301' "$ACCESS" &&
    grep -q 'posh-host.example /redir/posh-redir.json 200' "$ACCESS" &&
    case "$(result_of "$OUT1" http)" in error:*) true ;; *) false ;; esac &&
    verdict posh-http.example | grep 'refused' | grep -q 'posh: error (fetch https://posh-http.example' &&
    grep -q 'posh-http.example /.well-known/posh/xmpp-server.json 301' "$ACCESS" &&
    ! grep -q 'posh-http.json' "$ACCESS"
}
xf_check "(h) a redirect to HTTPS is followed (posh-redir.example delivered); one to http:// is not (posh-http.example refused, posh: error)" case_redir

# ------------------------------------------------------------------------- (e) the cache
OUT2="$LAB_DIR/sends2.out" OUT3="$LAB_DIR/sends3.out" OUT4="$LAB_DIR/sends4.out"
CP="/$WK"
c_before=$(grep -c "posh-cache.example $CP" "$ACCESS")
send "$OUT2" a.example cache
t_first=$(awk -v p="$CP" '$2 == "posh-cache.example" && $3 == p { print $1; exit }' "$ACCESS")
c_first=$(grep -c "posh-cache.example $CP" "$ACCESS")
send "$OUT3" b.example cache
t_second=$(date +%s.%N)
c_second=$(grep -c "posh-cache.example $CP" "$ACCESS")
# after expiry (expires + 1 s from the first fetch)
wait_s=$(awk -v a="${t_first:-0}" -v b="$(date +%s.%N)" -v e="$CACHE_EXPIRES" \
  'BEGIN { w = a + e + 1 - b; if (w < 0) w = 0; printf "%.1f", w }')
sleep "$wait_s"
send "$OUT4" c.example cache
c_third=$(grep -c "posh-cache.example $CP" "$ACCESS")
case_cache() {
  echo "fetches of posh-cache.example: before $c_before, after a: $c_first, after b: $c_second, after c: $c_third"
  echo "b done $(awk -v a="${t_first:-0}" -v b="$t_second" 'BEGIN { printf "%.1f", b - a }')s after the first fetch (expires $CACHE_EXPIRES s); waited ${wait_s}s"
  grep -a posh-cache "$ACCESS"
  for o in "$OUT2:a.example" "$OUT3:b.example" "$OUT4:c.example"; do
    echo "${o#*:}: $(result_of "${o%%:*}" cache "${o#*:}")"
    xf_lines posh-cache.example "${o#*:}" | grep 'posh: valid' | cut -c1-400
  done
  [ "$c_before" = 0 ] && [ "$c_first" = 1 ] && [ "$c_second" = 1 ] && [ "$c_third" = 2 ] &&
    awk -v a="$t_first" -v b="$t_second" -v e="$CACHE_EXPIRES" 'BEGIN { exit !(b - a < e) }' &&
    [ "$(result_of "$OUT2" cache a.example)" = delivered ] &&
    [ "$(result_of "$OUT3" cache b.example)" = delivered ] &&
    [ "$(result_of "$OUT4" cache c.example)" = delivered ] &&
    xf_lines posh-cache.example a.example | grep 'posh: valid' | grep -qv 'from the cache' &&
    xf_lines posh-cache.example b.example | grep 'posh: valid' | grep -q 'document from the cache' &&
    xf_lines posh-cache.example c.example | grep 'posh: valid' | grep -qv 'from the cache'
}
xf_check "(e) cache: a second stream within expires=${CACHE_EXPIRES}s takes the document from the cache (1 fetch), a third after expiry fetches it again (2)" case_cache

lab_down
NS=$LAB_NS
down_check() {
  local left; left=$(lab_leftovers "$NS") || { echo "$left"; return 1; }
  ! kill -0 "$LAB_WEB_PID" 2>/dev/null
}
xf_check "lab_down: no process (nginx included), namespace, /etc/netns entry or nft table left" down_check
echo "  total $(elapsed)s"
xf_finish "$T"
