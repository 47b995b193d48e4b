#!/usr/bin/env bash
# Smoke test of the federation lab (tests/lab/lab.sh), with no xmppfront at all: real
# Prosody 0.12 servers of the six XEP-0238 types federate directly with each other.
#  (a) the namespace has the lab's resolv.conf; knot answers the SRV/A/AAAA records;
#      the machine's /etc/resolv.conf and /etc/hosts are untouched; with LAB_DNSSEC=1 (the
#      default here) the zone is signed and the namespace's resolver (unbound) sets AD
#  (b) the 6x6 matrix: for each initiating type I and receiving type R one message
#      user1@typeI -> user1@typeR (the diagonal goes to a second server typeNb of the same
#      type), all 36 at once. Every cell must match EXPECT below: delivered with the right
#      level (V = dialback over plaintext, E = TLS + dialback, T = TLS + certificate /
#      SASL EXTERNAL, read from the receiver's "lab-s2s" log line), or refused (U) with an
#      error bounced to the sender (not a silent loss). The XEP's own letter is shown beside.
#  (c) lab_redirect_uid: the uid's outgoing TCP lands on the redirect port with its original
#      destination readable (SO_ORIGINAL_DST); root's is not redirected
#  (d) lab_down leaves nothing: no process, no namespace, no /etc/netns entry, no rules
# Usage: bash tests/lab/test_lab_smoke.sh   (root; exit status 0 only if every check passed)
: "${LAB_DNSSEC:=1}"          # signed zone + validating unbound (LAB_DNSSEC=0: knot only)
. "$(dirname "$0")/lab.sh"
T=lab_smoke
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# Expected outcome of each cell with these Prosody 0.12 settings (rows: initiating type,
# columns: receiving type 1..6). It follows from the settings in lab.sh:
#  - U when either side requires encryption and one side has no TLS (1<->4,5,6), when
#    type 6 (secure auth, no dialback) meets a self-signed peer (2,4) or type 1;
#  - T when the initiator's certificate is CA-signed (3,5,6) and both have TLS: the
#    receiver offers SASL EXTERNAL and Prosody uses it;
#  - otherwise dialback: E with TLS, V without.
EXPECT=(
  "V V V U U U"
  "V E E E E U"
  "V T T T T T"
  "U E E E E U"
  "U T T T T T"
  "U U T U T T"
)
# XEP-0238 §3 "Connection Success" (same orientation), for comparison only.
XEP=(
  "V V V U U U"
  "V V E E U U"
  "V V E E E T"
  "U E E E E U"
  "U E T E T T"
  "U U T U T T"
)

lab_init "$T" || exit 1
resolv_sum=$(cat /etc/resolv.conf /etc/hosts | sha256sum)
lab_up || xf_setup_failed "$T: lab_up"
NS=$LAB_NS
for t in 1 2 3 4 5 6; do
  lab_remote "t$t" "type$t.example" "$t" "127.0.1.$t" "fd00:1ab::$t" || xf_setup_failed "$T: remote type $t"
  lab_remote "t${t}b" "type${t}b.example" "$t" "127.0.1.$((10 + t))" "fd00:1ab::$((10 + t))" ||
    xf_setup_failed "$T: remote type ${t}b"
done
# a second zone whose trust anchor in unbound is wrong: bogus answers, SERVFAIL
# shellcheck disable=SC2034  # read by lab.sh
LAB_ZONES="example bogus.example" LAB_BOGUS_ZONES="bogus.example"
lab_host xmpp.bogus.example 127.0.1.98
lab_xmpp_srv bogus.example xmpp.bogus.example
lab_dns_start || xf_setup_failed "$T: knot"
lab_remotes_start || xf_setup_failed "$T: remote Prosody servers"
echo "  lab up in $(elapsed)s: namespace $NS, knot, ${#LAB_REMOTES[@]} Prosody servers (Prosody $(dpkg-query -W -f '${Version}' prosody))"

