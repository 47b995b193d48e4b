#!/usr/bin/env bash
# Builds mbedTLS from Debian 13's own source package with xmppfront's proxy settings, as
# static libraries in a prefix outside the repository (no vendored copy anywhere):
#
#   deploy/build-mbedtls.sh [--cache DIR] [--prefix DIR] [--jobs N]
#
#   --cache DIR   where sources, apt state and builds live (default $XF_MBEDTLS_CACHE or
#                 /var/cache/xmppfront-build)
#   --prefix DIR  install here (default DIR/mbedtls-VERSION-CONFIG, CONFIG: a hash of
#                 deploy/mbedtls/xf_proxy_config.h and of this script)
#   --jobs N      parallel compile jobs (default nproc)
#
# Contract:
#   - the source: `apt-get source mbedtls` from trixie with a private one-line deb-src list
#     on the mirror of the machine's own apt sources (deploy/debian-mirror.sh, as
#     install-deps.sh fetches trixie's binary packages on Debian 12) and private
#     Dir::Etc::sourcelist / Dir::State::Lists / Dir::Cache under DIR/apt: the machine's
#     apt configuration and state are never touched. dpkg-source -x (dpkg-dev) unpacks
#     it with Debian's patches applied;
#   - the configuration: Debian's own (the `scripts/config.py` lines of debian/rules'
#     override_dh_auto_configure, run as Debian runs them; python3), then
#     deploy/mbedtls/xf_proxy_config.h as MBEDTLS_USER_CONFIG_FILE — installed next to
#     mbedtls_config.h, which defines MBEDTLS_USER_CONFIG_FILE, so that whatever includes
#     the prefix's headers compiles with the library's configuration;
#   - the build: CMake, static libraries only (position-independent), no programs, no
#     tests, the system's cc (CC and *FLAGS from the environment are ignored) with
#     Debian's compiler flags (dpkg-buildflags with debian/rules' DEB_BUILD_MAINT_OPTIONS); installed into PREFIX atomically (a staging folder,
#     then rename), with PREFIX/share/xmppfront-mbedtls/build-info recording the source
#     version, mirror, configuration hash, Debian's settings, flags and compiler, and
#     Debian's copyright file next to it;
#   - idempotent: when PREFIX holds a build of the current trixie version with the same
#     configuration hash, nothing is built (about 2 s: one private `apt-get update`).
#     When the mirror cannot be reached, the newest cached build with this configuration
#     is used (said on stderr). Concurrent runs serialize on DIR/lock;
#   - stdout: the prefix, one line; progress and errors on stderr. Exit 0 on success.
# Needs: dpkg-dev, python3, cmake, a C compiler (deploy/install-deps.sh installs them);
# root, or write access to DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${XF_MBEDTLS_CACHE:-/var/cache/xmppfront-build} prefix="" jobs=$(nproc 2>/dev/null || echo 2)
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) cache=${2:?--cache DIR}; shift ;;
    --prefix) prefix=${2:?--prefix DIR}; shift ;;
    --jobs) jobs=${2:?--jobs N}; shift ;;
    *) sed -n '5,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
  shift
