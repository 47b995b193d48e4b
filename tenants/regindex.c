/*
 * regindex: the registry's name index (registry_int.h is the interface, private to
 * tenants/; the lookups are in registry.h).
 *
 * Contracts:
 *  - built once per registry, after every tenant is loaded and linked, from the
 *    configuration only; read-only afterwards, so lookups from any number of threads
 *    never lock and never allocate.
 *  - lookups cost the same for 10 or 10,000 tenants (issue 10 "Scale"): an
 *    open-addressing hash table over the normalised names (domains and aliases,
 *    unique) and one over the distinct wildcard parents ("*.w.example" ->
 *    "w.example"), each slot pointing into the sorted arrays (the sort finds duplicate
 *    names and orders tenants sharing a wildcard parent by file order). A client's
 *    name (SNI, stream `to`) is only looked up, so it cannot lengthen a probe
 *    sequence: probes are bounded by the clusters the configured names make, at load
 *    factor <= 1/2.
 *  - names are compared normalised (xf_registry_normalise_name, defined here: the one
 *    rule for tenant domains, aliases, the hosting name and every name looked up).
 */
#include "tenants/registry_int.h"
#include "certs/identity.h"
#include "tenants/jsonconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbedtls/oid.h>

/* registry.h: ASCII lower case, one trailing dot dropped; NULL, or why the name is
   not a valid host name. */
const char *xf_registry_normalise_name(const char *in, char *out)
{
    size_t n = strlen(in);
    if (n && in[n - 1] == '.') n--;
    if (n == 0) return "is empty";
    if (n > XF_REGISTRY_NAME_MAX) return "is longer than 253 characters";
    size_t label = 0;
    int all_digits = 1;
    for (size_t i = 0; i <= n; i++) {
        unsigned char c = i < n ? (unsigned char)in[i] : '.';
        if (c == '.') {
            if (label == 0) return "has an empty label";
            if (out[i - 1] == '-') return "has a label ending with '-'";
            if (i == n && all_digits) return "is an IP address, not a domain";
            label = 0;
            all_digits = 1;
            out[i] = '.';
            continue;
        }
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
        if (c == '*') return "contains a wildcard";
        if (c >= 0x80) return "is not ASCII (use the A-label, xn--...)";
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return "contains a character not allowed in a host name";
        if (c == '-' && label == 0) return "has a label starting with '-'";
        if (!(c >= '0' && c <= '9')) all_digits = 0;
        if (++label > 63) return "has a label longer than 63 characters";
        out[i] = (char)c;
    }
    out[n] = '\0';
    return NULL;
}

static int cmp_name_ent(const void *a, const void *b)
{
    const struct name_ent *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->ti < y->ti ? -1 : x->ti > y->ti;
}

static int cmp_wild_ent(const void *a, const void *b)
{
    const struct wild_ent *x = a, *y = b;
    int c = strcmp(x->parent, y->parent);
    if (c) return c;
    return x->ti < y->ti ? -1 : x->ti > y->ti;
}

/* Add one wildcard parent for tenant ti if `v` (length n) is "*.rest". */
static int wild_add(xf_registry *r, size_t *cap, const unsigned char *v, size_t n, size_t ti)
{
    char raw[XF_REGISTRY_NAME_MAX + 2], norm[XF_REGISTRY_NAME_MAX + 1];
    if (n < 3 || v[0] != '*' || v[1] != '.' || n - 2 > XF_REGISTRY_NAME_MAX) return 0;
    memcpy(raw, v + 2, n - 2);
    raw[n - 2] = '\0';
    if (memchr(raw, '\0', n - 2) || xf_registry_normalise_name(raw, norm)) return 0;
    if (r->n_wild == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct wild_ent *w = realloc(r->wild, nc * sizeof *w);
        if (!w) return -1;
        r->wild = w;
        *cap = nc;
    }
    if (!(r->wild[r->n_wild].parent = strdup(norm))) return -1;
    r->wild[r->n_wild++].ti = ti;
    return 0;
}

