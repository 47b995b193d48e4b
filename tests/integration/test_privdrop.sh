#!/usr/bin/env bash
# Privilege drop ("user"/"group", docs/process.md): started as root in a network
# namespace of its own, xmppfront binds two ports below 1024, loads a root-only (0600)
# key, then runs as a user created for this test: /proc/PID/status shows that uid and
# gid everywhere (real, effective, saved, fs; every thread), supplementary groups are
# the user's own (no 0), no capability is left, and a STARTTLS handshake on port 522
# works. A configured user that does not exist, or one the process cannot switch to
# (started unprivileged as another user), is a start failure with one clear line and no
# process left behind. Started as that user with only CAP_NET_BIND_SERVICE (the shipped
# unit's way), it binds the same ports and serves without any switch.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_netns.sh"
T=privdrop
[ "$(id -u)" -eq 0 ] || { echo "SKIP: $T needs root"; exit 0; }
xf_netns_init "$T" || xf_setup_failed "$T: netns"
U="xfpd$$" G2="xfpdx$$"
cleanup_user() { userdel "$U" 2>/dev/null; groupdel "$U" 2>/dev/null; groupdel "$G2" 2>/dev/null; }
trap 'xf_rc=$?; cleanup_user; xf_netns_cleanup; (exit $xf_rc); xf_cleanup' EXIT
groupadd --system "$G2" && useradd --system --no-create-home --user-group \
  --shell /usr/sbin/nologin --groups "$G2" "$U" || xf_setup_failed "$T: useradd"
UID_=$(id -u "$U") GID_=$(getent group "$U" | cut -d: -f3) GID2=$(getent group "$G2" | cut -d: -f3)
xf_ns_tenant_world || xf_setup_failed "$T: PKI"
chmod 600 "$XF_TMP/certs/a.example/privkey.pem"      # root only: loaded before the drop
chmod 700 "$XF_TMP/certs"

XF_CFG="$XF_TMP/xf/xmppfront.json" XF_LOG="$XF_TMP/xf/xmppfront.log"
write_cfg() {  # USER -> config with "user"/"group"
  cat > "$XF_CFG" <<JSON
{
  "workers": 2, "tenants": "tenants", "user": "$1", "group": "$2",
  "listeners": [$(xf_listener 127.0.0.1 522 starttls client), $(xf_listener 127.0.0.1 443 direct client)],
  "limits": {"drain_timeout_s": 2}
}
JSON
}
write_cfg "$U" "$U"
xf_ns_proxy_start "$XF_CFG" "$XF_LOG" 522 443 || xf_setup_failed "$T: xmppfront did not start"
PID=$XF_PROXY_PID
sleep 0.3
xf_check "ports 522 and 443 (below 1024) are bound" \
  bash -c "ip netns exec '$XF_NS' ss -Hltnp | tee /dev/stderr | grep 'pid=$PID,' | \
    grep -oE '127.0.0.1:(522|443) ' | sort -u | wc -l | grep -qx 2"
xf_check "Uid: $UID_ x4 and Gid: $GID_ x4 in /proc/$PID/status" \
  bash -c "cat /proc/$PID/status | grep -E '^(Uid|Gid|Groups|Cap)'; \
    grep -Pq '^Uid:\t$UID_\t$UID_\t$UID_\t$UID_$' /proc/$PID/status && \
    grep -Pq '^Gid:\t$GID_\t$GID_\t$GID_\t$GID_$' /proc/$PID/status"
xf_check "Groups: are the user's ($GID_ and $G2=$GID2), no 0" \
  "$XF_PY" - "$PID" "$GID_" "$GID2" <<'PYEOF'
import sys
pid, g1, g2 = sys.argv[1], sys.argv[2], sys.argv[3]
groups = [l.split()[1:] for l in open(f"/proc/{pid}/status") if l.startswith("Groups:")][0]
print("Groups:", groups)
sys.exit(0 if sorted(groups) == sorted({g1, g2}) and "0" not in groups else 1)
PYEOF
xf_check "every thread runs as uid $UID_ (and there is more than one thread)" \
  bash -c "n=0; for s in /proc/$PID/task/*/status; do n=\$((n+1)); \
    grep -Pq '^Uid:\t$UID_\t$UID_\t$UID_\t$UID_$' \$s || { echo \"\$s:\"; grep Uid \$s; exit 1; }; done; \
    echo \"\$n threads\"; [ \$n -ge 3 ]"
xf_check "no capability left (CapPrm, CapEff, CapAmb all 0)" \
  bash -c "grep -E '^Cap(Prm|Eff|Amb):' /proc/$PID/status; \
    [ \$(grep -cE '^Cap(Prm|Eff|Amb):\s0+$' /proc/$PID/status) = 3 ]"
xf_check "the log says privileges were dropped" \
  xf_log_has "$XF_LOG" "privileges dropped to user $U" "uid $UID_"
xf_check "a STARTTLS handshake on port 522 (worker after the drop, key loaded before)" \
  timeout 20 ip netns exec "$XF_NS" "$XF_PY" "$XF_IT_DIR/starttls_probe.py" 522 "$XF_CA"
