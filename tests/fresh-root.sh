#!/usr/bin/env bash
# Runs `.ci/run` exactly as CI would, in a fresh Debian root of the given release —
# what a newcomer gets on a new machine, independent of this machine's installed packages.
#
#   tests/fresh-root.sh bookworm|trixie [--keep] [--refresh] [--repo PATH] [--root DIR]
#                                       [--shell | --run 'CMD']
#
#   --refresh    rebuild the cached base (debootstrap) instead of reusing it
#   --keep       do not delete the root afterwards (its path is printed); reuse with --root
#   --root DIR   run in an existing root kept by --keep (no unpack, no clone)
#   --repo PATH  bind-mount PATH (read-write) as the repository instead of cloning HEAD
#   --shell      an interactive shell in the repository instead of .ci/run
#   --run 'CMD'  run CMD with bash in the repository instead of .ci/run
#
# What it does, as root:
#   1. Base: `debootstrap --variant=minbase --include=git,ca-certificates` from the
#      machine's own Debian mirror (deploy/debian-mirror.sh), with sources for the
#      release, -updates and -security on the same mirrors, and a policy-rc.d that keeps
#      package maintainer scripts from starting services (they would bind ports in the
#      host's network namespace, which the chroot shares). Kept as a tarball under
#      /var/cache/xmppfront-fresh-root/<release>-base.tar.gz and reused unless --refresh.
#   2. Every run unpacks a fresh copy to /var/tmp/xmppfront-fresh-root/<release>.XXXXXX,
#      clones the repository at its current HEAD to /work/xmppfront inside (a git clone:
#      uncommitted changes are NOT included; use --repo for those) and copies ../shared
#      beside it to /work/shared (mounted read-only, as CI has it).
#   3. In a private mount and PID namespace (unshare --mount --propagation private --pid
#      --fork): proc, sysfs, /dev (bind) with its own devpts and /dev/shm, and tmpfs on
#      /run and /tmp (so `ip netns add` works inside). Network comes from the host's
#      namespace; /etc/resolv.conf inside is a private copy. Then
#      `chroot ROOT env -i … CI=true bash .ci/run` in /work/xmppfront.
#   4. Prints .ci/run's result line and the versions of the key packages in the root,
#      kills whatever is left with the root as its root directory, checks that nothing is
#      mounted under the root, removes it (unless --keep). Exit status: .ci/run's.
# The host's apt sources, resolv.conf and mount table are never modified.
set -euo pipefail

usage() { sed -n '5,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
log() { printf 'fresh-root: %s\n' "$*" >&2; }

release=""; keep=0; refresh=0; repo_path=""; reuse_root=""; mode=ci; run_cmd=""
while [ $# -gt 0 ]; do
  case "$1" in
    bookworm|trixie) release=$1 ;;
    --keep) keep=1 ;;
    --refresh) refresh=1 ;;
    --repo) repo_path=$(cd "${2:?--repo PATH}" && pwd); shift ;;
    --root) reuse_root=$(cd "${2:?--root DIR}" && pwd); shift ;;
    --shell) mode=shell ;;
    --run) mode=run; run_cmd=${2:?--run CMD}; shift ;;
    -h|--help) usage ;;
    *) log "unknown argument: $1"; usage ;;
  esac
  shift
done
[ -n "$release" ] || usage
[ "$(id -u)" -eq 0 ] || { log "must run as root (debootstrap, chroot, mounts)"; exit 2; }

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../deploy/debian-mirror.sh
. "$here/deploy/debian-mirror.sh"
cache=/var/cache/xmppfront-fresh-root
base="$cache/$release-base.tar.gz"
mkdir -p "$cache" /var/tmp/xmppfront-fresh-root

