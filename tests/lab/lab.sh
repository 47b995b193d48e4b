# shellcheck shell=bash
# The federation lab: a private network namespace with its own DNS (knot, authoritative)
# and remote Prosody 0.12 servers of the six XEP-0238 peer types, each on an address of
# its own. Source it; don't run it. Needs root (netns) and the packages listed in
# tests/lab/README.md. Builds on tests/integration/lib.sh (temp dir, PID tracking, PKI,
# checks) and never touches the machine's /etc/resolv.conf or /etc/hosts.
#
#   . tests/lab/lab.sh
#   lab_init NAME                 xf_init + a trap that always runs lab_down (EXIT/INT/TERM)
#   lab_up                        netns $LAB_NS (xflab$$), lo up, /etc/netns/$LAB_NS/{resolv.conf,hosts}
#   lab_exec CMD...               run CMD inside the namespace (foreground)
#   lab_host NAME ADDR4 [ADDR6]   A/AAAA records for NAME and the addresses on the namespace's lo
#   lab_rr OWNER TYPE RDATA...    any other record (zone file syntax, TTL $LAB_TTL)
#   lab_xmpp_srv DOMAIN TARGET [PORT] [XMPPS_PORT]   _xmpp-server (and _xmpps-server) SRV
#   lab_remote NAME DOMAIN TYPE ADDR4 [ADDR6]  declare a remote Prosody of XEP-0238 type 1..6
#                                 (its certificate, config, users user1/pass1 user2/pass2, DNS)
#   lab_dns_start                 write the zone(s) from the records above, start knotd, wait;
#                                 LAB_DNSSEC=1: knot signs the zones (automatic ECDSA P-256 keys)
#                                 and a validating unbound, with the zones' KSKs as its only
#                                 trust anchors, becomes the namespace's resolver (AD bit);
#                                 zones in LAB_BOGUS_ZONES get a wrong anchor: their answers
#                                 are bogus, i.e. SERVFAIL from the resolver; zones in
#                                 LAB_INSECURE_ZONES get no anchor: insecure (no AD) when
#                                 delegated from a signed lab zone (no DS) or on their own;
#                                 the same anchors (DNSKEY lines) in $LAB_ANCHORS, for
#                                 validators of their own (libunbound's trustfile)
#   lab_remote_extra NAME LINES   more global Prosody settings for remote NAME (e.g. use_dane,
#                                 an unbound trustfile of $LAB_ANCHORS); before its start
#   lab_remote_start NAME... | lab_remotes_start   start (all in parallel), wait for the ports
#   lab_remote_stop NAME / lab_remote_restart NAME  (Prosody keeps s2s sessions: restart
#                                 between policy changes)
#   lab_backend_prosody DIR ADDR OWNER "DOMAINS"   the plaintext backend Prosody behind
#                                 xmppfront (config + users user1/pass1 user2/pass2 for each
#                                 domain, owned by OWNER); start it with xf_prosody_start
#   lab_backend_prosody_start DIR OWNER / lab_backend_prosody_wait DIR ADDR   run it
#   lab_user NAME                 a system user for a backend (created when missing)
#   lab_tlsa311 PEM / lab_tlsa_for DOMAIN RECORD   TLSA 3 1 1 of a certificate, at 5269+5270
#                                 (lab_spki_sha256 PEM: its data alone)
#   lab_web_write DIR LISTEN EXTRA / lab_web_start DIR   nginx for POSH documents
#   lab_xf_start CFG LOG / lab_xf_wait ADDR PORT LOG   xmppfront in the namespace
#   lab_xf_instance N ADDR HOSTING OUT_PORT   a second (third…) xmppfront's config dir
#   lab_redirect_uid UID TO_PORT [DPORTS]   nftables REDIRECT of UID's outgoing TCP inside
#                                 the namespace (the backend → xmppfront outbound path)
#   lab_xmpp ARGS...              tests/lab/lab_xmpp.py inside the namespace (many sends at once)
#   lab_send FROM TO [TIMEOUT]    user1@FROM -> user2@TO (remote names); 0 iff delivered
#   lab_xf_out_lines LOG TENANT REMOTE   xmppfront's lines about its stream TENANT -> REMOTE
#   lab_xf_in_lines LOG FROM      xmppfront's lines of every inbound connection from FROM
#   lab_down                      kill what the lab started (by PID), flush its nft tables,
#                                 delete the namespace and /etc/netns/$LAB_NS; idempotent
#   lab_leftovers                 prints what lab_down should have removed and did not
#
# Names and addresses: LAB_ZONES (default "example": every record's owner must end in one of
# them), LAB_DNS4/LAB_DNS6 (the DNS server's addresses, default 127.0.1.53 / fd00:1ab::53),
# LAB_RESOLVER4/6 (unbound with LAB_DNSSEC=1, default 127.0.1.54 / fd00:1ab::54),
# remote addresses are the caller's choice (127.0.1.x / fd00:1ab::x by convention).

LAB_DIR_SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../integration/lib.sh
. "$LAB_DIR_SELF/../integration/lib.sh"

