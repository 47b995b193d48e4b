#!/usr/bin/env bash
# Builds the base image of deploy/container/Containerfile without any container registry:
# a Debian 13 (trixie) "slim" root made by debootstrap from this machine's own Debian
# mirror (deploy/debian-mirror.sh), imported into podman's local storage and tagged.
#
#   deploy/container/build-base.sh [--refresh] [--tag NAME] [--rootfs-only]
#
#   --tag NAME     image name (default localhost/debian:trixie-slim)
#   --refresh      debootstrap again instead of reusing the cached tarball
#   --rootfs-only  make (or reuse) the tarball and print its path; no podman
#
# Contract:
#   - debootstrap --variant=minbase trixie (the Essential and Required packages, apt),
#     sources for trixie, trixie-updates and trixie-security on the machine's mirrors;
#   - "slim" as Docker's debian:*-slim: a dpkg.cfg.d file that keeps documentation, man
#     pages and locales out of every package installed later (copyright files stay), and
#     what debootstrap already installed of them deleted; apt lists and .debs removed;
#   - an apt.conf.d file: no recommends, no suggests (the images stay small);
#   - the tarball is cached as $XF_CONTAINER_CACHE/trixie-slim-rootfs.tar.gz (default
#     /var/cache/xmppfront-test) and reused unless --refresh: debootstrap takes minutes,
#     the import seconds;
#   - `podman import` with CMD ["/bin/bash"] and tag NAME, unless NAME is already the
#     import of this tarball (label org.xmppfront.rootfs: its mtime and size), so that
#     podman's build cache stays valid. Exit status 0 on success.
# Needs root (debootstrap). Never modifies the host's apt sources.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
tag=localhost/debian:trixie-slim refresh=0 rootfs_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) tag=${2:?--tag NAME}; shift ;;
    --refresh) refresh=1 ;;
    --rootfs-only) rootfs_only=1 ;;
    *) sed -n '5,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
  shift
done
log() { printf 'build-base: %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "must run as root (debootstrap)"; exit 2; }
# shellcheck source=../debian-mirror.sh
. "$here/deploy/debian-mirror.sh"
cache=${XF_CONTAINER_CACHE:-/var/cache/xmppfront-test}
tarball="$cache/trixie-slim-rootfs.tar.gz"
mkdir -p "$cache"
exec 9>"$cache/trixie-slim.lock"
flock 9

if [ "$refresh" = 1 ] || [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  # The archive of the machine's own release serves trixie too (on Debian 12 as on 13).
  mirror=$(xf_debian_mirror)
  sec=$(xf_debian_mirror --security)
  tmp=$(mktemp -d "$cache/rootfs.XXXXXX")
  chmod 755 "$tmp"
  log "debootstrap trixie from $mirror (a few minutes)"
  if ! debootstrap --variant=minbase trixie "$tmp" "$mirror" >"$tmp.log" 2>&1; then
    tail -20 "$tmp.log" >&2; rm -rf "$tmp" "$tmp.log"; log "debootstrap failed"; exit 2
  fi
  rm -f "$tmp.log"
  cat >"$tmp/etc/apt/sources.list" <<SRC
deb $mirror trixie main
deb $mirror trixie-updates main
deb $sec trixie-security main
SRC
  cat >"$tmp/etc/dpkg/dpkg.cfg.d/slim" <<'SLIM'
# as Docker's debian:*-slim: no documentation, man pages or locales (copyright files stay)
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
SLIM
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$tmp/etc/apt/apt.conf.d/90slim"
  find "$tmp/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
  rm -rf "$tmp"/usr/share/man/* "$tmp"/usr/share/info/* "$tmp"/usr/share/groff/* "$tmp"/usr/share/lintian/*
  find "$tmp/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*_* "$tmp"/var/log/*.log
  : >"$tmp/etc/machine-id"
  tar -C "$tmp" --numeric-owner -czpf "$tarball.new" .
  mv "$tarball.new" "$tarball"
  rm -rf "$tmp"
  log "rootfs cached: $tarball ($(du -h "$tarball" | cut -f1))"
fi
if [ "$rootfs_only" = 1 ]; then echo "$tarball"; exit 0; fi
command -v podman >/dev/null || { log "podman is not installed (apt-get install podman buildah)"; exit 2; }
# Imported again only when the tarball changed: a new import is a new image ID, which
# would invalidate every build cache layer on top of it.
stamp="$(stat -c %Y "$tarball")-$(stat -c %s "$tarball")"
if [ "$(podman image inspect --format '{{index .Config.Labels "org.xmppfront.rootfs"}}' "$tag" 2>/dev/null)" = "$stamp" ]; then
  log "$tag is the import of $tarball already"
else
  podman import --change 'CMD ["/bin/bash"]' --change "LABEL org.xmppfront.rootfs=$stamp" "$tarball" "$tag" >/dev/null
  log "imported $tarball as $tag"
fi
echo "$tag"