# ---- 1. the cached base ---------------------------------------------------------------
build_base() {
  local mirror sec tmp
  mirror=$(xf_debian_mirror)
  sec=$(xf_debian_mirror --security)
  if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  tmp=$(mktemp -d "$cache/build-$release.XXXXXX")
  chmod 755 "$tmp"   # the root directory: daemons run as their own users inside
  log "debootstrap $release from $mirror (a few minutes)"
  if ! debootstrap --variant=minbase --include=git,ca-certificates "$release" "$tmp" "$mirror" \
       >"$tmp.log" 2>&1; then
    tail -20 "$tmp.log" >&2; rm -rf "$tmp" "$tmp.log"; log "debootstrap failed"; exit 2
  fi
  rm -f "$tmp.log"
  cat >"$tmp/etc/apt/sources.list" <<EOF
deb $mirror $release main
deb $mirror $release-updates main
deb $sec $release-security main
EOF
  # Maintainer scripts must not start services in the host's network namespace.
  printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod 755 "$tmp/usr/sbin/policy-rc.d"
  rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*_* 2>/dev/null || true
  tar -C "$tmp" --numeric-owner -czpf "$base.new" .
  mv "$base.new" "$base"
  rm -rf "$tmp"
  log "base cached: $base"
}

if [ -z "$reuse_root" ]; then
  exec 9>"$cache/$release.lock"
  flock 9
  if [ "$refresh" = 1 ] || [ ! -s "$base" ]; then build_base; fi
  flock -u 9
fi

# ---- 2. a fresh root ------------------------------------------------------------------
if [ -n "$reuse_root" ]; then
  root=$reuse_root
  [ -x "$root/bin/bash" ] || { log "$root is not a root"; exit 2; }
  keep=1
else
  root=$(mktemp -d "/var/tmp/xmppfront-fresh-root/$release.XXXXXX")
  tar -C "$root" --numeric-owner -xzpf "$base"
  chmod 755 "$root"
fi
inner=$(mktemp /var/tmp/xmppfront-fresh-root/inner.XXXXXX)
logfile="$root.log"