LAB_NS=""
LAB_DIR=""
LAB_ZONES=${LAB_ZONES:-example}
LAB_DNS4=${LAB_DNS4:-127.0.1.53}
LAB_DNS6=${LAB_DNS6:-fd00:1ab::53}
LAB_RESOLVER4=${LAB_RESOLVER4:-127.0.1.54}
LAB_RESOLVER6=${LAB_RESOLVER6:-fd00:1ab::54}
LAB_DNSSEC=${LAB_DNSSEC:-0}
LAB_BOGUS_ZONES=${LAB_BOGUS_ZONES:-}  # subset of LAB_ZONES (with LAB_DNSSEC=1)
LAB_INSECURE_ZONES=${LAB_INSECURE_ZONES:-}  # subset of LAB_ZONES: no trust anchor (no AD)
LAB_TTL=${LAB_TTL:-60}
LAB_RUN_AS=${LAB_RUN_AS:-prosody}    # unprivileged user of the remote servers
LAB_RRS=()                           # "owner TYPE rdata" lines of the lab zone(s)
LAB_ADDRS=()                         # addresses put on the namespace's lo
LAB_REMOTES=()                       # names declared with lab_remote
LAB_NFT_TABLES=()                    # "family name" of nft tables made in the namespace
LAB_KNOT_PID=""
LAB_UNBOUND_PID=""
LAB_ANCHORS=""                       # lab_unbound_start: the zones' trust anchors (DNSKEY lines)
# shellcheck disable=SC2034  # for callers: the address in the namespace's resolv.conf
LAB_RESOLVER=""
declare -A LAB_R_DOMAIN LAB_R_TYPE LAB_R_ADDR4 LAB_R_ADDR6 LAB_R_PID LAB_R_EXTRA

lab_log() { xf_log "lab: $*"; }

# ---------------------------------------------------------------------------- lifecycle
lab_init() {
  xf_init "lab-${1:-lab}" || return 1
  LAB_DIR="$XF_TMP"
  trap lab_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# EXIT trap: the lab first (its processes live in the namespace), then lib.sh's cleanup
# (which removes the temp dir and exits with the test's status).
lab_cleanup() {
  local rc=$?
  lab_down
  (exit "$rc")
  xf_cleanup
}

lab_up() {
  [ "$(id -u)" -eq 0 ] || { lab_log "needs root (network namespace)"; return 1; }
  [ -n "$LAB_DIR" ] || { lab_log "call lab_init first"; return 1; }
  LAB_NS=${LAB_NS:-xflab$$}
  if ip netns list | awk '{print $1}' | grep -qx "$LAB_NS"; then
    lab_log "namespace $LAB_NS exists already"; LAB_NS=""; return 1
  fi
  ip netns add "$LAB_NS" || { LAB_NS=""; return 1; }
  echo "$LAB_NS" > "$LAB_DIR/netns"
  lab_exec ip link set lo up || return 1
  # ip netns exec bind-mounts every file of /etc/netns/NAME over /etc/NAME.
  mkdir -p "/etc/netns/$LAB_NS" || return 1
  lab_resolv_conf "$LAB_DNS4" || return 1
  printf '127.0.0.1 localhost\n::1 localhost\n' > "/etc/netns/$LAB_NS/hosts"
  lab_addr "$LAB_DNS4" && lab_addr "$LAB_DNS6"
}

# lab_resolv_conf ADDR — the namespace's /etc/resolv.conf (only the lab's copy).
lab_resolv_conf() {
  # shellcheck disable=SC2034  # read by callers
  LAB_RESOLVER=$1
  printf 'nameserver %s\noptions timeout:1 attempts:2\n' "$1" > "/etc/netns/$LAB_NS/resolv.conf"
}

# (a function: never background it with &, $! would be a subshell; background
# `ip netns exec "$LAB_NS" CMD &` instead, which execs, so that $! is CMD itself)
lab_exec() { ip netns exec "$LAB_NS" "$@"; }

# lab_addr ADDR — put ADDR (v4 or v6) on the namespace's lo (once).
lab_addr() {
  local a=$1 x
  for x in "${LAB_ADDRS[@]}"; do [ "$x" = "$a" ] && return 0; done
  case "$a" in
    *:*) lab_exec ip -6 addr add "$a/128" dev lo nodad ;;
    *)   lab_exec ip addr add "$a/32" dev lo ;;
  esac || { lab_log "cannot add $a"; return 1; }
  LAB_ADDRS+=("$a")
}