# ------------------------------------------------------------------------------- (a)
dns_checks() {
  local out
  local want=$LAB_DNS4; [ "$LAB_DNSSEC" = 1 ] && want=$LAB_RESOLVER4
  lab_exec cat /etc/resolv.conf | grep -qx "nameserver $want" || { echo "namespace resolv.conf:"; lab_exec cat /etc/resolv.conf; return 1; }
  out=$(lab_dig +short SRV _xmpps-server._tcp.type5.example) && echo "$out"
  [ "$out" = "0 5 5270 type5.example." ] || return 1
  out=$(lab_dig +short SRV _xmpp-server._tcp.type1.example) && echo "$out"
  [ "$out" = "0 5 5269 type1.example." ] || return 1
  out=$(lab_dig +short SRV _xmpps-server._tcp.type1.example) && echo "type1 xmpps: '$out'"
  [ -z "$out" ] || return 1
  [ "$(lab_dig +short A type3b.example)" = 127.0.1.13 ] || return 1
  [ "$(lab_dig +short AAAA type3b.example)" = fd00:1ab::13 ] || return 1
  lab_dig nosuch.example A | grep -q 'status: NXDOMAIN' || return 1
  [ "$(cat /etc/resolv.conf /etc/hosts | sha256sum)" = "$resolv_sum" ] || { echo "machine's resolv.conf/hosts changed"; return 1; }
}
xf_check "(a) lab DNS: namespace resolv.conf, SRV/A/AAAA from knot, NXDOMAIN; host files untouched" dns_checks
dnssec_checks() {
  local out
  out=$(lab_dig +dnssec SRV _xmpps-server._tcp.type6.example) && echo "$out"
  grep -q '^;; Flags: .* ad[ ;]' <<< "$out" || { echo "resolver: no AD bit"; return 1; }
  grep -q 'RRSIG.*SRV' <<< "$out" || return 1
  out=$(lab_dig +dnssec "@$LAB_DNS4" A type6.example) && echo "$out"
  grep -q 'RRSIG.*A 13' <<< "$out" || { echo "authoritative: no RRSIG"; return 1; }
  ! grep -q '^;; Flags: .* ad[ ;]' <<< "$out" || { echo "authoritative answer has AD"; return 1; }
  out=$(lab_dig SRV _xmpp-server._tcp.bogus.example) ; echo "$out" | head -3
  grep -q 'status: SERVFAIL' <<< "$out" || { echo "bogus zone: no SERVFAIL"; return 1; }
  out=$(lab_dig +cd SRV _xmpp-server._tcp.bogus.example) ; echo "$out" | grep SRV
  grep -q 'SRV.*xmpp.bogus.example' <<< "$out" || { echo "bogus zone with +cd: no answer"; return 1; }
}
if [ "$LAB_DNSSEC" = 1 ]; then
  xf_check "(a) DNSSEC: knot signs the zone, unbound (lab KSK as trust anchor) validates: AD; wrong anchor: SERVFAIL" dnssec_checks
fi

# ------------------------------------------------------------------------------- (b)
args=()
for r in "${LAB_REMOTES[@]}"; do read -r -a acc < <(lab_account "$r" user1); args+=(--account "${acc[@]}"); done
for i in 1 2 3 4 5 6; do
  for j in 1 2 3 4 5 6; do
    to="type$j.example"; [ "$i" = "$j" ] && to="type${j}b.example"
    args+=(--send "user1@type$i.example" "user1@$to")
  done
done
M0=$(date +%s.%N)
RESULTS="$LAB_DIR/matrix.out"
lab_xmpp "${args[@]}" --timeout $(( ${LAB_S2S_TIMEOUT:-5} + 10 )) > "$RESULTS" 2>&1
rc=$?
MT=$(awk -v a="$M0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
xf_check "(b) lab_xmpp: all 12 users logged in and every send got an answer (rc=$rc)" \
  bash -c "[ $rc -eq 0 ] && [ \$(grep -c '^RESULT' '$RESULTS') -eq 36 ] || { cat '$RESULTS'; exit 1; }"

# level I R -> V/E/T from R's log ("incoming from=I"), "-" when R authenticated nothing
level_of() {
  local from=$1 rname=$2 line
  line=$(grep -h "lab-s2s dir=incoming from=$from " "$LAB_DIR/remote/$rname/prosody.log" 2>/dev/null | head -1)
  [ -n "$line" ] || { echo -; return; }
  case "$line" in
    *mechanism=EXTERNAL*) echo T ;;
    *mechanism=dialback*secure=true*) echo E ;;
    *mechanism=dialback*secure=false*) echo V ;;
    *) echo "?" ;;
  esac
}

