#!/bin/sh
# xmppfront: the backend's outgoing s2s -> xmppfront's transparent outbound listener, with
# iptables (for hosts without nftables; same rule as nftables-host.nft, read that file's
# header for what is and is not redirected and why).
#
#   BACKEND_UID=$(id -u prosody) sh iptables-host.sh add      # or: delete | show
#
# Environment:
#   BACKEND_UID     the backend's uid (required)
#   OUTBOUND_PORT   xmppfront's outbound listener port (default 15269; IPv4 lands on
#                   127.0.0.1, IPv6 on [::1]: give xmppfront a listener on both)
#   BYPASS4 / BYPASS6   space-separated addresses/prefixes of non-XMPP TCP services the
#                   backend uses on other hosts (database, LDAP ...), never redirected
#   IPV6            0 to leave ip6tables alone (default: use it when present)
# Idempotent: "add" replaces the chain XMPPFRONT_REDIRECT and hooks it once into OUTPUT.
# Persist with iptables-save / netfilter-persistent, or run it from a systemd unit
# ordered before the backend.
set -eu
action=${1:-add}
uid=${BACKEND_UID:?set BACKEND_UID to the uid of the XMPP backend (id -u prosody)}
port=${OUTBOUND_PORT:-15269}
chain=XMPPFRONT_REDIRECT

one_family() {   # one_family IPTABLES LOOPBACK BYPASS
  ipt=$1 lo=$2 bypass=$3
  hook="-p tcp -m owner --uid-owner $uid -j $chain"
  case "$action" in
    delete)
      # shellcheck disable=SC2086
      while $ipt -t nat -C OUTPUT $hook 2>/dev/null; do $ipt -t nat -D OUTPUT $hook; done
      $ipt -t nat -F "$chain" 2>/dev/null || true
      $ipt -t nat -X "$chain" 2>/dev/null || true
      ;;
    add)
      $ipt -t nat -N "$chain" 2>/dev/null || $ipt -t nat -F "$chain"
      $ipt -t nat -A "$chain" -d "$lo" -j RETURN               # the proxy, the backend's own ports
      $ipt -t nat -A "$chain" -p tcp --dport 53 -j RETURN      # DNS over TCP
      for b in $bypass; do $ipt -t nat -A "$chain" -d "$b" -j RETURN; done
      $ipt -t nat -A "$chain" -p tcp -j REDIRECT --to-ports "$port"
      # shellcheck disable=SC2086
      $ipt -t nat -C OUTPUT $hook 2>/dev/null || $ipt -t nat -A OUTPUT $hook
      ;;
    show)
      $ipt -t nat -S OUTPUT; $ipt -t nat -S "$chain" 2>/dev/null || true
      ;;
    *) echo "usage: BACKEND_UID=N $0 add|delete|show" >&2; exit 2 ;;
  esac
}

one_family iptables 127.0.0.0/8 "${BYPASS4:-}"
if [ "${IPV6:-1}" != 0 ] && command -v ip6tables >/dev/null 2>&1; then
  one_family ip6tables ::1/128 "${BYPASS6:-}"
fi
