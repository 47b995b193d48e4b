#!/usr/bin/python3
"""Checks a testssl.sh --jsonfile (flat JSON) against xmppfront's TLS policy:
no SSLv2/SSLv3/TLS 1.0/TLS 1.1; TLS 1.2 and 1.3 offered; no NULL, anonymous, export,
LOW (DES/RC4/64-bit), 3DES/IDEA or obsolete CBC cipher group; strong AEAD ciphers
offered; and, from the per-protocol cipher list (testssl -E), every accepted suite is
TLS 1.2/1.3, AEAD (AES-GCM or ChaCha20-Poly1305), and on TLS 1.2 an ECDHE key exchange.
Usage: testssl_check.py FILE.json  -> prints each verdict, exit 0 only if all pass.

The cipher group names differ between testssl.sh generations, so the findings decide
which set applies (never the version string):
  3.0 (Debian 12): cipherlist_AVERAGE (not offered), cipherlist_STRONG (offered)
  3.2 (Debian 13): cipherlist_OBSOLETED (not offered), cipherlist_STRONG_NOFS (not
                   offered), cipherlist_STRONG_FS (offered)
Exactly one of the two sets must be present in full; anything else fails."""
import json
import re
import sys

PROTO_NOT_OFFERED = ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1']
PROTO_OFFERED = ['TLS1_2', 'TLS1_3']
# cipher groups both generations report under the same id
COMMON_NOT_OFFERED = ['cipherlist_NULL', 'cipherlist_aNULL', 'cipherlist_EXPORT',
                      'cipherlist_LOW', 'cipherlist_3DES_IDEA']
# (not offered, offered) per generation, keyed by a finding only that generation has
GENERATIONS = {
    'cipherlist_AVERAGE': ('testssl 3.0 cipher groups',
                           ['cipherlist_AVERAGE'], ['cipherlist_STRONG']),
    'cipherlist_OBSOLETED': ('testssl 3.2 cipher groups',
                             ['cipherlist_OBSOLETED', 'cipherlist_STRONG_NOFS'],
                             ['cipherlist_STRONG_FS']),
}
# "TLS 1.2   xc02c   ECDHE-ECDSA-AES256-GCM-SHA384   ECDH 253   AESGCM   256   TLS_..."
CIPHER_ID = re.compile(r'^cipher-(tls1(?:_[0-3])?|ssl[23])_x[0-9a-f]+$')
CIPHER_FINDING = re.compile(r'^(TLS 1(?:\.[0-3])?|SSLv[23])\s+x[0-9a-f]+\s+(\S+)\s+(.*)$')


def check_offered(by_id, fid, want_offered):
    f = by_id.get(fid)
    if f is None:
        print(f'FAIL: {fid}: no finding (testssl could not test it)')
        return False
    finding = f.get('finding', '')
    ok = finding.startswith('offered') if want_offered else finding.startswith('not offered')
    print(f"{'ok  ' if ok else 'FAIL'}: {fid}: {finding} "
          f"(want {'offered' if want_offered else 'not offered'})")
    return ok


def check_ciphers(findings):
    """Per-cipher findings of testssl -E: AEAD only, ECDHE on TLS 1.2, 1.2 and 1.3 both."""
    bad = 0
    seen = {}
    for f in findings:
        if not CIPHER_ID.match(f.get('id', '')):
            continue
        m = CIPHER_FINDING.match(f.get('finding', '').strip())
        if not m:
            print(f"FAIL: cannot parse cipher finding {f.get('id')}: {f.get('finding')!r}")
            bad += 1
            continue
        proto, name, rest = m.group(1), m.group(2), m.group(3)
        seen.setdefault(proto, []).append(name)
        why = []
        if proto not in ('TLS 1.2', 'TLS 1.3'):
            why.append(f'accepted on {proto}')
        if not re.search(r'GCM|CHACHA20', name) or not re.search(r'AESGCM|CHACHA20', rest):
            why.append('not AEAD (AES-GCM / ChaCha20-Poly1305)')
        if proto == 'TLS 1.2' and not name.startswith('ECDHE-'):
            why.append('TLS 1.2 suite without ECDHE')
        print(f"{'FAIL' if why else 'ok  '}: {proto} {name} {'; '.join(why)}".rstrip())
        bad += 1 if why else 0
    for proto in ('TLS 1.2', 'TLS 1.3'):
        if not seen.get(proto):
            print(f'FAIL: no accepted {proto} suite listed (was testssl run with -E?)')
            bad += 1
    return bad


def main():
    try:
        findings = json.load(open(sys.argv[1]))
    except (OSError, ValueError) as e:
        print(f'FAIL: cannot read testssl JSON {sys.argv[1]}: {e}')
        return 1
    by_id = {}
    for f in findings:
        by_id.setdefault(f.get('id'), f)
    bad = 0
    for f in findings:
        if f.get('severity') == 'FATAL' or f.get('id') in ('scanProblem',):
            print(f"FAIL: testssl problem {f.get('id')}: {f.get('finding')}")
            bad += 1
    not_offered = PROTO_NOT_OFFERED + COMMON_NOT_OFFERED
    offered = list(PROTO_OFFERED)
    gens = [g for key, g in GENERATIONS.items() if key in by_id]
    if len(gens) != 1:
        print(f'FAIL: findings match {len(gens)} known cipher-group schemes '
              f'(want exactly one of {sorted(GENERATIONS)})')
        bad += 1
    else:
        label, no, yes = gens[0]
        print(f'(using {label})')
        not_offered += no
        offered += yes
    for fid in not_offered:
        bad += 0 if check_offered(by_id, fid, False) else 1
    for fid in offered:
        bad += 0 if check_offered(by_id, fid, True) else 1
    bad += check_ciphers(findings)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
