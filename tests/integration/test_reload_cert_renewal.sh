#!/usr/bin/env bash
# Certificate renewals picked up by the file watch, with no SIGHUP (issue 9 "Reload";
# proxy/watch.c, docs/reload.md):
#  (c) certbot layout: c.example's tenant file names /etc/letsencrypt-like
#      live/c.example/{fullchain,privkey}.pem, symlinks to ../../archive/c.example/*1.pem;
#      the renewal writes *2.pem into archive/ and switches the live/ symlinks;
#  (k) cert-manager / Kubernetes Secret volume: k.example names secret/tls.crt and
#      secret/tls.key, symlinks to ..data/tls.*, ..data -> ..<timestamp>; the update
#      writes a new ..<timestamp> dir, points ..data_tmp at it and renames it over ..data
#      (the kubelet's AtomicWriter), then removes the old dir;
#  each time: a fresh handshake (openssl s_client) gets the new serial within 10 s, the
#  log names the renewal "certificate renewed for tenant D: serial OLD ... -> NEW ...",
#  and a stream opened on the old certificate keeps relaying;
#  (t) a new tenant file dropped into the tenants folder is served without a SIGHUP.
. "$(dirname "$0")/lib.sh"
T=reload_cert_renewal
xf_init "$T" || xf_setup_failed "$T: init"
XF_CA="$XF_TMP/pki/ca.pem"
G="$XF_TMP/gen"
xf_make_ca "$XF_TMP/pki" "reload test CA" &&
  xf_make_cert "$XF_TMP/pki" "$G/c1" c.example c.example &&
  xf_make_cert "$XF_TMP/pki" "$G/c2" c.example c.example &&
  xf_make_cert "$XF_TMP/pki" "$G/k1" k.example k.example &&
  xf_make_cert "$XF_TMP/pki" "$G/k2" k.example k.example &&
  xf_make_cert "$XF_TMP/pki" "$G/t" t.example t.example ||
  xf_setup_failed "$T: PKI"
read -r P_TLS P_BACK < <(xf_free_ports 2)
xf_reload_backend "$P_BACK" 300 || xf_setup_failed "$T: echo backend"

# certbot: live/D/X.pem -> ../../archive/D/XN.pem
LE="$XF_TMP/letsencrypt"
mkdir -p "$LE/archive/c.example" "$LE/live/c.example"
cp "$G/c1/fullchain.pem" "$LE/archive/c.example/fullchain1.pem"
cp "$G/c1/privkey.pem" "$LE/archive/c.example/privkey1.pem"
ln -s ../../archive/c.example/fullchain1.pem "$LE/live/c.example/fullchain.pem"
ln -s ../../archive/c.example/privkey1.pem "$LE/live/c.example/privkey.pem"
# Secret volume: tls.crt -> ..data/tls.crt, ..data -> ..2026_12_01_10_00_00.000000001
SEC="$XF_TMP/secret"
mkdir -p "$SEC/..2026_12_01_10_00_00.000000001"
cp "$G/k1/fullchain.pem" "$SEC/..2026_12_01_10_00_00.000000001/tls.crt"
cp "$G/k1/privkey.pem" "$SEC/..2026_12_01_10_00_00.000000001/tls.key"
ln -s ..2026_12_01_10_00_00.000000001 "$SEC/..data"
ln -s ..data/tls.crt "$SEC/tls.crt"
ln -s ..data/tls.key "$SEC/tls.key"

TD="$XF_TMP/xf/tenants"
mkdir -p "$TD"
cat >"$TD/c.example.json" <<EOF
{"domain": "c.example", "certificate": "$LE/live/c.example/fullchain.pem",
 "key": "$LE/live/c.example/privkey.pem", "c2s_backend": "127.0.0.1:$P_BACK"}
EOF
cat >"$TD/k.example.json" <<EOF
{"domain": "k.example", "certificate": "$SEC/tls.crt", "key": "$SEC/tls.key",
 "c2s_backend": "127.0.0.1:$P_BACK"}
EOF
XF_CFG="$XF_TMP/xf/xmppfront.json"
XF_LOG="$XF_TMP/xf/xmppfront.log"
cat >"$XF_CFG" <<EOF
{"workers": 2, "tenants": "tenants", "log_level": "debug", "limits": {"auth_timeout_s": 3600},
 "listeners": [$(xf_listener 127.0.0.1 "$P_TLS" direct client)]}
EOF
xf_proxy_start "$XF_CFG" "$XF_LOG" "$P_TLS" || xf_setup_failed "$T: xmppfront"

