#!/usr/bin/env bash
# test_federation_matrix.sh with ejabberd (Debian 12: 23.01) in two places (issue 7, "Tests"):
#   backend  ejabberd is the plaintext backend of both tenants (deploy/ejabberd/backend-s2s.yml:
#            TLS off, dialback on, s2s on the backend's loopback address), run as user
#            ejabberd (its outgoing s2s redirected by that uid); remote Prosody of types
#            1-6 (FED_TYPES), every policy
#   remote   the Prosody backend as in the matrix, and one remote ejabberd of XEP-0238 type 5
#            (certificate from the lab CA, s2s_use_starttls: required, dialback on)
#            next to remote Prosody of type 5 and 6 (FED_REMOTE_TYPES)
# Each variant is a full run of test_federation_matrix.sh (its own namespace) with the
# hooks below; the expected table is the matrix's (an ejabberd remote: its type-5 column).
# Usage: bash tests/lab/test_federation_ejabberd.sh [backend|remote]   (default both)
HERE=$(cd "$(dirname "$0")" && pwd)
# ejabberd's Erlang VM verifies dialback more slowly than Prosody, and much more slowly
# on a loaded machine (a fresh Debian 13 root running two suites at once missed the
# 5 s once): give the s2s negotiation 10 s here.
export LAB_S2S_TIMEOUT=${LAB_S2S_TIMEOUT:-10}
if [ -z "${FED_EJ_VARIANT:-}" ]; then
  command -v ejabberdctl >/dev/null || { echo "SKIP: test_federation_ejabberd (ejabberd not installed)"; exit 0; }
  rc=0
  for v in ${1:-backend remote}; do
    case "$v" in
      backend) FED_EJ_VARIANT=backend FED_BACKEND=ejabberd FED_BACKEND_USER=ejabberd \
                 FED_TYPES=${FED_TYPES:-1 2 3 4 5 6} FED_TEST_NAME=federation_ejabberd_backend \
                 bash "$HERE/test_federation_ejabberd.sh" || rc=1 ;;
      remote)  FED_EJ_VARIANT=remote FED_EJABBERD_REMOTE=1 FED_TYPES=${FED_REMOTE_TYPES:-5 6} \
                 FED_TEST_NAME=federation_ejabberd_remote \
                 bash "$HERE/test_federation_ejabberd.sh" || rc=1 ;;
      *) echo "usage: $0 [backend|remote]" >&2; exit 2 ;;
    esac
  done
  exit "$rc"
fi