lab_down() {
  local i pid ns=$LAB_NS t
  [ -n "${LAB_DOWN_DONE:-}" ] && return 0
  # our own PIDs, newest first (the remotes and knot are in XF_PIDS too; they are stopped
  # here because the namespace must be empty before it goes)
  # (TERM to all first, so that they shut down in parallel; xf_stop_pid then waits, KILLs)
  for pid in "${XF_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for ((i = ${#XF_PIDS[@]} - 1; i >= 0; i--)); do xf_stop_pid "${XF_PIDS[$i]}" 5; done
  if [ -n "$ns" ] && ip netns list | awk '{print $1}' | grep -qx "$ns"; then
    # anything still in our namespace was started by us (nothing else knows the name)
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null; done
    for ((i = 0; i < 30; i++)); do [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break; sleep 0.1; done
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    for t in "${LAB_NFT_TABLES[@]}"; do
      # shellcheck disable=SC2086
      ip netns exec "$ns" nft delete table $t 2>/dev/null
    done
    ip netns del "$ns" 2>/dev/null || lab_log "could not delete namespace $ns"
  fi
  [ -n "$ns" ] && rm -rf "/etc/netns/$ns"
  LAB_NFT_TABLES=()
  LAB_DOWN_DONE=1
  return 0
}

# Prints one line per thing lab_down left behind; returns 1 if there is any.
lab_leftovers() {
  local ns=${1:-$LAB_NS} bad=0 pid n
  if ip netns list | awk '{print $1}' | grep -qx "$ns"; then echo "namespace $ns still exists"; bad=1; fi
  [ -e "/etc/netns/$ns" ] && { echo "/etc/netns/$ns still exists"; bad=1; }
  for pid in "${XF_PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null && ps -p "$pid" -o stat= 2>/dev/null | grep -qv Z; then
      echo "process $pid still runs: $(ps -p "$pid" -o args= 2>/dev/null)"; bad=1
    fi
  done
  # processes whose command line names the lab's temp dir (prosody --config, knotd -c)
  [ -n "$LAB_DIR" ] && for pid in $(pgrep -f -- "$LAB_DIR/" 2>/dev/null); do
    [ "$pid" = $$ ] && continue
    echo "process $pid still runs: $(ps -p "$pid" -o args= 2>/dev/null)"; bad=1
  done
  n=$(nft list tables 2>/dev/null | grep -c "xflab" || true)
  [ "$n" -gt 0 ] && { echo "host has $n nft tables named xflab*"; bad=1; }
  return $bad
}

# ---------------------------------------------------------------------------- ports
# lab_wait_port ADDR PORT TIMEOUT_S [PID [PROSODY_LOG]] — a TCP listener on ADDR:PORT inside
# the namespace; with PID, that process's own (a second server on a taken address fails
# here); gives up at once when PROSODY_LOG says a port could not be opened.
lab_wait_port() {
  local addr=$1 port=$2 t=${3:-10} pid=${4:-} plog=${5:-} i a=$1 want=.
  case "$addr" in *:*) a="[$addr]" ;; esac
  [ -n "$pid" ] && want="pid=$pid,"
  for ((i = 0; i < t * 10; i++)); do
    lab_exec ss -Hltnp "src $a:$port" 2>/dev/null | grep -q -- "$want" && return 0
    [ -n "$plog" ] && grep -qs 'Failed to open server port' "$plog" && return 3
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 2; fi
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------------------- DNS
lab_rr() { local o=$1 t=$2; shift 2; LAB_RRS+=("${o%.}. $t $*"); }

lab_host() {
  local name=$1 a4=$2 a6=${3:-}
  lab_rr "$name" A "$a4"; lab_addr "$a4" || return 1
  if [ -n "$a6" ]; then lab_rr "$name" AAAA "$a6"; lab_addr "$a6" || return 1; fi
}

# lab_xmpp_srv DOMAIN TARGET [PORT=5269] [XMPPS_PORT]  — RFC 6120 §3.2.1, XEP-0368
lab_xmpp_srv() {
  local d=$1 tgt=$2 p=${3:-5269} ps=${4:-}
  lab_rr "_xmpp-server._tcp.$d" SRV "0 5 $p ${tgt%.}."
  [ -n "$ps" ] && lab_rr "_xmpps-server._tcp.$d" SRV "0 5 $ps ${tgt%.}."
  return 0
}

# The zone a name belongs to (longest suffix in LAB_ZONES), or nothing.
lab_zone_of() {
  local n=${1%.} z best=""
  for z in $LAB_ZONES; do
    if [ "$n" = "$z" ] || [ "${n%".$z"}" != "$n" ]; then
      [ ${#z} -gt ${#best} ] && best=$z
    fi
  done
  printf '%s' "$best"
}

lab_dns_write() {
  local dir=$1 z rr owner
  mkdir -p "$dir/zones" "$dir/db" "$dir/run"
  for z in $LAB_ZONES; do
    {
      # shellcheck disable=SC2016  # zone file directives, not shell
      printf '$ORIGIN %s.\n$TTL %s\n' "$z" "$LAB_TTL"
      printf '@ SOA ns.%s. hostmaster.%s. 1 3600 600 86400 %s\n' "$z" "$z" "$LAB_TTL"
      printf '@ NS ns.%s.\nns A %s\nns AAAA %s\n' "$z" "$LAB_DNS4" "$LAB_DNS6"
    } > "$dir/zones/$z.zone"
  done
  # a lab zone inside another one is delegated from it (NS + glue, no DS: each lab zone has
  # its own trust anchor in unbound); without the cut, the parent's signed NSEC chain
  # would deny the child's names
  local p
  for z in $LAB_ZONES; do
    for p in $LAB_ZONES; do
      [ "$p" != "$z" ] && [ "${z%".$p"}" != "$z" ] && [ "$(lab_zone_of "${z#*.}")" = "$p" ] &&
        printf '%s. NS ns.%s.\nns.%s. A %s\nns.%s. AAAA %s\n' "$z" "$z" "$z" "$LAB_DNS4" "$z" "$LAB_DNS6" \
          >> "$dir/zones/$p.zone"
    done
  done
  for rr in "${LAB_RRS[@]}"; do
    owner=${rr%% *}
    z=$(lab_zone_of "$owner")
    [ -n "$z" ] || { lab_log "record outside LAB_ZONES ($LAB_ZONES): $rr"; return 1; }
    printf '%s\n' "$rr" >> "$dir/zones/$z.zone"
  done
  {
    cat <<EOF
server:
    rundir: "$dir/run"
    user: knot:knot
    listen: [ $LAB_DNS4@53, $LAB_DNS6@53 ]
control:
    listen: "$dir/run/knot.sock"
database:
    storage: "$dir/db"
log:
  - target: "$dir/knot.log"
    any: info
policy:
  - id: lab
    algorithm: ecdsap256sha256
    nsec3: off
template:
  - id: default
    storage: "$dir/zones"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    dnssec-signing: $([ "$LAB_DNSSEC" = 1 ] && echo on || echo off)
    dnssec-policy: lab
zone:
EOF
    for z in $LAB_ZONES; do printf '  - domain: %s\n    file: "%s.zone"\n' "$z" "$z"; done
  } > "$dir/knot.conf"
  chown -R knot:knot "$dir"
}

lab_dns_start() {
  local dir="$LAB_DIR/dns" i z
  lab_dns_write "$dir" || return 1
  knotc -c "$dir/knot.conf" conf-check >"$dir/conf-check.log" 2>&1 ||
    { lab_log "knot config invalid:"; cat "$dir/conf-check.log" >&2; return 1; }
  ip netns exec "$LAB_NS" knotd -c "$dir/knot.conf" >"$dir/knotd.stdout" 2>&1 &
  LAB_KNOT_PID=$!
  xf_track "$LAB_KNOT_PID"
  local want=SOA; [ "$LAB_DNSSEC" = 1 ] && want=DNSKEY
  for z in $LAB_ZONES; do
    for ((i = 0; i < 100; i++)); do
      lab_exec kdig +short +timeout=1 +retry=0 "@$LAB_DNS4" "$want" "$z." 2>/dev/null | grep -q . && break
      kill -0 "$LAB_KNOT_PID" 2>/dev/null || i=100
      sleep 0.1
    done
    if [ "$i" -ge 100 ]; then
      lab_log "knotd did not answer $want for $z"; tail -20 "$dir/knotd.stdout" "$dir/knot.log" >&2 2>/dev/null
      return 1
    fi
  done
  [ "$LAB_DNSSEC" = 1 ] || return 0
  lab_unbound_start
}

# A validating unbound in front of knot: a stub zone per lab zone, the zone's KSK
# (DNSKEY flags 257, read from knot) as its trust anchor, nothing else trusted (no root
# anchor: names outside the lab zones are not answered at all — there is no internet).
lab_unbound_start() {
  local dir="$LAB_DIR/resolver" z key i
  mkdir -p "$dir"
  : > "$dir/anchors"
  { lab_addr "$LAB_RESOLVER4" && lab_addr "$LAB_RESOLVER6"; } || return 1
  {
    cat <<EOF
server:
    username: "unbound"
    chroot: ""
    directory: "$dir"
    pidfile: "$dir/unbound.pid"
    logfile: "$dir/unbound.log"
    use-syslog: no
    do-daemonize: no
    verbosity: ${LAB_UNBOUND_VERBOSITY:-1}
    val-log-level: 2
    interface: $LAB_RESOLVER4
    interface: $LAB_RESOLVER6
    port: 53
    access-control: 127.0.0.0/8 allow
    access-control: fd00:1ab::/64 allow
    do-not-query-localhost: no
    module-config: "validator iterator"
    cache-max-ttl: 5
    cache-max-negative-ttl: 1
EOF
    for z in $LAB_ZONES; do
      key=$(lab_exec kdig +short +timeout=1 +retry=0 "@$LAB_DNS4" DNSKEY "$z." | awk '$1 == 257')
      [ -n "$key" ] || { lab_log "no KSK for $z"; return 1; }
      case " $LAB_BOGUS_ZONES " in
        *" $z "*) key="257 3 13 $(head -c 64 /dev/urandom | base64 -w0)" ;;  # not the zone's key
      esac
      printf '    local-zone: "%s." nodefault\n' "$z"
      case " $LAB_INSECURE_ZONES " in
        *" $z "*) ;;                         # no anchor: the unsigned delegation says insecure
        *) printf '    trust-anchor: "%s. DNSKEY %s"\n' "$z" "$key"
           printf '%s. DNSKEY %s\n' "$z" "$key" >> "$dir/anchors" ;;
      esac
    done
    for z in $LAB_ZONES; do
      printf 'stub-zone:\n    name: "%s."\n    stub-addr: %s\n' "$z" "$LAB_DNS4"
    done
  } > "$dir/unbound.conf" || return 1
  chown -R unbound:unbound "$dir"
  chmod 644 "$dir/anchors"
  # shellcheck disable=SC2034  # read by callers
  LAB_ANCHORS="$dir/anchors"
  unbound-checkconf "$dir/unbound.conf" >"$dir/checkconf.log" 2>&1 ||
    { lab_log "unbound config invalid:"; cat "$dir/checkconf.log" >&2; return 1; }
  ip netns exec "$LAB_NS" unbound -d -c "$dir/unbound.conf" >"$dir/unbound.stdout" 2>&1 &
  LAB_UNBOUND_PID=$!
  xf_track "$LAB_UNBOUND_PID"
  for z in $LAB_ZONES; do case " $LAB_BOGUS_ZONES $LAB_INSECURE_ZONES " in *" $z "*) ;; *) break ;; esac; done
  for ((i = 0; i < 100; i++)); do
    if lab_exec kdig +dnssec +timeout=1 +retry=0 "@$LAB_RESOLVER4" SOA "$z." 2>/dev/null |
       grep -q '^;; Flags: .* ad[ ;]'; then
      lab_resolv_conf "$LAB_RESOLVER4"
      return 0
    fi
    kill -0 "$LAB_UNBOUND_PID" 2>/dev/null || break
    sleep 0.1
  done
  lab_log "unbound did not validate $z"; tail -20 "$dir/unbound.stdout" "$dir/unbound.log" >&2 2>/dev/null
  return 1
}

