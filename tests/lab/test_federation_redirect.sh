#!/usr/bin/env bash
# The redirect rules of deploy/redirect/ in a network namespace (issue 7, "Configuration"):
# nftables-host.nft, iptables-host.sh (when iptables is installed) and pod-init.sh (the
# pod's init container: nft, and its iptables fallback), each loaded in turn for a test
# uid (nobody, 65534). For each, TCP connections are made and the answer says where they
# landed:
#   nobody -> 192.0.2.10:5269 / :5270 / [2001:db8::10]:5269   redirected to the outbound
#            port (127.0.0.1 / ::1), original destination readable (SO_ORIGINAL_DST)
#   root   -> 192.0.2.10:5269                                   not redirected (the remote)
#   nobody -> 127.0.0.1:15222 (the backend's own port)          not redirected (loopback)
#   nobody -> 192.0.2.10:53 (DNS over TCP)                      not redirected
#   nobody -> 192.0.2.20:5432 (in the bypass set)               not redirected
# and after the rule is removed nobody's connection reaches the remote again.
# Usage: bash tests/lab/test_federation_redirect.sh   (root; exit 0 only if every check passed)
# shellcheck source=lab.sh
. "$(dirname "$0")/lab.sh"
T=federation_redirect
REDIR=${FED_REDIRECT_DIR:-$XF_ROOT/deploy/redirect}   # (another folder: to try a broken rule)
PORT=15269
lab_init "$T" || exit 1
lab_up || xf_setup_failed "$T: lab_up"
# "remote" addresses outside 127.0.0.0/8 and ::1 (on lo: the rules match the destination
# address, not the interface)
{ lab_addr 192.0.2.10 && lab_addr 192.0.2.20 && lab_addr 2001:db8::10; } || xf_setup_failed "$T: addresses"

probe="$LAB_DIR/probe.py"
cat > "$probe" <<'EOF'
import select, socket, struct, sys
if sys.argv[1] == 'serve':          # serve LABEL@ADDR@PORT ...: answer "LABEL orig=..."
    socks = {}
    for spec in sys.argv[2:]:
        label, addr, port = spec.split('@')
        fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
        s = socket.socket(fam); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, int(port))); s.listen(16); socks[s] = (label, fam)
    print('ready', flush=True)
    while True:
        r, _, _ = select.select(list(socks), [], [], 30)
        if not r:
            break
        for s in r:
            c, _ = s.accept()
            label, fam = socks[s]
            try:
                if fam == socket.AF_INET:
                    raw = c.getsockopt(socket.SOL_IP, 80, 16)        # SO_ORIGINAL_DST
                    orig = '%s:%d' % (socket.inet_ntoa(raw[4:8]), struct.unpack('!H', raw[2:4])[0])
                else:
                    raw = c.getsockopt(socket.IPPROTO_IPV6, 80, 28)      # IP6T_SO_ORIGINAL_DST
                    orig = '[%s]:%d' % (socket.inet_ntop(socket.AF_INET6, raw[8:24]),
                                        struct.unpack('!H', raw[2:4])[0])
            except OSError:
                orig = 'none'
            c.sendall(f'{label} orig={orig}\n'.encode()); c.close()
else:                               # connect ADDR PORT: print the answer
    fam = socket.AF_INET6 if ':' in sys.argv[2] else socket.AF_INET
    c = socket.socket(fam); c.settimeout(3)
    try:
        c.connect((sys.argv[2], int(sys.argv[3])))
        print(c.recv(200).decode().strip() or 'empty')
    except OSError as e:
        print('error', e.__class__.__name__)
EOF
ip netns exec "$LAB_NS" "$XF_PY" "$probe" serve proxy@127.0.0.1@$PORT proxy6@::1@$PORT \
  remote@192.0.2.10@5269 backend@127.0.0.1@15222 dns@192.0.2.10@53 db@192.0.2.20@5432 \
  remote6@2001:db8::10@5269 > "$LAB_DIR/serve.out" 2>&1 &
SPID=$!; xf_track "$SPID"
for ((i = 0; i < 50; i++)); do grep -q ready "$LAB_DIR/serve.out" && break; sleep 0.1; done
grep -q ready "$LAB_DIR/serve.out" || xf_setup_failed "$T: probe server: $(cat "$LAB_DIR/serve.out")"