table="$LAB_DIR/matrix.table"
printf '  %-10s' "from\\to" > "$table"
for j in 1 2 3 4 5 6; do printf '%-10s' "type$j" >> "$table"; done
echo >> "$table"
cell_fail=0 cell_notes=()
for i in 1 2 3 4 5 6; do
  read -r -a exp <<< "${EXPECT[$((i - 1))]}"
  read -r -a xep <<< "${XEP[$((i - 1))]}"
  printf '  %-10s' "type$i" >> "$table"
  for j in 1 2 3 4 5 6; do
    e=${exp[$((j - 1))]} x=${xep[$((j - 1))]}
    rname="t$j" to="type$j.example"
    [ "$i" = "$j" ] && { rname="t${j}b"; to="type${j}b.example"; }
    res=$(awk -v f="user1@type$i.example" -v t="user1@$to" '$1 == "RESULT" && $2 == f && $3 == t { print $4 }' "$RESULTS")
    lvl=$(level_of "type$i.example" "$rname")
    got=U
    case "$res" in
      delivered) got=$lvl ;;
      error:*) got=U ;;
      *) got="?" ;;                     # timeout / missing: the refusal was not bounced
    esac
    mark=" "; [ "$got" != "$e" ] && { mark="!"; cell_fail=1; cell_notes+=("type$i->type$j: want $e, got $got (send: ${res:-none}, receiver log level: $lvl)"); }
    [ "$got" = U ] && [ "$lvl" != - ] && { mark="!"; cell_fail=1; cell_notes+=("type$i->type$j: refused but the receiver logged an authenticated stream ($lvl)"); }
    note=""; [ "$e" != "$x" ] && note="(xep $x)"
    printf '%-10s' "$got$mark$note" >> "$table"
  done
  echo >> "$table"
