#!/usr/bin/env bash
# systemd readiness (Type=notify, docs/process.md): with NOTIFY_SOCKET naming a datagram
# socket (a python listener standing in for systemd), xmppfront sends READY=1 with
# STATUS="N workers, M tenants" once it serves: when READY=1 arrives, the listener
# already accepts and answers a stream. SIGTERM sends STOPPING=1 before the drain ends.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_netns.sh"
T=sd_notify
xf_init "$T" || xf_setup_failed "$T: init"
xf_ns_tenant_world || xf_setup_failed "$T: PKI"
read -r PORT < <(xf_free_ports 1)
XF_CFG="$XF_TMP/xf/xmppfront.json" XF_LOG="$XF_TMP/xf/xmppfront.log"
XF_WORKERS=2 xf_config_write "$XF_CFG" tenants "$(xf_listener 127.0.0.1 "$PORT" starttls client)" \
  '"drain_timeout_s": 1'
SOCK="$XF_TMP/notify.sock" REC="$XF_TMP/notify.log"
# The listener: every datagram is one line in REC (newlines as |); on READY=1 it
# connects to the proxy at once and records whether a stream header was answered.
timeout 60 "$XF_PY" - "$SOCK" "$REC" "$PORT" <<'PYEOF' &
import socket, sys, time
path, rec, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
open(rec + ".bound", "w").close()
with open(rec, "a", buffering=1) as out:
    while True:
        d = s.recv(4096).decode(errors="replace")
        out.write("%.3f %s\n" % (time.time(), d.replace("\n", "|")))
        if "READY=1" in d:
            try:
                c = socket.create_connection(("127.0.0.1", port), timeout=2)
                c.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                          b"xmlns:stream='http://etherx.jabber.org/streams' to='a.example' version='1.0'>")
                c.settimeout(5)
                got = c.recv(4096)
                out.write("PROBE %s\n" % ("answered" if b"stream:stream" in got else "silent %r" % got))
                c.close()
            except OSError as e:
                out.write("PROBE failed %s\n" % e)
        if "STOPPING=1" in d:
            break
PYEOF
LISTENER=$!
xf_track "$LISTENER"
for ((i = 0; i < 50; i++)); do [ -e "$REC.bound" ] && break; sleep 0.1; done
NOTIFY_SOCKET="$SOCK" xf_proxy_start "$XF_CFG" "$XF_LOG" "$PORT" || xf_setup_failed "$T: xmppfront did not start"
for ((i = 0; i < 50; i++)); do grep -q '^PROBE' "$REC" 2>/dev/null && break; sleep 0.1; done
xf_check "READY=1 arrives with STATUS=2 workers, 1 tenants" \
  bash -c "cat '$REC'; grep -q 'READY=1|STATUS=2 workers, 1 tenants' '$REC'"
xf_check "exactly one READY=1, and it is the first notification" \
  bash -c "[ \$(grep -c 'READY=1' '$REC') = 1 ] && head -1 '$REC' | grep -q 'READY=1'"
xf_check "when READY=1 arrived, the listener accepted and answered a stream" \
  grep -x 'PROBE answered' "$REC"
xf_check "no STOPPING=1 before the stop" bash -c "! grep -q STOPPING '$REC'"
kill -TERM "$XF_PROXY_PID"
for ((i = 0; i < 50; i++)); do grep -q 'STOPPING=1' "$REC" 2>/dev/null && break; sleep 0.1; done
xf_stop_pid "$XF_PROXY_PID" 10
xf_check "SIGTERM: STOPPING=1 arrives" \
  bash -c "cat '$REC'; grep -q 'STOPPING=1' '$REC'"
xf_check "STOPPING=1 comes after READY=1 and the drain was logged" \
  bash -c "grep -n . '$REC' | grep -A100 READY | grep -q STOPPING && grep -q 'SIGTERM received' '$XF_LOG'"
xf_finish "$T"