# lab_dig ARGS... — kdig inside the namespace (default server: the namespace's resolver).
lab_dig() { lab_exec kdig +timeout=2 +retry=0 "$@"; }

# ---------------------------------------------------------------------------- PKI
# The lab CA ($LAB_DIR/pki/ca.pem), made on first use.
lab_ca() {
  [ -f "$LAB_DIR/pki/ca.pem" ] || xf_make_ca "$LAB_DIR/pki" "xmppfront lab CA"
}

# lab_self_signed OUT DOMAIN — OUT/{fullchain,privkey}.pem, self-signed, SAN = DOMAIN.
lab_self_signed() {
  local out=$1 d=$2
  mkdir -p "$out"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$out/privkey.pem" -out "$out/cert.pem" -days 30 -subj "/CN=$d" \
    -addext "subjectAltName=DNS:$d" -addext "basicConstraints=critical,CA:FALSE" \
    -addext "keyUsage=critical,digitalSignature" \
    -addext "extendedKeyUsage=serverAuth,clientAuth" >/dev/null 2>&1 ||
    { lab_log "self-signed certificate for $d failed"; return 1; }
  cp "$out/cert.pem" "$out/fullchain.pem"
}

# ---------------------------------------------------------------------------- remotes
# XEP-0238 §2 service types as Prosody 0.12 settings:
#   type  TLS  certificate  s2s_require_encryption  s2s_secure_auth  dialback
#   1     no   none         false                   false            yes
#   2     opt  self-signed  false                   false            yes
#   3     opt  lab CA       false                   false            yes
#   4     req  self-signed  true                    false            yes
#   5     req  lab CA       true                    false            yes
#   6     req  lab CA       true                    true             no (SASL EXTERNAL only)
# Every type trusts the lab CA (ssl.cafile) and only it.
lab_type_tls()     { [ "$1" -ge 2 ]; }
lab_type_cacert()  { case "$1" in 3|5|6) return 0 ;; esac; return 1; }
lab_type_reqenc()  { [ "$1" -ge 4 ]; }
lab_type_secure()  { [ "$1" -eq 6 ]; }
lab_type_dialback(){ [ "$1" -le 5 ]; }
lab_bool() { if "$@"; then echo true; else echo false; fi; }

