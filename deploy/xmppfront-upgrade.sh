#!/bin/sh
# xmppfront-upgrade.sh: zero-downtime binary upgrade of a running xmppfront (docs/upgrade.md).
#
#   xmppfront-upgrade.sh [-u UNIT | -p PID] [-c CONFIG] [-b BINARY] [-t SECONDS]
#
# Checks CONFIG with BINARY (the new binary, already installed at the path the running
# process was started from), sends SIGUSR2 to the running process and waits until a new
# process serves: under systemd (-u, default xmppfront.service) until the unit's MainPID
# has changed; with -p until every port PID listened on is held by one other process. Exit 0 on success, 1 when the upgrade did not take over within SECONDS (default
# 40; the old process then keeps serving and its log says why), 2 on usage errors.
set -u
UNIT=xmppfront.service PID="" CONFIG=/etc/xmppfront/xmppfront.json BINARY="" WAIT=40
while getopts u:p:c:b:t:h o; do
  case $o in
    u) UNIT=$OPTARG ;;
    p) PID=$OPTARG; UNIT="" ;;
    c) CONFIG=$OPTARG ;;
    b) BINARY=$OPTARG ;;
    t) WAIT=$OPTARG ;;
    *) sed -n '2,12p' "$0"; exit 2 ;;
  esac
done
if [ -n "$UNIT" ]; then
  PID=$(systemctl show -p MainPID --value "$UNIT") || exit 2
fi
case $PID in ''|0|*[!0-9]*) echo "xmppfront-upgrade: no running process (${UNIT:-pid $PID})" >&2; exit 2 ;; esac
if [ -z "$BINARY" ]; then
  BINARY=$(tr '\0' '\n' < "/proc/$PID/cmdline" | head -1)
  case $BINARY in /*) ;; *) BINARY=$(command -v "$BINARY" || echo "$BINARY") ;; esac
fi
"$BINARY" --check-config -c "$CONFIG" || { echo "xmppfront-upgrade: configuration check failed; nothing done" >&2; exit 1; }
# the pids listening on TCP port $1 (from ss -p), one per line
holders() { ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u; }
# the ports PID listens on now
PORTS=$(ss -Hltnp 2>/dev/null | grep "pid=$PID," | awk '{print $4}' | sed 's/.*://' | sort -u)
kill -USR2 "$PID" || exit 1
echo "xmppfront-upgrade: SIGUSR2 sent to pid $PID; waiting up to ${WAIT}s"

# Without systemd: done when every port PID listened on is held by one other pid (the
# new process; PID closes its listeners once that one is ready, and may exit at once).
i=0
while [ "$i" -lt $((WAIT * 2)) ]; do
  if [ -n "$UNIT" ]; then
    NOW=$(systemctl show -p MainPID --value "$UNIT")
    if [ -n "$NOW" ] && [ "$NOW" != 0 ] && [ "$NOW" != "$PID" ]; then
      echo "xmppfront-upgrade: pid $NOW serves; pid $PID drains"; exit 0
    fi
  elif [ -n "$PORTS" ]; then
    NEW="" ok=1
    for p in $PORTS; do
      h=$(holders "$p")
      if [ -z "$h" ] || [ "$h" = "$PID" ] || [ "$(echo "$h" | wc -l)" != 1 ] ||
         { [ -n "$NEW" ] && [ "$h" != "$NEW" ]; }; then ok=0; break; fi
      NEW=$h
    done
    if [ "$ok" = 1 ]; then echo "xmppfront-upgrade: pid $NEW serves; pid $PID drains"; exit 0; fi
  else
    echo "xmppfront-upgrade: pid $PID listens on no TCP port (ss -p needs root?)" >&2; exit 1
  fi
  sleep 0.5
  i=$((i + 1))
done
echo "xmppfront-upgrade: no new process took over; see the log of pid $PID" >&2
exit 1