done
echo "  federation matrix (rows initiate; V/E/T delivered, U refused with a bounce; '!' = not as expected):"
cat "$table"
for n in "${cell_notes[@]}"; do echo "    $n"; done
xf_check "(b) 36 cells equal the expected matrix (Prosody 0.12 semantics; matrix in ${MT}s)" test "$cell_fail" -eq 0
# The XEP's table and Prosody agree on who federates except type2->type5 (the XEP refuses
# it; Prosody, like the XEP's own type4->type5, accepts TLS + dialback).
agree_check() {
  local i j d=0
  for i in 0 1 2 3 4 5; do
    read -r -a a <<< "${EXPECT[$i]}"; read -r -a b <<< "${XEP[$i]}"
    for j in 0 1 2 3 4 5; do
      if { [ "${a[$j]}" = U ] && [ "${b[$j]}" != U ]; } || { [ "${a[$j]}" != U ] && [ "${b[$j]}" = U ]; }; then
        echo "type$((i + 1))->type$((j + 1)): expected ${a[$j]}, XEP ${b[$j]}"; d=$((d + 1))
      fi
    done
  done
  [ "$d" -eq 1 ]
}
# Prosody prefers _xmpps-server (XEP-0368 direct TLS, port 5270) when it has TLS itself:
# every encrypted stream of the matrix must have come in on 5270, every plaintext one on 5269.
port_check() {
  local f n_tls n_direct n_plain n_plain5269
  f=$(cat "$LAB_DIR"/remote/*/prosody.log | grep 'lab-s2s dir=incoming')
  n_tls=$(grep -c 'secure=true' <<< "$f"); n_direct=$(grep -c 'secure=true.*port=5270' <<< "$f")
  n_plain=$(grep -c 'secure=false' <<< "$f"); n_plain5269=$(grep -c 'secure=false.*port=5269' <<< "$f")
  echo "incoming streams: $n_tls encrypted ($n_direct on 5270), $n_plain plaintext ($n_plain5269 on 5269)"
  [ "$n_tls" -gt 0 ] && [ "$n_direct" -eq "$n_tls" ] && [ "$n_plain" -gt 0 ] && [ "$n_plain5269" -eq "$n_plain" ]
}
xf_check "(b) encrypted streams used direct TLS (_xmpps-server, 5270), plaintext ones 5269" port_check
xf_check "(b) expected and XEP-0238 tables differ on federate/refuse only at type2->type5" agree_check

# lab_send (one message, user1 -> user2) and lab_remote_restart (a fresh Prosody, no s2s
# sessions kept): type3 -> type6 federates, type2 (self-signed) -> type6 does not, both again after
# restarting the receivers.
send_check() {
  lab_send t3 t6 || return 1
  ! lab_send t2 t6 || return 1
  local old=${LAB_R_PID[t6]}
  lab_remote_restart t6 || return 1
  echo "t6: pid $old -> ${LAB_R_PID[t6]}"
  [ "${LAB_R_PID[t6]}" != "$old" ] && ! kill -0 "$old" 2>/dev/null || return 1
  lab_send t3 t6 && ! lab_send t2 t6
}
xf_check "(b) lab_send: type3->type6 delivered, type2->type6 refused; the same after lab_remote_restart" send_check

# ------------------------------------------------------------------------------- (c)
read -r RPORT < <(xf_free_ports 1)
probe="$LAB_DIR/redirect_probe.py"
cat > "$probe" <<'EOF'
import socket, struct, sys, time
mode = sys.argv[1]
if mode == 'listen':           # accept connections on 127.0.0.1:PORT, print original dst
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('127.0.0.1', int(sys.argv[2]))); s.listen(8); s.settimeout(8)
    print('ready', flush=True)
    while True:
        try:
            c, peer = s.accept()
        except socket.timeout:
            break
        raw = c.getsockopt(socket.SOL_IP, 80, 16)          # SO_ORIGINAL_DST
        port, = struct.unpack('!H', raw[2:4])
        print(f'redirected original={socket.inet_ntoa(raw[4:8])}:{port} '
              f'data={c.recv(64).decode()!r}', flush=True)
        c.close()
else:                          # connect ADDR PORT, send a word, print the first bytes back
    c = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=5)
    c.sendall(sys.argv[4].encode())
    c.settimeout(2)
    try:
        print('answer', c.recv(200))
    except socket.timeout:
        print('answer none')
EOF
redirect_check() {
  local out="$LAB_DIR/redirect.out" i
  lab_redirect_uid 65534 "$RPORT" "5269, 5270" || return 1
  lab_exec nft list table ip xflab_redirect
  ip netns exec "$LAB_NS" "$XF_PY" "$probe" listen "$RPORT" > "$out" 2>&1 &
  local lpid=$!; xf_track "$lpid"
  for ((i = 0; i < 50; i++)); do grep -q ready "$out" && break; sleep 0.1; done
  # uid 65534 (nobody) to type3's s2s port: redirected
  lab_exec setpriv --reuid=65534 --regid=65534 --clear-groups "$XF_PY" "$probe" connect 127.0.1.3 5269 from-nobody
  # root to the same port: Prosody answers (its stream header / error), not the probe
  lab_exec "$XF_PY" "$probe" connect 127.0.1.3 5269 \
    "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='type3.example' version='1.0'>" | tee "$LAB_DIR/root.out"
  xf_stop_pid "$lpid" 2
  cat "$out"
  grep -q "redirected original=127.0.1.3:5269 data='from-nobody'" "$out" &&
    [ "$(grep -c redirected "$out")" -eq 1 ] && ! grep -q "answer none" "$LAB_DIR/root.out"
}
xf_check "(c) lab_redirect_uid: nobody's s2s TCP is redirected (original destination kept), root's is not" redirect_check

# ------------------------------------------------------------------------------- (d)
lab_down
down_check() {
  local left
  left=$(lab_leftovers "$NS") && { echo "nothing left of $NS"; return 0; }
  echo "$left"; return 1
}
xf_check "(d) lab_down: no process, namespace, /etc/netns/$NS or nft table left" down_check
xf_check "(d) machine's /etc/resolv.conf and /etc/hosts unchanged" \
  test "$(cat /etc/resolv.conf /etc/hosts | sha256sum)" = "$resolv_sum"
echo "  total $(elapsed)s"
xf_finish "$T"
