-- Lab-only Prosody module (tests/lab): one info line per authenticated s2s stream, so that
-- the lab can tell how two servers federated (XEP-0238 V / E / T) from the log alone:
--   lab-s2s dir=incoming from=a.example to=b.example mechanism=dialback secure=true
--           chain=invalid identity=invalid port=5270
-- port: the server side's port of the TCP connection (5269 STARTTLS or plaintext,
-- 5270 direct TLS, XEP-0368), in both directions.
-- Runs before mod_s2s marks the session authenticated (priority 100 > its -1) and returns
-- nothing, so it never changes the outcome. Written for Prosody 0.12 (event data: session,
-- host, mechanism; net.server connections with :serverport() / :clientport()).
module:hook("s2s-authenticated", function (event)
	local s = event.session;
	local dir = s.direction or (s.type or ""):match("^s2s(%a+)") or "?";
	local port = "?";
	if s.conn then
		local ok, p = pcall(s.conn.serverport, s.conn);
		if ok and p then port = tostring(p); end
	end
	module:log("info", "lab-s2s dir=%s from=%s to=%s mechanism=%s secure=%s chain=%s identity=%s port=%s",
		dir, tostring(s.from_host), tostring(s.to_host), tostring(event.mechanism),
		tostring(s.secure and true or false), tostring(s.cert_chain_status),
		tostring(s.cert_identity_status), port);
end, 100);
