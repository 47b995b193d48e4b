#!/usr/bin/env bash
# Installs every build and test dependency of xmppfront on Debian 12 or 13.
# Idempotent: re-running it installs only what is missing.
#
# Debian 12 ships mbedTLS 2.28; xmppfront needs 3.6 (TLS 1.3). Debian 13's packages of
# it install on 12 unchanged, so on 12 we fetch them with a private one-line sources
# list (the machine's own sources stay untouched) and dpkg -i them.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

BUILD_PKGS=(build-essential cmake pkg-config clang libclang-rt-dev
            libuv1-dev libc-ares-dev libyajl-dev libcurl4-openssl-dev libexpat1-dev
            libcmocka-dev)
TEST_PKGS=(prosody ejabberd haproxy python3 python3-slixmpp openssl testssl.sh sslscan
           iproute2 nftables procps psmisc netcat-openbsd curl ca-certificates util-linux
           knot knot-dnsutils unbound lua-unbound iptables)   # tests/lab: its DNS (knot, unbound), Prosody's resolver; deploy/redirect/iptables-host.sh
# tests/bench/run.sh: nginx's stream module as the side-by-side peer, OpenSSL headers for
# its load client.
BENCH_PKGS=(nginx libnginx-mod-stream libssl-dev)
# Test peers are started by the tests themselves; their system services must not hold
# the XMPP ports on a machine with systemd.
PEER_SERVICES=(prosody ejabberd haproxy nginx knot unbound)

missing=()
for p in "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${BENCH_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ "${#missing[@]}" -gt 0 ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  for svc in "${PEER_SERVICES[@]}"; do
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  done
fi

# mbedTLS 3.6: present when the 3.x headers declare TLS 1.3 support.
have_mbedtls36() {
  [ -f /usr/include/mbedtls/build_info.h ] &&
    grep -q 'MBEDTLS_VERSION_MAJOR  *3' /usr/include/mbedtls/build_info.h &&
    grep -Eq 'MBEDTLS_VERSION_MINOR  *([6-9]|[1-9][0-9])' /usr/include/mbedtls/build_info.h
}
if ! have_mbedtls36; then
  . /etc/os-release
  if [ "${VERSION_CODENAME:-}" = "trixie" ] || [ "${VERSION_ID:-0}" -ge 13 ] 2>/dev/null; then
    $SUDO apt-get install -y -qq --no-install-recommends libmbedtls-dev
  else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
    echo "deb http://deb.debian.org/debian trixie main" > "$work/trixie.list"
    opts=(-o Dir::Etc::sourcelist="$work/trixie.list" -o Dir::Etc::sourceparts=-
          -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache"
          -o APT::Get::List-Cleanup=0)
    $SUDO apt-get "${opts[@]}" update -qq
    (cd "$work" && apt-get "${opts[@]}" download \
        libmbedcrypto16 libmbedx509-7 libmbedtls21 libmbedtls-dev)
    $SUDO dpkg -i "$work"/*.deb
  fi
fi
have_mbedtls36 || { echo "install-deps: mbedTLS 3.6 is still missing" >&2; exit 1; }
echo "install-deps: all dependencies present"
