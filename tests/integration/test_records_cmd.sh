#!/usr/bin/env bash
# The hosting identity and `xmppfront records` (issue 8 "Proving tenants"; docs/records.md):
# a main file with "hosting" (current and next key), a tenant without a certificate of its
# own (shared.example, served with the hosting certificate), a tenant with its own
# certificate and a next one (own.example), and an s2s-only hosting-served tenant.
#  (1) `records` prints the four SRV records per tenant with the listeners' ports, the
#      hosting name as target for hosting-served tenants and own-example.hosting.example
#      for own.example (and for its alias); "." for a service the tenant does not offer;
#      without a hosting object own.example is its own target
#  (2) TLSA 3 1 1 at _PORT._tcp.TARGET for every TLS port and for the current and the
#      next key, equal to openssl's SHA-256 of each SPKI, and nothing else; `xmppfront
#      proof tlsa` matches them against the certificates (and not against the others)
#  (3) POSH: own.example's and hosting.example's fingerprints documents match their
#      certificates (current and next) by `xmppfront proof posh` and openssl's SHA-256 of
#      the DER; shared.example's documents are `url` references to the hosting's
#  (4) the output is a valid zone fragment (knotc zone-check, when knot is installed)
#  (5) unknown domain, bad name, missing argument: exit 2 with a message
#  (6) on the wire (openssl s_client): SNI shared.example / hosting.example, STARTTLS
#      to=shared.example and no SNI get the hosting certificate; SNI own.example gets its
#      own; the served keys are the ones the printed TLSA records name
#  (7) a c2s stream to shared.example after SNI shared.example reaches its backend; to
#      own.example after SNI shared.example is refused (policy-violation): the hosting
#      certificate does not name own.example
. "$(dirname "$0")/lib.sh"
T=records_cmd
xf_init "$T" || exit 1
cd "$XF_TMP" || exit 1

PKI="$XF_TMP/pki"
xf_make_ca "$PKI" "records test CA" || xf_setup_failed "$T: CA"
xf_make_cert "$PKI" "$XF_TMP/certs/hosting" hosting.example hosting.example &&
xf_make_cert "$PKI" "$XF_TMP/certs/hosting-next" hosting.example hosting.example &&
xf_make_cert "$PKI" "$XF_TMP/certs/own" own.example own.example &&
xf_make_cert "$PKI" "$XF_TMP/certs/own-next" own.example own.example ||
  xf_setup_failed "$T: certificates"

read -r P_C2S P_C2S_TLS P_S2S P_AUTO P_BE < <(xf_free_ports 5)
mkdir -p xf/tenants
cat > xf/tenants/shared.json <<EOF
{"domain": "shared.example", "c2s_backend": "127.0.0.1:$P_BE", "s2s_backend": "127.0.0.1:$P_BE"}
EOF
cat > xf/tenants/s2sonly.json <<EOF
{"domain": "s2sonly.example", "present": "hosting", "s2s_backend": "127.0.0.1:$P_BE"}
EOF
cat > xf/tenants/own.json <<EOF
{"domain": "own.example", "aliases": ["muc.own.example"], "certificate": "../../certs/own/fullchain.pem",
 "key": "../../certs/own/privkey.pem",
 "next_certificate": "../../certs/own-next/cert.pem", "next_key": "../../certs/own-next/privkey.pem",
 "c2s_backend": "127.0.0.1:$P_BE", "s2s_backend": "127.0.0.1:$P_BE"}
EOF
L="$(xf_listener 127.0.0.1 "$P_C2S" starttls client), $(xf_listener 127.0.0.1 "$P_C2S_TLS" direct client)"
L="$L, $(xf_listener 127.0.0.1 "$P_S2S" starttls server), $(xf_listener 127.0.0.1 "$P_AUTO" direct auto)"
CFG="$XF_TMP/xf/xmppfront.json"
cat > "$CFG" <<EOF
{"workers": 1, "tenants": "tenants", "listeners": [$L],
 "hosting": {"name": "hosting.example", "certificate": "../certs/hosting/fullchain.pem",
             "key": "../certs/hosting/privkey.pem",
             "next_certificate": "../certs/hosting-next/cert.pem",
             "next_key": "../certs/hosting-next/privkey.pem"}}
EOF