# lab_remote NAME DOMAIN TYPE ADDR4 [ADDR6] — before lab_dns_start.
lab_remote() {
  local name=$1 d=$2 type=$3 a4=$4 a6=${5:-}
  local dir="$LAB_DIR/remote/$name"
  case "$type" in [1-6]) ;; *) lab_log "type must be 1..6: $type"; return 1 ;; esac
  LAB_REMOTES+=("$name")
  LAB_R_DOMAIN[$name]=$d LAB_R_TYPE[$name]=$type LAB_R_ADDR4[$name]=$a4 LAB_R_ADDR6[$name]=$a6
  mkdir -p "$dir/data" "$dir/certs"
  lab_ca || return 1
  cp "$LAB_DIR/pki/ca.pem" "$dir/ca.pem"
  if lab_type_cacert "$type"; then
    xf_make_cert "$LAB_DIR/pki" "$dir/pem" "$d" "$d" || return 1
  elif lab_type_tls "$type"; then
    lab_self_signed "$dir/pem" "$d" || return 1
  fi
  if lab_type_tls "$type"; then
    cp "$dir/pem/fullchain.pem" "$dir/certs/$d.crt"
    cp "$dir/pem/privkey.pem" "$dir/certs/$d.key"
  fi
  lab_host "$d" "$a4" "$a6" || return 1
  if lab_type_tls "$type"; then lab_xmpp_srv "$d" "$d" 5269 5270; else lab_xmpp_srv "$d" "$d" 5269; fi
  mkdir -p "$dir/plugins"
  cp "$LAB_DIR_SELF/prosody-modules/mod_lab_s2s_log.lua" "$dir/plugins/"
  lab_remote_config "$name" > "$dir/prosody.cfg.lua"
  # Accounts in Prosody's internal_plain store (data/<host, %-escaped>/accounts/<user>.dat):
  # written directly, which is instant (prosodyctl register costs ~1 s per account).
  local hd u
  hd=$(printf '%s' "$d" | sed -e 's/%/%25/g' -e 's/\./%2e/g' -e 's/-/%2d/g')
  mkdir -p "$dir/data/$hd/accounts"
  for u in 1 2; do
    printf 'return {\n\t["password"] = "pass%s";\n};\n' "$u" > "$dir/data/$hd/accounts/user$u.dat"
  done
  chown -R "$LAB_RUN_AS:" "$dir"
  chmod 700 "$dir"
}

