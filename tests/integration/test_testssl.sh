#!/usr/bin/env bash
# TLS policy as seen by testssl.sh (Debian 12: 3.0, Debian 13: 3.2): on the STARTTLS c2s
# port (--starttls xmpp --xmpphost a.example) and on the direct TLS c2s port (SNI
# a.example): no SSLv2/3, TLS 1.0 or 1.1; TLS 1.2 and 1.3 offered; no NULL/anonymous/
# export/LOW/3DES/IDEA or obsolete CBC cipher group; strong AEAD ciphers offered; and
# from testssl's per-protocol cipher list (-E) every accepted suite is AEAD, with ECDHE
# on TLS 1.2 (testssl_check.py). Each testssl run is bounded.
. "$(dirname "$0")/lib.sh"
T=testssl
xf_setup_standard "$T" || xf_setup_failed "$T: could not start Prosody + xmppfront"
command -v testssl >/dev/null || { xf_fail_now "testssl (package testssl.sh) not installed"; xf_finish "$T"; exit 1; }

run_testssl() {  # run_testssl NAME PORT [extra testssl args]
  local name=$1 port=$2; shift 2
  local json="$XF_TMP/testssl-$name.json"
  rm -f "$json"
  timeout "${XF_TESTSSL_TIMEOUT:-240}" testssl --protocols --std -E --fast --warnings off --quiet \
    --color 0 --ip 127.0.0.1 --connect-timeout 5 --openssl-timeout 5 --jsonfile "$json" \
    "$@" "a.example:$port" >"$XF_TMP/testssl-$name.txt" 2>&1
  local rc=$?
  [ $rc -eq 124 ] && echo "testssl timed out"
  grep -E 'SSLv|TLS 1|ciphers|offered' "$XF_TMP/testssl-$name.txt" | head -20
  "$XF_PY" "$XF_IT_DIR/testssl_check.py" "$json"
}

xf_check "testssl on STARTTLS :$P_C2S (--starttls xmpp --xmpphost a.example)" \
  run_testssl starttls "$P_C2S" --starttls xmpp --xmpphost a.example
xf_check "testssl on direct TLS :$P_C2S_TLS (SNI a.example)" \
  run_testssl direct "$P_C2S_TLS"
xf_finish "$T"
