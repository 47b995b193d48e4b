#!/usr/bin/env bash
# xf-test-timeout: 600
# The container image (issue 9, "Packaging"; deploy/container/): built with podman from
# Debian packages only — the base by deploy/container/build-base.sh (a local debootstrap of
# Debian 13, no registry; the rootfs tarball cached under /var/cache/xmppfront-test), the
# image by deploy/container/Containerfile (multi-stage) — then run:
#  (b) the image builds; its user is xmppfront (uid 10269), not root; no compiler and no
#      -dev package in it; every -dev package of install-deps.sh's BUILD_PKGS (less the
#      test-only ones) is in the build stage; mbedTLS is linked statically (the source
#      build of deploy/build-mbedtls.sh): no libmbedtls package in the image;
#  (v) `xmppfront --version` with --network none;
#  (s) in a network namespace the test makes (podman --network ns:PATH), with a config
#      mounted read-only at /etc/xmppfront: a STARTTLS stream header with <starttls/> on
#      127.0.0.1:5222, and a direct TLS handshake on 127.0.0.1:443 (a port below 1024,
#      bound by the non-root user through the file capability) presenting the tenant's
#      certificate; the process inside runs as uid 10269;
#  (t) `podman stop` (SIGTERM): drained and exit status 0.
# On a host with cgroup v1/hybrid, crun refuses to start containers ("cgroups in hybrid
# mode not supported"): the test then uses runc. Both need --ulimit values the caller may
# set (a process without CAP_SYS_RESOURCE cannot raise its limits to podman's defaults).
# Where no container can run at all (tests/fresh-root.sh's chroot has no cgroup mounts:
# "runc create failed: no cgroup mount found in mountinfo"), the same checks run on the
# image's root filesystem built by deploy/container/build-rootfs.sh (the Containerfile's
# own instructions, executed with chroot) and started with chroot as its USER, the config
# bind-mounted read-only; XF_CONTAINER_MODE=chroot forces that mode.
# XF_CONTAINER_CACHE: where the base rootfs is cached. Times are printed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_netns.sh"
T=container
xf_netns_init "$T" || exit 1   # $XF_TMP and the namespace $XF_NS for (s)
[ "$(id -u)" -eq 0 ] || xf_setup_failed "$T: needs root (debootstrap, podman, netns)"
command -v podman >/dev/null || xf_setup_failed "$T: podman is not installed (apt-get install podman buildah runc)"
# (podman is needed for the probe even where the chroot mode follows)
IMG=localhost/xmppfront:test-$$
BASE=localhost/debian:trixie-slim
t0=$(date +%s)
bash "$XF_ROOT/deploy/container/build-base.sh" > "$XF_TMP/base.out" 2>&1 ||
  { cat "$XF_TMP/base.out"; xf_setup_failed "$T: build-base.sh"; }
t_base=$(( $(date +%s) - t0 ))

# (nproc: runc could not set the shell's own 96364 here, 4096 works; the limit is per uid)
U=(--ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit "nproc=4096:4096")
RT=() MODE=podman
if ! podman run --rm --network none "${U[@]}" "$BASE" true > "$XF_TMP/probe.out" 2>&1; then
  RT=(--runtime runc)
  if podman "${RT[@]}" run --rm --network none "${U[@]}" "$BASE" true >> "$XF_TMP/probe.out" 2>&1; then
    echo "  (crun: $(grep -m1 -o 'crun: .*' "$XF_TMP/probe.out"); using runc)"
  else
    MODE=chroot
    echo "  (no container runs here — $(grep -o -e 'crun: .*' -e 'runc: .*' "$XF_TMP/probe.out" | sort -u | tr '\n' ';')"
    echo "   testing the image's root filesystem with chroot: deploy/container/build-rootfs.sh)"
  fi
fi
if [ "${XF_CONTAINER_MODE:-}" = chroot ] && [ "$MODE" = podman ]; then
  MODE=chroot; echo "  (XF_CONTAINER_MODE=chroot: the root filesystem with chroot, as where no container runs)"
fi
pm() { podman "${RT[@]}" "$@"; }
ROOTFS=/var/tmp/xmppfront-test-rootfs.$$
# Our container, tag or root go; build caches (dangling layers) older than a day too, so
# that re-runs reuse the apt layers while the storage stays bounded.
cleanup_image() {
  if [ "$MODE" = podman ]; then
    pm rm -f -t 0 "xfct-$$" >/dev/null 2>&1; pm rmi -f "$IMG" >/dev/null 2>&1
    pm image prune -f --filter until=24h >/dev/null 2>&1
  else
    rm -rf "$ROOTFS" "$ROOTFS.image"
  fi
}
trap 'rc=$?; cleanup_image; xf_netns_cleanup; (exit $rc); xf_cleanup' EXIT
# in_image CMD...: CMD as uid 10269 in the image (podman run / chroot)
in_image() {
  # shellcheck disable=SC2086  # RT_S and U_S are option words (arrays do not export)
  if [ "$MODE" = podman ]; then podman $RT_S run --rm --network none $U_S --entrypoint "$1" "$IMG" "${@:2}"
  else chroot --userspec=10269:10269 "$ROOTFS" "$@"; fi
}
export -f in_image; export MODE IMG ROOTFS
export RT_S="${RT[*]}" U_S="${U[*]}"

