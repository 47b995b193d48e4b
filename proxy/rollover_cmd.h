/* rollover_cmd: `xmppfront rollover DOMAIN [--config FILE] [--resolver IP:PORT ...]
   [--timeout S] [--state DIR]`, the key switch of a rollover (docs/rollover.md).

   DOMAIN is a tenant with a certificate of its own (or one of its aliases) or the
   hosting name; both may name a next_certificate / next_key. The switch (certificate
   <- next_certificate, key <- next_key, next_* removed, in the tenant file or the main
   file's "hosting" object) is made only once DNS serves the next key's TLSA records
   (`xmppfront records DOMAIN`, every TARGET and port) securely (AD from a loopback
   resolver, proxy/dns.h) and has done so for at least two TTLs since this command
   first saw them (RFC 7671 §8.1, RFC 6698 §A.4: peers may cache the old RRset for a
   TTL). argv[0] is "rollover". Returns the process exit code: 0 switched, 1 refused
   (one line on stderr naming the reason), 2 bad input.

   The pure parts (the 2 x TTL rule, the state file, the JSON rewrite) are declared here
   for the unit tests (tests/unit/test_rollover_cmd.c). */
#ifndef XF_ROLLOVER_CMD_H
#define XF_ROLLOVER_CMD_H

#include <stddef.h>
#include <time.h>

int xf_rollover_main(int argc, char **argv);

/* ---- the wait (pure) ---- */

/* What this command remembers between runs (the state file, JSON):
     {"domain": "a.example", "next_tlsa": "3 1 1 hex", "first_seen": 1764590000,
      "ttl": 3600}
   first_seen: UNIX time of the first run that found every next-key TLSA record in DNS;
   ttl: the highest TTL of those RRsets seen since (a resolver reports what is left of
   its cached TTL, so the highest seen is the best estimate of the zone's). */
typedef struct xf_rollover_state {
    char domain[256];
    char next_tlsa[300];
    long long first_seen;
    unsigned ttl;
} xf_rollover_state;

enum xf_rollover_verdict { XF_ROLLOVER_WAIT = 0, XF_ROLLOVER_SWITCH = 1 };

/* The 2 x TTL rule. prev: the state read (NULL when there is none); a state for
   another domain or another next key (next_tlsa) does not count (the wait starts
   again). The next key's records were just found in DNS with TTL ttl at time now.
   Fills *st (first_seen kept from prev or now, ttl the higher of the two) and
   *wait_s (seconds left, 0 when allowed). A TTL of 0 counts as 1 (the first sight
   never switches). Returns XF_ROLLOVER_SWITCH when
   now - first_seen >= 2 * ttl, else XF_ROLLOVER_WAIT. A clock that went back
   (first_seen in the future) restarts the wait at now. */
int xf_rollover_decide(const xf_rollover_state *prev, const char *domain,
                       const char *next_tlsa, unsigned ttl, time_t now,
                       xf_rollover_state *st, long long *wait_s);

/* State file text (one line, "\n" at the end) into out. Returns its length, or -1
   when out is too small. */
int xf_rollover_state_format(const xf_rollover_state *st, char *out, size_t outlen);
/* Parses a state file's bytes. 0, or -1 with err (not JSON, a member missing or of the
   wrong type). */
int xf_rollover_state_parse(const char *json, size_t len, xf_rollover_state *st, char *err,
                            size_t errlen);

/* ---- the rewrite (pure) ---- */

/* Rewrites a JSON document for the switch: in the object at `object_key` of the root
   ("hosting" for the main file) or in the root itself (NULL, a tenant file), the value
   of "certificate" becomes that of "next_certificate", "key" that of "next_key",
   and both next_* members go. Every other member, at every level, is kept with its
   value and in its order (numbers as written); the output is indented with 2 spaces
   and ends with "\n". *out is malloc'd (free()), *outlen its length.
   0, or -1 with err (not JSON, no such object, next_certificate / next_key missing
   or not strings). */
int xf_rollover_rewrite(const char *json, size_t len, const char *object_key, char **out,
                        size_t *outlen, char *err, size_t errlen);

#endif