lab_remote_config() {
  local name=$1 d=${LAB_R_DOMAIN[$1]} t=${LAB_R_TYPE[$1]} a4=${LAB_R_ADDR4[$1]} a6=${LAB_R_ADDR6[$1]}
  local dir="$LAB_DIR/remote/$name" ifs="\"$a4\"" mods='"dialback";' dis="" dtls=""
  [ -n "$a6" ] && ifs="$ifs, \"$a6\""
  lab_type_dialback "$t" || { mods=""; dis='"dialback";'; }
  if lab_type_tls "$t"; then mods="$mods \"tls\";"; dtls=5270; else dis="$dis \"tls\";"; fi
  local dbg=""
  [ "${LAB_DEBUG:-0}" = 1 ] && dbg="    { levels = { min = \"debug\" }, to = \"file\", filename = \"$dir/debug.log\" };"
  cat <<EOF
-- Lab remote "$name": XEP-0238 type $t ($d). Generated by tests/lab/lab.sh.
pidfile = "$dir/prosody.pid"
data_path = "$dir/data"
log = {
    { levels = { min = "info" }, to = "file", filename = "$dir/prosody.log" };
$dbg
}
interfaces = { $ifs }
local_interfaces = { $ifs }
c2s_ports = { 5222 }
s2s_ports = { 5269 }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { $dtls }
http_ports = { }
https_ports = { }
component_ports = { }

-- lab_s2s_log (tests/lab/prosody-modules): one "lab-s2s" info line per authenticated stream
plugin_paths = { "$dir/plugins" }
modules_enabled = { "roster"; "saslauth"; "disco"; "ping"; "lab_s2s_log"; $mods }
modules_disabled = { $dis }

-- the lab CA is the only trust anchor (RFC 6125 checks of s2s peers use it)
ssl = { cafile = "$dir/ca.pem" }
certificates = "$dir/certs"
-- resolution: libunbound (lua-unbound) reads /etc/resolv.conf, i.e. the lab DNS
$(case "${LAB_R_EXTRA[$name]:-}" in *"unbound ="*) ;; *) echo 'unbound = { resolvconf = true, hoststxt = true }' ;; esac)

s2s_require_encryption = $(lab_bool lab_type_reqenc "$t")
s2s_secure_auth = $(lab_bool lab_type_secure "$t")
-- an s2s stream not authenticated within this many seconds is dropped and its stanzas
-- bounced (remote-server-timeout); Prosody's default is 90
s2s_timeout = ${LAB_S2S_TIMEOUT:-5}
-- users log in over plaintext c2s on the lab's loopback
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
allow_registration = false
${LAB_R_EXTRA[$name]:-}

VirtualHost "$d"
EOF
}

# lab_remote_extra NAME LINES — LINES (Prosody config, global section) for remote NAME,
# after lab.sh's own settings; rewrites its config. Prosody refuses an option set twice:
# LINES may set `unbound = …` (lab.sh's own line is then left out), no other lab.sh option.
lab_remote_extra() {
  local dir="$LAB_DIR/remote/$1"
  [ -f "$dir/prosody.cfg.lua" ] || { lab_log "no remote $1"; return 1; }
  LAB_R_EXTRA[$1]=$2
  lab_remote_config "$1" > "$dir/prosody.cfg.lua" && chown "$LAB_RUN_AS:" "$dir/prosody.cfg.lua"
}

lab_remote_start() {
  local name n dir
  for name in "$@"; do
    dir="$LAB_DIR/remote/$name"
    [ -f "$dir/prosody.cfg.lua" ] || { lab_log "no remote $name"; return 1; }
    xf_as_prosody_init "$dir"
    if [ "$LAB_RUN_AS" != prosody ] && [ "$(id -u)" -eq 0 ]; then
      XF_AS_PROSODY=(setpriv --reuid="$LAB_RUN_AS" --regid="$LAB_RUN_AS" --init-groups -- env HOME="$dir")
    fi
    ip netns exec "$LAB_NS" "${XF_AS_PROSODY[@]}" prosody --config "$dir/prosody.cfg.lua" >"$dir/prosody.stdout" 2>&1 &
    LAB_R_PID[$name]=$!
    xf_track $!
  done
  for name in "$@"; do
    local a=${LAB_R_ADDR4[$name]} pid=${LAB_R_PID[$name]}
    dir="$LAB_DIR/remote/$name"
    for n in 5222 5269; do
      if ! lab_wait_port "$a" "$n" 20 "$pid" "$dir/prosody.log"; then
        lab_log "remote $name did not listen on $a:$n"
        tail -20 "$dir/prosody.stdout" "$dir/prosody.log" >&2 2>/dev/null
        return 1
      fi
    done
  done
}
lab_remotes_start() { lab_remote_start "${LAB_REMOTES[@]}"; }

lab_remote_stop() {
  local name
  for name in "$@"; do xf_stop_pid "${LAB_R_PID[$name]:-}" 5; LAB_R_PID[$name]=""; done
}
lab_remote_restart() { lab_remote_stop "$@" && lab_remote_start "$@"; }

# lab_remote_c2s NAME — "ADDR4:5222" of its c2s (plaintext, PLAIN allowed).
lab_remote_c2s() { printf '%s:5222' "${LAB_R_ADDR4[$1]}"; }

