#!/bin/sh
# test_proof_cli.sh: runs `xmppfront proof` against certificates made by openssl and
# cross-checks generated TLSA records and POSH fingerprints with openssl itself.
# Usage: XF_BIN=/path/to/xmppfront tests/integration/test_proof_cli.sh
set -u
BIN=${XF_BIN:-${1:-build/xmppfront}}
case $BIN in /*) ;; *) BIN=$(pwd)/$BIN ;; esac
[ -x "$BIN" ] || { echo "no xmppfront binary at $BIN"; exit 2; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0 checks=0

# expect NAME EXIT_CODE PREFIX -- command...
expect() {
    name=$1 code=$2 prefix=$3
    shift 4
    out=$("$@" 2>"$T/err"); rc=$?
    checks=$((checks + 1))
    case "$out" in
        "$prefix"*) ok=1 ;;
        *) ok=0 ;;
    esac
    if [ "$rc" -ne "$code" ] || [ "$ok" -ne 1 ]; then
        echo "FAIL $name: rc=$rc (want $code) out='$out' (want prefix '$prefix')"
        fails=$((fails + 1))
    else
        echo "ok   $name: $out" | cut -c1-150
    fi
}
same() {
    checks=$((checks + 1))
    if [ "$2" = "$3" ] && [ -n "$2" ]; then echo "ok   $1"; else echo "FAIL $1: '$2' != '$3'"; fails=$((fails + 1)); fi
}

cd "$T" || exit 2
# A private CA and a leaf for example.com with DNS-ID, wildcard, SRV-ID and XmppAddr.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 30 -subj "/CN=XF CLI Test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign" 2>/dev/null || exit 2
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout leaf.key -out leaf.csr \
    -subj "/CN=ignored.example" 2>/dev/null || exit 2
cat > ext.cnf <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
subjectAltName=DNS:example.com,DNS:*.example.net,otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_xmpp-server.srv.example,otherName:1.3.6.1.5.5.7.8.5;UTF8:jabber.example
EXT
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 10 \
    -extfile ext.cnf -out leaf.pem 2>/dev/null || exit 2
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key -out other.pem \
    -days 30 -subj "/CN=example.com" 2>/dev/null || exit 2

# identity
expect id-dns 0 "match DNS-ID example.com" -- "$BIN" proof identity --cert leaf.pem --domain EXAMPLE.com
expect id-wild 0 "match DNS-ID *.example.net" -- "$BIN" proof identity --cert leaf.pem --domain a.example.net
expect id-wild-deep 1 "no-match" -- "$BIN" proof identity --cert leaf.pem --domain a.b.example.net
expect id-wild-base 1 "no-match" -- "$BIN" proof identity --cert leaf.pem --domain example.net
expect id-srv 0 "match SRV-ID _xmpp-server.srv.example" -- "$BIN" proof identity --cert leaf.pem --domain srv.example
expect id-srv-client 1 "no-match" -- "$BIN" proof identity --cert leaf.pem --domain srv.example --service client
expect id-xmppaddr 0 "match XmppAddr jabber.example" -- "$BIN" proof identity --cert leaf.pem --domain jabber.example
expect id-cn-ignored 1 "no-match" -- "$BIN" proof identity --cert leaf.pem --domain ignored.example
expect id-cn-only 0 "match CN-ID example.com" -- "$BIN" proof identity --cert other.pem --domain example.com
expect id-target 0 "match DNS-ID example.com" -- "$BIN" proof identity --cert leaf.pem --domain hosted.example --srv-target example.com
expect id-badsvc 2 "invalid" -- "$BIN" proof identity --cert leaf.pem --domain example.com --service web
expect id-nocert 2 "invalid" -- "$BIN" proof identity --domain example.com
expect id-missing 2 "invalid" -- "$BIN" proof identity --cert nonexistent.pem --domain example.com

# pkix
expect pkix-ok 0 "match chain valid" -- "$BIN" proof pkix --cert leaf.pem --domain example.com --ca ca.pem
expect pkix-name 1 "no-match chain valid, but" -- "$BIN" proof pkix --cert leaf.pem --domain other.example --ca ca.pem
expect pkix-untrusted 1 "no-match PKIX: no path" -- "$BIN" proof pkix --cert leaf.pem --domain example.com --ca other.pem
expect pkix-selfsigned-system 1 "no-match" -- "$BIN" proof pkix --cert other.pem --domain example.com

# TLSA generation cross-checked with openssl
gen=$("$BIN" proof tlsa --cert leaf.pem --generate)
want311=$(openssl x509 -in leaf.pem -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
want312=$(openssl x509 -in leaf.pem -pubkey -noout | openssl pkey -pubin -outform DER | sha512sum | cut -d' ' -f1)
same tlsa-311-openssl "$(echo "$gen" | sed -n 1p)" "3 1 1 $want311"
same tlsa-312-openssl "$(echo "$gen" | sed -n 2p)" "3 1 2 $want312"
want301=$(openssl x509 -in leaf.pem -outform DER | sha256sum | cut -d' ' -f1)
expect tlsa-311 0 "match record 1 (3 1 1): DANE-EE" -- "$BIN" proof tlsa --cert leaf.pem --record "3 1 1 $want311"
expect tlsa-301 0 "match" -- "$BIN" proof tlsa --cert leaf.pem --record "3 0 1 $want301"
expect tlsa-other 1 "no-match" -- "$BIN" proof tlsa --cert other.pem --record "3 1 1 $want311"
expect tlsa-agility 1 "no-match" -- "$BIN" proof tlsa --cert leaf.pem --record "3 1 1 $want311" --record "3 1 2 $(printf '%0128d' 0)"
expect tlsa-unusable 1 "unusable" -- "$BIN" proof tlsa --cert leaf.pem --record "4 1 1 $want311" --record "3 1 2 $want311"
expect tlsa-bad 2 "invalid" -- "$BIN" proof tlsa --cert leaf.pem --record "3 1 1 xyz"
expect tlsa-dane-ta 0 "match record 1 (2 0 0)" -- "$BIN" proof tlsa --cert leaf.pem --domain example.com \
    --record "2 0 0 $(openssl x509 -in ca.pem -outform DER | od -An -v -tx1 | tr -d ' \n')"
cader=$(openssl x509 -in ca.pem -outform DER | od -An -v -tx1 | tr -d ' \n')
ca256=$(openssl x509 -in ca.pem -outform DER | sha256sum | cut -d' ' -f1)
# --ca that cannot be loaded, and DANE-TA / PKIX records without --domain, are invalid input.
expect tlsa-ca-missing 2 "invalid" -- "$BIN" proof tlsa --cert leaf.pem --domain example.com \
    --record "0 0 1 $ca256" --ca /nonexistent/ca.pem
expect tlsa-ta-nodomain 2 "invalid" -- "$BIN" proof tlsa --cert leaf.pem --record "2 0 0 $cader"
expect tlsa-pkix-nodomain 2 "invalid" -- "$BIN" proof tlsa --cert leaf.pem --record "0 0 1 $ca256" --ca ca.pem
# PKIX-TA on a root that comes from --ca and is not sent by the server.
expect tlsa-pkix-ta-store 0 "match record 1 (0 0 1)" -- "$BIN" proof tlsa --cert leaf.pem --domain example.com \
    --record "0 0 1 $ca256" --ca ca.pem
# PKIX-TA pin bypass: leaf issued by caB, ca.pem appended to the chain, both trusted.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout cab.key -out cab.pem \
    -days 30 -subj "/CN=XF CLI Test CA B" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign" 2>/dev/null || exit 2
openssl x509 -req -in leaf.csr -CA cab.pem -CAkey cab.key -CAcreateserial -days 10 \
    -extfile ext.cnf -out leafb.pem 2>/dev/null || exit 2
cat leafb.pem ca.pem > chainb.pem
cat ca.pem cab.pem > both.pem
expect tlsa-pkix-ta-bypass 1 "no-match" -- "$BIN" proof tlsa --cert chainb.pem --domain example.com \
    --record "0 0 1 $ca256" --ca both.pem
# DANE-TA: a self-signed CA:FALSE leaf is not its own trust anchor.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout self.key -out self.pem \
    -days 30 -subj "/CN=example.com" -addext "basicConstraints=critical,CA:FALSE" \
    -addext "subjectAltName=DNS:example.com" 2>/dev/null || exit 2
expect tlsa-ta-leaf 1 "no-match" -- "$BIN" proof tlsa --cert self.pem --domain example.com \
    --record "2 0 0 $(openssl x509 -in self.pem -outform DER | od -An -v -tx1 | tr -d ' \n')"
# A chain file whose second certificate is broken: invalid (and nothing leaks).
{ cat leaf.pem; printf -- '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'; } > broken.pem
expect cert-broken 2 "invalid" -- "$BIN" proof tlsa --cert broken.pem --record "3 1 1 $want311"

# POSH generation cross-checked with openssl
"$BIN" proof posh --cert leaf.pem --generate --expires 3600 > posh.json
fp=$(openssl x509 -in leaf.pem -outform DER | openssl dgst -sha256 -binary | base64)
fp512=$(openssl x509 -in leaf.pem -outform DER | openssl dgst -sha512 -binary | base64 -w0)
same posh-sha256-openssl "$(sed 's/.*"sha-256":"\([^"]*\)".*/\1/' posh.json)" "$fp"
same posh-sha512-openssl "$(sed 's/.*"sha-512":"\([^"]*\)".*/\1/' posh.json)" "$fp512"
expect posh-match 0 "match fingerprint 1 (sha-256)" -- "$BIN" proof posh --cert leaf.pem --document posh.json
expect posh-other 1 "no-match" -- "$BIN" proof posh --cert other.pem --document posh.json
printf '{"fingerprints":[{"sha-256":"%s"}],"expires":60}' "$(echo "$fp" | tr -d '=')" > unpadded.json
expect posh-unpadded 0 "match" -- "$BIN" proof posh --cert leaf.pem --document unpadded.json
spki=$(openssl x509 -in leaf.pem -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64)
printf '{"fingerprints":[{"sha-256":"%s"}],"expires":60}' "$spki" > spki.json
expect posh-spki 1 "no-match" -- "$BIN" proof posh --cert leaf.pem --document spki.json
printf '{"fingerprints":[{"sha-256":"%s"}],"expires":0}' "$fp" > zero.json
expect posh-expires0 2 "invalid" -- "$BIN" proof posh --cert leaf.pem --document zero.json
"$BIN" proof posh --delegate https://hosting.example.net/.well-known/posh/xmpp-server.json > ref.json
same posh-delegate "$(cat ref.json)" '{"url":"https://hosting.example.net/.well-known/posh/xmpp-server.json","expires":86400}'
expect posh-ref 1 "no-match reference document" -- "$BIN" proof posh --cert leaf.pem --document ref.json
expect posh-http 2 "invalid" -- "$BIN" proof posh --delegate http://x.example/
expect posh-notjson 2 "invalid" -- "$BIN" proof posh --cert leaf.pem --document ext.cnf

# dialback (XEP-0185 vector)
expect db-vector 0 "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643" -- "$BIN" proof dialback-key \
    --secret s3cr3tf0rd14lb4ck --receiving xmpp.example.com --originating example.org --stream-id D60000229F
expect db-verify 0 "match" -- "$BIN" proof dialback-key --secret s3cr3tf0rd14lb4ck --receiving xmpp.example.com \
    --originating example.org --stream-id D60000229F --key 37C69B1CF07A3F67C04A5EF5902FA5114F2C76FE4A2686482BA5B89323075643
expect db-swapped 1 "no-match" -- "$BIN" proof dialback-key --secret s3cr3tf0rd14lb4ck --receiving example.org \
    --originating xmpp.example.com --stream-id D60000229F --key 37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643
expect db-missing 2 "invalid" -- "$BIN" proof dialback-key --secret s
expect unknown-sub 2 "invalid" -- "$BIN" proof frobnicate

echo "$checks checks, $fails failed"
[ "$fails" -eq 0 ]
