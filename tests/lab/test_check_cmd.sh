#!/usr/bin/env bash
# `xmppfront check DOMAIN` (issue 8, "`xmppfront check DOMAIN`" / "Tests"; docs/check.md)
# against the lab's domains, inside the lab's namespace, with the lab's validating
# unbound (127.0.1.54, loopback: its AD bit is trusted) as --resolver and the lab CA
# as --ca. LAB_DNSSEC=1: knot signs the zones.
#
# The world (tests/lab/lab.sh; remotes are Prosody 0.12 on $NET.N with c2s 5222
# STARTTLS, s2s 5269 STARTTLS, direct-TLS s2s 5270):
#   good.example      lab-CA certificate; SRV for all four services (_xmpps-client is
#                     "." = not offered); TLSA 3 1 1 of its key on 5222/5269/5270 in the
#                     signed zone; POSH documents with its fingerprint (nginx :443)
#                     -> every check ok, exit 0; the same verdicts in --json
#   deleg.example     signed SRV records -> xmpp.deleg-host.example, the only name in the
#                     certificate; TLSA there (secure delegation, RFC 7673 §4): the
#                     target is a reference identity -> pkix and dane valid, exit 0
#   nosrv.example     no SRV at all -> warn srv (A/AAAA fallback to :5222/:5269, which
#                     answer), exit 1
#   closed.example    SRV -> closed.example:5269/5270, nothing listens -> fail tcp
#   wrong.example     served certificate names other.example only -> fail pkix, fail proof
#   tlsabad.example   valid PKIX, TLSA of another key -> fail dane, fail proof
#   r.bogus.example   zone bogus.example with a wrong trust anchor (LAB_BOGUS_ZONES)
#                     -> SERVFAIL: fail srv (no fallback)
#   poshbad.example   valid PKIX, POSH document with another certificate's fingerprint
#                     -> fail posh (proof ok by pkix)
#   selfposh.example  self-signed, no TLSA; its POSH document is a `url` reference to a
#                     fingerprints document on good.example -> ok posh (via url),
#                     warn pkix, ok proof
#   --config: a configuration whose tenant good.example names a next key: the next
#     key's TLSA is published at 5269/5270 but not at 5222 -> fail record ... (next key)
#     for _5222 only, ok for the others; its POSH documents hold only the current
#     fingerprint -> warn record https://good.example/... (lacks the next certificate)
# Each case asserts on the exit code and on the lines expected; the good case also on
# "no fail/warn line at all", so that a broken check cannot pass unnoticed.
# Knobs: XF_BIN, XF_VERBOSE=1, XF_KEEP=1.
# Usage: bash tests/lab/test_check_cmd.sh   (root; exit 0 only if every check passed)
# shellcheck disable=SC2034  # read by lab.sh
LAB_DNSSEC=1
# shellcheck source=lab.sh
. "$(dirname "$0")/lab.sh"
T=check_cmd
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
NET=198.18.2
# shellcheck disable=SC2034  # read by lab.sh
LAB_ZONES="example bogus.example"
# shellcheck disable=SC2034
LAB_BOGUS_ZONES="bogus.example"

lab_init "$T" || exit 1
[ -x "$XF_BIN" ] || xf_setup_failed "$T: no xmppfront binary at $XF_BIN (build first)"
command -v nginx >/dev/null || xf_setup_failed "$T: nginx missing (deploy/install-deps.sh)"
lab_up || xf_setup_failed "$T: lab_up"

lab_rr_drop() {
  local rr keep=()
  for rr in "${LAB_RRS[@]}"; do [ "${rr%% *}" = "${1%.}." ] || keep+=("$rr"); done
  LAB_RRS=("${keep[@]}")
}
c2s_srv() {   # DOMAIN: _xmpp-client -> DOMAIN:5222, _xmpps-client "." (not offered)
  lab_rr "_xmpp-client._tcp.$1" SRV "0 5 5222 $1."
  lab_rr "_xmpps-client._tcp.$1" SRV "0 0 0 ."
}