# ---------------------------------------------------------------------------- netfilter
# lab_backend_prosody DIR ADDR OWNER "DOMAINS" — the plaintext backend Prosody behind
# xmppfront: the settings of deploy/prosody/backend-s2s.cfg.lua (TLS off, dialback on,
# plaintext s2s accepted), c2s 5222 and s2s 5269 on ADDR, resolving through the lab DNS,
# mod_lab_s2s_log loaded, s2s_timeout LAB_S2S_TIMEOUT (5); users user1/pass1, user2/pass2
# on every domain. DIR is owned by OWNER (mode 700): Prosody refuses to run as root, and
# the redirect rule catches that user's connections only. LAB_DEBUG=1 adds debug.log.
lab_backend_prosody() {
  local dir=$1 addr=$2 owner=$3 domains=$4 d hd u dbg=""
  mkdir -p "$dir/data" "$dir/plugins" || return 1
  cp "$LAB_DIR_SELF/prosody-modules/mod_lab_s2s_log.lua" "$dir/plugins/" || return 1
  [ "${LAB_DEBUG:-0}" = 1 ] && dbg="    { levels = { min = \"debug\" }, to = \"file\", filename = \"$dir/debug.log\" };"
  cat > "$dir/prosody.cfg.lua" <<EOF
-- Backend behind xmppfront (tests/lab/lab.sh lab_backend_prosody); s2s part as in
-- deploy/prosody/backend-s2s.cfg.lua.
pidfile = "$dir/prosody.pid"
data_path = "$dir/data"
log = {
    { levels = { min = "info" }, to = "file", filename = "$dir/prosody.log" };
$dbg
}
interfaces = { "$addr" }
local_interfaces = { "$addr" }
c2s_ports = { 5222 }
s2s_ports = { 5269 }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
http_ports = { }
https_ports = { }
component_ports = { }
plugin_paths = { "$dir/plugins" }
modules_enabled = { "roster"; "saslauth"; "disco"; "ping"; "dialback"; "lab_s2s_log" }
modules_disabled = { "tls" }
s2s_require_encryption = false
s2s_secure_auth = false
s2s_timeout = ${LAB_S2S_TIMEOUT:-5}
unbound = { resolvconf = true, hoststxt = true }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_plain"
storage = "internal"
allow_registration = false
EOF
  for d in $domains; do
    printf 'VirtualHost "%s"\n' "$d" >> "$dir/prosody.cfg.lua"
    hd=$(printf '%s' "$d" | sed -e 's/%/%25/g' -e 's/\./%2e/g' -e 's/-/%2d/g')
    mkdir -p "$dir/data/$hd/accounts"
    for u in 1 2; do
      printf 'return {\n\t["password"] = "pass%s";\n};\n' "$u" > "$dir/data/$hd/accounts/user$u.dat"
    done
  done
  chown -R "$owner:" "$dir" && chmod 700 "$dir"
}

# lab_user NAME — a system user for a backend (created when missing: no home, no shell);
# the redirect rule matches its uid, so it must not be the remotes' user.
lab_user() {
  id -u "$1" >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$1"
}

# lab_tlsa311 PEM — "3 1 1 <sha256 of the SPKI>" of the first certificate in PEM (RFC 7671
# §5.1); lab_tlsa_for DOMAIN RECORD — the record at both ports its SRV names (5269
# STARTTLS, 5270 direct TLS).
lab_spki_sha256() {
  openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1
}
lab_tlsa311() { printf '3 1 1 %s' "$(lab_spki_sha256 "$1")"; }
lab_tlsa_for() { lab_rr "_5269._tcp.$1" TLSA "$2"; lab_rr "_5270._tcp.$1" TLSA "$2"; }

# lab_backend_prosody_start DIR OWNER — start the backend written by lab_backend_prosody
# inside the namespace as OWNER (tracked; its PID in LAB_BK_PID);
# lab_backend_prosody_wait DIR ADDR — wait for its c2s and s2s ports (0, or 1 with its
# logs on stderr).
lab_backend_prosody_start() {
  ip netns exec "$LAB_NS" setpriv --reuid="$2" --regid="$2" --clear-groups -- \
    env HOME="$1" prosody --config "$1/prosody.cfg.lua" >"$1/prosody.stdout" 2>&1 &
  LAB_BK_PID=$!
  xf_track "$LAB_BK_PID"
}
lab_backend_prosody_wait() {
  local p
  for p in 5222 5269; do
    lab_wait_port "$2" "$p" 20 "$LAB_BK_PID" "$1/prosody.log" ||
      { tail -20 "$1/prosody.stdout" "$1/prosody.log" >&2; return 1; }
  done
}

# lab_web_write DIR "LISTEN LINES" "EXTRA LINES" — an nginx configuration for the lab's
# HTTPS side (POSH documents): DIR/cert/{fullchain,privkey}.pem (the caller makes it),
# documents under DIR/root/HOST/, the access log DIR/logs/access.log as
# "msec host uri status"; LISTEN LINES default "listen 443 ssl;", EXTRA LINES go into the
# server block (rate limits, redirects). lab_web_start DIR — run it inside the namespace
# (tracked; its PID in LAB_WEB_PID).
lab_web_write() {
  local dir=$1 listen=${2:-"listen 443 ssl;"} extra=${3:-}
  mkdir -p "$dir/logs" "$dir/root" || return 1
  cat > "$dir/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log info;
events { worker_connections 128; }
http {
  log_format posh '\$msec \$host \$request_uri \$status';
  access_log $dir/logs/access.log posh;
  types { application/json json; }
  default_type application/octet-stream;
  server {
    $listen
    server_name _;
    ssl_certificate $dir/cert/fullchain.pem;
    ssl_certificate_key $dir/cert/privkey.pem;
    root $dir/root/\$host;
    $extra
  }
}
EOF
}
lab_web_start() {
  ip netns exec "$LAB_NS" "${NGINX:-/usr/sbin/nginx}" -p "$1/" -e "$1/logs/error.log" \
    -c "$1/nginx.conf" >"$1/logs/stdout" 2>&1 &
  LAB_WEB_PID=$!
  xf_track "$LAB_WEB_PID"
}