/* Wildcard DNS names of the leaf: SAN dNSName entries, or the CN when the certificate
   has no subjectAltName at all (the same rule xf_identity_covers_dns applies). */
static int wild_index_tenant(xf_registry *r, size_t *cap, size_t ti)
{
    const mbedtls_x509_crt *c = &r->t[ti]->chain;
    if (!c->raw.p) return 0;
    if (mbedtls_x509_crt_has_ext_type(c, MBEDTLS_X509_EXT_SUBJECT_ALT_NAME)) {
        for (const mbedtls_x509_sequence *s = &c->subject_alt_names; s; s = s->next)
            if (s->buf.p && s->buf.tag ==
                (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME) &&
                wild_add(r, cap, s->buf.p, s->buf.len, ti) < 0)
                return -1;
        return 0;
    }
    for (const mbedtls_x509_name *nm = &c->subject; nm; nm = nm->next)
        if (nm->oid.p && MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &nm->oid) == 0 &&
            wild_add(r, cap, nm->val.p, nm->val.len, ti) < 0)
            return -1;
    return 0;
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    return h;
}

/* A table of 2^k slots, k the smallest with 2^k >= 2 * n (load factor <= 1/2). A slot
   is (the hash's high 32 bits << 32) | (1 + index), 0 = empty: a probe compares
   strings only when the tags agree, so a lookup reads one name. */
static int slots_new(size_t n, uint64_t **slots, size_t *mask)
{
    size_t sz = 4;
    while (sz < 2 * n) sz *= 2;
    if (n >= UINT32_MAX / 2 || !(*slots = calloc(sz, sizeof **slots))) return -1;
    *mask = sz - 1;
    return 0;
}

/* Linear probing. */
static void slots_put(uint64_t *slots, size_t mask, const char *key, size_t idx)
{
    uint64_t h = name_hash(key);
    size_t i = (size_t)h & mask;
    while (slots[i]) i = (i + 1) & mask;
    slots[i] = (h & 0xffffffff00000000u) | (uint64_t)(idx + 1);
}

/* Fill name_slots (names unique: checked before) and wild_slots (one per distinct
   parent: the first of its run in the sorted wild[]). */
static int slots_build(xf_registry *r)
{
    if (slots_new(r->n_names, &r->name_slots, &r->name_mask) < 0 ||
        slots_new(r->n_wild, &r->wild_slots, &r->wild_mask) < 0)
        return -1;
    for (size_t i = 0; i < r->n_names; i++)
        slots_put(r->name_slots, r->name_mask, r->names[i].name, i);
    for (size_t i = 0; i < r->n_wild; i++)
        if (i == 0 || strcmp(r->wild[i - 1].parent, r->wild[i].parent) != 0)
            slots_put(r->wild_slots, r->wild_mask, r->wild[i].parent, i);
    return 0;
}

/* The names[] entry whose name equals key (normalised), or NULL. */
static const struct name_ent *names_find(const xf_registry *r, const char *key)
{
    if (!r->name_slots) return NULL;
    uint64_t h = name_hash(key), tag = h & 0xffffffff00000000u, s;
    for (size_t i = (size_t)h & r->name_mask; (s = r->name_slots[i]); i = (i + 1) & r->name_mask) {
        const struct name_ent *e = &r->names[(uint32_t)s - 1];
        if ((s & 0xffffffff00000000u) == tag && strcmp(e->name, key) == 0) return e;
    }
    return NULL;
}

/* Index of the first wild[] entry whose parent equals key, or n_wild. */
static size_t wild_find(const xf_registry *r, const char *key)
{
    if (!r->wild_slots) return r->n_wild;
    uint64_t h = name_hash(key), tag = h & 0xffffffff00000000u, s;
    for (size_t i = (size_t)h & r->wild_mask; (s = r->wild_slots[i]); i = (i + 1) & r->wild_mask) {
        size_t k = (uint32_t)s - 1;
        if ((s & 0xffffffff00000000u) == tag && strcmp(r->wild[k].parent, key) == 0) return k;
    }
    return r->n_wild;
}

