#!/usr/bin/python3
"""Offline check of deploy/kubernetes/xmppfront-sidecar.yaml (tests/integration/test_k8s_sidecar.sh).

  k8s_validate.py MANIFEST [--extract DIR]

No cluster and no schema download: kubectl's client-side dry run needs an API server
for discovery even with --validate=false (Debian 12's kubernetes-client 1.20 and Debian
13's kubectl 1.32 alike). So this checks, with python3-yaml, what the sidecar
arrangement depends on:
  - every document: apiVersion, kind, metadata.name; the kinds used are known ones;
  - ConfigMaps: every *.json value parses;
  - Deployment/Service: selector = template labels = Service selector; the Service ports
    are exactly 5222/5223/5269/5270/443 and each targetPort is a port of the xmppfront
    container; those are the config's non-outbound listener ports; the admin port is
    not in the Service;
  - probes: liveness httpGet /healthz, readiness /readyz, on the config's admin port,
    and the admin listener is not bound to loopback (the kubelet probes the pod IP);
  - securityContext: backend and xmppfront runAsNonRoot, no privilege escalation, drop
    ALL, different uids; the init container has NET_ADMIN and runs pod-init.sh with
    XF_BACKEND_UID = the backend's runAsUser and XF_OUTBOUND_PORT = a transparent
    outbound listener on 127.0.0.1; a listener port below 1024 needs the pod sysctl
    net.ipv4.ip_unprivileged_port_start at or below it;
  - volumes: every mount names a volume; the -c file is a key of the ConfigMap mounted
    there; "tenants" resolves to the tenants ConfigMap's mount; each tenant's
    certificate/key resolve to items of a Secret projected under the certs mount;
    dialback_secret_file lies in a Secret mount; the tenants' backends are Prosody's
    c2s/s2s ports on 127.0.0.1.
Prints one line per problem and "k8s-validate: ok (N documents, M checks)" or
"k8s-validate: N problems"; exit 0 / 1. --extract DIR writes what the netns test runs:
xmppfront.json, tenants/*.json, prosody.cfg.lua and pod.env (shell assignments).
"""
import json
import os
import posixpath
import re
import sys

import yaml

KINDS = {('v1', 'ConfigMap'), ('v1', 'Service'), ('v1', 'Secret'), ('apps/v1', 'Deployment'),
         ('networking.k8s.io/v1', 'NetworkPolicy')}
problems = []
checks = 0


def check(cond, msg):
    global checks
    checks += 1
    if not cond:
        problems.append(msg)
    return cond