as_nobody() { lab_exec setpriv --reuid=65534 --regid=65534 --clear-groups "$XF_PY" "$probe" connect "$@"; }
as_root() { lab_exec "$XF_PY" "$probe" connect "$@"; }
# expect WANT CMD... — the answer must be WANT; a WANT of one word (the label of a server
# reached directly) ignores the orig= part (conntrack reports a connection's own
# destination as "original" once the nat table exists)
expect_answer() {
  local want=$1 got; shift
  got=$("$@")
  echo "$* -> $got"
  case "$want" in
    *" "*) [ "$got" = "$want" ] ;;
    *) [ "${got%% *}" = "$want" ] ;;
  esac
}
cases() {
  local f=0
  expect_answer "proxy orig=192.0.2.10:5269" as_nobody 192.0.2.10 5269 || f=1
  expect_answer "proxy orig=192.0.2.10:5270" as_nobody 192.0.2.10 5270 || f=1
  expect_answer "proxy6 orig=[2001:db8::10]:5269" as_nobody 2001:db8::10 5269 || f=1
  expect_answer remote as_root 192.0.2.10 5269 || f=1
  expect_answer backend as_nobody 127.0.0.1 15222 || f=1
  expect_answer dns as_nobody 192.0.2.10 53 || f=1
  expect_answer db as_nobody 192.0.2.20 5432 || f=1
  return $f
}
after_removal() {
  expect_answer remote as_nobody 192.0.2.10 5269 &&
    expect_answer remote6 as_nobody 2001:db8::10 5269
}
xf_check "without any rule, nobody's connection reaches the remote" after_removal

# ------------------------------------------------------------------ nftables-host.nft
nft_load() {
  sed -e 's/^define backend_uid = .*/define backend_uid = 65534/' \
      -e "s/^define outbound_port = .*/define outbound_port = $PORT/" "$REDIR/nftables-host.nft" |
    lab_exec nft -f - || return 1
  lab_exec nft add element inet xmppfront_redirect bypass4 '{ 192.0.2.20 }'
}
xf_check "nftables-host.nft loads (uid 65534, bypass 192.0.2.20)" nft_load
xf_check "nftables-host.nft: nobody's s2s redirected (v4, v6, any port, original destination kept); root, loopback, DNS, bypass not" cases
lab_exec nft delete table inet xmppfront_redirect
xf_check "nftables-host.nft removed: nobody reaches the remote again" after_removal

# ------------------------------------------------------------------ iptables-host.sh
if command -v iptables >/dev/null && command -v ip6tables >/dev/null; then
  ipt() { lab_exec env BACKEND_UID=65534 OUTBOUND_PORT=$PORT BYPASS4=192.0.2.20 sh "$REDIR/iptables-host.sh" "$@"; }
  xf_check "iptables-host.sh add (twice: idempotent)" bash -c "$(declare -f ipt lab_exec); LAB_NS=$LAB_NS PORT=$PORT REDIR=$REDIR; ipt add && ipt add && ipt show"
  xf_check "iptables-host.sh: the same cases" cases
  rules_once() { [ "$(lab_exec iptables -t nat -S OUTPUT | grep -c XMPPFRONT_REDIRECT)" -eq 1 ]; }
  xf_check "iptables-host.sh: hooked into OUTPUT once" rules_once
  ipt delete >/dev/null 2>&1
  xf_check "iptables-host.sh delete: nobody reaches the remote again" after_removal
else
  echo "  skip - iptables-host.sh: iptables/ip6tables not installed"
fi

# ------------------------------------------------------------------ pod-init.sh
pod_init() { lab_exec env XF_BACKEND_UID=65534 XF_OUTBOUND_PORT=$PORT XF_BYPASS4="192.0.2.20" "$@" sh "$REDIR/pod-init.sh"; }
xf_check "pod-init.sh (nft) runs, twice (idempotent)" bash -c "$(declare -f pod_init lab_exec); LAB_NS=$LAB_NS PORT=$PORT REDIR=$REDIR; pod_init && pod_init"
xf_check "pod-init.sh (nft): the same cases" cases
lab_exec nft delete table inet xmppfront_redirect
if command -v iptables >/dev/null; then
  xf_check "pod-init.sh (iptables fallback) runs" pod_init XF_REDIRECT_TOOL=iptables
  xf_check "pod-init.sh (iptables): the same cases" cases
fi
lab_down
xf_finish "$T"
