#!/usr/bin/python3
"""Checks a testssl.sh --jsonfile (flat JSON) against xmppfront's TLS policy:
no SSLv2/SSLv3/TLS 1.0/TLS 1.1; TLS 1.2 and 1.3 offered; no NULL, anonymous, export,
LOW (DES/RC4/64-bit), 3DES/IDEA or obsolete CBC ciphers; strong (AEAD) ciphers offered.
Usage: testssl_check.py FILE.json  -> prints each verdict, exit 0 only if all pass."""
import json
import sys

NOT_OFFERED = ['SSLv2', 'SSLv3', 'TLS1', 'TLS1_1', 'cipherlist_NULL', 'cipherlist_aNULL',
               'cipherlist_EXPORT', 'cipherlist_LOW', 'cipherlist_3DES_IDEA',
               'cipherlist_AVERAGE']
OFFERED = ['TLS1_2', 'TLS1_3', 'cipherlist_STRONG']


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
    for fid in NOT_OFFERED + OFFERED:
        f = by_id.get(fid)
        if f is None:
            print(f'FAIL: {fid}: no finding (testssl could not test it)')
            bad += 1
            continue
        finding = f.get('finding', '')
        offered = finding.startswith('offered')
        not_offered = finding.startswith('not offered')
        want_offered = fid in OFFERED
        ok = offered if want_offered else not_offered
        print(f"{'ok  ' if ok else 'FAIL'}: {fid}: {finding} "
              f"(want {'offered' if want_offered else 'not offered'})")
        bad += 0 if ok else 1
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