done
# The same library whichever build asks for it (CMake passes CC=clang for the fuzz build):
# the system's cc and Debian's flags only.
unset CC CFLAGS CPPFLAGS LDFLAGS
log() { printf 'build-mbedtls: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
conf_h="$here/mbedtls/xf_proxy_config.h"
[ -f "$conf_h" ] || die "missing $conf_h"
for tool in dpkg-source dpkg-buildflags python3 cmake cc; do
  command -v "$tool" >/dev/null ||
    die "$tool is missing (deploy/install-deps.sh installs dpkg-dev, python3, cmake, build-essential)"
done
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
exec 9>"$cache/lock"
flock 9
confhash=$(cat "$conf_h" "$0" | sha256sum | cut -c1-12)
t0=$(date +%s)

# ---- the current trixie source version, through private apt state
apt_dir="$cache/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
mirror=$(bash "$here/debian-mirror.sh")
echo "deb-src $mirror trixie main" > "$apt_dir/sources.list"
opts=(-o Dir::Etc::sourcelist="$apt_dir/sources.list" -o Dir::Etc::sourceparts=-
      -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache"
      -o APT::Get::List-Cleanup=0)
chmod a+rx "$cache" "$apt_dir"   # apt's _apt sandbox user downloads into it
version=""
if apt-get "${opts[@]}" update -qq >"$apt_dir/update.log" 2>&1; then
  version=$(apt-cache "${opts[@]}" showsrc mbedtls 2>/dev/null | awk '$1 == "Version:" { print $2 }' |
              sort -V | tail -1)
fi
if [ -z "$version" ]; then
  # Offline: the newest cached build of this configuration, if any.
  last=$(ls -d "$cache"/mbedtls-*-"$confhash" 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$prefix" ] && [ -n "$last" ] && [ -f "$last/share/xmppfront-mbedtls/build-info" ]; then
    log "cannot reach trixie's sources on $mirror (see $apt_dir/update.log); using the cached $last"
    echo "$last"; exit 0
  fi
  cat "$apt_dir/update.log" >&2
  die "cannot get trixie's source index from $mirror"
fi
safe_version=${version//:/_}
[ -n "$prefix" ] || prefix="$cache/mbedtls-$safe_version-$confhash"
info="$prefix/share/xmppfront-mbedtls/build-info"
if [ -f "$info" ] && [ -f "$prefix/lib/libmbedtls.a" ] &&
   grep -qx "source_version=$version" "$info" && grep -qx "config_hash=$confhash" "$info"; then
  log "mbedTLS $version (config $confhash) already built in $prefix"
  echo "$prefix"; exit 0
fi

# ---- the source, Debian's patches applied (dpkg-source -x through apt-get source)
src_dl="$cache/src-$safe_version"
src_tree=$(ls -d "$src_dl"/mbedtls-*/ 2>/dev/null | head -1 || true)
if [ -z "$src_tree" ] || [ ! -f "$src_dl/.complete" ]; then
  rm -rf "$src_dl"; mkdir -p "$src_dl"; chmod a+rwx "$src_dl"
  log "apt-get source mbedtls=$version (trixie via $mirror)"
  (cd "$src_dl" && apt-get "${opts[@]}" source -qq "mbedtls=$version") >"$src_dl.log" 2>&1 ||
    { cat "$src_dl.log" >&2; die "apt-get source mbedtls=$version failed"; }
  grep -E '^dpkg-source: info: applying' "$src_dl.log" | sed 's/^/  /' >&2 || true
  touch "$src_dl/.complete"
  src_tree=$(ls -d "$src_dl"/mbedtls-*/ | head -1)
fi
src_tree=${src_tree%/}

# ---- a fresh copy, Debian's settings, then ours
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -a "$src_tree" "$work/src"
rules="$work/src/debian/rules"
mapfile -t deb_settings < <(awk '/^override_dh_auto_configure:/ { on = 1; next }
                                 on && /^[^\t]/ { on = 0 }
                                 on && $1 == "scripts/config.py" { sub(/^\t+/, ""); print }' "$rules")
[ "${#deb_settings[@]}" -gt 0 ] || die "no scripts/config.py settings found in debian/rules (its layout changed?)"
for s in "${deb_settings[@]}"; do
  read -r -a argv <<< "$s"
  (cd "$work/src" && python3 "${argv[@]}") || die "Debian's setting failed: $s"
done
cfg="$work/src/include/mbedtls/mbedtls_config.h"
cp "$conf_h" "$work/src/include/mbedtls/xf_proxy_config.h"
cat >> "$cfg" <<'EOF'

/* xmppfront (deploy/build-mbedtls.sh): the proxy's settings on top of Debian's, read by
 * build_info.h after this file; resolved next to it (include/mbedtls/). */
#define MBEDTLS_USER_CONFIG_FILE "xf_proxy_config.h"
EOF
# (qa=+all only adds canary macros that dpkg-buildpackage's checks look for)
maint=$(awk -F' = ' '/^export DEB_BUILD_MAINT_OPTIONS/ { print $2; exit }' "$rules" | sed 's/qa=[^ ]*//')
cflags=$(cd "$work/src" && DEB_BUILD_MAINT_OPTIONS="$maint" dpkg-buildflags --get CFLAGS)
cppflags=$(cd "$work/src" && DEB_BUILD_MAINT_OPTIONS="$maint" dpkg-buildflags --get CPPFLAGS)

log "building mbedTLS $version (config $confhash; Debian: ${deb_settings[*]#scripts/config.py })"
if ! cmake -S "$work/src" -B "$work/build" -DCMAKE_BUILD_TYPE=None \
       -DCMAKE_C_FLAGS="$cppflags $cflags" -DCMAKE_INSTALL_PREFIX="$prefix" \
       -DCMAKE_INSTALL_LIBDIR=lib -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
       -DUSE_STATIC_MBEDTLS_LIBRARY=ON -DUSE_SHARED_MBEDTLS_LIBRARY=OFF \
       -DENABLE_PROGRAMS=OFF -DENABLE_TESTING=OFF -DGEN_FILES=OFF \
       -DMBEDTLS_FATAL_WARNINGS=OFF >"$work/cmake.log" 2>&1 ||
   ! cmake --build "$work/build" -j "$jobs" >>"$work/cmake.log" 2>&1 ||
   ! DESTDIR="$work/stage" cmake --install "$work/build" >>"$work/cmake.log" 2>&1; then
  tail -40 "$work/cmake.log" >&2; die "the build failed"
fi
staged="$work/stage$prefix"
[ -f "$staged/lib/libmbedtls.a" ] && [ -f "$staged/include/mbedtls/xf_proxy_config.h" ] ||
  die "the install lacks lib/libmbedtls.a or include/mbedtls/xf_proxy_config.h"
mkdir -p "$staged/share/xmppfront-mbedtls"
# Debian's copyright file goes with the libraries (Apache-2.0 OR GPL-2.0-or-later): a
# binary linking them statically ships it (the container image does).
cp "$work/src/debian/copyright" "$staged/share/xmppfront-mbedtls/copyright"
{
  echo "source_package=mbedtls"
  echo "source_version=$version"
  echo "source_suite=trixie"
  echo "mirror=$mirror"
  echo "config_hash=$confhash"
  echo "config_file=include/mbedtls/xf_proxy_config.h"
  for s in "${deb_settings[@]}"; do echo "debian_setting=${s#scripts/config.py }"; done
  echo "cflags=$cppflags $cflags"
  echo "compiler=$(cc --version | head -1)"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) in $(( $(date +%s) - t0 ))s"
} > "$staged/share/xmppfront-mbedtls/build-info"
mkdir -p "$(dirname "$prefix")"
rm -rf "$prefix.old"
[ -e "$prefix" ] && mv "$prefix" "$prefix.old"
mv "$staged" "$prefix"
rm -rf "$prefix.old"
log "installed mbedTLS $version (config $confhash) in $prefix ($(( $(date +%s) - t0 ))s)"
echo "$prefix"