/* registry_int.h. The names are unique across the registry: equal names sort by file
   order, and the later file is reported, naming the earlier one. */
int xf_regindex_build(xf_registry *r, const char *dir, char *err, size_t errlen)
{
    xf_jconf dp = { dir, err, errlen };
    size_t n_names = 0, cap_wild = 0;

    for (size_t i = 0; i < r->n; i++) n_names += 1 + r->t[i]->n_aliases;
    if (n_names && !(r->names = calloc(n_names, sizeof *r->names)))
        return xf_jconf_fail(&dp, "(directory)", "out of memory");
    for (size_t i = 0; i < r->n; i++) {
        r->names[r->n_names++] = (struct name_ent){ r->t[i]->domain, i, -1 };
        for (size_t a = 0; a < r->t[i]->n_aliases; a++)
            r->names[r->n_names++] = (struct name_ent){ r->t[i]->aliases[a], i, (long)a };
    }
    if (r->n_names) qsort(r->names, r->n_names, sizeof *r->names, cmp_name_ent);
    for (size_t i = 1; i < r->n_names; i++) {
        const struct name_ent *a = &r->names[i - 1], *b = &r->names[i];
        if (strcmp(a->name, b->name) != 0) continue;
        xf_jconf fp = { r->t[b->ti]->file, err, errlen };
        char key[48];
        if (b->alias < 0) snprintf(key, sizeof key, "domain");
        else snprintf(key, sizeof key, "aliases[%ld]", b->alias);
        return xf_jconf_fail(&fp, key, "\"%s\" is already defined in %s", b->name,
                             r->t[a->ti]->file);
    }

    for (size_t i = 0; i < r->n; i++)
        if (wild_index_tenant(r, &cap_wild, i) < 0)
            return xf_jconf_fail(&dp, "(directory)", "out of memory");
    if (r->n_wild) qsort(r->wild, r->n_wild, sizeof *r->wild, cmp_wild_ent);
    if (slots_build(r) < 0) return xf_jconf_fail(&dp, "(directory)", "out of memory");
    return 0;
}

void xf_regindex_free(xf_registry *r)
{
    for (size_t i = 0; i < r->n_wild; i++) free(r->wild[i].parent);
    free(r->names);
    free(r->wild);
    free(r->name_slots);
    free(r->wild_slots);
}

const xf_tenant *xf_registry_find(const xf_registry *r, const char *domain)
{
    char name[XF_REGISTRY_NAME_MAX + 1];
    if (!r || !domain || xf_registry_normalise_name(domain, name)) return NULL;
    const struct name_ent *e = names_find(r, name);
    return e ? r->t[e->ti] : NULL;
}

/* Exact name or alias first (the owner's certificate is returned even for an alias it
   does not cover: routing and certificate stay with one tenant). Otherwise the first
   tenant, in file order, with a wildcard "*.parent" whose parent is the name minus its
   first label, confirmed by xf_identity_covers_dns. */
const xf_tenant *xf_registry_for_sni(const xf_registry *r, const char *sni)
{
    char name[XF_REGISTRY_NAME_MAX + 1];
    if (!r || !sni || xf_registry_normalise_name(sni, name)) return NULL;
    const struct name_ent *e = names_find(r, name);
    if (e) return r->t[e->ti];
    const char *parent = strchr(name, '.');
    if (!parent) return r->hosting && strcmp(name, r->hosting->domain) == 0 ? r->hosting : NULL;
    parent++;
    size_t lo = wild_find(r, parent);
    for (; lo < r->n_wild && strcmp(r->wild[lo].parent, parent) == 0; lo++) {
        const xf_tenant *t = r->t[r->wild[lo].ti];
        if (xf_identity_covers_dns(&t->chain, name)) return t;
    }
    if (r->hosting && strcmp(name, r->hosting->domain) == 0) return r->hosting;
    return NULL;
}