# A reload after the drop reads the files as the dropped user (docs/reload.md): the
# root-only certificate folder cannot be read, so the reload is refused with a line
# naming the file and the reason, and the old configuration serves on; once folder and
# key are readable by the user's group (the ssl-cert pattern) the same reload goes through.
kill -HUP "$PID"
xf_check "after the drop, a reload of root-only files is refused, naming the file and why" \
  xf_wait_log "$XF_LOG" 10 "reload 1 (SIGHUP) refused:" "fullchain.pem: cannot be read: Permission denied" "old configuration stays"
xf_check "... and the old configuration still serves STARTTLS" \
  timeout 20 ip netns exec "$XF_NS" "$XF_PY" "$XF_IT_DIR/starttls_probe.py" 522 "$XF_CA"
chgrp "$U" "$XF_TMP/certs" "$XF_TMP/certs/a.example/privkey.pem"
chmod 750 "$XF_TMP/certs"; chmod 640 "$XF_TMP/certs/a.example/privkey.pem"
kill -HUP "$PID"
xf_check "with the key readable by the user's group, the reload after the drop succeeds" \
  xf_wait_log "$XF_LOG" 10 "reload 2 (SIGHUP) done in"
chmod 600 "$XF_TMP/certs/a.example/privkey.pem"; chmod 700 "$XF_TMP/certs"
chgrp root "$XF_TMP/certs" "$XF_TMP/certs/a.example/privkey.pem"
xf_ns_proxy_stop
xf_check "SIGTERM still drains and exits after the drop" \
  xf_log_has "$XF_LOG" "stopped; counters:"

# A user that does not exist: start fails with one line; nothing keeps running.
write_cfg "nosuchuser$$" "$U"
timeout 20 ip netns exec "$XF_NS" "$XF_BIN" -c "$XF_CFG" 2>"$XF_TMP/nouser.err"
RC=$?
xf_check "unknown user: exit status non-zero (got $RC)" test "$RC" -ne 0 -a "$RC" -ne 124
xf_check "unknown user: the error names it" \
  grep -F "user \"nosuchuser$$\": no such user" "$XF_TMP/nouser.err"
xf_check "unknown user: nothing listens on 522/443 and no process is left in the namespace" \
  bash -c "! ip netns exec '$XF_NS' ss -Hltn | grep -E ':(522|443) ' && \
    [ -z \"\$(ip netns pids '$XF_NS')\" ]"
write_cfg "$U" "nosuchgroup$$"
timeout 20 ip netns exec "$XF_NS" "$XF_BIN" -c "$XF_CFG" 2>"$XF_TMP/nogroup.err"
RC=$?
xf_check "unknown group: exit non-zero with the line (rc $RC)" \
  bash -c "cat '$XF_TMP/nogroup.err'; [ $RC -ne 0 ] && grep -qF 'group \"nosuchgroup$$\": no such group' '$XF_TMP/nogroup.err'"

# Unprivileged (as nobody) with "user" naming another user: refused, not ignored.
write_cfg "$U" "$U"
sed -i 's/"port": 522,/"port": 15220,/; s/"port": 443,/"port": 15221,/' "$XF_CFG"
chmod -R a+rX "$XF_TMP/xf" "$XF_TMP/certs"
timeout 20 setpriv --reuid=nobody --regid=nogroup --clear-groups -- \
  "$XF_BIN" -c "$XF_CFG" 2>"$XF_TMP/nobody.err"
RC=$?
xf_check "not root, user is someone else: exit non-zero with the line (rc $RC)" \
  bash -c "cat '$XF_TMP/nobody.err'; [ $RC -ne 0 ] && grep -qF 'not root: cannot switch users' '$XF_TMP/nobody.err'"

# Model A: started as the user itself with only CAP_NET_BIND_SERVICE (ambient), as the
# shipped systemd unit does; "user" naming that same user is accepted, nothing changes.
write_cfg "$U" "$U"
chown -R "$U:$U" "$XF_TMP/certs"; chmod 600 "$XF_TMP/certs/a.example/privkey.pem"
: > "$XF_TMP/capuser.log"
ip netns exec "$XF_NS" setpriv --reuid="$U" --regid="$U" --init-groups \
  --inh-caps=+net_bind_service --ambient-caps=+net_bind_service -- \
  "$XF_BIN" -c "$XF_CFG" 2>"$XF_TMP/capuser.log" &
CPID=$!
xf_track "$CPID"
for ((i = 0; i < 100; i++)); do xf_ns_listening 522 && break; kill -0 "$CPID" 2>/dev/null || break; sleep 0.1; done
xf_check "unprivileged + CAP_NET_BIND_SERVICE: binds 522 and 443 as uid $UID_, serves STARTTLS" \
  bash -c "cat '$XF_TMP/capuser.log'; grep -E '^(Uid|CapEff)' /proc/$CPID/status; \
    grep -Pq '^Uid:\t$UID_\t' /proc/$CPID/status && ip netns exec '$XF_NS' ss -Hltn | grep -q ':443 ' && \
    timeout 20 ip netns exec '$XF_NS' '$XF_PY' '$XF_IT_DIR/starttls_probe.py' 522 '$XF_CA' && \
    ! grep -q 'privileges dropped' '$XF_TMP/capuser.log'"
xf_stop_pid "$CPID" 10
xf_finish "$T"
