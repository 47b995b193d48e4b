#!/bin/sh
# xmppfront in a Kubernetes pod: init-container script that redirects the backend
# container's outgoing s2s to the xmppfront sidecar, inside the pod's network namespace
# (the way service meshes install their redirect). All containers of a pod share one
# network namespace, so a rule set up here before the containers start applies to them;
# it matches the backend container's uid (its securityContext.runAsUser), so xmppfront
# (another uid) connects out normally. Same rule as nftables-host.nft (see its header).
#
# The init container needs the NET_ADMIN capability (and NET_RAW for iptables) and
# nftables or iptables in its image; see deploy/kubernetes/xmppfront-sidecar.yaml.
#
# Environment:
#   XF_BACKEND_UID     the backend container's runAsUser (required)
#   XF_OUTBOUND_PORT   the sidecar's outbound listener (default 15269, on 127.0.0.1 and ::1)
#   XF_BYPASS4 / XF_BYPASS6   space-separated addresses/prefixes of non-XMPP services the
#                      backend reaches over TCP (database, the cluster's service range if the
#                      backend talks to other services ...): never redirected
#   XF_REDIRECT_TOOL   nft | iptables (default: nft when present)
set -eu
uid=${XF_BACKEND_UID:?set XF_BACKEND_UID to the runAsUser of the backend container}
port=${XF_OUTBOUND_PORT:-15269}
tool=${XF_REDIRECT_TOOL:-}
if [ -z "$tool" ]; then
  if command -v nft >/dev/null 2>&1; then tool=nft; else tool=iptables; fi
fi
case "$uid$port" in *[!0-9]*) echo "pod-init: uid and port must be numbers" >&2; exit 2 ;; esac

elements() { # "a b c" -> "elements = { a, b, c }" (or nothing)
  [ -n "$1" ] || return 0
  printf 'elements = { %s }' "$(echo "$1" | tr -s ' ' '\n' | grep . | paste -sd, - | sed 's/,/, /g')"
}

if [ "$tool" = nft ]; then
  nft delete table inet xmppfront_redirect 2>/dev/null || true
  nft -f - <<NFT
table inet xmppfront_redirect {
  set bypass4 { type ipv4_addr; flags interval; $(elements "${XF_BYPASS4:-}") }
  set bypass6 { type ipv6_addr; flags interval; $(elements "${XF_BYPASS6:-}") }
  chain output {
    type nat hook output priority -100; policy accept;
    meta skuid != $uid return
    meta l4proto != tcp return
    ip daddr 127.0.0.0/8 return
    ip6 daddr ::1 return
    tcp dport 53 return
    ip daddr @bypass4 return
    ip6 daddr @bypass6 return
    meta l4proto tcp redirect to :$port
  }
}
NFT
  nft list table inet xmppfront_redirect
else
  here=$(dirname "$0")
  if [ -f "$here/iptables-host.sh" ]; then
    BACKEND_UID=$uid OUTBOUND_PORT=$port BYPASS4=${XF_BYPASS4:-} BYPASS6=${XF_BYPASS6:-} \
      sh "$here/iptables-host.sh" add
    BACKEND_UID=$uid sh "$here/iptables-host.sh" show
  else
    echo "pod-init: no nft and no iptables-host.sh next to this script" >&2; exit 1
  fi
fi
echo "pod-init: TCP of uid $uid (except loopback, DNS, bypass) -> port $port ($tool)"
