-- Lab-only Prosody module (tests/lab): one info line per authenticated s2s stream, so that
-- the lab can tell how two servers federated (XEP-0238 V / E / T) from the log alone:
--   lab-s2s dir=incoming from=a.example to=b.example mechanism=dialback secure=true
--           chain=invalid identity=invalid
-- Runs before mod_s2s marks the session authenticated (priority 100 > its -1) and returns
-- nothing, so it never changes the outcome. Works with Prosody 0.12 (event data: session,
-- host, mechanism).
module:hook("s2s-authenticated", function (event)
	local s = event.session;
	local dir = (s.direction or (s.type or ""):match("^s2s(%a+)") or "?");
	local from, to = s.from_host, s.to_host;
	module:log("info", "lab-s2s dir=%s from=%s to=%s mechanism=%s secure=%s chain=%s identity=%s",
		dir, tostring(from), tostring(to), tostring(event.mechanism), tostring(s.secure and true or false),
		tostring(s.cert_chain_status), tostring(s.cert_identity_status));
end, 100);