lab_remote good good.example 5 "$NET.11" || xf_setup_failed "$T: remote good"
lab_remote nosrv nosrv.example 5 "$NET.12" || xf_setup_failed "$T: remote nosrv"
lab_remote wrong wrong.example 5 "$NET.14" || xf_setup_failed "$T: remote wrong"
lab_remote tlsabad tlsabad.example 5 "$NET.15" || xf_setup_failed "$T: remote tlsabad"
lab_remote poshbad poshbad.example 5 "$NET.17" || xf_setup_failed "$T: remote poshbad"
lab_remote selfposh selfposh.example 4 "$NET.18" || xf_setup_failed "$T: remote selfposh"
for d in good wrong tlsabad poshbad selfposh; do c2s_srv "$d.example"; done
lab_rr_drop _xmpp-server._tcp.nosrv.example; lab_rr_drop _xmpps-server._tcp.nosrv.example
# deleg.example: secure delegation (RFC 7673 §4) — its signed SRV records point at
# xmpp.deleg-host.example (same server), whose certificate is all it presents
lab_remote deleg deleg.example 5 "$NET.19" || xf_setup_failed "$T: remote deleg"
lab_rr_drop _xmpp-server._tcp.deleg.example; lab_rr_drop _xmpps-server._tcp.deleg.example
DH=xmpp.deleg-host.example
lab_host "$DH" "$NET.19" || xf_setup_failed "$T: deleg host"
lab_rr _xmpp-server._tcp.deleg.example SRV "0 5 5269 $DH."
lab_rr _xmpps-server._tcp.deleg.example SRV "0 5 5270 $DH."
lab_rr _xmpp-client._tcp.deleg.example SRV "0 5 5222 $DH."
lab_rr _xmpps-client._tcp.deleg.example SRV "0 0 0 ."
DD="$LAB_DIR/remote/deleg"
xf_make_cert "$LAB_DIR/pki" "$DD/pem-target" "$DH" "$DH" &&
  cp "$DD/pem-target/fullchain.pem" "$DD/certs/deleg.example.crt" &&
  cp "$DD/pem-target/privkey.pem" "$DD/certs/deleg.example.key" && chown -R "$LAB_RUN_AS:" "$DD" ||
  xf_setup_failed "$T: deleg certificate"
for p in 5222 5269 5270; do lab_rr "_$p._tcp.$DH" TLSA "$(lab_tlsa311 "$DD/pem-target/fullchain.pem")"; done
# closed.example: DNS only, nothing listens
lab_host closed.example "$NET.13" && lab_xmpp_srv closed.example closed.example 5269 5270 ||
  xf_setup_failed "$T: closed"
# r.bogus.example: DNS only (its zone is bogus: the resolver answers SERVFAIL)
lab_host r.bogus.example "$NET.16" && lab_xmpp_srv r.bogus.example r.bogus.example 5269 5270 ||
  xf_setup_failed "$T: bogus"
# wrong.example serves a lab-CA certificate for other.example
WD="$LAB_DIR/remote/wrong"
xf_make_cert "$LAB_DIR/pki" "$WD/pem-other" other.example other.example &&
  cp "$WD/pem-other/fullchain.pem" "$WD/certs/wrong.example.crt" &&
  cp "$WD/pem-other/privkey.pem" "$WD/certs/wrong.example.key" && chown -R "$LAB_RUN_AS:" "$WD" ||
  xf_setup_failed "$T: wrong certificate"
lab_self_signed "$LAB_DIR/pki/other" other.example || xf_setup_failed "$T: other key"
OTHER=$(lab_tlsa311 "$LAB_DIR/pki/other/cert.pem")
GOOD_TLSA=$(lab_tlsa311 "$LAB_DIR/remote/good/pem/fullchain.pem")
for p in 5222 5269 5270; do
  lab_rr "_$p._tcp.good.example" TLSA "$GOOD_TLSA"
  lab_rr "_$p._tcp.tlsabad.example" TLSA "$OTHER"
done
# the next key of good.example (rollover, --config case): published on 5269/5270 only
xf_make_cert "$LAB_DIR/pki" "$LAB_DIR/pki/good-next" good.example good.example ||
  xf_setup_failed "$T: next key"
NEXT_TLSA=$(lab_tlsa311 "$LAB_DIR/pki/good-next/fullchain.pem")
lab_rr _5269._tcp.good.example TLSA "$NEXT_TLSA"
lab_rr _5270._tcp.good.example TLSA "$NEXT_TLSA"
lab_dns_start || xf_setup_failed "$T: DNS (knot + unbound)"