# spki CERTDIR -> hex SHA-256 of the leaf's SubjectPublicKeyInfo (TLSA 3 1 1 data)
spki() { openssl x509 -in "$1/cert.pem" -noout -pubkey | openssl pkey -pubin -outform DER |
         sha256sum | cut -d' ' -f1; }
# der_b64 CERTDIR -> base64 SHA-256 of the whole certificate DER (POSH sha-256)
der_b64() { openssl x509 -in "$1/cert.pem" -outform DER | openssl dgst -sha256 -binary | base64; }
H=$(spki certs/hosting) HN=$(spki certs/hosting-next) O=$(spki certs/own) ON=$(spki certs/own-next)

rec() { "$XF_BIN" records "$1" --config "$CFG" > "rec.$1" 2> "rec.$1.err"; }
xf_check "--check-config loads the hosting identity and the tenants without certificate" \
  bash -c "'$XF_BIN' --check-config -c '$CFG' | grep -F 'hosting identity hosting.example: ' |
           grep -F '(next certificate loaded); served for 2 tenants'"
for d in shared.example own.example hosting.example s2sonly.example; do
  xf_check "records $d: exit 0" rec "$d"
done

# Records of one type from a records output, normalised: "OWNER TYPE RDATA" per line.
rrs() { awk -v t="$2" '$0 !~ /^;/ && $4 == t { $2 = ""; $3 = ""; print }' "$1" |
        tr -s ' ' | sort; }
# same_lines DESC FILE_A FILE_B — equal sets of lines (prints the difference otherwise)
same_set() { diff <(sort "$1") <(sort "$2"); }

# (1) SRV
cat > want.srv.shared <<EOF
_xmpp-client._tcp.shared.example. SRV 0 5 $P_C2S hosting.example.
_xmpps-client._tcp.shared.example. SRV 0 5 $P_C2S_TLS hosting.example.
_xmpps-client._tcp.shared.example. SRV 0 5 $P_AUTO hosting.example.
_xmpp-server._tcp.shared.example. SRV 0 5 $P_S2S hosting.example.
_xmpps-server._tcp.shared.example. SRV 0 5 $P_AUTO hosting.example.
EOF
sed -e 's/shared\.example\./own.example./' -e 's/ hosting\.example\./ own-example.hosting.example./' \
  want.srv.shared > want.srv.own
cat > want.srv.s2sonly <<EOF
_xmpp-client._tcp.s2sonly.example. SRV 0 0 0 .
_xmpps-client._tcp.s2sonly.example. SRV 0 0 0 .
_xmpp-server._tcp.s2sonly.example. SRV 0 5 $P_S2S hosting.example.
_xmpps-server._tcp.s2sonly.example. SRV 0 5 $P_AUTO hosting.example.
EOF
for d in shared own s2sonly; do
  rrs "rec.$d.example" SRV > "got.srv.$d"
  xf_check "(1) $d.example: the SRV records (ports from the listeners, target rule)" \
    same_set "got.srv.$d" "want.srv.$d"
done
xf_check "(1) hosting.example itself: no SRV records (it is not a tenant)" \
  bash -c "[ -z \"\$(awk '\$0 !~ /^;/ && \$4 == \"SRV\"' rec.hosting.example)\" ]"

"$XF_BIN" records muc.own.example --config "$CFG" > rec.muc 2>&1
rrs rec.muc SRV > got.srv.muc
sed 's/_tcp\.own\.example\./_tcp.muc.own.example./' want.srv.own > want.srv.muc
xf_check "(1) an alias (muc.own.example): its own SRV owner names, its tenant's target" \
  same_set got.srv.muc want.srv.muc
# Without a hosting object a tenant with its own certificate is its own target.
mkdir -p xf2/tenants
cp xf/tenants/own.json xf2/tenants/own.json   # same depth: its relative paths still hold
printf '{"tenants": "tenants", "listeners": [%s]}\n' "$L" > xf2/xmppfront.json
"$XF_BIN" records own.example --config xf2/xmppfront.json > rec.nohost 2>&1
rrs rec.nohost SRV | sed 's/ own\.example\.$/ TARGET/' > got.srv.nohost
sed 's/ own-example\.hosting\.example\.$/ TARGET/' want.srv.own > want.srv.nohost
xf_check "(1) no hosting object: own.example's SRV target is own.example itself" \
  bash -c "same_set() { diff <(sort \"\$1\") <(sort \"\$2\"); }; same_set got.srv.nohost want.srv.nohost &&
           grep -q '^_$P_S2S\._tcp\.own\.example\. .* IN TLSA 3 1 1 $O\$' rec.nohost"

