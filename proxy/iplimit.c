/* iplimit: see iplimit.h. A chained hash table of keys with their two counts; a node
   lives while its total count is non-zero. */
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "proxy/iplimit.h"

#define BUCKETS 4096

typedef struct node {
    struct node *next;
    xf_ipkey key;
    unsigned count;                  /* live connections */
    unsigned unauth;                 /* ... of which not yet authenticated */
} node;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static node *table[BUCKETS];

int xf_iplimit_key(const struct sockaddr_storage *ss, unsigned v6_prefix, xf_ipkey *out)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(out, 0, sizeof(*out));
    if (ss->ss_family == AF_INET) {
        memcpy(out->b, mapped, 12);
        memcpy(out->b + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        return 0;
    }
    if (ss->ss_family != AF_INET6)
        return -1;
    const uint8_t *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
    if (memcmp(a, mapped, 12) == 0) {         /* ::ffff:a.b.c.d is IPv4: per address */
        memcpy(out->b, a, 16);
        return 0;
    }
    if (v6_prefix > 128)
        v6_prefix = 128;
    unsigned full = v6_prefix / 8, rest = v6_prefix % 8;
    memcpy(out->b, a, full);
    if (rest)
        out->b[full] = (uint8_t)(a[full] & (0xff00u >> rest));
    return 0;
}

static unsigned hash(const xf_ipkey *k)
{
    uint32_t h = 2166136261u;                 /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ k->b[i]) * 16777619u;
    return h % BUCKETS;
}

/* Under lock: the node of k, or NULL; *pp_out (if asked) is the link that points to it. */
static node *find(const xf_ipkey *k, node ***pp_out)
{
    node **pp = &table[hash(k)];
    while (*pp && memcmp((*pp)->key.b, k->b, 16) != 0)
        pp = &(*pp)->next;
    if (pp_out)
        *pp_out = pp;
    return *pp;
}

int xf_iplimit_acquire(const xf_ipkey *k, unsigned max_total, unsigned max_unauth)
{
    int ret = 0;
    node **pp;
    pthread_mutex_lock(&lock);
    node *n = find(k, &pp);
    if (n == NULL) {
        if ((n = calloc(1, sizeof(*n))) == NULL) {
            ret = XF_IPLIMIT_NOMEM;
            goto out;
        }
        n->key = *k;
        *pp = n;
    }
    if (max_total && n->count >= max_total)
        ret = XF_IPLIMIT_OVER_TOTAL;
    else if (max_unauth && n->unauth >= max_unauth)
        ret = XF_IPLIMIT_OVER_UNAUTH;
    else {
        n->count++;
        n->unauth++;
    }
    if (n->count == 0) {                      /* a node made for a refusal */
        *pp = n->next;
        free(n);
    }
out:
    pthread_mutex_unlock(&lock);
    return ret;
}

void xf_iplimit_authenticated(const xf_ipkey *k)
{
    pthread_mutex_lock(&lock);
    node *n = find(k, NULL);
    if (n && n->unauth > 0)
        n->unauth--;
    pthread_mutex_unlock(&lock);
}

void xf_iplimit_release(const xf_ipkey *k, int unauth)
{
    node **pp;
    pthread_mutex_lock(&lock);
    node *n = find(k, &pp);
    if (n && n->count > 0) {
        n->count--;
        if (unauth && n->unauth > 0)
            n->unauth--;
        if (n->count == 0) {
            *pp = n->next;
            free(n);
        }
    }
    pthread_mutex_unlock(&lock);
}

unsigned xf_iplimit_count(const xf_ipkey *k, unsigned *unauth)
{
    pthread_mutex_lock(&lock);
    node *n = find(k, NULL);
    unsigned c = n ? n->count : 0, u = n ? n->unauth : 0;
    pthread_mutex_unlock(&lock);
    if (unauth)
        *unauth = u;
    return c;
}