# ---------------------------------------------------------------------------- common
# fed_ej_write DIR NODE "HOSTS" LISTEN_YAML EXTRA_YAML — an isolated ejabberd (lib.sh's
# xf_ejabberd_start does the same for 127.0.0.1 c2s only; here the listeners are given)
fed_ej_write() {
  local dir=$1 node=$2 hosts="" h
  for h in $3; do hosts="$hosts  - $h"$'\n'; done
  mkdir -p "$dir/log" "$dir/spool"
  cat > "$dir/ejabberd.yml" <<EOC
hosts:
$hosts
loglevel: ${FED_EJ_LOGLEVEL:-info}
log_rotate_count: 0
listen:
$4
auth_method: internal
auth_password_format: plain
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  s2s:
    allow: all
s2s_access: s2s
$5
EOC
  cat > "$dir/ejabberdctl.cfg" <<EOC
ERLANG_NODE=$node@localhost
ERL_DIST_PORT=${FED_EJ_DIST_PORT:-25999}
INET_DIST_INTERFACE=127.0.0.1
EOC
  : > "$dir/inetrc"
  chown -R ejabberd:ejabberd "$dir"
}
# fed_ej_start DIR ADDR — in the namespace, own process group; sets FED_EJ_PID FED_EJ_PGID
fed_ej_start() {
  local dir=$1 addr=$2 wrapper i
  (cd "$dir" && exec ip netns exec "$LAB_NS" setsid setpriv --reuid=ejabberd --regid=ejabberd \
     --init-groups -- env HOME="$dir" ejabberdctl --config-dir "$dir" --logs "$dir/log" \
     --spool "$dir/spool" foreground) >"$dir/stdout" 2>&1 &
  wrapper=$!
  xf_track "$wrapper"
  FED_EJ_PGID=""
  FED_EJ_PID=""
  for ((i = 0; i < 300; i++)); do
    # setsid made the wrapper a group leader: its group holds beam and its helpers
    [ "$(ps -o pgid= -p "$wrapper" 2>/dev/null | tr -d ' ')" = "$wrapper" ] && FED_EJ_PGID=$wrapper
    [ -n "$FED_EJ_PGID" ] && FED_EJ_PID=$(pgrep -g "$FED_EJ_PGID" -f 'beam.smp.* -s ejabberd' 2>/dev/null | head -1)
    [ -n "$FED_EJ_PID" ] && break
    kill -0 "$wrapper" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$FED_EJ_PID" ] || { lab_log "ejabberd: no beam.smp"; tail -20 "$dir/stdout" >&2; return 1; }
  xf_track "$FED_EJ_PID"
  lab_wait_port "$addr" 5222 40 "$FED_EJ_PID" ||
    { lab_log "ejabberd did not listen on $addr:5222"; tail -20 "$dir/stdout" "$dir/log/error.log" >&2 2>/dev/null; return 1; }
  lab_wait_port "$addr" 5269 10 "$FED_EJ_PID" ||
    { lab_log "ejabberd did not listen on $addr:5269"; tail -20 "$dir/log/error.log" >&2 2>/dev/null; return 1; }
}
# fed_ej_stop PID PGID
fed_ej_stop() {
  local pid=$1 g=$2 i
  [ -n "$pid" ] && xf_stop_pid "$pid" 10
  [ -n "$g" ] && [ "$g" != "$(ps -o pgid= -p $$ | tr -d ' ')" ] || return 0
  kill -TERM -- "-$g" 2>/dev/null || return 0
  for ((i = 0; i < 30; i++)); do pgrep -g "$g" >/dev/null 2>&1 || return 0; sleep 0.1; done
  kill -KILL -- "-$g" 2>/dev/null
  return 0
}
# fed_ej_register DIR USER HOST PASS (the node must be up; ejabberdctl inside the namespace)
fed_ej_register() {
  local dir=$1
  (cd "$dir" && timeout 30 ip netns exec "$LAB_NS" setpriv --reuid=ejabberd --regid=ejabberd \
     --init-groups -- env HOME="$dir" ejabberdctl --config-dir "$dir" --logs "$dir/log" \
     --spool "$dir/spool" register "$2" "$3" "$4") >>"$dir/ctl.log" 2>&1 ||
    { lab_log "ejabberdctl register $2@$3 failed"; tail -5 "$dir/ctl.log" >&2; return 1; }
}

# ---------------------------------------------------------------------------- backend
# (called by the matrix; BKD, BK4, TENANTS, LAB_NS are the matrix's)
FED_EJB_PID="" FED_EJB_PGID=""
fed_ej_backend_start() {
  local listen extra
  listen="  -
    port: 5222
    ip: \"$BK4\"
    module: ejabberd_c2s
    starttls: false
  -
    port: 5269
    ip: \"$BK4\"
    module: ejabberd_s2s_in
    max_stanza_size: 524288"
  # the s2s part is deploy/ejabberd/backend-s2s.yml's
  extra="s2s_use_starttls: false
outgoing_s2s_families:
  - ipv4
outgoing_s2s_timeout: 10
# after a failed stream ejabberd bounces everything to that domain for up to
# s2s_max_retry_delay (default 300 s): the next phase must try afresh
s2s_max_retry_delay: 1
s2s_timeout: ${LAB_S2S_TIMEOUT:-5}
certfiles: []
modules:
  mod_roster: {}
  mod_disco: {}
  mod_ping: {}
  mod_s2s_dialback: {}"
  [ -f "$BKD/ejabberd.yml" ] || fed_ej_write "$BKD" "xfejb$$" "$TENANTS" "$listen" "$extra"
  FED_EJ_DIST_PORT=25998 fed_ej_start "$BKD" "$BK4" || return 1
  FED_EJB_PID=$FED_EJ_PID FED_EJB_PGID=$FED_EJ_PGID
  BK_PID=$FED_EJ_PID
  local d
  [ -f "$BKD/.registered" ] && return 0
  for d in $TENANTS; do fed_ej_register "$BKD" user1 "$d" pass1 || return 1; done
  touch "$BKD/.registered"
}
fed_ej_backend_stop() { fed_ej_stop "$FED_EJB_PID" "$FED_EJB_PGID"; FED_EJB_PID=""; }

