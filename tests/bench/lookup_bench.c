/*
 * lookup_bench: the cost of the SNI lookup itself (xf_registry_for_sni, what the TLS
 * SNI callback calls, proxy/tls.c on_sni) with 10, 1,000 and 10,000 tenants, in one
 * process, the sizes interleaved round by round so that machine noise hits each alike.
 * Not a test: prints figures (tests/bench/README.md "Scale").
 *
 *   lookup_bench HOSTING_CERT HOSTING_KEY HOSTING_NAME TMPDIR [LOOKUPS [ROUNDS]]
 *
 * The tenants are written into TMPDIR/N/ as hosting-served tenant files (no key of
 * their own to parse: the load is quick; the lookup is the same code whatever the
 * certificate). Each has one alias. Every round does LOOKUPS (default 1,000,000)
 * lookups per size of names drawn at random over all names (domains and aliases, mixed
 * case, some with a trailing dot), then LOOKUPS/10 misses (names no tenant has), then
 * LOOKUPS of 16 names only (in cache: the lookup's own work without memory stalls), and
 * prints ns per lookup. Built by bench_scale.sh against build/libxf_tenants.a.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "tenants/registry.h"

static const size_t sizes[] = { 10, 1000, 10000 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void)              /* xorshift64* */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}

static int write_tenants(const char *dir, size_t n)
{
    char path[600];
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) return -1;
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/s%05zu.json", dir, i);
        FILE *f = fopen(path, "w");
        if (!f) return -1;
        fprintf(f, "{\"domain\": \"s%05zu.example\", \"aliases\": [\"muc.s%05zu.example\"], "
                   "\"c2s_backend\": \"127.0.0.1:1\"}\n", i, i);
        fclose(f);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: lookup_bench CERT KEY HOSTING_NAME TMPDIR [LOOKUPS [ROUNDS]]\n");
        return 2;
    }
    long lookups = argc > 5 ? atol(argv[5]) : 1000000;
    int rounds = argc > 6 ? atoi(argv[6]) : 3;
    const xf_hosting_spec hs = { "(bench)", argv[3], argv[1], argv[2], NULL, NULL };
    xf_registry *reg[NSIZES];
    char *names[NSIZES];               /* lookups names, 64 bytes each */
    char *misses[NSIZES];
    const size_t nmiss = 1024;
    double total[NSIZES] = { 0 }, total_miss[NSIZES] = { 0 }, total_hot[NSIZES] = { 0 };
    size_t found_ok[NSIZES] = { 0 };

    for (size_t k = 0; k < NSIZES; k++) {
        char dir[512], err[1024];
        snprintf(dir, sizeof dir, "%s/%zu", argv[4], sizes[k]);
        if (write_tenants(dir, sizes[k]) != 0) { perror(dir); return 1; }
        if (xf_registry_load(dir, &hs, &reg[k], err, sizeof err) != 0) {
            fprintf(stderr, "load %s: %s\n", dir, err);
            return 1;
        }
        /* A table of 64 Ki random names, so that the loop reads names, not a counter. */
        names[k] = malloc((size_t)65536 * 64);
        misses[k] = malloc(nmiss * 64);
        if (!names[k] || !misses[k]) return 1;
        for (size_t j = 0; j < 65536; j++) {
            size_t i = (size_t)(rnd() % sizes[k]);
            int alias = (int)(rnd() & 1), upper = (rnd() & 3) == 0, dot = (rnd() & 3) == 0;
            snprintf(names[k] + j * 64, 64, "%s%c%05zu.example%s", alias ? "muc." : "",
                     upper ? 'S' : 's', i, dot ? "." : "");
        }
        for (size_t j = 0; j < nmiss; j++)
            snprintf(misses[k] + j * 64, 64, "x%05zu.example", (size_t)(rnd() % 100000));
    }
    for (int round = 0; round < rounds; round++)
        for (size_t k = 0; k < NSIZES; k++) {
            size_t ok = 0;
            double t0 = now_ns();
            for (long i = 0; i < lookups; i++)
                ok += xf_registry_for_sni(reg[k], names[k] + ((size_t)i & 65535) * 64) != NULL;
            double t1 = now_ns();
            size_t bad = 0;
            for (long i = 0; i < lookups / 10; i++)
                bad += xf_registry_for_sni(reg[k], misses[k] + ((size_t)i % nmiss) * 64) != NULL;
            double t2 = now_ns();
            /* Hot: 16 names, in cache: the lookup's own work, without memory stalls. */
            for (long i = 0; i < lookups; i++)
                ok += xf_registry_for_sni(reg[k], names[k] + ((size_t)i & 15) * 64) != NULL;
            double t3 = now_ns();
            ok -= (size_t)lookups;
            total[k] += (t1 - t0) / (double)lookups;
            total_miss[k] += (t2 - t1) / (double)(lookups / 10);
            total_hot[k] += (t3 - t2) / (double)lookups;
            found_ok[k] += ok;
            if (ok != (size_t)lookups || bad) {
                fprintf(stderr, "lookup_bench: %zu tenants: %zu of %ld names found, %zu "
                        "misses found\n", sizes[k], ok, lookups, bad);
                return 1;
            }
        }
    for (size_t k = 0; k < NSIZES; k++) {
        printf("lookup %5zu tenants: %6.1f ns per SNI lookup (random tenant), %6.1f ns "
               "(unknown name), %6.1f ns (16 hot names)   [%d rounds x %ld]\n", sizes[k],
               total[k] / rounds, total_miss[k] / rounds, total_hot[k] / rounds, rounds,
               lookups);
        xf_registry_free(reg[k]);
        free(names[k]);
        free(misses[k]);
    }
    return 0;
}
