#!/usr/bin/env bash
# The container image (issue 9, "Packaging"; deploy/container/): built with podman from
# Debian packages only — the base by deploy/container/build-base.sh (a local debootstrap of
# Debian 13, no registry; the rootfs tarball cached under /var/cache/xmppfront-test), the
# image by deploy/container/Containerfile (multi-stage) — then run:
#  (b) the image builds; its user is xmppfront (uid 10269), not root; no compiler and no
#      -dev package in it; every -dev package of install-deps.sh's BUILD_PKGS (less the
#      test-only ones) is in the build stage;
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
# XF_CONTAINER_CACHE: where the base rootfs is cached. Times are printed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_netns.sh"
T=container
xf_netns_init "$T" || exit 1   # $XF_TMP and the namespace $XF_NS for (s)
[ "$(id -u)" -eq 0 ] || xf_setup_failed "$T: needs root (debootstrap, podman, netns)"
command -v podman >/dev/null || xf_setup_failed "$T: podman is not installed (apt-get install podman buildah runc)"
IMG=localhost/xmppfront:test-$$
BASE=localhost/debian:trixie-slim
t0=$(date +%s)
bash "$XF_ROOT/deploy/container/build-base.sh" > "$XF_TMP/base.out" 2>&1 ||
  { cat "$XF_TMP/base.out"; xf_setup_failed "$T: build-base.sh"; }
t_base=$(( $(date +%s) - t0 ))

# (nproc: runc could not set the shell's own 96364 here, 4096 works; the limit is per uid)
U=(--ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit "nproc=4096:4096")
RT=()
if ! podman run --rm --network none "${U[@]}" "$BASE" true > "$XF_TMP/probe.out" 2>&1; then
  RT=(--runtime runc)
  podman "${RT[@]}" run --rm --network none "${U[@]}" "$BASE" true >> "$XF_TMP/probe.out" 2>&1 ||
    { cat "$XF_TMP/probe.out"; xf_setup_failed "$T: no container runs here (crun and runc tried)"; }
  echo "  (crun: $(grep -m1 -o 'crun: .*' "$XF_TMP/probe.out"); using runc)"
fi
pm() { podman "${RT[@]}" "$@"; }
# Our container and tag go; build caches (dangling layers) older than a day too, so that
# re-runs reuse the apt layers while the storage stays bounded.
cleanup_image() {
  pm rm -f -t 0 "xfct-$$" >/dev/null 2>&1; pm rmi -f "$IMG" >/dev/null 2>&1
  pm image prune -f --filter until=24h >/dev/null 2>&1
}
trap 'rc=$?; cleanup_image; xf_netns_cleanup; (exit $rc); xf_cleanup' EXIT

t1=$(date +%s)
pm build --network host "${U[@]}" --ignorefile "$XF_ROOT/deploy/container/containerignore" \
  -f "$XF_ROOT/deploy/container/Containerfile" -t "$IMG" "$XF_ROOT" > "$XF_TMP/build.out" 2>&1
brc=$?
t_build=$(( $(date +%s) - t1 ))
xf_check "(b) podman build of deploy/container/Containerfile (${t_build}s; base ${t_base}s)" \
  bash -c "[ $brc -eq 0 ] || { tail -30 '$XF_TMP/build.out'; exit 1; }"
[ $brc -eq 0 ] || { xf_finish "$T"; exit 1; }
xf_check "(b) the image's user is xmppfront:xmppfront, id 10269, not root" \
  bash -c "[ \"\$(podman image inspect --format '{{.Config.User}}' '$IMG')\" = xmppfront:xmppfront ] &&
           [ \"\$(podman ${RT[*]} run --rm --network none ${U[*]} --entrypoint id '$IMG' -u)\" = 10269 ]"
xf_check "(b) no compiler and no -dev package in the runtime image" \
  bash -c "out=\$(podman ${RT[*]} run --rm --network none ${U[*]} --entrypoint sh '$IMG' -c \
             'command -v cc gcc cmake; dpkg-query -W -f=\"\${Package}\n\" | grep -- \"-dev\$\"'); echo \"\$out\"; [ -z \"\$out\" ]"
xf_check "(b) the build stage installs every -dev package of install-deps.sh's BUILD_PKGS (but cmocka, clang's)" \
  bash -c "miss=''; for p in \$(sed -n '/^BUILD_PKGS=(/,/)/p' '$XF_ROOT/deploy/install-deps.sh' | grep -oE '[a-z0-9.+-]+-dev\\b' | grep -v -e cmocka -e clang); do
             grep -qw -- \"\$p\" '$XF_ROOT/deploy/container/Containerfile' || miss=\"\$miss \$p\"; done; echo \"missing:\$miss\"; [ -z \"\$miss\" ]"
echo "  (image size: $(pm image inspect --format '{{.Size}}' "$IMG" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
xf_check "(v) xmppfront --version in the image (--network none)" \
  bash -c "podman ${RT[*]} run --rm --network none ${U[*]} '$IMG' --version | grep -qx 'xmppfront [0-9.]*'"

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
pm run -d --name "xfct-$$" --network "ns:/run/netns/$XF_NS" "${U[@]}" \
  -v "$CFG:/etc/xmppfront:ro" "$IMG" > "$XF_TMP/run.out" 2>&1 || { cat "$XF_TMP/run.out"; xf_setup_failed "$T: podman run"; }
for ((i = 0; i < 50; i++)); do xf_ns_listening 443 && xf_ns_listening 5222 && break; sleep 0.1; done
xf_check "(s) the container listens on 5222 and 443 in the namespace" \
  bash -c "ip netns exec '$XF_NS' ss -Hltnp | grep -E ':(5222|443) ' | grep -c xmppfront | grep -qx 2 || { podman ${RT[*]} logs 'xfct-$$'; exit 1; }"
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
pm stop -t 10 "xfct-$$" >/dev/null 2>&1
xf_check "(t) podman stop: SIGTERM drained, exit status 0" \
  bash -c "[ \"\$(podman ${RT[*]} inspect --format '{{.State.ExitCode}}' 'xfct-$$')\" = 0 ] &&
           podman ${RT[*]} logs 'xfct-$$' 2>&1 | grep -q 'SIGTERM received'"
echo "  (times: base ${t_base}s, build ${t_build}s, total $(( $(date +%s) - t0 ))s)"
xf_finish "$T"