# (2) TLSA: exactly these records, hashes from openssl
tlsa_want() {   # TARGET KEY1 KEY2 PORT...
  local target=$1 k1=$2 k2=$3 p; shift 3
  for p in "$@"; do
    echo "_$p._tcp.$target. TLSA 3 1 1 $k1"
    echo "_$p._tcp.$target. TLSA 3 1 1 $k2"
  done
}
tlsa_want hosting.example "$H" "$HN" "$P_C2S" "$P_C2S_TLS" "$P_AUTO" "$P_S2S" > want.tlsa.shared
cp want.tlsa.shared want.tlsa.hosting
tlsa_want own-example.hosting.example "$O" "$ON" "$P_C2S" "$P_C2S_TLS" "$P_AUTO" "$P_S2S" > want.tlsa.own
tlsa_want hosting.example "$H" "$HN" "$P_S2S" "$P_AUTO" > want.tlsa.s2sonly
for d in shared own hosting s2sonly; do
  rrs "rec.$d.example" TLSA > "got.tlsa.$d"
  xf_check "(2) $d.example: TLSA 3 1 1 = openssl SPKI SHA-256 of current and next key, each TLS port" \
    same_set "got.tlsa.$d" "want.tlsa.$d"
done
xf_check "(2) own.example's TLSA RRset holds only its keys (no hosting key)" \
  bash -c "! grep -qE '$H|$HN' rec.own.example"
proof_tlsa() {   # CERTFILE RECORD_FILE_LINE_DATA -> exit code of proof tlsa
  "$XF_BIN" proof tlsa --cert "$1" --record "$2"
}
rec_own=$(awk '$4 == "TLSA" { print $5, $6, $7, $8; exit }' rec.own.example)
rec_host=$(awk '$4 == "TLSA" { print $5, $6, $7, $8; exit }' rec.shared.example)
xf_check "(2) proof tlsa: own.example's printed record matches its certificate" \
  proof_tlsa certs/own/cert.pem "$rec_own"
xf_check "(2) proof tlsa: shared.example's printed record matches the hosting certificate" \
  proof_tlsa certs/hosting/cert.pem "$rec_host"
xf_check "(2) proof tlsa: own.example's record does not match the hosting certificate" \
  bash -c "'$XF_BIN' proof tlsa --cert certs/hosting/cert.pem --record '$rec_own'; [ \$? -eq 1 ]"

# (3) POSH. posh_doc FILE DOMAIN KIND -> the JSON printed under its URL
posh_doc() {
  awk -v u="; https://$2/.well-known/posh/$3.json" 'f { sub(/^;   /, ""); print; exit } $0 == u { f = 1 }' "$1"
}
posh_doc rec.own.example own.example xmpp-server > own-server.json
posh_doc rec.own.example own.example xmpp-client > own-client.json
posh_doc rec.hosting.example hosting.example xmpp-server > hosting-server.json
posh_doc rec.shared.example shared.example xmpp-server > shared-server.json
posh_doc rec.shared.example shared.example xmpp-client > shared-client.json
posh_doc rec.s2sonly.example s2sonly.example xmpp-client > s2sonly-client.json
for c in own own-next; do
  xf_check "(3) proof posh: own.example's xmpp-server.json matches $c" \
    "$XF_BIN" proof posh --document own-server.json --cert "certs/$c/cert.pem"
done
xf_check "(3) proof posh: own.example's xmpp-client.json matches its certificate" \
  "$XF_BIN" proof posh --document own-client.json --cert certs/own/cert.pem
xf_check "(3) own.example's POSH does not match the hosting certificate" \
  bash -c "'$XF_BIN' proof posh --document own-server.json --cert certs/hosting/cert.pem; [ \$? -eq 1 ]"
for c in hosting hosting-next; do
  xf_check "(3) proof posh: hosting.example's xmpp-server.json matches $c" \
    "$XF_BIN" proof posh --document hosting-server.json --cert "certs/$c/cert.pem"