serial_of() { openssl x509 -in "$1" -noout -serial | cut -d= -f2; }
fresh_serial() {
  timeout 10 openssl s_client -connect "127.0.0.1:$P_TLS" -servername "$1" -CAfile "$XF_CA" \
    -verify_return_error -verify_hostname "$1" </dev/null 2>/dev/null |
    openssl x509 -noout -serial 2>/dev/null | cut -d= -f2
}
# wait_serial NAME SERIAL: a fresh handshake shows SERIAL within 10 s.
wait_serial() {
  local i s
  for ((i = 0; i < 50; i++)); do
    s=$(fresh_serial "$1")
    [ "$s" = "$2" ] && { echo "fresh handshake with SNI $1: serial $s"; return 0; }
    sleep 0.2
  done
  echo "fresh handshake with SNI $1: serial ${s:-none}, want $2"; grep -E 'reload|watch' "$XF_LOG" | tail -8
  return 1
}
# hold NAME: a stream on NAME's current certificate, relaying until its stop file.
hold() {
  mkdir -p "$XF_TMP/ctl-$1"
  timeout 120 "$XF_PY" "$XF_IT_DIR/reload_load.py" hold --port "$P_TLS" --ca "$XF_CA" \
    --sni "$1" --control "$XF_TMP/ctl-$1" >"$XF_TMP/hold-$1.out" 2>&1 &
  xf_track $!
  eval "HOLD_${1%%.*}=$!"
  local i; for ((i = 0; i < 100; i++)); do [ -f "$XF_TMP/ctl-$1/ready" ] && return 0; sleep 0.1; done
  return 1
}
# held_ok NAME SERIAL PID: that stream started on SERIAL and relayed to the end.
held_ok() {
  touch "$XF_TMP/ctl-$1/stop"
  wait "$3"; local rc=$?
  cat "$XF_TMP/hold-$1.out"
  [ $rc = 0 ] && grep -q "serial=$2 " "$XF_TMP/hold-$1.out"
}

C1=$(serial_of "$G/c1/cert.pem"); C2=$(serial_of "$G/c2/cert.pem")
K1=$(serial_of "$G/k1/cert.pem"); K2=$(serial_of "$G/k2/cert.pem")
xf_check "before: c.example and k.example served with their first certificates" \
  bash -c "$(declare -f fresh_serial wait_serial); P_TLS=$P_TLS XF_CA='$XF_CA' XF_LOG='$XF_LOG'; wait_serial c.example $C1 && wait_serial k.example $K1"
hold c.example; hold k.example
xf_check "streams held on c.example and k.example" \
  bash -c "cat '$XF_TMP/ctl-c.example/ready' '$XF_TMP/ctl-k.example/ready'"

# (c) certbot renew: new archive files, then the live/ symlinks switched
sleep 1
cp "$G/c2/fullchain.pem" "$LE/archive/c.example/fullchain2.pem"
cp "$G/c2/privkey.pem" "$LE/archive/c.example/privkey2.pem"
ln -sfn ../../archive/c.example/fullchain2.pem "$LE/live/c.example/fullchain.pem"
ln -sfn ../../archive/c.example/privkey2.pem "$LE/live/c.example/privkey.pem"
xf_check "(c) certbot renewal: a fresh handshake gets the new serial (no SIGHUP)" \
  wait_serial c.example "$C2"
xf_check "(c) the log names the renewal with both serials" \
  xf_log_has "$XF_LOG" "certificate renewed for tenant c.example: serial $C1" "-> $C2"
xf_check "(c) the reload was a file change, not a signal" \
  bash -c "grep -E 'reload [0-9]+ \(file change: ' '$XF_LOG' | grep done; ! grep -q SIGHUP '$XF_LOG'"
xf_check "(c) k.example untouched: still its first certificate" wait_serial k.example "$K1"

# (k) Secret volume update, the kubelet's way
NEWTS="..2026_12_01_11_00_00.000000002"
mkdir -p "$SEC/$NEWTS"
cp "$G/k2/fullchain.pem" "$SEC/$NEWTS/tls.crt"
cp "$G/k2/privkey.pem" "$SEC/$NEWTS/tls.key"
ln -s "$NEWTS" "$SEC/..data_tmp"
mv -T "$SEC/..data_tmp" "$SEC/..data"
rm -rf "$SEC/..2026_12_01_10_00_00.000000001"
xf_check "(k) Secret volume ..data swap: a fresh handshake gets the new serial (no SIGHUP)" \
  wait_serial k.example "$K2"
xf_check "(k) the log names the renewal with both serials" \
  xf_log_has "$XF_LOG" "certificate renewed for tenant k.example: serial $K1" "-> $K2"

# (t) a new tenant file in the tenants folder
cat >"$TD/t.example.json.tmp" <<EOF
{"domain": "t.example", "certificate": "$G/t/fullchain.pem", "key": "$G/t/privkey.pem",
 "c2s_backend": "127.0.0.1:$P_BACK"}
EOF
mv "$TD/t.example.json.tmp" "$TD/t.example.json"
xf_check "(t) a tenant file added to the folder is served without a SIGHUP" \
  wait_serial t.example "$(serial_of "$G/t/cert.pem")"

xf_check "(c) the stream opened on c's old certificate relayed after the renewal" \
  held_ok c.example "$C1" "$HOLD_c"
xf_check "(k) the stream opened on k's old certificate relayed after the renewal" \
  held_ok k.example "$K1" "$HOLD_k"
xf_check "no reload was refused" bash -c "! grep -F 'refused:' '$XF_LOG'"
xf_finish "$T"
