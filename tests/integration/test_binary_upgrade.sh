#!/usr/bin/env bash
# Zero-downtime binary upgrade (SIGUSR2, docs/upgrade.md). xmppfront runs from a copy of
# the binary in a folder of its own, which the test replaces the way a package does.
#  (1) under load: 8 relaying c2s streams (a ping every 0.25 s) and 4 loops opening new
#      TLS connections (two ports) while SIGUSR2 arrives; the binary was replaced first
#      (the old process's /proc/PID/exe reads "(deleted)") and the configuration now says
#      3 workers instead of 2: zero failed connections, every stream answered until its
#      clean end; the new PID serves (it holds the listening sockets), the old one exits
#      0 once its streams have ended, with upgrade_started=1 upgrade_failed=0;
#  (2) failed upgrades leave the new process serving, each logged and counted: the binary
#      path replaced by a script that exits 3; by one that never gets ready (killed after
#      XF_UPGRADE_TIMEOUT_S=4; a second SIGUSR2 meanwhile is refused); the real binary
#      with a broken configuration;
#  (3) a second upgrade to 1 worker, one listener removed and one added: the removed
#      port is gone once the old process exits, the new one serves, the streams of (3)
#      survive; the old one logs upgrade_started=4 upgrade_failed=3;
#  (4) deploy/xmppfront-upgrade.sh -p PID upgrades once more and names the new pid, which
#      then stops on SIGTERM. Throughout, a stand-in for systemd's notification socket
#      sees MAINPID=NEW from each new process and STOPPING=1 from none that handed over.
. "$(dirname "$0")/lib.sh"
T=binary_upgrade
REAL_BIN=$XF_BIN
BIN_DIR=$(mktemp -d /tmp/xfit-upgrade-bin.XXXXXX) || exit 1
cp "$REAL_BIN" "$BIN_DIR/xmppfront"
XF_BIN=$BIN_DIR/xmppfront
export XF_UPGRADE_TIMEOUT_S=4
# A stand-in for systemd's notification socket: one line per datagram, with the sender's
# pid from SCM_CREDENTIALS as systemd sees it ("pid=N MAINPID=N|READY=1").
export NOTIFY_SOCKET="$BIN_DIR/notify.sock"
NOTIFY_LOG="$BIN_DIR/notify.log"
timeout 300 "$XF_PY" - "$NOTIFY_SOCKET" "$NOTIFY_LOG" <<'PYEOF' &
import array, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
with open(sys.argv[2], "a", buffering=1) as out:
    while True:
        msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(64) * 4)
        pid = "?"
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = str(struct.unpack("iII", data[:12])[0])
            elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                for fd in array.array("i", data[:len(data) - len(data) % 4]):
                    os.close(fd)                     # sd_notify_barrier waits for this
        out.write("pid=%s %s\n" % (pid, msg.decode(errors="replace").replace("\n", "|")))
PYEOF
xf_track $!
for ((i = 0; i < 50; i++)); do [ -S "$NOTIFY_SOCKET" ] && break; sleep 0.1; done
XF_WORKERS=2 XF_DRAIN_TIMEOUT=40 xf_setup_standard "$T" ||
  { rm -rf "$BIN_DIR"; xf_setup_failed "$T: could not start Prosody + xmppfront"; }
# shellcheck disable=SC2154  # rc is assigned inside the trap string
trap 'rc=$?; rm -rf "$BIN_DIR"; (exit $rc); xf_cleanup' EXIT
OLD=$XF_PROXY_PID
LOAD=(timeout 90 "$XF_PY" "$XF_IT_DIR/upgrade_load.py" --ca "$XF_CA")

# the pids listening on port $1 (from ss), one per line
listeners_of() { ss -Hltnp "sport = :$1" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u; }
# wait up to $2 s for pid $1 to be gone (not our child: polled)
wait_gone() {
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    ps -p "$1" -o stat= 2>/dev/null | grep -q Z && return 0
    sleep 0.1
  done
  return 1
}
# the pid the log names as ready after the $1-th upgrade start
ready_pid() { grep -o 'upgrade: new process pid=[0-9]* is ready' "$XF_LOG" | sed -n "${1}p" | grep -o '[0-9]\+' | head -1; }
# set the configuration's workers to $1
write_cfg() {
  sed -i -E "s/\"workers\": [0-9]+/\"workers\": $1/" "$XF_CFG"
}
# replace the binary the way a package does (a new inode: the running one is busy)
replace_bin() { cat > "$BIN_DIR/.xmppfront.new" && chmod 755 "$BIN_DIR/.xmppfront.new" &&
  mv -f "$BIN_DIR/.xmppfront.new" "$BIN_DIR/xmppfront"; }
serves() { xf_peer --port "$1" --mode direct --to a.example --ca "$XF_CA" --expect-features; }
# port $1 is listened on by pid $2 alone
only_listener() {
  local l; l=$(listeners_of "$1" | tr '\n' ' ')
  echo "port $1: pids $l(want $2)"
  [ "$l" = "$2 " ]
}
# port $1 has exactly $2 listening sockets (SO_REUSEPORT: one line each in ss)
socket_count() { local n; n=$(ss -Hltn "sport = :$1" | wc -l); echo "port $1: $n sockets (want $2)"; [ "$n" = "$2" ]; }
serves_alone() { serves "$1" && only_listener "$1" "$2"; }

