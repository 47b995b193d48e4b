#!/usr/bin/env bash
# Installs every build and test dependency of xmppfront on Debian 12 or 13, at the
# versions Debian serves now: after one `apt-get update` it runs `apt-get install` on the
# whole list, which installs what is missing and upgrades what is older than the
# candidate — so CI on a long-lived machine tests against what a new user gets, never
# against stale libraries. Idempotent: a re-run changes nothing when all is current.
#
# Debian 12 ships mbedTLS 2.28; xmppfront needs 3.6 (TLS 1.3). Debian 13's packages of
# it install on 12 unchanged, so on 12 we fetch them with a private one-line sources
# list for trixie (the machine's own sources stay untouched) and dpkg -i them when the
# installed version differs. That list uses the mirror of the machine's own apt sources
# (deploy/debian-mirror.sh), so a local mirror or proxy keeps working.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

BUILD_PKGS=(build-essential cmake pkg-config clang libclang-rt-dev
            libuv1-dev libc-ares-dev libyajl-dev libcurl4-openssl-dev libexpat1-dev
            libcmocka-dev libhttp-parser-dev libsystemd-dev
            dpkg-dev python3)   # deploy/build-mbedtls.sh (-DXF_MBEDTLS_FROM_SOURCE=ON): dpkg-source, Debian's config.py
TEST_PKGS=(prosody ejabberd haproxy python3 python3-slixmpp python3-cryptography openssl testssl.sh sslscan
           iproute2 nftables procps psmisc netcat-openbsd curl ca-certificates util-linux
           knot knot-dnsutils unbound lua-unbound iptables   # tests/lab: its DNS (knot, unbound), Prosody's resolver; deploy/redirect/iptables-host.sh
           nginx    # tests/lab/test_posh_outbound.sh: the remote domains' POSH web server
           prometheus      # tests/integration/test_admin_metrics.sh: promtool and a real scrape
           podman buildah runc debootstrap   # test_container.sh: deploy/container/ (runc: crun refuses cgroup v1/hybrid hosts)
           python3-yaml man-db groff-base)   # test_k8s_sidecar.sh (manifest checks), test_install_man.sh
# tests/bench/run.sh: nginx's stream module as the side-by-side peer, OpenSSL headers for
# its load client.
BENCH_PKGS=(nginx libnginx-mod-stream libssl-dev)
# Test peers are started by the tests themselves; their system services must not hold
# the XMPP ports on a machine with systemd.
PEER_SERVICES=(prosody ejabberd haproxy nginx knot unbound prometheus)
# mbedTLS 3.6 as Debian 13 packages it (on Debian 12: fetched from trixie, see above).
MBEDTLS_PKGS=(libmbedcrypto16 libmbedx509-7 libmbedtls21 libmbedtls-dev)

. /etc/os-release
on_trixie_or_later=0
if [ "${VERSION_CODENAME:-}" = "trixie" ] || [ "${VERSION_ID:-0}" -ge 13 ] 2>/dev/null; then
  on_trixie_or_later=1
fi

ALL_PKGS=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${BENCH_PKGS[@]}")
[ "$on_trixie_or_later" = 1 ] && ALL_PKGS+=(libmbedtls-dev)

installed_version() { dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null |
                        awk '$3 == "installed" { print $4 }'; }

missing=()
for p in "${ALL_PKGS[@]}"; do
  [ -n "$(installed_version "$p")" ] || missing+=("$p")
done

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Shows only what changed ("Setting up <pkg> (<version>)"), the whole output on failure.
apt_quiet() {
  if ! $SUDO "$@" >"$log" 2>&1; then
    cat "$log" >&2; echo "install-deps: failed: $*" >&2; exit 1
  fi
  grep -E '^(Setting up|W:|E:)' "$log" | sed 's/^/  /' || true
}

echo "install-deps: apt-get update; install/upgrade ${#ALL_PKGS[@]} packages" \
     "(${#missing[@]} not installed yet)"
apt_quiet apt-get update -qq
apt_quiet apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "${ALL_PKGS[@]}"

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
if [ "$on_trixie_or_later" = 0 ]; then
  mirror=$(bash "$here/debian-mirror.sh")
  work=$(mktemp -d)
  trap 'rm -rf "$work" "$log"' EXIT
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
  echo "deb $mirror trixie main" > "$work/trixie.list"
  opts=(-o Dir::Etc::sourcelist="$work/trixie.list" -o Dir::Etc::sourceparts=-
        -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache"
        -o APT::Get::List-Cleanup=0)
  echo "install-deps: mbedTLS 3.6 from trixie via $mirror"
  chmod a+rx "$work"   # apt's _apt sandbox user downloads into it
  apt_quiet apt-get "${opts[@]}" update -qq
  (cd "$work" && apt-get "${opts[@]}" download -qq "${MBEDTLS_PKGS[@]}" >"$log" 2>&1) ||
    { cat "$log" >&2; echo "install-deps: cannot download ${MBEDTLS_PKGS[*]}" >&2; exit 1; }
  # Install only what differs from trixie's current version (idempotent re-runs).
  debs=()
  for deb in "$work"/*.deb; do
    pkg=$(dpkg-deb -f "$deb" Package); ver=$(dpkg-deb -f "$deb" Version)
    [ "$(installed_version "$pkg")" = "$ver" ] || debs+=("$deb")
  done
  if [ "${#debs[@]}" -gt 0 ]; then
    apt_quiet dpkg -i "${debs[@]}"
  fi
fi
have_mbedtls36 || { echo "install-deps: mbedTLS 3.6 is still missing" >&2; exit 1; }
echo "install-deps: all dependencies present and current"