done
xf_check "(3) POSH sha-256 fingerprints = openssl SHA-256 of the DER (current, next)" \
  bash -c "grep -qF '\"sha-256\":\"$(der_b64 certs/own)\"' own-server.json &&
           grep -qF '\"sha-256\":\"$(der_b64 certs/own-next)\"' own-server.json &&
           grep -qF '\"sha-256\":\"$(der_b64 certs/hosting)\"' hosting-server.json"
for k in server client; do
  xf_check "(3) shared.example's xmpp-$k.json is a url reference to the hosting's" \
    grep -qxF "{\"url\":\"https://hosting.example/.well-known/posh/xmpp-$k.json\",\"expires\":86400}" \
    "shared-$k.json"
done
xf_check "(3) proof posh reads shared.example's document as a reference to the hosting's" \
  bash -c "'$XF_BIN' proof posh --document shared-server.json --cert certs/hosting/cert.pem |
           grep -F 'reference document: fetch https://hosting.example/.well-known/posh/xmpp-server.json'"
xf_check "(3) s2sonly.example (no c2s backend): no xmpp-client.json" test ! -s s2sonly-client.json

# A tenant named like the hosting (s2s only) publishes the hosting's TLSA on every port
# and both fingerprints documents.
mkdir -p xf3/tenants
printf '{"domain": "hosting.example", "s2s_backend": "127.0.0.1:%s"}\n' "$P_BE" > xf3/tenants/h.json
sed 's|"tenants": "tenants"|"tenants": "../xf3/tenants"|' "$CFG" > xf/main3.json
"$XF_BIN" records hosting.example --config xf/main3.json > rec.h3 2>&1
rrs rec.h3 TLSA > got.tlsa.h3
xf_check "(2) a tenant named like the hosting: the hosting's TLSA on every TLS port" \
  same_set got.tlsa.h3 want.tlsa.hosting
posh_doc rec.h3 hosting.example xmpp-client > h3-client.json
xf_check "(3) ... and its fingerprints documents (xmpp-client.json too)" \
  "$XF_BIN" proof posh --document h3-client.json --cert certs/hosting/cert.pem
xf_check "(3) ... and a tenant with a certificate of its own may not take the hosting name" \
  bash -c "printf '{\"domain\": \"hosting.example\", \"certificate\": \"../../certs/hosting/fullchain.pem\", \"key\": \"../../certs/hosting/privkey.pem\", \"s2s_backend\": \"127.0.0.1:1\"}' > xf3/tenants/h.json &&
           '$XF_BIN' records hosting.example --config xf/main3.json 2>&1 | grep -F 'domain: \"hosting.example\" is the hosting name'"

# (4) zone syntax
if command -v knotc >/dev/null 2>&1; then
  mkdir -p kz
  { printf '$ORIGIN example.\n@ 3600 IN SOA ns.hosting.example. h.hosting.example. 1 3600 600 86400 300\n'
    printf '@ 3600 IN NS ns.hosting.example.\n'
    cat rec.shared.example rec.own.example rec.hosting.example rec.s2sonly.example; } > kz/example.zone
  printf 'server:\n    rundir: "%s/kz"\ndatabase:\n    storage: "%s/kz"\nzone:\n  - domain: example.\n    file: "%s/kz/example.zone"\n' \
    "$XF_TMP" "$XF_TMP" "$XF_TMP" > kz/knot.conf
  xf_check "(4) the printed records load as a zone (knotc zone-check)" \
    knotc -c kz/knot.conf zone-check example.
else
  echo "  skip - (4) knotc not installed: zone syntax not checked"
fi

# (5) bad input
bad() {   # DESC WANT_STDERR_SUBSTRING ARGS...
  local want=$1; shift
  "$XF_BIN" records "$@" > bad.out 2> bad.err; local rc=$?
  cat bad.err
  [ $rc -eq 2 ] && grep -qF "$want" bad.err && [ ! -s bad.out ]
}
xf_check "(5) unknown domain: exit 2, message" \
  bad "nope.example is not a tenant, a tenant alias or the hosting name" nope.example --config "$CFG"
xf_check "(5) invalid name: exit 2" bad "has an empty label" "a..example" --config "$CFG"
xf_check "(5) no domain: exit 2 with usage" bad "usage: xmppfront records" --config "$CFG"
xf_check "(5) unloadable configuration: exit 2" bad "configuration error" own.example --config /nonexistent.json