t1=$(date +%s)
if [ "$MODE" = podman ]; then
  pm build --network host "${U[@]}" --ignorefile "$XF_ROOT/deploy/container/containerignore" \
    -f "$XF_ROOT/deploy/container/Containerfile" -t "$IMG" "$XF_ROOT" > "$XF_TMP/build.out" 2>&1
else
  bash "$XF_ROOT/deploy/container/build-rootfs.sh" "$ROOTFS" > "$XF_TMP/build.out" 2>&1
fi
brc=$?
t_build=$(( $(date +%s) - t1 ))
xf_check "(b) the image of deploy/container/Containerfile builds ($MODE; ${t_build}s; base ${t_base}s)" \
  bash -c "[ $brc -eq 0 ] || { tail -30 '$XF_TMP/build.out'; exit 1; }"
[ $brc -eq 0 ] || { xf_finish "$T"; exit 1; }
if [ "$MODE" = podman ]; then IUSER=$(podman image inspect --format '{{.Config.User}}' "$IMG")
else IUSER=$(. "$ROOTFS.image" && echo "$XF_IMAGE_USER"); fi
xf_check "(b) the image's user is xmppfront:xmppfront, id 10269, not root" \
  bash -c "[ '$IUSER' = xmppfront:xmppfront ] && [ \"\$(in_image id -un)\" = xmppfront ] && [ \"\$(in_image id -u)\" = 10269 ]"
xf_check "(b) no compiler and no -dev package in the runtime image" \
  bash -c "out=\$(in_image sh -c 'echo ran; command -v cc gcc cmake; dpkg-query -W -f=\"\${Package}\n\" | grep -- \"-dev\$\"'); echo \"\$out\"; [ \"\$out\" = ran ]"
xf_check "(b) the build stage installs every -dev package of install-deps.sh's BUILD_PKGS (but cmocka, clang's)" \
  bash -c "miss=''; for p in \$(sed -n '/^BUILD_PKGS=(/,/)/p' '$XF_ROOT/deploy/install-deps.sh' | grep -oE '[a-z0-9.+-]+-dev\\b' | grep -v -e cmocka -e clang); do
             grep -qw -- \"\$p\" '$XF_ROOT/deploy/container/Containerfile' || miss=\"\$miss \$p\"; done; echo \"missing:\$miss\"; [ -z \"\$miss\" ]"
if [ "$MODE" = podman ]; then
  echo "  (image size: $(pm image inspect --format '{{.Size}}' "$IMG" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
else
  echo "  (root size: $(du -sm "$ROOTFS" | cut -f1) MB)"
fi
xf_check "(b) mbedTLS is linked statically (deploy/build-mbedtls.sh): no libmbedtls package in the image, its build-info is" \
  bash -c "out=\$(in_image sh -c 'dpkg-query -W -f=\"\${Package}\n\" | grep -i mbed; grep -c ^source_version= /usr/share/doc/xmppfront-mbedtls/build-info'); echo \"\$out\"; [ \"\$out\" = 1 ]"
xf_check "(v) xmppfront --version in the image (podman: --network none)" \
  bash -c "in_image /usr/bin/xmppfront --version | grep -qx 'xmppfront [0-9.]*'"

# ---- (s) serving, in a netns of our own
CFG="$XF_TMP/etc"
mkdir -p "$CFG/tenants" "$CFG/certs/a.example"
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 30 \
  -keyout "$CFG/certs/a.example/privkey.pem" -out "$CFG/certs/a.example/fullchain.pem" \
  -subj "/CN=a.example" -addext "subjectAltName=DNS:a.example" >/dev/null 2>&1 || xf_setup_failed "$T: certificate"
cat > "$CFG/xmppfront.json" <<JSON
{ "workers": 1, "tenants": "tenants",
  "listeners": [ { "address": "127.0.0.1", "port": 5222, "tls": "starttls", "service": "client" },
                 { "address": "127.0.0.1", "port": 443, "tls": "direct", "service": "auto" } ],
  "limits": { "drain_timeout_s": 2 } }
JSON
cat > "$CFG/tenants/a.example.json" <<JSON
{ "domain": "a.example", "certificate": "../certs/a.example/fullchain.pem",
  "key": "../certs/a.example/privkey.pem", "c2s_backend": "127.0.0.1:15222" }
