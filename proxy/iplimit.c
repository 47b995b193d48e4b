#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "proxy/iplimit.h"

#define BUCKETS 4096

typedef struct node {
    struct node *next;
    uint8_t addr[16];
    unsigned count;
} node;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static node *table[BUCKETS];

/* The address as 16 bytes: IPv6 as is, IPv4 (and v4-mapped) as ::ffff:a.b.c.d. */
static int key_of(const struct sockaddr_storage *ss, uint8_t key[16])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (ss->ss_family == AF_INET) {
        memcpy(key, mapped, 12);
        memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        return 0;
    }
    if (ss->ss_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
        return 0;
    }
    return -1;
}

static unsigned hash(const uint8_t k[16])
{
    uint32_t h = 2166136261u;                 /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ k[i]) * 16777619u;
    return h % BUCKETS;
}

int xf_iplimit_acquire(const struct sockaddr_storage *ss, unsigned max)
{
    uint8_t k[16];
    if (max == 0 || key_of(ss, k) < 0)
        return 0;
    unsigned b = hash(k);
    int ret = 0;
    pthread_mutex_lock(&lock);
    node *n = table[b];
    while (n && memcmp(n->addr, k, 16) != 0)
        n = n->next;
    if (n == NULL) {
        n = calloc(1, sizeof(*n));
        if (n == NULL) {
            ret = -1;
            goto out;
        }
        memcpy(n->addr, k, 16);
        n->next = table[b];
        table[b] = n;
    }
    if (n->count >= max)
        ret = -1;
    else
        n->count++;
out:
    pthread_mutex_unlock(&lock);
    return ret;
}

void xf_iplimit_release(const struct sockaddr_storage *ss)
{
    uint8_t k[16];
    if (key_of(ss, k) < 0)
        return;
    unsigned b = hash(k);
    pthread_mutex_lock(&lock);
    node **pp = &table[b];
    while (*pp && memcmp((*pp)->addr, k, 16) != 0)
        pp = &(*pp)->next;
    node *n = *pp;
    if (n && n->count > 0 && --n->count == 0) {
        *pp = n->next;
        free(n);
    }
    pthread_mutex_unlock(&lock);
}
