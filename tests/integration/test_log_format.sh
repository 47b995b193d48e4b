#!/usr/bin/env bash
# Log formats (docs/process.md). The same events — a key permission warning at start
# and a <host-unknown/> refusal whose stream `to` tries to forge fields — logged as text
# and with "log_format": "json": every JSON line parses, carries time/level/message and
# the text line's key=value fields with the same values (the forged ones stay inside
# reason). With JOURNAL_STREAM naming stderr (systemd.exec(5)), lines start with the
# sd-daemon priority (<6> info, <4> warn) and text lines drop the timestamp; a
# JOURNAL_STREAM that names another file changes nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_netns.sh"
T=log_format
xf_init "$T" || xf_setup_failed "$T: init"
xf_ns_tenant_world || xf_setup_failed "$T: PKI"
chmod 0644 "$XF_TMP/certs/a.example/privkey.pem"        # one warning line at start
read -r PORT < <(xf_free_ports 1)
XF_CFG="$XF_TMP/xf/xmppfront.json"
LST=$(xf_listener 127.0.0.1 "$PORT" starttls client)
write_cfg() {
  cat > "$XF_CFG" <<JSON
{ "workers": 1, "tenants": "tenants", "listeners": [$LST], "limits": {"drain_timeout_s": 1}${1:+, $1} }
JSON
}
refuse() { timeout 20 "$XF_PY" "$XF_IT_DIR/forged_to_peer.py" "$PORT" >/dev/null; }
run() {  # LOG [env...]: start, one refusal, stop
  local log=$1; shift
  : > "$log"
  env "$@" "$XF_BIN" -c "$XF_CFG" 2>"$log" &
  XF_PROXY_PID=$!; xf_track "$XF_PROXY_PID"
  xf_wait_port 127.0.0.1 "$PORT" 10 "$XF_PROXY_PID" || { tail "$log"; return 1; }
  refuse || { echo "no host-unknown"; return 1; }
  sleep 0.3
  xf_stop_pid "$XF_PROXY_PID" 10
}
TEXT="$XF_TMP/text.log" JSONL="$XF_TMP/json.log" JT="$XF_TMP/jtext.log" JJ="$XF_TMP/jjson.log" JO="$XF_TMP/jother.log"
write_cfg
run "$TEXT" || xf_setup_failed "$T: text run"
write_cfg '"log_format": "json"'
run "$JSONL" || xf_setup_failed "$T: json run"

xf_check "json: every line is one JSON object with time, level, message" \
  "$XF_PY" - "$JSONL" <<'PYEOF'
import json, re, sys
n = 0
for line in open(sys.argv[1], encoding="utf-8"):
    o = json.loads(line)
    assert isinstance(o, dict), line
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", o["time"]), o
    assert o["level"] in ("debug", "info", "warn", "error"), o
    assert isinstance(o["message"], str), o
    n += 1
print(n, "lines")
sys.exit(0 if n >= 4 else 1)
PYEOF
xf_check "json and text carry the same fields and values for the same events" \
  "$XF_PY" - "$TEXT" "$JSONL" <<'PYEOF'
import json, re, sys
tok = re.compile(r'\s([a-z_][a-z0-9_]*)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?=\s|$)')
def unq(v):
    return re.sub(r'\\(["\\])', r'\1', v[1:-1]) if v.startswith('"') else v
def text_event(lines, word):
    l = [x for x in lines if word in x]
    assert len(l) == 1, (word, l)
    m = re.match(r"(\S+) (\w+) (.*)", l[0].rstrip("\n"))
    return m.group(2), m.group(3), {k: unq(v) for k, v in tok.findall(" " + m.group(3))}
text = open(sys.argv[1], encoding="utf-8").readlines()
objs = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
bad = []
for word, volatile in (("evil.example", {"id", "peer", "duration_ms", "in", "out"}),
                       ("key permissions", set())):
    lvl, msg, tf = text_event(text, word)
    js = [o for o in objs if word in o["message"]]
    if len(js) != 1:
        bad.append(f"{word}: {len(js)} json lines"); continue
    o = js[0]
    jf = {k: v for k, v in o.items() if k not in ("time", "level", "message")}
    print(word, "text fields:", sorted(tf), "\n json fields:", sorted(jf))
    if o["level"] != lvl: bad.append(f"{word}: level {o['level']} != {lvl}")
    if set(tf) != set(jf): bad.append(f"{word}: field names differ: {set(tf) ^ set(jf)}")
    for k in set(tf) & set(jf) - volatile:
        if str(jf[k]) != tf[k]: bad.append(f"{word}: {k}: {jf[k]!r} != {tf[k]!r}")
    for k in volatile & set(jf):
        if str(jf[k]) == "" : bad.append(f"{word}: {k} empty")
    if word == "evil.example":
        if jf.get("tenant") != "-" or not re.fullmatch(r"127\.0\.0\.1:\d+", jf.get("peer", "")):
            bad.append(f"forged: tenant={jf.get('tenant')!r} peer={jf.get('peer')!r}")
        if '" tenant=evil.example peer=1.2.3.4 x="\\' not in jf.get("reason", ""):
            bad.append(f"reason {jf.get('reason')!r} does not carry the to intact")
        if not isinstance(jf.get("in"), int): bad.append("in= is not a number")
if bad: sys.exit("; ".join(bad))
PYEOF

# Journal: stderr is a file whose device:inode JOURNAL_STREAM names.
write_cfg
touch "$JT"; run "$JT" JOURNAL_STREAM="$(stat -c %d:%i "$JT")" || xf_setup_failed "$T: journal text run"
xf_check "journal, text: info lines start <6>info, warnings <4>warn, no timestamp" \
  bash -c "cat '$JT'; grep -q '^<6>info xmppfront .* started' '$JT' && \
    grep -q '^<4>warn key permissions' '$JT' && ! grep -vE '^<[3467]>(debug|info|warn|error) ' '$JT' && \
    ! grep -qE '^<.>[a-z]+ [0-9]{4}-[0-9]{2}-' '$JT'"
write_cfg '"log_format": "json"'
touch "$JJ"; run "$JJ" JOURNAL_STREAM="$(stat -c %d:%i "$JJ")" || xf_setup_failed "$T: journal json run"
xf_check "journal, json: <N> then a JSON object whose level matches N" \
  "$XF_PY" - "$JJ" <<'PYEOF'
import json, sys
want = {"debug": "<7>", "info": "<6>", "warn": "<4>", "error": "<3>"}
seen = set()
for line in open(sys.argv[1], encoding="utf-8"):
    o = json.loads(line[3:])
    assert line[:3] == want[o["level"]], line
    seen.add(o["level"])
print(sorted(seen))
sys.exit(0 if {"info", "warn"} <= seen else 1)
PYEOF
write_cfg
touch "$JO"; run "$JO" JOURNAL_STREAM="$(stat -c %d:%i "$JT")" || xf_setup_failed "$T: other run"
xf_check "JOURNAL_STREAM naming another file: plain timestamped lines" \
  bash -c "head -3 '$JO'; ! grep -q '^<' '$JO' && grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T.* info ' '$JO'"
xf_finish "$T"