# ------------------------------------------------------------------------- POSH (nginx)
ND="$LAB_DIR/nginx"
mkdir -p "$ND/tmp"
posh_doc() { "$XF_BIN" proof posh --cert "$1" --generate; }
site() {   # NAME DOMAIN — a server block on the remote's address, its lab certificate
  local name=$1 d=$2 dir="$ND/www/$1/.well-known/posh" pem="$LAB_DIR/remote/$1/pem"
  mkdir -p "$dir"
  cat >> "$ND/servers.conf" <<EOF
  server {
    listen ${LAB_R_ADDR4[$name]}:443 ssl;
    server_name $d;
    ssl_certificate $pem/fullchain.pem;
    ssl_certificate_key $pem/privkey.pem;
    root $ND/www/$name;
    default_type application/json;
  }
EOF
}
site good good.example
for k in xmpp-server xmpp-client; do
  posh_doc "$LAB_DIR/remote/good/pem/fullchain.pem" > "$ND/www/good/.well-known/posh/$k.json"
done
site poshbad poshbad.example
for k in xmpp-server xmpp-client; do
  posh_doc "$LAB_DIR/pki/other/cert.pem" > "$ND/www/poshbad/.well-known/posh/$k.json"
done
# selfposh.example's web needs a CA certificate (POSH is HTTPS with PKIX, RFC 7711 §3)
xf_make_cert "$LAB_DIR/pki" "$LAB_DIR/remote/selfposh/pem" selfposh.example selfposh.example 2>/dev/null
# (that replaced the self-signed pem the XMPP server does not read any more: it was
# copied into certs/ by lab_remote; the web gets the CA one, XMPP keeps the self-signed)
SELF_XMPP_CERT="$LAB_DIR/remote/selfposh/certs/selfposh.example.crt"
posh_doc "$SELF_XMPP_CERT" > "$ND/www/good/.well-known/posh/selfposh.json"
site selfposh selfposh.example
for k in xmpp-server xmpp-client; do
  "$XF_BIN" proof posh --delegate https://good.example/.well-known/posh/selfposh.json \
    > "$ND/www/selfposh/.well-known/posh/$k.json"
done
cat > "$ND/nginx.conf" <<EOF
user root;
daemon off;
worker_processes 1;
pid $ND/nginx.pid;
error_log $ND/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path $ND/tmp/body;
  proxy_temp_path $ND/tmp/proxy;
  fastcgi_temp_path $ND/tmp/fastcgi;
  uwsgi_temp_path $ND/tmp/uwsgi;
  scgi_temp_path $ND/tmp/scgi;
  include $ND/servers.conf;
}
EOF
ip netns exec "$LAB_NS" nginx -p "$ND" -c "$ND/nginx.conf" >"$ND/stdout" 2>&1 &
NGINX_PID=$!
xf_track "$NGINX_PID"
lab_wait_port "${LAB_R_ADDR4[good]}" 443 10 || { cat "$ND/stdout" "$ND/error.log" >&2; xf_setup_failed "$T: nginx"; }

lab_remotes_start || xf_setup_failed "$T: remote Prosody servers"
echo "  lab up in $(elapsed)s: namespace $LAB_NS, resolver $LAB_RESOLVER"

# ------------------------------------------------------------------------- the cases
OUT="$LAB_DIR/check"
mkdir -p "$OUT"
# run_check DOMAIN [ARGS...] -> $OUT/DOMAIN.txt, .json and .rc (text and JSON runs)
run_check() {
  local d=$1; shift
  ip netns exec "$LAB_NS" "$XF_BIN" check "$d" --resolver "$LAB_RESOLVER:53" \
    --ca "$LAB_DIR/pki/ca.pem" --timeout 20 "$@" > "$OUT/$d.txt" 2>"$OUT/$d.err"
  echo $? > "$OUT/$d.rc"
  ip netns exec "$LAB_NS" "$XF_BIN" check "$d" --resolver "$LAB_RESOLVER:53" \
    --ca "$LAB_DIR/pki/ca.pem" --timeout 20 --json "$@" > "$OUT/$d.json" 2>>"$OUT/$d.err"
  echo $? > "$OUT/$d.jrc"
}
for d in good.example deleg.example nosrv.example closed.example wrong.example \
         tlsabad.example r.bogus.example poshbad.example selfposh.example; do
  run_check "$d"
