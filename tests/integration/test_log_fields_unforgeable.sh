#!/usr/bin/env bash
# Log values a peer can influence are quoted and escaped (key="value", with \" and \\),
# so a stream `to` of `" tenant=evil.example peer=1.2.3.4 x="\` cannot forge a field:
# the refusal's close line, parsed as key=value pairs, has exactly one tenant= and one
# peer= (the real ones), and its reason carries the injected text intact.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_netns.sh"
T=log_fields_unforgeable
xf_init "$T" || xf_setup_failed "$T: init"
xf_ns_tenant_world || xf_setup_failed "$T: PKI"
read -r PORT < <(xf_free_ports 1)
XF_CFG="$XF_TMP/xf/xmppfront.json" XF_LOG="$XF_TMP/xf/xmppfront.log"
xf_config_write "$XF_CFG" tenants "$(xf_listener 127.0.0.1 "$PORT" starttls client)" '"drain_timeout_s": 2'
xf_proxy_start "$XF_CFG" "$XF_LOG" "$PORT" || xf_setup_failed "$T: xmppfront did not start"

xf_check "a header with to='\" tenant=evil.example peer=1.2.3.4 x=\"\\' gets <host-unknown/>" \
  timeout 20 "$XF_PY" "$XF_IT_DIR/forged_to_peer.py" "$PORT"
sleep 0.3
xf_check "the close line parses as key=value pairs with one real tenant= and peer= and the injected text inside reason=" \
  "$XF_PY" - "$XF_LOG" <<'PYEOF'
import re, sys
lines = [l for l in open(sys.argv[1], encoding="utf-8", errors="replace") if " close " in l and "evil.example" in l]
if len(lines) != 1:
    sys.exit(f"want one close line naming evil.example, got {len(lines)}")
line = lines[0].rstrip("\n")
print(line)
# key=value | key="value with \" and \\ escapes"
tok = re.compile(r'\s([a-z_]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?=\s|$)')
fields = tok.findall(line)
keys = [k for k, _ in fields]
def unq(v):
    if v.startswith('"'):
        return re.sub(r'\\(["\\])', r'\1', v[1:-1])
    return v
vals = {k: unq(v) for k, v in fields}
print("keys:", keys)
bad = []
for k in ("tenant", "peer", "reason", "sni", "alpn"):
    if keys.count(k) != 1:
        bad.append(f"{k}= appears {keys.count(k)} times")
if vals.get("tenant") != "-":
    bad.append(f"tenant is {vals.get('tenant')!r}, not '-' (no tenant routed)")
if not re.fullmatch(r"127\.0\.0\.1:\d+", vals.get("peer", "")):
    bad.append(f"peer is {vals.get('peer')!r}")
want = '" tenant=evil.example peer=1.2.3.4 x="\\'
if want not in vals.get("reason", ""):
    bad.append(f"reason {vals.get('reason')!r} does not carry the `to` intact")
# the whole line must be consumed by the tokenizer after "close": nothing unparsed
rest = tok.sub("", line[line.index(" close") + 6:]).strip()
if rest:
    bad.append(f"unparsed text: {rest!r}")
if bad:
    sys.exit("; ".join(bad))
print("ok: tenant=%r peer=%r reason=%r" % (vals["tenant"], vals["peer"], vals["reason"]))
PYEOF
xf_finish "$T"