# ---------------------------------------------------------------------------- remote
EJ_NAME=ej EJ_DOMAIN=ejabberd.example EJ_ADDR=${FED_REMOTE_NET:-198.18.1}.7
FED_EJR_PID="" FED_EJR_PGID=""
fed_ej_remote_declare() {
  local dir="$LAB_DIR/remote/$EJ_NAME"
  mkdir -p "$dir"
  lab_ca || return 1
  xf_make_cert "$LAB_DIR/pki" "$dir/pem" "$EJ_DOMAIN" "$EJ_DOMAIN" || return 1
  cat "$dir/pem/cert.pem" "$dir/pem/privkey.pem" "$LAB_DIR/pki/ca.pem" > "$dir/ej.pem"
  cp "$LAB_DIR/pki/ca.pem" "$dir/ca.pem"
  lab_host "$EJ_DOMAIN" "$EJ_ADDR" || return 1
  lab_xmpp_srv "$EJ_DOMAIN" "$EJ_DOMAIN" 5269
  # the matrix's bookkeeping: a remote named "ej", column key "ej" (its XEP type: 5)
  LAB_R_DOMAIN[$EJ_NAME]=$EJ_DOMAIN LAB_R_ADDR4[$EJ_NAME]=$EJ_ADDR LAB_R_TYPE[$EJ_NAME]=5
  R_IS_EJ[$EJ_NAME]=ej
  REMOTES+=("$EJ_NAME")
}
fed_ej_remote_start() {
  local dir="$LAB_DIR/remote/$EJ_NAME" listen extra
  listen="  -
    port: 5222
    ip: \"$EJ_ADDR\"
    module: ejabberd_c2s
    starttls: false
  -
    port: 5269
    ip: \"$EJ_ADDR\"
    module: ejabberd_s2s_in
    max_stanza_size: 524288"
  extra="certfiles:
  - \"$dir/ej.pem\"
ca_file: \"$dir/ca.pem\"
s2s_use_starttls: required
outgoing_s2s_families:
  - ipv4
s2s_max_retry_delay: 1
s2s_timeout: ${LAB_S2S_TIMEOUT:-5}
modules:
  mod_roster: {}
  mod_disco: {}
  mod_ping: {}
  mod_s2s_dialback: {}"
  [ -f "$dir/ejabberd.yml" ] || fed_ej_write "$dir" "xfejr$$" "$EJ_DOMAIN" "$listen" "$extra"
  FED_EJ_DIST_PORT=25997 fed_ej_start "$dir" "$EJ_ADDR" || return 1
  FED_EJR_PID=$FED_EJ_PID FED_EJR_PGID=$FED_EJ_PGID
  [ -f "$dir/.registered" ] || { fed_ej_register "$dir" user1 "$EJ_DOMAIN" pass1 && touch "$dir/.registered"; }
}
fed_ej_remote_stop() { fed_ej_stop "$FED_EJR_PID" "$FED_EJR_PGID"; FED_EJR_PID=""; }
fed_ej_remote_log() { echo "$LAB_DIR/remote/$EJ_NAME/log/ejabberd.log"; }
# fed_ej_remote_level SKIP DIR TENANT — from ejabberd's "Accepted inbound/outbound s2s
# MECH authentication FROM -> TO" lines: EXTERNAL = T, dialback = E (TLS is required)
fed_ej_remote_level() {
  local skip=$1 dir=$2 d=$3 pat line
  if [ "$dir" = out ]; then pat="Accepted inbound s2s [A-Za-z]* authentication $d -> $EJ_DOMAIN"
  else pat="Accepted outbound s2s [A-Za-z]* authentication $EJ_DOMAIN -> $d"; fi
  line=$(tail -n +"$((skip + 1))" "$(fed_ej_remote_log)" 2>/dev/null | grep -m1 -- "$pat")
  case "$line" in
    "") echo - ;;
    *EXTERNAL*) echo T ;;
    *dialback*) echo E ;;
    *) echo "?" ;;
  esac
}
# fed_ej_expect POLICY CERT DIR — an ejabberd of type 5: the matrix's type-5 column
fed_ej_expect() { expect "$1" "$2" "$3" 5; }

# shellcheck source=test_federation_matrix.sh
. "$HERE/test_federation_matrix.sh"
