#!/usr/bin/env bash
# sslscan (2.0 or 2.1) against the STARTTLS c2s port (--starttls-xmpp) and the direct TLS c2s port.
# sslscan uses the target host name as the stream `to` (and SNI), so a.example must resolve
# to 127.0.0.1: sslscan runs in a private mount namespace where a temp hosts file is
# bind-mounted over /etc/hosts (the machine's /etc/hosts is never touched).
# Asserted from sslscan's XML report, for both ports: TLSv1.2 and TLSv1.3 enabled; SSLv2,
# SSLv3, TLSv1.0, TLSv1.1 disabled; every accepted cipher is AES-GCM or CHACHA20-POLY1305
# (and TLS 1.2 ones are ECDHE); no renegotiation; the certificate's Subject and Altnames
# are a.example's. The proxy log proves the STARTTLS scan really went through STARTTLS.
. "$(dirname "$0")/lib.sh"
T=sslscan
command -v sslscan >/dev/null || { echo "  FAIL - sslscan not installed"; echo "FAIL: $T"; exit 1; }
xf_setup_standard "$T" || xf_setup_failed "$T: could not start Prosody + xmppfront"

HOSTS="$XF_TMP/hosts"
printf '127.0.0.1 localhost\n127.0.0.1 a.example\n::1 localhost ip6-localhost\n' > "$HOSTS"
# scan LABEL XMLFILE sslscan-args... : sslscan inside a private mount namespace
scan() {
  local label=$1 xml=$2; shift 2
  timeout 50 unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec sslscan --no-colour --xml="$1" "$@"' \
    "$HOSTS" "$xml" "$@" >"$XF_TMP/sslscan-$label.txt" 2>&1
  local rc=$?
  cat "$XF_TMP/sslscan-$label.txt"
  echo "sslscan exit $rc"
  # unshare -m makes / private (never unchanged: a shared / would carry the bind back to
  # the machine); that needs / to be a mount point, which a bare chroot lacks.
  grep -q 'cannot change root filesystem propagation' "$XF_TMP/sslscan-$label.txt" &&
    echo "hint: / is not a mount point here (a chroot?): bind-mount the root onto itself before chroot"
  [ $rc = 0 ] && [ -s "$xml" ]
}

# check_report XMLFILE : the assertions on one sslscan XML report
check_report() {
  "$XF_PY" - "$1" <<'PYEOF'
import sys, re
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
t = root.find('ssltest')
bad = []
if t is None:
    print('no <ssltest> in the report (connection/STARTTLS failed?)'); sys.exit(1)
prot = {(p.get('type'), p.get('version')): p.get('enabled') for p in t.findall('protocol')}
print('protocols:', prot)
want = {('ssl', '2'): '0', ('ssl', '3'): '0', ('tls', '1.0'): '0', ('tls', '1.1'): '0',
        ('tls', '1.2'): '1', ('tls', '1.3'): '1'}
for k, v in want.items():
    if prot.get(k) != v:
        bad.append(f'{k[0]}{k[1]} enabled={prot.get(k)} (want {v})')
ciphers = [(c.get('sslversion'), c.get('cipher')) for c in t.findall('cipher')]
print('ciphers:', ciphers)
if not any(v == 'TLSv1.3' for v, _ in ciphers) or not any(v == 'TLSv1.2' for v, _ in ciphers):
    bad.append('no accepted cipher for TLSv1.2 or TLSv1.3')
for v, c in ciphers:
    if not re.search(r'GCM|CHACHA20', c):
        bad.append(f'non-AEAD cipher accepted: {v} {c}')
    if v == 'TLSv1.2' and not c.startswith('ECDHE-'):
        bad.append(f'TLS 1.2 cipher without ECDHE: {c}')
    if v not in ('TLSv1.2', 'TLSv1.3'):
        bad.append(f'cipher on {v}: {c}')
reneg = t.find('renegotiation')
if reneg is not None and reneg.get('supported') != '0':
    bad.append(f'renegotiation supported={reneg.get("supported")}')
cert = t.find('certificates/certificate')
subj = (cert.findtext('subject') or '').strip() if cert is not None else ''
alt = (cert.findtext('altnames') or '').strip() if cert is not None else ''
print(f'subject={subj!r} altnames={alt!r}')
if subj != 'a.example':
    bad.append(f'certificate subject {subj!r}, want a.example')
if sorted(a.strip() for a in alt.split(',')) != ['DNS:a.example', 'DNS:conference.a.example']:
    bad.append(f'certificate altnames {alt!r}, want DNS:a.example, DNS:conference.a.example')
for b in bad:
    print('BAD:', b)
sys.exit(1 if bad else 0)
PYEOF
}

xf_check "sslscan --starttls-xmpp a.example:$P_C2S completes" \
  scan starttls "$XF_TMP/starttls.xml" --starttls-xmpp "a.example:$P_C2S"
xf_check "STARTTLS port: TLS1.2+1.3 only, GCM/CHACHA20 only, no renegotiation, a.example's certificate" \
  check_report "$XF_TMP/starttls.xml"
xf_check "sslscan a.example:$P_C2S_TLS (direct TLS) completes" \
  scan direct "$XF_TMP/direct.xml" "a.example:$P_C2S_TLS"
xf_check "direct TLS port: TLS1.2+1.3 only, GCM/CHACHA20 only, no renegotiation, a.example's certificate" \
  check_report "$XF_TMP/direct.xml"
sleep 0.3
xf_check "proxy log: TLS handshakes completed on the STARTTLS listener (sni=a.example)" \
  xf_log_has "$XF_LOG" "listener=127.0.0.1:$P_C2S " tls=TLSv1. sni=a.example
xf_check "machine's /etc/hosts untouched (a.example not in it)" bash -c "! grep -qw a.example /etc/hosts"
xf_check "proxy still running" kill -0 "$XF_PROXY_PID"
xf_finish "$T"
