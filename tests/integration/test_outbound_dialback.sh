#!/usr/bin/env bash
# Outbound s2s through xmppfront by dialback, and the remote certificate against the
# tenant's policy (issue 7, "Outbound"; XEP-0220, XEP-0185 keys over xmppfront's secret).
# Real plaintext backend Prosody (a.example: policy encrypted, b.example: trusted; both
# with lab-CA certificates), its outgoing s2s redirected by uid to the outbound listener.
# The remotes are scripted (tests/integration/outbound_peer.py, direct TLS by
# _xmpps-server SRV): each checks our <db:result/> key with the dialback secret, i.e. what
# its verify to the tenant's authoritative server (xmppfront's inbound side) establishes.
#  (1) db.example (lab CA, dialback only): a.example and b.example authenticate by
#      dialback, the key is right, the message arrives; SNI and ALPN xmpp-server are sent
#  (2) saslfail.example offers SASL EXTERNAL and refuses it (<failure/>, as for a
#      serverAuth-only certificate): xmppfront falls back to dialback
#  (4) STARTTLS (only _xmpp-server SRV): advertised, and not advertised (RFC 7590: asked
#      anyway); a remote without TLS: `encrypted` refuses with policy-violation after its
#      <starttls/> is refused, `open` (c.example) does dialback in plaintext
#  (5) closer.example drops the relaying stream (TCP only): closed cleanly, and the next
#      message opens a new one
#  (3) wrongname.example presents a CA certificate for another domain, expired.example an
#      expired one: `encrypted` (a.example) goes on by dialback over TLS, `trusted`
#      (b.example) is refused with not-authorized, the backend bounces within seconds,
#      and no key was offered to that remote
. "$(dirname "$0")/../lab/lab.sh"
. "$(dirname "$0")/outbound_lib.sh"
T=test_outbound_dialback

lab_init "$T" || exit 1
lab_up || xf_setup_failed "$T: lab_up"
ob_tenant a.example encrypted || xf_setup_failed "$T: tenant a"
ob_tenant b.example trusted || xf_setup_failed "$T: tenant b"
ob_tenant c.example open || xf_setup_failed "$T: tenant c"
P="$LAB_DIR/peers"
xf_make_cert "$LAB_DIR/pki" "$P/db" db.example db.example &&
xf_make_cert "$LAB_DIR/pki" "$P/saslfail" saslfail.example saslfail.example &&
xf_make_cert "$LAB_DIR/pki" "$P/wrongname" other.example other.example &&
xf_make_cert "$LAB_DIR/pki" "$P/stls" stls.example stls.example &&
xf_make_cert "$LAB_DIR/pki" "$P/stlsnoadv" stlsnoadv.example stlsnoadv.example &&
xf_make_cert "$LAB_DIR/pki" "$P/plain" plain.example plain.example &&
xf_make_cert "$LAB_DIR/pki" "$P/closer" closer.example closer.example || xf_setup_failed "$T: certificates"
# expired: signed by the lab CA, valid from 10 days ago until yesterday
mkdir -p "$P/expired"
"$XF_PY" - "$LAB_DIR/pki" "$P/expired" expired.example <<'EOF' || xf_setup_failed "$T: expired certificate"
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
pki, out, name = sys.argv[1:]
ca_key = serialization.load_pem_private_key(open(pki + '/ca.key', 'rb').read(), None)
ca = x509.load_pem_x509_certificate(open(pki + '/ca.pem', 'rb').read())
key = ec.generate_private_key(ec.SECP256R1())
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=10)).not_valid_after(now - datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(ca_key, hashes.SHA256()))
open(out + '/privkey.pem', 'wb').write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
open(out + '/fullchain.pem', 'wb').write(cert.public_bytes(serialization.Encoding.PEM) + open(pki + '/ca.pem', 'rb').read())
EOF
# name  address  port  peer options (direct TLS peers: _xmpps-server SRV; the others:
# _xmpp-server SRV only)
PEERS=(
  "db 127.0.1.70 5270 --tls direct"
  "saslfail 127.0.1.71 5270 --tls direct --mode sasl-fail"
  "wrongname 127.0.1.72 5270 --tls direct"
  "expired 127.0.1.73 5270 --tls direct"
  "stls 127.0.1.74 5269 --tls starttls"
  "stlsnoadv 127.0.1.75 5269 --tls starttls --no-advertise"
  "plain 127.0.1.76 5269 --tls none"
  "closer 127.0.1.77 5270 --tls direct --close-after-stanza"
)
for e in "${PEERS[@]}"; do
  read -r p a port _ <<< "$e"
  lab_host "$p.example" "$a"
  if [ "$port" = 5270 ]; then lab_rr "_xmpps-server._tcp.$p.example" SRV "0 5 5270 $p.example."
  else lab_rr "_xmpp-server._tcp.$p.example" SRV "0 5 5269 $p.example."; fi