done
echo "  checks run in $(elapsed)s"
rc_of() { cat "$OUT/$1.rc"; }
# has DOMAIN REGEX — a line of the text report matches
has() { grep -Eq -- "$2" "$OUT/$1.txt"; }
show() { echo "exit $(rc_of "$1")"; cat "$OUT/$1.txt" "$OUT/$1.err"; }
# json_same DOMAIN — --json parses, same exit code, same (status, check, subject) list
json_same() {
  python3 - "$OUT/$1.txt" "$OUT/$1.json" "$(cat "$OUT/$1.rc")" "$(cat "$OUT/$1.jrc")" <<'EOF'
import json, re, sys
txt, js, rc, jrc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
d = json.load(open(js))
lines = [l for l in open(txt).read().splitlines() if re.match(r'^(ok|warn|fail) ', l)]
want = [l.split(' ')[0] + ' ' + l.split(' ')[1] for l in lines]
got = [c["status"] + ' ' + c["check"] for c in d["checks"]]
assert rc == jrc == d["exit"], (rc, jrc, d["exit"])
assert want == got, (want, got)
assert {"ok": 0, "warn": 1, "fail": 2}[d["result"]] == d["exit"]
for c in d["checks"]:
    assert set(c) == {"status", "check", "subject", "detail", "hint"}, c
    assert (c["hint"] != "") == (c["status"] != "ok"), c
print("json: %d checks, result %s" % (len(got), d["result"]))
EOF
}

case_good() {
  show good.example
  [ "$(rc_of good.example)" = 0 ] &&
    ! grep -Eq '^(warn|fail) ' "$OUT/good.example.txt" &&
    has good.example '^ok dnssec ' &&
    has good.example '^ok srv _xmpp-server\._tcp\.good\.example: 1 record, secure \(AD\)' &&
    has good.example '^ok srv _xmpps-server\._tcp\.good\.example: 1 record, secure' &&
    has good.example '^ok srv _xmpp-client\._tcp\.good\.example: 1 record, secure' &&
    has good.example '^ok srv _xmpps-client\._tcp\.good\.example: "\.": service decidedly not offered' &&
    has good.example "^ok tls xmpp-server good\.example:5269 $NET\.11: STARTTLS, SNI good\.example" &&
    has good.example "^ok tls xmpps-server good\.example:5270 $NET\.11: direct TLS, SNI good\.example" &&
    has good.example "^ok tls xmpp-client good\.example:5222 $NET\.11: STARTTLS" &&
    has good.example "^ok cert xmpp-server good\.example:5269 $NET\.11: subject CN=good\.example; SAN DNS-ID:good\.example" &&
    [ "$(grep -c '^ok pkix .*: valid' "$OUT/good.example.txt")" = 3 ] &&
    [ "$(grep -c '^ok dane .*: valid' "$OUT/good.example.txt")" = 3 ] &&
    [ "$(grep -c '^ok posh .*: valid' "$OUT/good.example.txt")" = 3 ] &&
    [ "$(grep -c '^ok proof .*: proven by dane, pkix, posh' "$OUT/good.example.txt")" = 3 ] &&
    has good.example '^ok posh-doc https://good\.example/\.well-known/posh/xmpp-server\.json: fingerprints document' &&
    json_same good.example
}
xf_check "good.example (CA certificate, SRV of every kind, TLSA 3 1 1 in the signed zone, POSH): every line ok, exit 0, --json the same" case_good

case_deleg() {
  show deleg.example
  [ "$(rc_of deleg.example)" = 0 ] &&
    has deleg.example "^ok cert xmpp-server $DH:5269 $NET\.19: subject CN=$DH; SAN DNS-ID:$DH;" &&
    has deleg.example "^ok pkix xmpp-server $DH:5269 $NET\.19: valid: chain valid; DNS-ID $DH matches $DH" &&
    has deleg.example "^ok dane xmpps-server $DH:5270 $NET\.19: valid" &&
    [ "$(grep -c "^ok proof .*: proven by dane, pkix (reference identity deleg\.example and SRV target $DH)" "$OUT/deleg.example.txt")" = 3 ] &&
    has deleg.example '^ok posh-doc https://deleg\.example/\.well-known/posh/xmpp-server\.json: none' &&
    json_same deleg.example
}
xf_check "deleg.example (signed SRV -> xmpp.deleg-host.example, the certificate names only that): secure delegation, pkix and dane valid with the SRV target as reference identity, exit 0" case_deleg

