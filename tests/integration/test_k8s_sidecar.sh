#!/usr/bin/env bash
# The Kubernetes sidecar pod of deploy/kubernetes/xmppfront-sidecar.yaml (issue 9,
# "Packaging"), without a cluster:
#  (m) the manifest, checked offline (tests/integration/k8s_validate.py, python3-yaml:
#      fields, ports Service = container = listeners, probes on the admin listener,
#      security contexts, the init container's env, volumes, Secret items); and, when a
#      kubectl is installed, `kubectl kustomize` of the folder (offline; a client-side
#      dry run would need an API server);
#  then the pod's network arrangement, from the manifest's own ConfigMaps and values, in
#  a network namespace the test makes (the pod's, with the lab DNS):
#  (r) the init container's script deploy/redirect/pod-init.sh, with the manifest's
#      XF_BACKEND_UID and XF_OUTBOUND_PORT and its capabilities (root with NET_ADMIN
#      only, no_new_privs): the nft rule for the backend's uid;
#  (p) Prosody with the manifest's prosody.cfg.lua as the backend's runAsUser, xmppfront
#      with the manifest's xmppfront.json and tenant file as its runAsUser, no
#      capabilities and no_new_privs (allowPrivilegeEscalation: false), binding 443 by
#      the pod sysctl net.ipv4.ip_unprivileged_port_start; the tenant's certificate from
#      the Secret layout (certs/DOMAIN/tls.crt, tls.key, mode 0440, group fsGroup) is
#      served on 5223;
#  (o) a user of the backend sends to remote.example: the backend's outgoing s2s lands
#      on xmppfront's outbound listener (its log line names the original destination,
#      remote.example's SRV target and port), and xmppfront's own connection to the
#      remote is not redirected (the remote, a scripted peer, sees it arrive);
#  (a) /healthz and /readyz of the admin listener answer 200 on the pod's address
#      (where the kubelet's probes go).
. "$(dirname "$0")/../lab/lab.sh"
T=test_k8s_sidecar
M="$XF_ROOT/deploy/kubernetes/xmppfront-sidecar.yaml"
POD_IP=10.244.0.10

lab_init "$T" || exit 1
E="$LAB_DIR/etc/xmppfront"
mkdir -p "$E/main"
xf_check "(m) the manifest passes the offline checks (k8s_validate.py)" \
  "$XF_PY" "$XF_IT_DIR/k8s_validate.py" "$M" --extract "$LAB_DIR/pod"
[ -f "$LAB_DIR/pod/pod.env" ] || { xf_finish "$T"; exit 1; }
if command -v kubectl >/dev/null; then
  xf_check "(m) kubectl kustomize deploy/kubernetes (offline) renders every document" \
    bash -c "out=\$(kubectl kustomize '$XF_ROOT/deploy/kubernetes') && [ \"\$(grep -c '^kind:' <<<\"\$out\")\" = \"\$(grep -c '^kind:' '$M')\" ]"
else
  echo "  (no kubectl installed: kustomize rendering not checked)"
fi
# shellcheck disable=SC1091
. "$LAB_DIR/pod/pod.env"