# lab_xf_start CFG LOG — xmppfront ($XF_BIN) inside the namespace, stderr to LOG (tracked;
# its PID in LAB_XF_PID); lab_xf_wait ADDR PORT LOG — wait until it listens on ADDR:PORT
# (0, or 1 with the end of LOG on stderr).
lab_xf_start() {
  ip netns exec "$LAB_NS" "$XF_BIN" -c "$1" 2>>"$2" &
  LAB_XF_PID=$!
  xf_track "$LAB_XF_PID"
}
lab_xf_wait() {
  lab_wait_port "$1" "$2" 10 "$LAB_XF_PID" || { tail -5 "$3" >&2; return 1; }
}

# lab_xf_instance N ADDR HOSTING OUT_PORT — an xmppfront of its own in $LAB_DIR/xfN:
# a self-signed hosting identity HOSTING (certs/hosting), an empty tenants folder, s2s
# listeners 5269 (STARTTLS) and 5270 (direct) on ADDR, the transparent outbound listener
# 127.0.0.1:OUT_PORT, the lab CA and the lab's resolver; HOSTING's A record -> ADDR.
lab_xf_instance() {
  local addr=$2 host=$3 out=$4 dir="$LAB_DIR/xf$1"
  mkdir -p "$dir/tenants" && lab_self_signed "$dir/certs/hosting" "$host" || return 1
  cat > "$dir/xmppfront.json" <<EOF
{
  "workers": 1,
  "tenants": "tenants",
  "log_level": "info",
  "hosting": {"name": "$host", "certificate": "certs/hosting/fullchain.pem", "key": "certs/hosting/privkey.pem"},
  "listeners": [$(xf_listener "$addr" 5269 starttls server), $(xf_listener "$addr" 5270 direct server),
    {"address": "127.0.0.1", "port": $out, "tls": "none", "service": "outbound", "transparent": true}],
  "limits": { "handshake_timeout_s": 10, "backend_timeout_s": 5, "auth_timeout_s": 20, "drain_timeout_s": 0 },
  "federation": {
    "ca_file": "$LAB_DIR/pki/ca.pem",
    "resolvers": ["$LAB_RESOLVER4"],
    "connect_timeout_s": 4,
    "negotiation_timeout_s": ${LAB_S2S_TIMEOUT:-5}
  }
}
EOF
  lab_host "$host" "$addr"
}

# lab_redirect_uid UID TO_PORT [DPORTS] — inside the namespace, TCP that processes of UID
# open (to DPORTS, default any) is redirected to 127.0.0.1:TO_PORT (nftables nat output
# hook: the backend's outgoing s2s → xmppfront's transparent outbound listener). The table
# (ip xflab_redirect) goes with lab_down. REDIRECT of locally generated packets rewrites
# the destination to 127.0.0.1; the original one stays readable (SO_ORIGINAL_DST).
lab_redirect_uid() {
  local uid=$1 to=$2 dports=${3:-} match=""
  [ -n "$dports" ] && match="tcp dport { $dports }"
  local t="ip xflab_redirect"
  lab_exec nft -f - <<EOF || return 1
table $t {
  chain output {
    type nat hook output priority -100; policy accept;
    meta l4proto tcp meta skuid $uid $match redirect to :$to
  }
}
EOF
  LAB_NFT_TABLES+=("$t")
}

# ---------------------------------------------------------------------------- clients
lab_xmpp() { timeout "${LAB_CLIENT_TIMEOUT:-60}" ip netns exec "$LAB_NS" "$XF_PY" "$LAB_DIR_SELF/lab_xmpp.py" "$@"; }

# lab_account NAME USER — "JID PASS HOST PORT" for lab_xmpp --account (four words: use it
# unquoted).
lab_account() { printf '%s@%s pass%s %s 5222' "$2" "${LAB_R_DOMAIN[$1]}" "${2#user}" "${LAB_R_ADDR4[$1]}"; }

# ---------------------------------------------------------------------------- xmppfront's log
# lab_xf_out_lines LOG TENANT REMOTE — the lines of xmppfront's log LOG about its outbound
# stream TENANT -> REMOTE (its "remote T->R" and "outbound ... tenant=T remote=R" lines).
lab_xf_out_lines() {
  grep -a -e "$2->$3[: ]" -e "tenant=\"$2\" remote=\"$3\"" "$1"
}

# lab_xf_in_lines LOG FROM — every line of each inbound connection (conn id=N) of LOG whose
# proofs, refusal or authenticated line names the peer domain FROM.
lab_xf_in_lines() {
  local id
  for id in $(grep -a -E "s2s (inbound proofs peer=[^ ]+ from=$2 |refused .* remote=\"?$2\"? |authenticated .* remote=$2\$)" "$1" |
              sed -E 's/.*conn id=([0-9]+) .*/\1/' | sort -u); do
    grep -a "conn id=$id " "$1"
  done
}

# lab_send FROM_REMOTE TO_REMOTE [TIMEOUT_S] — user1@FROM sends user2@TO one message;
# prints lab_xmpp's RESULT line; 0 only when it was delivered.
lab_send() {
  local out
  # shellcheck disable=SC2046  # lab_account prints four words on purpose
  out=$(lab_xmpp --account $(lab_account "$1" user1) --account $(lab_account "$2" user2) \
    --send "user1@${LAB_R_DOMAIN[$1]}" "user2@${LAB_R_DOMAIN[$2]}" --timeout "${3:-15}")
  echo "$out"
  grep -q '^RESULT .* delivered ' <<< "$out"
}
