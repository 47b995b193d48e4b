/*
 * registry_int: the registry's layout, shared by tenants/registry.c (loading) and
 * tenants/regindex.c (the name index). Private to tenants/.
 */
#ifndef XF_REGISTRY_INT_H
#define XF_REGISTRY_INT_H

#include <stddef.h>
#include <stdint.h>
#include "tenants/registry.h"

struct name_ent {
    const char *name;                  /* the tenant's own string, not a copy */
    size_t ti;                         /* tenant index (file order) */
    long alias;                        /* -1 = the domain, else aliases[alias] */
};

struct wild_ent {
    char *parent;                      /* "w.example" for "*.w.example" (owned) */
    size_t ti;
};

struct xf_registry {
    xf_tenant **t;
    size_t n;
    struct name_ent *names;            /* sorted by (name, ti) */
    size_t n_names;
    struct wild_ent *wild;             /* sorted by (parent, ti) */
    size_t n_wild;
    uint64_t *name_slots;              /* hash table: tag | (1 + index into names) */
    uint64_t *wild_slots;              /* tag | (1 + index of a parent's first wild[]) */
    size_t name_mask, wild_mask;       /* table size - 1 (a power of two) */
    xf_tenant *hosting;                /* the hosting identity, or NULL */
};

/* Build r's index over its tenants r->t[0 .. r->n): every domain and alias, and the
   wildcard DNS names of each tenant's own leaf certificate (SAN dNSName entries, or
   the CN without a subjectAltName: the rule of xf_identity_covers_dns). -1 with err
   = "FILE: KEY: \"name\" is already defined in OTHER" for a name two tenants share,
   or "DIR: (directory): out of memory"; what was built is freed by
   xf_regindex_free. */
int xf_regindex_build(xf_registry *r, const char *dir, char *err, size_t errlen);
/* Free the index's arrays (not the tenants); safe on a partly built or empty index. */
void xf_regindex_free(xf_registry *r);

#endif