cleanup() {
  local pids p
  # Anything still running with the root as its root directory (the PID namespace
  # normally took them all down with its init), and — when interrupted — our own
  # unshare and the namespace's init (their command line names $inner). A --root root
  # may be in use by another run: there only our own processes.
  for _ in 1 2 3; do
    pids=""
    for p in /proc/[0-9]*; do
      [ "${p#/proc/}" = "$$" ] && continue
      if { [ -z "$reuse_root" ] && [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ]; } ||
         tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF " $inner "; then
        pids="$pids ${p#/proc/}"
      fi
    done
    [ -z "$pids" ] && break
    log "killing leftover processes in the root:$pids"
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 1
  done
  wait 2>/dev/null || true   # the background run pipeline, if interrupted
  rm -f "$inner" "$inner.rc"
  # The mount namespace goes away with its last process; give the kernel a moment.
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    grep -q " ${root}[/ ]" /proc/mounts || break
    sleep 0.5
  done
  if grep -q " ${root}[/ ]" /proc/mounts; then
    log "WARNING: still mounted under $root (not removing it):"
    grep " ${root}[/ ]" /proc/mounts >&2
    return
  fi
  if [ "$keep" = 1 ]; then
    log "root kept: $root (reuse: tests/fresh-root.sh $release --root $root [--shell|--run CMD])"
  else
    rm -rf "$root"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$root/work"
git_common=""
if [ -n "$repo_path" ]; then
  mkdir -p "$root/work/xmppfront"
  # A git worktree's metadata lives in the main repository's .git: mount that at the
  # same path inside, so that git works in the bind-mounted worktree.
  git_common=$(cd "$repo_path" && git rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)
  case "$git_common" in ""|"$repo_path"/*) git_common="" ;; *) mkdir -p "$root$git_common" ;; esac
elif [ -z "$reuse_root" ]; then
  head=$(git -C "$here" rev-parse HEAD)
  if [ -n "$(git -C "$here" status --porcelain --untracked-files=no)" ]; then
    log "note: uncommitted changes in $here are not included (clone of HEAD $head)"
  fi
  git clone -q --no-hardlinks "$here" "$root/work/xmppfront"
  git -C "$root/work/xmppfront" -c advice.detachedHead=false checkout -q --detach "$head"
  log "cloned $(git -C "$here" log -1 --format='%h %s' "$head")"
fi
mkdir -p "$root/work/shared"
if [ -z "$reuse_root" ] && [ -d "$here/../shared" ]; then
  cp -a "$here/../shared/." "$root/work/shared/"
fi
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
# What the Debian installer writes and debootstrap does not: the machine's name resolves
# (ejabberdctl names its control node after `hostname`). The chroot shares the host's
# UTS namespace, so that is the host's name; the host's own /etc/hosts is not touched.
hn=$(hostname)
echo "$hn" >"$root/etc/hostname"
[ -s "$root/etc/hosts" ] ||
  printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n' >"$root/etc/hosts"
grep -Eq "^[^#]*[[:space:]]$hn([[:space:]]|\$)" "$root/etc/hosts" || printf '127.0.1.1\t%s\n' "$hn" >>"$root/etc/hosts"

# ---- 3. the run, in private mount + PID namespaces ------------------------------------
cat >"$inner" <<'EOF'
set -eu
root=$1 mode=$2 repo_path=$3 run_cmd=$4 git_common=$5
# The root a mount point of its own, so that "/" inside is one (unshare -m and
# mount --make-rprivate / in the tests need that).
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
mount --bind "$root/dev/pts/ptmx" "$root/dev/ptmx"
mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
mkdir -p "$root/run/lock" "$root/run/netns"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mount --bind "$root/work/shared" "$root/work/shared"
mount -o remount,bind,ro "$root/work/shared"
[ -n "$repo_path" ] && mount --bind "$repo_path" "$root/work/xmppfront"
[ -n "$git_common" ] && mount --bind "$git_common" "$root$git_common"
envs=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
      LANG=C.UTF-8 TERM="${TERM:-dumb}" CI=true)
set +e
case "$mode" in
  ci)    chroot "$root" /usr/bin/env -i "${envs[@]}" bash -c 'cd /work/xmppfront && exec bash .ci/run' ;;
  shell) chroot "$root" /usr/bin/env -i "${envs[@]}" bash -c 'cd /work/xmppfront && exec bash -i' ;;
  run)   chroot "$root" /usr/bin/env -i "${envs[@]}" XF_RUN_CMD="$run_cmd" \
           bash -c 'cd /work/xmppfront && eval "$XF_RUN_CMD"' ;;
esac
exit $?
EOF

log "root: $root ($mode)"
set +e
if [ "$mode" = shell ]; then
  unshare --mount --propagation private --pid --fork bash "$inner" "$root" "$mode" "$repo_path" "" "$git_common"
  rc=$?
else
  # In the background and waited for, so that INT/TERM reach the trap (cleanup) at once.
  rcfile="$inner.rc"
  { unshare --mount --propagation private --pid --fork \
      bash "$inner" "$root" "$mode" "$repo_path" "$run_cmd" "$git_common" </dev/null 2>&1
    echo $? >"$rcfile"; } | tee "$logfile" &
  wait $!
  rc=$(cat "$rcfile" 2>/dev/null || echo 2)
  rm -f "$rcfile"
fi
set -e

# ---- 4. report ------------------------------------------------------------------------
echo
echo "=== fresh-root $release: $mode exit $rc (log: $logfile)"
if [ "$mode" = ci ]; then
  grep -E '^run-all: ' "$logfile" | tail -1 ||
    echo "run-all: no result line (.ci/run stopped early, in step: $(grep -E '^=== ' "$logfile" | tail -1 | cut -c5-))"
  grep -E '^failed suites: ' "$logfile" | tail -1 || true
fi
echo "packages in the root:"
dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' \
  libexpat1 'libmbedtls*' 'libmbedcrypto*' 'libmbedx509*' 'libuv1*' 'libc-ares2*' 'libcares2*' prosody \
  ejabberd python3-slixmpp testssl.sh haproxy sslscan python3 2>/dev/null |
  awk '$1 == "ii" { printf "  %-20s %s\n", $2, $3 }'
exit "$rc"