done
lab_dns_start || xf_setup_failed "$T: dns"
ob_backend_start a.example b.example c.example || xf_setup_failed "$T: backend"
ob_proxy_start || xf_setup_failed "$T: xmppfront"
for e in "${PEERS[@]}"; do
  read -r p a port opts <<< "$e"
  # shellcheck disable=SC2086  # opts are words
  OB_PEER_TIMEOUT=120 ob_peer remote --listen "$a" "$port" --domain "$p.example" $opts \
    --cert "$P/$p/fullchain.pem" --key "$P/$p/privkey.pem" --secret-file "$OB_SECRET" \
    --log "$LAB_DIR/$p.log" > /dev/null 2>&1 &
  xf_track $!
done
for e in "${PEERS[@]}"; do
  read -r p a port _ <<< "$e"
  lab_wait_port "$a" "$port" 10 || xf_setup_failed "$T: peer $p"
done

OUT="$LAB_DIR/sends.out"
t0=$(date +%s)
lab_xmpp --account user1@a.example pass1 127.0.0.1 15222 --account user1@b.example pass1 127.0.0.1 15222 \
  --account user1@c.example pass1 127.0.0.1 15222 \
  --send user1@a.example x@stls.example --send user1@a.example x@stlsnoadv.example \
  --send user1@a.example x@plain.example --send user1@c.example x@plain.example \
  --send user1@a.example x@closer.example \
  --send user1@a.example x@db.example --send user1@b.example x@db.example \
  --send user1@a.example x@saslfail.example \
  --send user1@a.example x@wrongname.example --send user1@b.example x@wrongname.example \
  --send user1@a.example x@expired.example --send user1@b.example x@expired.example \
  --timeout 5 > "$OUT" 2>&1
echo "  (sends took $(( $(date +%s) - t0 ))s)"
# closer.example dropped its TCP connection (no close_notify, no </stream:stream>) after
# the first stanza: the next message needs a new stream
lab_xmpp --account user1@a.example pass1 127.0.0.1 15222 --send user1@a.example x@closer.example \
  --timeout 3 >> "$OUT" 2>&1
sleep 0.5
export LAB_DIR OUT OB_LOG
peer_has() { grep -q -- "$2" "$LAB_DIR/$1.log" || { echo "$1.log:"; cat "$LAB_DIR/$1.log"; return 1; }; }
peer_lacks() { ! grep -q -- "$2" "$LAB_DIR/$1.log" || { echo "$1.log:"; cat "$LAB_DIR/$1.log"; return 1; }; }
bounced_fast() {   # TO FROM MAX_S
  awk -v to="$1" -v from="$2" -v max="$3" '$1 == "RESULT" && $2 == from && $3 == to && $4 ~ /^error:/ && $5 + 0 <= max { ok = 1 } END { exit !ok }' "$OUT" || { cat "$OUT"; return 1; }
}
export -f peer_has peer_lacks bounced_fast

xf_check "(1) db.example: a.example's dialback key is right and its message arrives" \
  bash -c "$(declare -f peer_has); peer_has db 'KEY ok a.example' && peer_has db 'STANZA <message.*from=.user1@a.example/'"
xf_check "(1) db.example: b.example (trusted) too — PKIX-valid remote, dialback over a proven certificate" \
  bash -c "$(declare -f peer_has); peer_has db 'KEY ok b.example' && peer_has db 'STANZA <message.*from=.user1@b.example/'"
xf_check "(1) SNI is the remote domain, ALPN xmpp-server (direct TLS)" \
  bash -c "$(declare -f peer_has); peer_has db 'TLS sni=db.example alpn=xmpp-server'"
xf_check "(1) xmppfront: auth=dialback with pkix valid" \
  grep -qE 'tenant="a.example" remote="db.example" authenticated auth=dialback remote_addr=127\.0\.1\.70:5270 tls=TLSv1\.[23] verdict=.*pkix: valid.*dialback: valid' "$OB_LOG"
