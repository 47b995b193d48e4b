#!/usr/bin/env bash
# Certificate selection, checked with openssl s_client (an independent TLS stack):
# direct TLS with SNI a.example / b.example / conference.a.example (alias) / w.example and
# chat.w.example (wildcard *.w.example) each gets its own tenant's certificate, verified
# against the test CA for that name; STARTTLS (-starttls xmpp -xmpphost b.example, no
# SNI) gets b's certificate; an unknown SNI gets the fatal unrecognized_name alert.
. "$(dirname "$0")/lib.sh"
T=certs_by_sni
xf_setup_standard "$T" || xf_setup_failed "$T: could not start Prosody + xmppfront"

# sclient_cert PORT NAME_TO_VERIFY [s_client args...] — handshake, verify chain + name,
# print subject and SAN of the leaf.
sclient_cert() {
  local port=$1 name=$2; shift 2
  local out="$XF_TMP/sclient.$RANDOM"
  timeout 15 openssl s_client -connect "127.0.0.1:$port" -CAfile "$XF_CA" \
    -verify_return_error -verify_hostname "$name" "$@" </dev/null >"$out" 2>&1
  local rc=$?
  grep -E 'Verify return code|Protocol|Cipher is|alert|error' "$out" | head -8
  openssl x509 -in "$out" -noout -subject -ext subjectAltName 2>/dev/null
  [ $rc -eq 0 ] && grep -q 'Verify return code: 0 (ok)' "$out"
}
# expect_san PORT NAME SAN_SUBSTRING [args] — handshake verified for NAME and the leaf's
# SAN contains SAN_SUBSTRING.
expect_san() {
  local port=$1 name=$2 san=$3; shift 3
  local o; o=$(sclient_cert "$port" "$name" "$@"); local rc=$?
  echo "$o"
  [ $rc -eq 0 ] && echo "$o" | grep -qF "$san"
}
expect_alert() {
  local port=$1 sni=$2 out="$XF_TMP/sclient.alert"
  timeout 15 openssl s_client -connect "127.0.0.1:$port" -servername "$sni" -CAfile "$XF_CA" \
    </dev/null >"$out" 2>&1
  grep -iE 'alert|error|Verify|Protocol' "$out" | head -6
  grep -qiE 'unrecognized name|unrecognized_name|alert number 112' "$out"
}

for port in "$P_C2S_TLS" "$P_AUTO"; do
  xf_check ":$port SNI a.example -> a's cert (SAN a.example, conference.a.example)" \
    expect_san "$port" a.example "DNS:conference.a.example" -servername a.example
  xf_check ":$port SNI b.example -> b's cert" \
    expect_san "$port" b.example "DNS:b.example" -servername b.example
done
xf_check ":$P_C2S_TLS SNI conference.a.example (alias) -> a's cert" \
  expect_san "$P_C2S_TLS" conference.a.example "DNS:a.example" -servername conference.a.example
xf_check ":$P_C2S_TLS SNI w.example -> wildcard cert (*.w.example, w.example)" \
  expect_san "$P_C2S_TLS" w.example "DNS:*.w.example" -servername w.example
xf_check ":$P_C2S_TLS SNI chat.w.example (alias under the wildcard) -> wildcard cert" \
  expect_san "$P_C2S_TLS" chat.w.example "DNS:*.w.example" -servername chat.w.example
xf_check ":$P_S2S_TLS (direct s2s) SNI b.example -> b's cert" \
  expect_san "$P_S2S_TLS" b.example "DNS:b.example" -servername b.example
xf_check ":$P_C2S STARTTLS -xmpphost b.example (no SNI) -> b's cert" \
  expect_san "$P_C2S" b.example "DNS:b.example" -starttls xmpp -xmpphost b.example -noservername
xf_check ":$P_C2S STARTTLS -xmpphost a.example -> a's cert" \
  expect_san "$P_C2S" a.example "DNS:conference.a.example" -starttls xmpp -xmpphost a.example -noservername
xf_check ":$P_S2S STARTTLS s2s -xmpphost b.example -> b's cert" \
  expect_san "$P_S2S" b.example "DNS:b.example" -starttls xmpp-server -xmpphost b.example -noservername
xf_check ":$P_C2S_TLS no SNI -> handshake with a default tenant certificate (chain verifies)" \
  bash -c "timeout 15 openssl s_client -connect 127.0.0.1:$P_C2S_TLS -noservername -CAfile '$XF_CA' \
             -verify_return_error </dev/null 2>&1 | grep -E 'Verify return code|subject=|alert' ; \
           timeout 15 openssl s_client -connect 127.0.0.1:$P_C2S_TLS -noservername -CAfile '$XF_CA' \
             -verify_return_error </dev/null 2>&1 | grep -q 'Verify return code: 0 (ok)'"
xf_check ":$P_C2S_TLS unknown SNI nothere.example -> fatal alert unrecognized_name" \
  expect_alert "$P_C2S_TLS" nothere.example
xf_check ":$P_AUTO unknown SNI nothere.example -> fatal alert unrecognized_name" \
  expect_alert "$P_AUTO" nothere.example
xf_finish "$T"
