/* libFuzzer: xf_config_parse on arbitrary bytes (no file I/O, tenants not loaded).
   Every outcome must be 0 with a config, or -1 with a "FILE: KEY: ..." message. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

#include "proxy/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    xf_config *c = NULL;
    char err[256];
    int rc = xf_config_parse((const char *)data, size, "/fuzz/main.json", &c, err, sizeof err);
    if (rc == 0) {
        if (!c || c->n_listeners == 0 || !c->tenants_dir || !c->log_level) abort();
        if (c->limits.buffer_low_bytes >= c->limits.buffer_high_bytes) abort();
        xf_config_unref(c);
    } else if (c || strncmp(err, "/fuzz/main.json: ", 17) != 0) {
        abort();
    }
    return 0;
}
