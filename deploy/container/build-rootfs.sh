#!/usr/bin/env bash
# The image of deploy/container/Containerfile as a plain root directory, without any
# container runtime: for machines where containers cannot run (no cgroup mounts, as in
# tests/fresh-root.sh's chroot; no user namespaces …). It executes the Containerfile's own
# instructions — so the root is built by the same steps as the image — with chroot:
#
#   deploy/container/build-rootfs.sh OUT_DIR [--target STAGE] [--containerfile FILE]
#
#   FROM BASE [AS NAME]   a new stage: the cached base rootfs of build-base.sh
#                         (--rootfs-only; the only base it knows) unpacked in a work folder
#   RUN CMD               chroot STAGE /bin/sh -c CMD (proc, /dev and the host's
#                         resolv.conf inside, in a private mount namespace; network: the
#                         host's, as `podman build --network host`)
#   COPY [--from=S] SRC DST   from the build context (the repository, less what
#                         deploy/container/containerignore names) or from stage S
#   USER, WORKDIR, ENTRYPOINT, CMD, EXPOSE, STOPSIGNAL   recorded in OUT_DIR.image
#                         (shell assignments: XF_IMAGE_USER=…, XF_IMAGE_ENTRYPOINT=… (JSON))
#   ARG NAME=VALUE        ${NAME} is substituted in FROM lines
# The target stage (default: the last) ends up in OUT_DIR (replaced); the other stages'
# folders are deleted. Contract: exit 0 when every instruction succeeded; an unknown
# instruction, a failed RUN or COPY stops it with a message naming the line.
# Needs root. Used by tests/integration/test_container.sh when no container can run.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
out="" target="" cf="$here/deploy/container/Containerfile" argv=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target=${2:?--target STAGE}; shift ;;
    --containerfile) cf=${2:?--containerfile FILE}; shift ;;
    -*) sed -n '7,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    *) out=$1 ;;
  esac
  shift
done
[ -n "$out" ] || { sed -n '7,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
log() { printf 'build-rootfs: %s\n' "$*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "must run as root (chroot)"; exit 2; }
# A private mount namespace for the whole build: the mounts inside the stages vanish with it.
if [ -z "${XF_ROOTFS_UNSHARED:-}" ]; then
  XF_ROOTFS_UNSHARED=1 exec unshare --mount --propagation private -- bash "$0" "${argv[@]}"
fi
out=$(mkdir -p "$(dirname "$out")" && cd "$(dirname "$out")" && pwd)/$(basename "$out")
tarball=$(bash "$here/deploy/container/build-base.sh" --rootfs-only)
work=$(mktemp -d "$(dirname "$out")/.rootfs-build.XXXXXX")
trap 'for m in $(awk -v w="$work/" "index(\$2, w) == 1 { print \$2 }" /proc/mounts | sort -r); do umount -l "$m"; done; rm -rf "$work"' EXIT

# ---- the instructions: comment lines dropped, continuations joined
mapfile -t lines < <(awk '
  /^[ \t]*#/ { next }
  { sub(/\r$/, "") }
  /\\$/ { sub(/\\$/, ""); buf = buf $0; next }
  { line = buf $0; buf = ""; if (line ~ /[^ \t]/) print line }' "$cf")
declare -A stage_dir args
stages=() cur="" n=0 meta=""
copy_context() {   # SRC DST ROOT: from the build context, less containerignore's names
  local src=$1 dst=$2 root=$3 ex=()
  while read -r pat; do ex+=(--exclude="$pat"); done < <(grep -v '^#' "$here/deploy/container/containerignore" | grep .)
  if [ "$src" = . ]; then
    mkdir -p "$root$dst"
    tar -C "$here" "${ex[@]}" -cf - . | tar -C "$root$dst" -xf -
  else
    mkdir -p "$(dirname "$root$dst")"
    cp -a "$here/$src" "$root$dst"
  fi
}
enter() {   # mounts for RUN in stage ROOT (once)
  local r=$1
  grep -q " $r/proc " /proc/mounts && return 0
  mount -t proc proc "$r/proc"
  mount --bind /dev "$r/dev"
  cp -L /etc/resolv.conf "$r/etc/resolv.conf"
}
leave() {
  local r=$1
  umount -l "$r/dev" 2>/dev/null || true
  umount -l "$r/proc" 2>/dev/null || true
  : > "$r/etc/resolv.conf"
}
for line in "${lines[@]}"; do
  read -r instr rest <<< "$line"
  case "${instr^^}" in
    ARG)
      k=${rest%%=*}; v=${rest#*=}; [ "$k" = "$rest" ] && v=""
      args[$k]=$v ;;
    FROM)
      [ -n "$cur" ] && leave "${stage_dir[$cur]}"
      img=$rest name=""
      if [[ "$rest" =~ ^([^ ]+)[[:space:]]+[Aa][Ss][[:space:]]+([^ ]+)$ ]]; then img=${BASH_REMATCH[1]}; name=${BASH_REMATCH[2]}; fi
      for k in "${!args[@]}"; do img=${img//\$\{$k\}/${args[$k]}}; done
      case "$img" in
        localhost/debian:trixie-slim|debian:trixie-slim) ;;
        *) log "FROM $img: only the base of build-base.sh is known here"; exit 2 ;;
      esac
      cur=${name:-stage$n}; n=$((n + 1)); stages+=("$cur")
      stage_dir[$cur]="$work/$cur"
      mkdir -p "$work/$cur"
      tar -C "$work/$cur" --numeric-owner -xzpf "$tarball"
      meta="$work/$cur.image"; : > "$meta"
      log "stage $cur ($img)" ;;
    RUN)
      r=${stage_dir[$cur]}
      enter "$r"
      log "$cur: RUN ${rest:0:100}"
      if ! chroot "$r" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
             HOME=/root LANG=C.UTF-8 /bin/sh -c "$rest"; then
        log "RUN failed in stage $cur: $rest"; exit 1
      fi ;;
    COPY)
      from=""
      if [[ "$rest" =~ ^--from=([^ ]+)[[:space:]]+(.*)$ ]]; then from=${BASH_REMATCH[1]}; rest=${BASH_REMATCH[2]}; fi
      read -r src dst <<< "$rest"
      r=${stage_dir[$cur]}
      if [ -n "$from" ]; then
        [ -n "${stage_dir[$from]:-}" ] || { log "COPY --from=$from: no such stage"; exit 1; }
        if [ "${src%/}" != "$src" ]; then
          mkdir -p "$r$dst"; cp -a "${stage_dir[$from]}$src." "$r$dst"
        else
          mkdir -p "$(dirname "$r$dst")"; cp -a "${stage_dir[$from]}$src" "$r$dst"
        fi
      else
        copy_context "$src" "$dst" "$r"
      fi ;;
    USER|WORKDIR|ENTRYPOINT|CMD|EXPOSE|STOPSIGNAL)
      printf 'XF_IMAGE_%s=%q\n' "${instr^^}" "$rest" >> "$meta" ;;
    *) log "unknown instruction: $line"; exit 2 ;;
  esac
done
[ -n "$cur" ] && leave "${stage_dir[$cur]}"
want=${target:-$cur}
[ -n "${stage_dir[$want]:-}" ] || { log "no stage $want"; exit 2; }
rm -rf "$out" "$out.image"
mv "${stage_dir[$want]}" "$out"
mv "$work/$want.image" "$out.image"
log "root of stage $want: $out (metadata $out.image)"