case_nosrv() {
  show nosrv.example
  [ "$(rc_of nosrv.example)" = 1 ] &&
    has nosrv.example '^warn srv _xmpp-server\._tcp\.nosrv\.example: none \(NXDOMAIN\): peers fall back to nosrv\.example:5269' &&
    has nosrv.example '^warn srv _xmpp-client\._tcp\.nosrv\.example: none .*fall back to nosrv\.example:5222' &&
    has nosrv.example '^ok addr nosrv\.example: .*\(A/AAAA fallback: no SRV\)' &&
    has nosrv.example "^ok tcp xmpp-server nosrv\.example:5269 $NET\.12" &&
    has nosrv.example '^ok proof xmpp-server nosrv\.example:5269 .*proven by pkix' &&
    ! grep -q '^fail ' "$OUT/nosrv.example.txt" && json_same nosrv.example
}
xf_check "nosrv.example (no SRV): warn srv with the A/AAAA fallback, which answers; exit 1" case_nosrv

case_closed() {
  show closed.example
  [ "$(rc_of closed.example)" = 2 ] &&
    has closed.example "^fail tcp xmpp-server closed\.example:5269 $NET\.13: Connection refused -- hint: " &&
    has closed.example "^fail tcp xmpps-server closed\.example:5270 $NET\.13: Connection refused" &&
    json_same closed.example
}
xf_check "closed.example (SRV, nothing listening): fail tcp on 5269 and 5270, exit 2" case_closed

case_wrong() {
  show wrong.example
  [ "$(rc_of wrong.example)" = 2 ] &&
    has wrong.example "^fail pkix xmpp-server wrong\.example:5269 $NET\.14: invalid: .*" &&
    has wrong.example "^fail proof xmpp-server wrong\.example:5269 $NET\.14: no prooftype proves the domain" &&
    has wrong.example "^ok cert xmpp-server wrong\.example:5269 $NET\.14: subject CN=other\.example" &&
    json_same wrong.example
}
xf_check "wrong.example (certificate for other.example): fail pkix and fail proof, exit 2" case_wrong

case_tlsabad() {
  show tlsabad.example
  [ "$(rc_of tlsabad.example)" = 2 ] &&
    has tlsabad.example "^fail dane xmpp-server tlsabad\.example:5269 $NET\.15: invalid: TLSA mismatch" &&
    has tlsabad.example "^fail dane xmpps-server tlsabad\.example:5270 $NET\.15: invalid: TLSA mismatch" &&
    has tlsabad.example "^ok pkix xmpp-server tlsabad\.example:5269 $NET\.15: valid" &&
    has tlsabad.example "^fail proof xmpp-server tlsabad\.example:5269 $NET\.15: DANE-validating peers abort" &&
    json_same tlsabad.example
}
xf_check "tlsabad.example (valid PKIX, TLSA of another key in the signed zone): fail dane, fail proof, exit 2" case_tlsabad

case_bogus() {
  show r.bogus.example
  [ "$(rc_of r.bogus.example)" = 2 ] &&
    has r.bogus.example '^fail srv _xmpp-server\._tcp\.r\.bogus\.example: SERVFAIL \(bogus DNSSEC' &&
    has r.bogus.example '^fail srv _xmpps-server\._tcp\.r\.bogus\.example: SERVFAIL' &&
    ! has r.bogus.example '^(ok|warn|fail) tcp ' && json_same r.bogus.example
}
xf_check "r.bogus.example (zone with a wrong trust anchor): fail srv SERVFAIL, no fallback connection, exit 2" case_bogus

