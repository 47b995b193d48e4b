-- Prosody (0.12; 13 the same) as the backend of xmppfront: the s2s part.
-- Goes into prosody.cfg.lua (global section). docs/federation.md explains the whole setup.
--
-- xmppfront owns every piece of s2s security for the tenants: TLS, certificates, peer
-- verification (PKIX; DANE/POSH later), SASL EXTERNAL and dialback keys. The backend
-- needs no certificate and no TLS: it speaks plaintext XMPP on loopback and
-- authenticates every s2s stream with dialback, which xmppfront answers.
--   inbound:  remote ==TLS==> xmppfront :5269/:5270 --plain--> 127.0.0.1:15280 (here)
--   outbound: here --plain--> "remote:5269", redirected by the netfilter rule of
--             deploy/redirect/ (by this server's uid) to xmppfront 127.0.0.1:15269 ==TLS==> remote
-- Tenant files: "s2s_backend": "127.0.0.1:15280"; xmppfront.json: the outbound listener
--   {"address": "127.0.0.1", "port": 15269, "tls": "none", "service": "outbound", "transparent": true}

-- s2s on loopback only (xmppfront is the public side)
s2s_interfaces = { "127.0.0.1" }
s2s_ports = { 15280 }
s2s_direct_tls_ports = { }

-- dialback on: the only way the backend authenticates streams; xmppfront makes and
-- checks the keys (its own XEP-0185 secret) and answers the backend's <db:verify/>
modules_enabled = {
    -- ... your other modules ...
    "dialback";
}
-- TLS off for s2s: no STARTTLS offered (xmppfront would not relay it), and outgoing
-- streams stay plaintext: with TLS loaded Prosody would also try _xmpps-server (direct
-- TLS) first, which xmppfront's plaintext outbound listener does not speak.
-- (Unloading "tls" also removes STARTTLS from c2s: there too xmppfront terminates TLS.)
modules_disabled = { "tls" }
s2s_require_encryption = false
s2s_secure_auth = false
-- no per-domain exceptions are needed: s2s_insecure_domains / s2s_secure_domains stay unset

-- How soon a stanza to an unreachable remote bounces: xmppfront answers the dialback
-- with an error as soon as the remote fails its policy or cannot be reached, so the
-- default (90 s) only matters when xmppfront itself is down.
-- s2s_timeout = 90

-- The remote's domain in DNS is what this server resolves (it connects to the SRV
-- target; the redirect rule takes the connection to xmppfront wherever it points).
-- Prosody 13: keep bidirectional s2s (XEP-0288, "s2s_bidi") off; xmppfront relays one
-- stream per direction.