# ---------------------------------------------------------------- (1) under load
replace_bin < "$REAL_BIN"
xf_check "(1) precondition: the running binary was replaced (/proc/$OLD/exe: deleted)" \
  bash -c "readlink /proc/$OLD/exe; readlink /proc/$OLD/exe | grep -q '(deleted)'"
write_cfg 3
xf_check "(1) 8 streams relay and new TLS connections succeed throughout SIGUSR2: zero failures" \
  "${LOAD[@]}" --port "$P_C2S_TLS" --ports "$P_AUTO" --pid "$OLD" --streams 8 \
  --duration 10 --signal-at 2.5 --connectors 4
NEW=$(ready_pid 1)
[ -n "$NEW" ] && xf_track "$NEW"
xf_check "(1) log: new process pid=${NEW:-?} ready, the old one drains" \
  bash -c "[ -n '$NEW' ] && [ '$NEW' != '$OLD' ] && grep -F 'upgrade: pid=$NEW serves; pid=$OLD drains' '$XF_LOG'"
xf_check "(1) systemd was told MAINPID=$NEW by pid $NEW; the old one sent no STOPPING=1" \
  bash -c "cat '$NOTIFY_LOG'; grep -q '^pid=$NEW .*MAINPID=$NEW|READY=1' '$NOTIFY_LOG' && ! grep -q '^pid=$OLD .*STOPPING=1' '$NOTIFY_LOG'"
xf_check "(1) the new process took over the sockets: 2 inherited, 3 workers (one opened fresh)" \
  xf_log_has "$XF_LOG" "listener 127.0.0.1:$P_C2S_TLS: 2 sockets inherited, 3 workers"
wait_gone "$OLD" 10; { wait "$OLD"; } 2>/dev/null; RC=$?
xf_check "(1) the old process exited after its streams ended, status 0 (got $RC)" \
  bash -c "! kill -0 $OLD 2>/dev/null && [ $RC = 0 ]"
xf_check "(1) old process's counters: upgrade_started=1 upgrade_failed=0" \
  xf_log_has "$XF_LOG" "stopped; counters" "upgrade_started=1 " "upgrade_failed=0"
for p in "$P_C2S_TLS" "$P_AUTO" "$P_C2S"; do
  xf_check "(1) only the new pid listens on $p" only_listener "$p" "$NEW"
done
xf_check "(1) 3 sockets on $P_C2S_TLS now (2 inherited + 1 for the third worker)" \
  socket_count "$P_C2S_TLS" 3
xf_check "(1) the new process serves a new connection" serves "$P_C2S_TLS"
# The admin listener (implicit default 127.0.0.1:8269) is handed over like the others:
# the new process answers /metrics on the same socket, the old one stopped answering.
xf_check "(1) the admin socket 127.0.0.1:8269 is the new pid's alone" only_listener 8269 "$NEW"
xf_check "(1) /metrics on 8269 comes from pid=$NEW (upgrade_started 0 there)" \
  bash -c "curl -sf http://127.0.0.1:8269/metrics | grep -E '^xmppfront_upgrades_total\\{result=\"started\"\\} 0\$'"

# ---------------------------------------------------------------- (2) failed upgrades
printf '#!/bin/sh\necho "fake xmppfront: refusing to start" >&2\nexit 3\n' | replace_bin
kill -USR2 "$NEW"
for ((i = 0; i < 50; i++)); do grep -q 'exited with status 3' "$XF_LOG" && break; sleep 0.1; done
xf_check "(2a) a binary that exits 3: failure logged, pid=$NEW keeps serving" \
  xf_log_has "$XF_LOG" "upgrade failed: new process pid=" "exited with status 3 before it was ready; pid=$NEW keeps serving"
xf_check "(2a) pid=$NEW still serves, still the only listener" serves_alone "$P_C2S_TLS" "$NEW"

printf '#!/bin/sh\nexec sleep 60\n' | replace_bin
kill -USR2 "$NEW"
sleep 1
kill -USR2 "$NEW"
for ((i = 0; i < 80; i++)); do grep -q 'was not ready within 4 s' "$XF_LOG" && break; sleep 0.1; done
HUNG=$(grep -o 'started [^ ]* as pid=[0-9]*' "$XF_LOG" | sed -n 3p | grep -o '[0-9]*$')
xf_check "(2b) a second SIGUSR2 during the upgrade is refused" \
  xf_log_has "$XF_LOG" "SIGUSR2: an upgrade is already in progress; ignored"
xf_check "(2b) a new process never ready: failure after 4 s, it is killed (pid=${HUNG:-?})" \
  bash -c "grep -F 'upgrade failed: new process pid=$HUNG was not ready within 4 s; pid=$NEW keeps serving' '$XF_LOG' && sleep 0.5 && ! kill -0 ${HUNG:-0} 2>/dev/null"