case_poshbad() {
  show poshbad.example
  [ "$(rc_of poshbad.example)" = 2 ] &&
    has poshbad.example '^ok posh-doc https://poshbad\.example/\.well-known/posh/xmpp-server\.json: fingerprints document' &&
    has poshbad.example "^fail posh xmpp-server poshbad\.example:5269 $NET\.17: invalid: document does not match" &&
    has poshbad.example "^ok proof xmpp-server poshbad\.example:5269 $NET\.17: proven by pkix" &&
    json_same poshbad.example
}
xf_check "poshbad.example (POSH document with another certificate's fingerprint): fail posh (proof still by pkix), exit 2" case_poshbad

case_selfposh() {
  show selfposh.example
  [ "$(rc_of selfposh.example)" = 1 ] &&
    has selfposh.example '^ok posh-doc https://selfposh\.example/\.well-known/posh/xmpp-server\.json: fingerprints document via url https://good\.example/\.well-known/posh/selfposh\.json' &&
    has selfposh.example "^ok posh xmpp-server selfposh\.example:5269 $NET\.18: valid" &&
    has selfposh.example "^warn pkix xmpp-server selfposh\.example:5269 $NET\.18: invalid" &&
    has selfposh.example "^ok proof xmpp-server selfposh\.example:5269 $NET\.18: proven by posh" &&
    ! grep -q '^fail ' "$OUT/selfposh.example.txt" && json_same selfposh.example
}
xf_check "selfposh.example (self-signed, POSH url delegation to good.example): posh valid via url, pkix warn, exit 1" case_selfposh

# ---- --config: the records of a tenant with a next key (rollover)
XFD="$LAB_DIR/xf"
mkdir -p "$XFD/tenants"
cat > "$XFD/tenants/good.example.json" <<EOF
{ "domain": "good.example",
  "certificate": "$LAB_DIR/remote/good/pem/fullchain.pem", "key": "$LAB_DIR/remote/good/pem/privkey.pem",
  "next_certificate": "$LAB_DIR/pki/good-next/fullchain.pem", "next_key": "$LAB_DIR/pki/good-next/privkey.pem",
  "c2s_backend": "127.0.0.1:15222", "s2s_backend": "127.0.0.1:15269" }
EOF
cat > "$XFD/xmppfront.json" <<EOF
{ "tenants": "tenants",
  "listeners": [$(xf_listener "$NET.11" 5222 starttls client), $(xf_listener "$NET.11" 5269 starttls server),
                $(xf_listener "$NET.11" 5270 direct server)] }
EOF
cp "$OUT/good.example.txt" "$OUT/good-plain.txt"
run_check good.example --config "$XFD/xmppfront.json"
case_rollover() {
  show good.example
  local n=${NEXT_TLSA#3 1 1 }
  [ "$(rc_of good.example)" = 2 ] &&
    has good.example "^fail record _5222\._tcp\.good\.example\. TLSA 3 1 1 $n \(next key\): not in DNS \(NOERROR: other records only\) -- hint: publish it" &&
    has good.example "^ok record _5269\._tcp\.good\.example\. TLSA 3 1 1 $n \(next key\): in DNS, secure" &&
    has good.example "^ok record _5270\._tcp\.good\.example\. TLSA 3 1 1 $n \(next key\): in DNS" &&
    has good.example "^ok record _5222\._tcp\.good\.example\. TLSA ${GOOD_TLSA}: in DNS" &&
    has good.example '^ok record _xmpp-server\._tcp\.good\.example\. SRV 0 5 5269 good\.example\.: in DNS' &&
    has good.example '^ok record _xmpps-client\._tcp\.good\.example\. SRV 0 0 0 \.: in DNS' &&
    has good.example "^warn record https://good\.example/\.well-known/posh/xmpp-server\.json: POSH document lacks the next certificate's fingerprint" &&
    [ "$(grep -c '^fail ' "$OUT/good.example.txt")" = 1 ] && json_same good.example
}
xf_check "--config with a next key: its TLSA missing at _5222 -> exactly one fail (record ... next key), the rest in DNS; POSH without the next fingerprint -> warn" case_rollover

lab_down
NS=$LAB_NS
down_check() { local left; left=$(lab_leftovers "$NS") && return 0; echo "$left"; return 1; }
xf_check "lab_down: no process, namespace, /etc/netns entry or nft table left" down_check
echo "  total $(elapsed)s"
xf_finish "$T"