# ---- the pod's files, laid out as the kubelet mounts them
sed "s|/etc/xmppfront/|$E/|g" "$LAB_DIR/pod/xmppfront.json" > "$E/main/xmppfront.json"
cp -r "$LAB_DIR/pod/tenants" "$E/tenants"
lab_ca || xf_setup_failed "$T: CA"
for d in $TENANTS; do
  # shellcheck disable=SC2046  # the tenant's names, one word each
  xf_make_cert "$LAB_DIR/pki" "$LAB_DIR/tls/$d" "$d" $("$XF_PY" -c 'import json,sys; t=json.load(open(sys.argv[1]))
print(" ".join([t["domain"]] + t.get("aliases", [])))' "$E/tenants/$d.json") || xf_setup_failed "$T: certificate $d"
  mkdir -p "$E/certs/$d"
  cp "$LAB_DIR/tls/$d/fullchain.pem" "$E/certs/$d/tls.crt"
  cp "$LAB_DIR/tls/$d/privkey.pem" "$E/certs/$d/tls.key"
done
mkdir -p "$E/secret"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$E/secret/dialback.secret"
chgrp -R "$FS_GROUP" "$E"
find "$E" -type f -exec chmod 0444 {} +
chmod 0440 "$E"/certs/*/tls.* "$E/secret/dialback.secret"
find "$E" -type d -exec chmod 0755 {} +
"$XF_BIN" --check-config -c "$E/main/xmppfront.json" > "$LAB_DIR/check.out" 2>&1 ||
  { cat "$LAB_DIR/check.out"; xf_setup_failed "$T: the manifest's xmppfront.json does not load"; }

# ---- the pod's network namespace
lab_up || xf_setup_failed "$T: namespace"
lab_addr "$POD_IP" || xf_setup_failed "$T: pod address"
# remote.example's s2s on 5299 by SRV (a wildcard [::]:5269 of xmppfront and the remote's
# 192.0.2.10:5269 cannot both be bound in one namespace)
lab_host remote.example 192.0.2.10
lab_rr _xmpp-server._tcp.remote.example SRV "0 5 5299 remote.example."
lab_dns_start || xf_setup_failed "$T: dns"
lab_exec sysctl -qw "net.ipv4.ip_unprivileged_port_start=$UNPRIV_PORT_START" || xf_setup_failed "$T: sysctl"

# (r) the init container
xf_check "(r) pod-init.sh with the manifest's env and only NET_ADMIN: the redirect for uid $BACKEND_UID -> :$OUTBOUND_PORT" \
  bash -c "ip netns exec '$LAB_NS' setpriv --bounding-set=-all,+net_admin --inh-caps=-all --no-new-privs -- \
             env -i PATH=\"\$PATH\" XF_BACKEND_UID=$BACKEND_UID XF_OUTBOUND_PORT=$OUTBOUND_PORT \
             sh '$XF_ROOT/deploy/redirect/pod-init.sh' &&
           ip netns exec '$LAB_NS' nft list table inet xmppfront_redirect | grep -q 'skuid != $BACKEND_UID return' &&
           ip netns exec '$LAB_NS' nft list table inet xmppfront_redirect | grep -q 'redirect to :$OUTBOUND_PORT'"
LAB_NFT_TABLES+=("inet xmppfront_redirect")

# the remote: a scripted s2s peer (root: not redirected) that logs what reaches it
# (plaintext only: the tenant's policy "encrypted" makes xmppfront refuse it at once, with
# a log line naming tenant and remote)
xf_make_cert "$LAB_DIR/pki" "$LAB_DIR/tls/remote" remote.example remote.example || xf_setup_failed "$T: remote cert"
timeout 120 ip netns exec "$LAB_NS" "$XF_PY" "$XF_IT_DIR/outbound_peer.py" remote --listen 192.0.2.10 5299 \
  --domain remote.example --tls none --cert "$LAB_DIR/tls/remote/fullchain.pem" --key "$LAB_DIR/tls/remote/privkey.pem" \
  --log "$LAB_DIR/remote.log" > /dev/null 2>&1 &
xf_track $!
lab_wait_port 192.0.2.10 5299 10 || xf_setup_failed "$T: remote"

# (p) the backend container: the manifest's prosody.cfg.lua, paths to the test's emptyDir
B="$LAB_DIR/backend"
mkdir -p "$B/data"
sed -e "s|/var/lib/prosody|$B/data|g" "$LAB_DIR/pod/prosody.cfg.lua" > "$B/prosody.cfg.lua"
chown -R "$BACKEND_UID:$BACKEND_UID" "$B"
as_backend() { ip netns exec "$LAB_NS" setpriv --reuid="$BACKEND_UID" --regid="$BACKEND_UID" --clear-groups \
                 --no-new-privs --inh-caps=-all --bounding-set=-all -- env HOME="$B" "$@"; }
as_backend timeout 20 prosodyctl --config "$B/prosody.cfg.lua" register user1 example.org pass1 \
  > "$B/register.out" 2>&1 || { cat "$B/register.out"; xf_setup_failed "$T: prosodyctl register"; }
# (not the function: backgrounded, $! would be a subshell's; ip netns exec and setpriv exec)
ip netns exec "$LAB_NS" setpriv --reuid="$BACKEND_UID" --regid="$BACKEND_UID" --clear-groups --no-new-privs \
  --inh-caps=-all --bounding-set=-all -- env HOME="$B" prosody --config "$B/prosody.cfg.lua" > "$B/prosody.out" 2>&1 &
BPID=$!
xf_track "$BPID"
lab_wait_port 127.0.0.1 15222 20 "$BPID" || { tail -20 "$B/prosody.out"; xf_setup_failed "$T: backend"; }

# (p) the xmppfront container
XLOG="$LAB_DIR/xmppfront.log"
ip netns exec "$LAB_NS" setpriv --reuid="$XF_UID" --regid="$XF_GID" --groups="$FS_GROUP" --no-new-privs \
  --inh-caps=-all --bounding-set=-all -- "$XF_BIN" -c "$E/main/xmppfront.json" 2> "$XLOG" &
XPID=$!
xf_track "$XPID"
lab_wait_port :: 443 10 "$XPID" || lab_wait_port 0.0.0.0 443 5 "$XPID" ||
  { tail -20 "$XLOG"; xf_setup_failed "$T: xmppfront"; }
lab_wait_port 127.0.0.1 "$OUTBOUND_PORT" 5 "$XPID" || xf_setup_failed "$T: outbound listener"
xf_check "(p) xmppfront runs as uid $XF_UID with no capability, the backend as uid $BACKEND_UID" \
  bash -c "[ \"\$(stat -c %u /proc/$XPID)\" = $XF_UID ] && grep -q '^CapEff:.*0000000000000000' /proc/$XPID/status &&
           grep -q '^NoNewPrivs:.*1' /proc/$XPID/status && [ \"\$(stat -c %u /proc/$BPID)\" = $BACKEND_UID ]"
xf_check "(p) port 443 bound by the unprivileged xmppfront (pod sysctl), as every Service port" \
  bash -c "for p in 5222 5223 5269 5270 443; do ip netns exec '$LAB_NS' ss -Hltnp \"sport = :\$p\" | grep -q 'pid=$XPID,' || { echo \"port \$p\"; exit 1; }; done"
xf_check "(p) the tenant's certificate from the Secret layout is served on 5223" \
  bash -c "ip netns exec '$LAB_NS' timeout 10 openssl s_client -connect $POD_IP:5223 -servername example.org \
             -alpn xmpp-client </dev/null 2>/dev/null | grep -qE 'subject=.*CN ?= ?example.org'"

# (o) a message to remote.example: the backend's s2s goes out, is redirected
OUT="$LAB_DIR/send.out"
lab_xmpp --account user1@example.org pass1 127.0.0.1 15222 --send user1@example.org x@remote.example \
  --timeout 6 > "$OUT" 2>&1
xf_check "(o) the backend's outgoing s2s landed on xmppfront's outbound listener (original_dst: remote.example's SRV target and port)" \
  bash -c "grep -E 'outbound id=[0-9]+ accept peer=[^ ]+ original_dst=192\.0\.2\.10:5299' '$XLOG' ||
           { cat '$OUT'; tail -20 '$XLOG'; tail -20 '$B/prosody.out'; exit 1; }"
xf_check "(o) ... as tenant example.org's stream to remote.example (refused there: plaintext remote, policy encrypted)" \
  bash -c "for i in \$(seq 50); do grep -E 'tenant=\"example.org\" remote=\"remote.example\" refused: dialback error policy-violation' '$XLOG' && exit 0; sleep 0.1; done; exit 1"
xf_check "(o) xmppfront's own connection to the remote was not redirected: the remote saw it" \
  grep -q '^ACCEPT' "$LAB_DIR/remote.log"

# (a) probes
xf_check "(a) GET /healthz and /readyz on the pod address :$ADMIN_PORT -> 200 (the kubelet's probes)" \
    bash -c "for p in healthz readyz; do c=\$(ip netns exec '$LAB_NS' curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://$POD_IP:$ADMIN_PORT/\$p);
               [ \"\$c\" = 200 ] || { echo \"/\$p -> \$c\"; exit 1; }; done"
xf_check "xmppfront and the backend are still running" kill -0 "$XPID" "$BPID"
xf_finish "$T"