replace_bin < "$REAL_BIN"
cp "$XF_CFG" "$XF_CFG.good"
echo '{ "workers": 1, "listeners": [' > "$XF_CFG"
kill -USR2 "$NEW"
for ((i = 0; i < 100; i++)); do [ "$(grep -c 'upgrade failed: new process' "$XF_LOG")" -ge 3 ] && break; sleep 0.1; done
xf_check "(2c) a broken configuration: the new process says so and exits 1; pid=$NEW serves on" \
  bash -c "grep -F 'configuration error' '$XF_LOG' && grep -F 'exited with status 1 before it was ready; pid=$NEW keeps serving' '$XF_LOG' && ! grep -q 'pid=[0-9]* serves; pid=$NEW drains' '$XF_LOG'"
xf_check "(2) after three failures pid=$NEW still serves" serves "$P_C2S_TLS"

# ---------------------------------------------------------------- (3) fewer workers, listeners changed
cp "$XF_CFG.good" "$XF_CFG"
write_cfg 1
P_NEW=$P_DEAD
sed -i "s/\"port\": $P_AUTO, \"tls\": \"direct\", \"service\": \"auto\"/\"port\": $P_NEW, \"tls\": \"direct\", \"service\": \"client\"/" "$XF_CFG"
xf_check "(3) precondition: the configuration swaps port $P_AUTO for $P_NEW" \
  bash -c "grep -q '\"port\": $P_NEW' '$XF_CFG' && ! grep -q '\"port\": $P_AUTO' '$XF_CFG'"
xf_check "(3) 3 streams and new connections through a second upgrade (3 -> 1 workers)" \
  "${LOAD[@]}" --port "$P_C2S_TLS" --pid "$NEW" --streams 3 --duration 6 --signal-at 1.5 \
  --connectors 2
NEW2=$(ready_pid 2)
[ -n "$NEW2" ] && xf_track "$NEW2"
xf_check "(3) pid=${NEW2:-?} took 3 sockets per kept listener on 1 worker, closed the removed one" \
  bash -c "grep -F 'listener 127.0.0.1:$P_C2S_TLS: 3 sockets inherited, 1 workers' '$XF_LOG' && grep -F 'inherited socket 127.0.0.1:$P_AUTO (fd' '$XF_LOG'"
xf_check "(3) pid=$NEW exits once its streams ended" wait_gone "$NEW" 10
xf_check "(3) pid=$NEW's counters: upgrade_started=4 upgrade_failed=3" \
  xf_log_has "$XF_LOG" "stopped; counters" "upgrade_started=4 " "upgrade_failed=3"
xf_check "(3) the new listener $P_NEW serves, by pid=${NEW2:-?} alone" serves_alone "$P_NEW" "$NEW2"
xf_check "(3) the removed listener $P_AUTO is closed" \
  bash -c "! ss -Hltn 'sport = :$P_AUTO' | grep -q ."
xf_check "(3) pid=${NEW2:-?} holds $P_C2S_TLS alone" only_listener "$P_C2S_TLS" "$NEW2"
xf_check "(3) all 3 inherited sockets of $P_C2S_TLS kept by the single worker" \
  socket_count "$P_C2S_TLS" 3

# ---------------------------------------------------------------- (4) deploy/xmppfront-upgrade.sh
UPOUT="$XF_TMP/upgrade-script.out"
timeout 60 sh "$XF_ROOT/deploy/xmppfront-upgrade.sh" -p "$NEW2" -c "$XF_CFG" -b "$REAL_BIN" -t 20 >"$UPOUT" 2>&1
RC=$?
NEW3=$(grep -o 'pid [0-9]* serves' "$UPOUT" | grep -o '[0-9]*')
[ -n "$NEW3" ] && xf_track "$NEW3"
xf_check "(4) xmppfront-upgrade.sh -p $NEW2: exit 0, names the new pid (${NEW3:-?})" \
  bash -c "cat '$UPOUT'; [ $RC = 0 ] && [ -n '$NEW3' ] && grep -F 'upgrade: pid=$NEW3 serves; pid=$NEW2 drains' '$XF_LOG'"
xf_check "(4) pid=$NEW2 exits; pid=${NEW3:-?} serves alone" \
  wait_gone "$NEW2" 10
xf_check "(4) pid=${NEW3:-?} serves $P_C2S_TLS alone" serves_alone "$P_C2S_TLS" "${NEW3:-none}"
xf_check "(4) MAINPID followed every handover; STOPPING=1 from none that handed over" \
  bash -c "cat '$NOTIFY_LOG'; for p in $NEW2 ${NEW3:-0}; do grep -q \"^pid=\$p .*MAINPID=\$p|READY=1\" '$NOTIFY_LOG' || exit 1; done; ! grep -Eq '^pid=($OLD|$NEW|$NEW2) .*STOPPING=1' '$NOTIFY_LOG'"
kill -TERM "$NEW3" 2>/dev/null
xf_check "(4) pid=${NEW3:-?} stops on SIGTERM" wait_gone "${NEW3:-0}" 10
xf_finish "$T"