# (6) on the wire
"$XF_PY" - "$P_BE" > be.log 2>&1 <<'EOF' &
import re, socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16)
def serve(c):
    data = b""
    while b">" not in data.split(b"<stream:stream", 1)[-1]:
        d = c.recv(4096)
        if not d: return
        data += d
    m = re.search(rb"to=['\"]([^'\"]+)", data)
    to = m.group(1).decode() if m else "?"
    print("backend stream to=" + to, flush=True)
    c.sendall(("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream="
               "'http://etherx.jabber.org/streams' from='%s' id='be1' version='1.0'>"
               "<stream:features/>" % to).encode())
    c.recv(4096)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
xf_track $!
xf_wait_port 127.0.0.1 "$P_BE" 10 || xf_setup_failed "$T: fake backend"
XF_LOG="$XF_TMP/xf/xmppfront.log"
xf_proxy_start "$CFG" "$XF_LOG" "$P_C2S" "$P_C2S_TLS" "$P_S2S" "$P_AUTO" ||
  xf_setup_failed "$T: xmppfront"

# served_spki PORT s_client-args... -> SPKI SHA-256 of the certificate served
served_spki() {
  local port=$1; shift
  timeout 15 openssl s_client -connect "127.0.0.1:$port" "$@" </dev/null 2>/dev/null |
    openssl x509 -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1
}
serves() {   # WANT_SPKI PORT s_client-args...
  local want=$1; shift
  local got; got=$(served_spki "$@")
  echo "served SPKI $got, want $want"
  [ "$got" = "$want" ]
}
xf_check "(6) direct TLS, SNI shared.example -> the hosting certificate" \
  serves "$H" "$P_C2S_TLS" -servername shared.example
xf_check "(6) auto port, SNI shared.example -> the hosting certificate" \
  serves "$H" "$P_AUTO" -servername shared.example
xf_check "(6) SNI hosting.example -> the hosting certificate" \
  serves "$H" "$P_AUTO" -servername hosting.example
xf_check "(6) SNI own.example -> its own certificate" \
  serves "$O" "$P_AUTO" -servername own.example
xf_check "(6) STARTTLS to=shared.example, no SNI -> the hosting certificate" \
  serves "$H" "$P_C2S" -starttls xmpp -xmpphost shared.example -noservername
xf_check "(6) STARTTLS s2s to=own.example, no SNI -> its own certificate" \
  serves "$O" "$P_S2S" -starttls xmpp-server -xmpphost own.example -noservername
xf_check "(6) no SNI on direct TLS -> the hosting certificate (the default)" \
  serves "$H" "$P_C2S_TLS" -noservername
xf_check "(6) the served hosting chain verifies for hosting.example against the CA" \
  bash -c "timeout 15 openssl s_client -connect 127.0.0.1:$P_AUTO -servername shared.example \
             -CAfile '$PKI/ca.pem' -verify_return_error -verify_hostname hosting.example </dev/null 2>&1 |
           grep -q 'Verify return code: 0 (ok)'"
xf_check "(6) the printed TLSA of shared.example matches the certificate served for it" \
  bash -c "timeout 15 openssl s_client -connect 127.0.0.1:$P_C2S_TLS -servername shared.example </dev/null 2>/dev/null |
           openssl x509 > served-shared.pem && '$XF_BIN' proof tlsa --cert served-shared.pem --record '$rec_host'"

# (7) streams after the handshake
stream() {   # PORT SNI TO -> the proxy's answer
  { printf "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>" "$3"; sleep 2; } |
    timeout 10 openssl s_client -quiet -connect "127.0.0.1:$1" -servername "$2" 2>/dev/null
}
xf_check "(7) SNI shared.example, to=shared.example: the backend answers" \
  bash -c "$(declare -f stream); stream $P_C2S_TLS shared.example shared.example | grep -F \"from='shared.example' id='be1'\""
xf_check "(7) the backend saw the stream for shared.example" grep -q 'backend stream to=shared.example' be.log
xf_check "(7) SNI shared.example, to=own.example: policy-violation (the certificate does not name it)" \
  bash -c "$(declare -f stream); stream $P_C2S_TLS shared.example own.example | grep -F 'policy-violation'"
xf_check "(7) the proxy logs the hosting identity at start" \
  xf_log_has "$XF_LOG" "hosting identity hosting.example" "next certificate loaded" "served for 2 tenants"
xf_finish "$T"
