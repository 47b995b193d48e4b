/* records_cmd: `xmppfront records DOMAIN [--config FILE]`, what the operator publishes
   for a tenant (or the hosting name): SRV, TLSA and POSH (docs/records.md). argv[0] is
   "records". Returns the process exit code: 0 printed, 2 bad input (unknown domain,
   configuration that does not load, bad arguments). */
#ifndef XF_RECORDS_CMD_H
#define XF_RECORDS_CMD_H

#include <stddef.h>
#include <stdio.h>
#include "proxy/config.h"

#define XF_RECORDS_TTL 3600            /* TTL printed on every record */
#define XF_RECORDS_POSH_EXPIRES 86400  /* "expires" of the POSH documents printed */

int xf_records_main(int argc, char **argv);

/* The SRV target name of a tenant with a certificate of its own (design.md §2 "Which
   certificate a peer sees"): one name per tenant under the hosting name, so that the
   TLSA RRset at _PORT._tcp.TARGET holds only that tenant's keys.
   - readable: `domain` with every '.' replaced by '-', as one label under `hosting`
     ("a.example" under "hosting.example" -> "a-example.hosting.example"), when the
     domain has no '-' of its own and the label fits 63 octets. Without '-' in the
     domain the replacement is reversible, so two tenants never share a label
     ("a-b.example" and "a.b-example" would both give "a-b-example");
   - otherwise "t--" followed by the first 10 octets of SHA-256(domain) in lower-case
     hex (20 digits): a readable label never contains "--", so the two forms cannot
     meet, and "--" in the 2nd/3rd positions is not the reserved "??--" (RFC 5891
     §4.2.3.1).
   domain and hosting are normalised names (lower case, no trailing dot). Writes the
   name without trailing dot; returns its length, or -1 when out is too small or the
   name would exceed 253 octets. */
int xf_records_target(const char *domain, const char *hosting, char *out, size_t outlen);

/* Print the records for `domain` (a tenant's domain or alias, or the hosting name) of
   the loaded configuration cfg to out. Returns 0, or -1 with err set ("... is not a
   tenant ..."). */
int xf_records_print(FILE *out, const xf_config *cfg, const char *domain, char *err,
                     size_t errlen);

#endif