JSON
chmod -R a+rX "$CFG"
chgrp 10269 "$CFG/certs/a.example/privkey.pem"; chmod 640 "$CFG/certs/a.example/privkey.pem"
export XF_CFG="$CFG"
if [ "$MODE" = podman ]; then
  pm run -d --name "xfct-$$" --network "ns:/run/netns/$XF_NS" "${U[@]}" \
    -v "$CFG:/etc/xmppfront:ro" "$IMG" > "$XF_TMP/run.out" 2>&1 || { cat "$XF_TMP/run.out"; xf_setup_failed "$T: podman run"; }
  ilogs() { podman "${RT[@]}" logs "xfct-$$" 2>&1; }
else
  # the image's ENTRYPOINT and CMD as its USER, in a private mount namespace with the
  # config bind-mounted read-only (podman's -v), /dev and /proc; no capability but the
  # binary's file capability (setcap in the Containerfile) for 443
  eval "ep=$(. "$ROOTFS.image"; printf '%s' "$XF_IMAGE_ENTRYPOINT" | "$XF_PY" -c 'import json,shlex,sys; print(shlex.quote(" ".join(map(shlex.quote, json.load(sys.stdin)))))')"
  eval "cmd=$(. "$ROOTFS.image"; printf '%s' "$XF_IMAGE_CMD" | "$XF_PY" -c 'import json,shlex,sys; print(shlex.quote(" ".join(map(shlex.quote, json.load(sys.stdin)))))')"
  mkdir -p "$ROOTFS/etc/xmppfront"
  ip netns exec "$XF_NS" unshare --mount --propagation private -- sh -c '
    r=$1; shift
    mount --bind "$XF_CFG" "$r/etc/xmppfront" && mount -o remount,bind,ro "$r/etc/xmppfront" &&
    mount --bind /dev "$r/dev" && mount -t proc proc "$r/proc" &&
    exec chroot --userspec=10269:10269 "$r" "$@"' sh "$ROOTFS" $ep $cmd 2> "$XF_TMP/chroot.log" &
  CPID=$!
  xf_track "$CPID"
  ilogs() { cat "$XF_TMP/chroot.log"; }
fi
for ((i = 0; i < 50; i++)); do xf_ns_listening 443 && xf_ns_listening 5222 && break; sleep 0.1; done
ilogs > "$XF_TMP/inst.log"
xf_check "(s) the container listens on 5222 and 443 in the namespace" \
  bash -c "ip netns exec '$XF_NS' ss -Hltnp | grep -E ':(5222|443) ' | grep -c xmppfront | grep -qx 2 || { cat '$XF_TMP/inst.log'; exit 1; }"
xf_check "(s) the xmppfront process in the container runs as uid 10269" \
  bash -c "pid=\$(ip netns exec '$XF_NS' ss -Hltnp 'sport = :5222' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2);
           [ -n \"\$pid\" ] && [ \"\$(stat -c %u /proc/\$pid)\" = 10269 ]"
xf_check "(s) a STARTTLS stream header with <starttls/> <required/> on 127.0.0.1:5222" \
  ip netns exec "$XF_NS" timeout 10 "$XF_PY" -c "
import socket, sys
s = socket.create_connection(('127.0.0.1', 5222), 5)
s.sendall(b\"<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='a.example' version='1.0'>\")
b = b''
while b'</stream:features>' not in b:
    d = s.recv(4096)
    if not d: break
    b += d
print(b.decode())
sys.exit(0 if b\"from='a.example'\" in b and b\"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>\" in b else 1)"
xf_check "(s) direct TLS on 443 (bound by the non-root user): the tenant's certificate, ALPN xmpp-client" \
  bash -c "ip netns exec '$XF_NS' timeout 10 openssl s_client -connect 127.0.0.1:443 -servername a.example \
             -alpn xmpp-client </dev/null 2>/dev/null | grep -E 'subject=.*CN ?= ?a.example|ALPN protocol: xmpp-client' | wc -l | grep -qx 2"
if [ "$MODE" = podman ]; then
  pm stop -t 10 "xfct-$$" >/dev/null 2>&1
  xrc=$(pm inspect --format '{{.State.ExitCode}}' "xfct-$$")
else
  kill -TERM "$CPID"; xrc=124
  for ((i = 0; i < 100; i++)); do kill -0 "$CPID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$CPID" 2>/dev/null || { wait "$CPID"; xrc=$?; }
fi
ilogs > "$XF_TMP/inst.log"
xf_check "(t) stop (SIGTERM): drained, exit status 0" \
  bash -c "[ '$xrc' = 0 ] && grep -q 'SIGTERM received' '$XF_TMP/inst.log' || { echo 'exit $xrc'; tail -5 '$XF_TMP/inst.log'; exit 1; }"
echo "  (times: base ${t_base}s, build ${t_build}s, total $(( $(date +%s) - t0 ))s)"
xf_finish "$T"