xf_check "(2) SASL EXTERNAL refused: dialback instead, key right, message arrives" \
  bash -c "$(declare -f peer_has); peer_has saslfail 'SASL auth refused' && peer_has saslfail 'KEY ok a.example' && peer_has saslfail 'STANZA <message' &&
           grep -q 'remote=\"saslfail.example\" authenticated auth=dialback' '$OB_LOG'"
xf_check "(3) certificate for another domain, policy encrypted: dialback over TLS, delivered" \
  bash -c "$(declare -f peer_has); peer_has wrongname 'KEY ok a.example' && peer_has wrongname 'STANZA <message.*from=.user1@a.example/'"
xf_check "(3) expired certificate, policy encrypted: dialback over TLS, delivered" \
  bash -c "$(declare -f peer_has); peer_has expired 'KEY ok a.example' && peer_has expired 'STANZA <message.*from=.user1@a.example/'"
xf_check "(3) certificate for another domain, policy trusted: bounced within 4 s, no key offered" \
  bash -c "$(declare -f bounced_fast peer_lacks); OUT='$OUT' LAB_DIR='$LAB_DIR'; bounced_fast x@wrongname.example user1@b.example 4 && peer_lacks wrongname 'KEY.*b.example'"
xf_check "(3) expired certificate, policy trusted: bounced within 4 s, no key offered" \
  bash -c "$(declare -f bounced_fast peer_lacks); OUT='$OUT' LAB_DIR='$LAB_DIR'; bounced_fast x@expired.example user1@b.example 4 && peer_lacks expired 'KEY.*b.example'"
xf_check "(3) xmppfront names the refusal: not-authorized, pkix invalid with why" \
  bash -c "grep -E 'tenant=\"b.example\" remote=\"wrongname.example\" refused: dialback error not-authorized.*pkix: invalid' '$OB_LOG' &&
           grep -E 'tenant=\"b.example\" remote=\"expired.example\" refused: dialback error not-authorized.*pkix: invalid.*expired' '$OB_LOG'"

xf_check "(4) STARTTLS advertised: TLS on 5269, dialback, delivered" \
  bash -c "peer_has stls 'STARTTLS asked (advertised=True)' && peer_has stls 'KEY ok a.example' && peer_has stls 'STANZA <message' &&
           grep -qE 'remote=\"stls.example\" authenticated auth=dialback remote_addr=127\.0\.1\.74:5269 tls=TLSv1\.[23] verdict=.*starttls' '$OB_LOG'"
xf_check "(4) STARTTLS not advertised: asked anyway (RFC 7590), delivered" \
  bash -c "peer_has stlsnoadv 'STARTTLS asked (advertised=False)' && peer_has stlsnoadv 'KEY ok a.example' && peer_has stlsnoadv 'STANZA <message'"
xf_check "(4) a remote without TLS, policy encrypted: STARTTLS refused -> policy-violation, bounced within 4 s" \
  bash -c "$(declare -f bounced_fast); bounced_fast x@plain.example user1@a.example 4 && peer_has plain 'STARTTLS refused' &&
           grep -q 'tenant=\"a.example\" remote=\"plain.example\" refused: dialback error policy-violation' '$OB_LOG'"
xf_check "(4) a remote without TLS, policy open: dialback in plaintext, delivered" \
  bash -c "peer_has plain 'KEY ok c.example' && peer_has plain 'STANZA <message.*from=.user1@c.example/' &&
           grep -q 'tenant=\"c.example\" remote=\"plain.example\" authenticated auth=dialback remote_addr=127.0.1.76:5269 tls=none' '$OB_LOG'"

xf_check "(5) a remote that drops a relaying stream: closed cleanly, the next message gets a new stream" \
  bash -c "[ \$(grep -c 'STANZA <message' '$LAB_DIR/closer.log') -eq 2 ] && [ \$(grep -c 'KEY ok a.example' '$LAB_DIR/closer.log') -eq 2 ] &&
           grep -q 'close tenant=\"a.example\" remote=\"closer.example\" .*auth=dialback .*reason=\"remote: ' '$OB_LOG' || { cat '$LAB_DIR/closer.log'; exit 1; }"

xf_check "xmppfront is still running" kill -0 "$XF_PROXY_PID"
[ "$XF_FAILS" -gt 0 ] && { cat "$OUT"; echo "--- xmppfront log"; tail -40 "$OB_LOG"; echo "--- backend log"; tail -30 "$OB_BDIR/prosody.log"; }
xf_finish "$T"