def main():
    path = sys.argv[1]
    extract = sys.argv[sys.argv.index('--extract') + 1] if '--extract' in sys.argv else None
    docs = [d for d in yaml.safe_load_all(open(path)) if d is not None]
    by_kind = {}
    for i, d in enumerate(docs):
        ok = check(isinstance(d, dict) and isinstance(d.get('apiVersion'), str)
                   and isinstance(d.get('kind'), str)
                   and isinstance(d.get('metadata', {}).get('name'), str)
                   and d['metadata']['name'] != '', f"document {i}: apiVersion, kind and metadata.name required")
        if not ok:
            continue
        check((d['apiVersion'], d['kind']) in KINDS, f"document {i}: unknown {d['apiVersion']} {d['kind']}")
        by_kind.setdefault(d['kind'], {})[d['metadata']['name']] = d
    cms = by_kind.get('ConfigMap', {})
    for name, cm in cms.items():
        for k, v in (cm.get('data') or {}).items():
            if k.endswith('.json'):
                try:
                    json.loads(v)
                except ValueError as e:
                    check(False, f"ConfigMap {name}: {k}: not JSON: {e}")
    deps = list(by_kind.get('Deployment', {}).values())
    svcs = list(by_kind.get('Service', {}).values())
    if not check(len(deps) == 1 and len(svcs) == 1, "one Deployment and one Service expected"):
        return report()
    dep, svc = deps[0], svcs[0]
    tpl = dep['spec']['template']
    labels = tpl['metadata']['labels']
    check(dep['spec']['selector']['matchLabels'].items() <= labels.items(), "Deployment selector does not match its template")
    check(svc['spec']['selector'].items() <= labels.items(), "Service selector does not match the pod labels")
    pod = tpl['spec']
    conts = {c['name']: c for c in pod['containers']}
    inits = pod.get('initContainers', [])
    xf = conts.get('xmppfront')
    be = conts.get('backend')
    if not check(xf is not None and be is not None and len(inits) == 1,
                 "containers xmppfront and backend and one init container expected"):
        return report()
    init = inits[0]
    vols = {v['name']: v for v in pod.get('volumes', [])}
    for c in list(conts.values()) + inits:
        for m in c.get('volumeMounts', []):
            check(m['name'] in vols, f"container {c['name']}: mount of unknown volume {m['name']}")

    # the main file: -c PATH under a ConfigMap mount
    args = xf.get('args', [])
    main_path = args[args.index('-c') + 1] if '-c' in args else None
    if not check(main_path is not None, "xmppfront args: no -c FILE"):
        return report()

    def mount_of(c, p):   # (mount, volume, rest) of the deepest mount containing p
        best = None
        for m in c.get('volumeMounts', []):
            mp = m['mountPath'].rstrip('/')
            if p == mp or p.startswith(mp + '/'):
                if best is None or len(mp) > len(best['mountPath'].rstrip('/')):
                    best = m
        if best is None:
            return None, None, None
        return best, vols.get(best['name']), p[len(best['mountPath'].rstrip('/')) + 1:]

    m, v, rest = mount_of(xf, main_path)
    if not check(v is not None and 'configMap' in v, f"{main_path}: not in a ConfigMap mount"):
        return report()
    cfg_cm = cms.get(v['configMap']['name'])
    if not check(cfg_cm is not None and rest in cfg_cm.get('data', {}), f"{main_path}: no key {rest} in its ConfigMap"):
        return report()
    cfg = json.loads(cfg_cm['data'][rest])
    main_dir = posixpath.dirname(main_path)
    listeners = cfg['listeners']
    public = {l['port'] for l in listeners if l['service'] != 'outbound'}
    outbound = [l for l in listeners if l['service'] == 'outbound' and l.get('transparent')]

    # ports: Service = listeners = container ports
    cports = {p['name']: p['containerPort'] for p in xf.get('ports', [])}
    sports = set()
    for p in svc['spec']['ports']:
        tp = p.get('targetPort', p['port'])
        tnum = cports.get(tp) if isinstance(tp, str) else tp
        check(tnum in cports.values(), f"Service port {p['port']}: targetPort {tp} is not a port of the xmppfront container")
        check(tnum in public, f"Service port {p['port']}: targetPort {tp} is no listener of the xmppfront config")
        sports.add(p['port'])
    check(sports == {5222, 5223, 5269, 5270, 443}, f"Service ports {sorted(sports)} != 5222 5223 5269 5270 443")
    check(public <= set(cports.values()), f"listener ports {sorted(public - set(cports.values()))} are not container ports")
    admin = cfg.get('admin')
    if check(isinstance(admin, dict) and 'port' in admin, "config: no admin listener (probes)"):
        check(admin['port'] not in sports, "the admin port is in the Service")
        check(not admin.get('address', '127.0.0.1').startswith('127.') and admin.get('address') != '::1',
              "admin listener on loopback: the kubelet's httpGet probes reach the pod IP")
        for probe, want in (('livenessProbe', '/healthz'), ('readinessProbe', '/readyz')):
            hg = xf.get(probe, {}).get('httpGet', {})
            port = cports.get(hg.get('port')) if isinstance(hg.get('port'), str) else hg.get('port')
            check(hg.get('path') == want and port == admin['port'],
                  f"{probe}: want httpGet {want} on the admin port {admin['port']}, have {hg}")

    # security contexts
    def sc(c):
        return c.get('securityContext', {})
    for c in (xf, be):
        s = sc(c)
        check(s.get('runAsNonRoot') is True and isinstance(s.get('runAsUser'), int) and s['runAsUser'] > 0,
              f"{c['name']}: runAsNonRoot and a non-zero runAsUser required")
        check(s.get('allowPrivilegeEscalation') is False, f"{c['name']}: allowPrivilegeEscalation must be false")
        check('ALL' in s.get('capabilities', {}).get('drop', []), f"{c['name']}: capabilities.drop ALL required")
    check(sc(xf).get('runAsUser') != sc(be).get('runAsUser'), "xmppfront must not run as the backend's uid")
    env = {e['name']: e.get('value') for e in init.get('env', [])}
    check('NET_ADMIN' in sc(init).get('capabilities', {}).get('add', []), "init container: NET_ADMIN required")
    check(any('pod-init.sh' in a for a in init.get('command', []) + init.get('args', [])), "init container: not pod-init.sh")
    check(env.get('XF_BACKEND_UID') == str(sc(be).get('runAsUser')), "init XF_BACKEND_UID != the backend's runAsUser")
    check(any(str(l['port']) == env.get('XF_OUTBOUND_PORT', '15269') and l['address'] == '127.0.0.1' for l in outbound),
          "init XF_OUTBOUND_PORT is no transparent outbound listener on 127.0.0.1")
    low = [p for p in public if p < 1024]
    sysctls = {s['name']: s['value'] for s in pod.get('securityContext', {}).get('sysctls', [])}
    if low:
        check(int(sysctls.get('net.ipv4.ip_unprivileged_port_start', '1024')) <= min(low),
              f"ports {low} below 1024 for a non-root user: pod sysctl net.ipv4.ip_unprivileged_port_start")

    # tenants, certificates, secret
    tdir = posixpath.normpath(posixpath.join(main_dir, cfg.get('tenants', 'tenants')))
    m, v, rest = mount_of(xf, tdir + '/x.json')
    tenants = {}
    if check(v is not None and 'configMap' in v and rest == 'x.json', f"tenants {tdir}: not a ConfigMap mount"):
        tenants = {k: json.loads(t) for k, t in cms[v['configMap']['name']]['data'].items() if k.endswith('.json')}
        check(len(tenants) > 0, "no tenant file in the tenants ConfigMap")
    bcmd = be.get('command', []) + be.get('args', [])
    ppath = bcmd[bcmd.index('--config') + 1] if '--config' in bcmd else ''
    m, v, rest = mount_of(be, ppath)
    pcfg = ''
    if check(v is not None and 'configMap' in v and rest in cms.get(v['configMap']['name'], {}).get('data', {}),
             f"backend --config {ppath}: not a key of a mounted ConfigMap"):
        pcfg = cms[v['configMap']['name']]['data'][rest]
    c2s = re.search(r'^c2s_ports\s*=\s*\{\s*(\d+)', pcfg, re.M)
    s2s = re.search(r'^s2s_ports\s*=\s*\{\s*(\d+)', pcfg, re.M)
    check(c2s and s2s and re.search(r'^interfaces\s*=\s*\{\s*"127\.0\.0\.1"\s*\}', pcfg, re.M),
          "prosody.cfg.lua: c2s_ports, s2s_ports and interfaces = { \"127.0.0.1\" } expected")
    check(re.search(r'^modules_disabled\s*=\s*\{[^}]*"tls"', pcfg, re.M), "prosody.cfg.lua: tls must be disabled (plaintext backend)")
    for name, t in tenants.items():
        for k in ('certificate', 'key'):
            p = posixpath.normpath(posixpath.join(tdir, t[k]))
            m, v, rest = mount_of(xf, p)
            items = []
            if v is not None and 'projected' in v:
                items = [i['path'] for s in v['projected']['sources'] if 'secret' in s for i in s['secret'].get('items', [])]
            elif v is not None and 'secret' in v:
                items = [i['path'] for i in v['secret'].get('items', [])] or ['tls.crt', 'tls.key']
            check(rest in items, f"tenant {name}: {k} {p} is no item of a Secret mount")
        if c2s:
            check(t.get('c2s_backend') == f"127.0.0.1:{c2s.group(1)}", f"tenant {name}: c2s_backend is not Prosody's c2s port")
        if s2s:
            check(t.get('s2s_backend') == f"127.0.0.1:{s2s.group(1)}", f"tenant {name}: s2s_backend is not Prosody's s2s port")
    sec = cfg.get('federation', {}).get('dialback_secret_file')
    m, v, rest = mount_of(xf, sec or '')
    check(sec and v is not None and 'secret' in v, "dialback_secret_file is not in a Secret mount (replicas share it)")

    if extract:
        os.makedirs(os.path.join(extract, 'tenants'), exist_ok=True)
        open(os.path.join(extract, 'xmppfront.json'), 'w').write(json.dumps(cfg, indent=2))
        for k, t in tenants.items():
            open(os.path.join(extract, 'tenants', k), 'w').write(json.dumps(t, indent=2))
        open(os.path.join(extract, 'prosody.cfg.lua'), 'w').write(pcfg)
        with open(os.path.join(extract, 'pod.env'), 'w') as f:
            f.write(f"BACKEND_UID={sc(be)['runAsUser']}\nXF_UID={sc(xf)['runAsUser']}\n"
                    f"XF_GID={sc(xf).get('runAsGroup', sc(xf)['runAsUser'])}\n"
                    f"FS_GROUP={pod.get('securityContext', {}).get('fsGroup', '')}\n"
                    f"OUTBOUND_PORT={env.get('XF_OUTBOUND_PORT', '15269')}\n"
                    f"UNPRIV_PORT_START={sysctls.get('net.ipv4.ip_unprivileged_port_start', '1024')}\n"
                    f"MAIN_PATH={main_path}\nADMIN_PORT={(admin or {}).get('port', '')}\n"
                    f"TENANTS=\"{' '.join(t['domain'] for t in tenants.values())}\"\n")
    return report(len(docs))


def report(n=0):
    for p in problems:
        print(p)
    if problems:
        print(f"k8s-validate: {len(problems)} problems")
        return 1
    print(f"k8s-validate: ok ({n} documents, {checks} checks)")
    return 0


if __name__ == '__main__':
    sys.exit(main())
