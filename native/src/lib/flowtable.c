#include "flowtable.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

struct node {
    struct flow f;
    uint64_t hash;
    struct node *next;           /* bucket chain */
    struct node *older, *newer;  /* by last packet time */
};

struct flowtable {
    uint64_t idle_ns, active_ns;
    flow_emit_fn emit;
    void *ctx;
    struct node **buckets;
    size_t nbuckets, count;
    struct node *oldest, *newest;
    uint64_t now;
};

flowtable *ft_new(uint64_t idle_ns, uint64_t active_ns, flow_emit_fn emit, void *ctx)
{
    flowtable *ft = calloc(1, sizeof *ft);
    if (!ft)
        return NULL;
    ft->idle_ns = idle_ns;
    ft->active_ns = active_ns;
    ft->emit = emit;
    ft->ctx = ctx;
    ft->nbuckets = 1024;
    ft->buckets = calloc(ft->nbuckets, sizeof *ft->buckets);
    if (!ft->buckets) {
        free(ft);
        return NULL;
    }
    return ft;
}

void ft_free(flowtable *ft)
{
    if (!ft)
        return;
    for (struct node *n = ft->oldest; n;) {
        struct node *x = n->newer;
        free(n);
        n = x;
    }
    free(ft->buckets);
    free(ft);
}

/* The same hash for both directions: hash the two endpoints in a fixed order. */
static uint64_t key_hash(const struct flow_key *k)
{
    uint8_t buf[40];
    const uint8_t *a = k->src, *b = k->dst;
    uint16_t pa = k->sport, pb = k->dport;
    int c = memcmp(a, b, 16);
    if (c > 0 || (c == 0 && pa > pb)) {
        a = k->dst;
        b = k->src;
        pa = k->dport;
        pb = k->sport;
    }
    memcpy(buf, a, 16);
    memcpy(buf + 16, b, 16);
    buf[32] = (uint8_t)(pa >> 8);
    buf[33] = (uint8_t)pa;
    buf[34] = (uint8_t)(pb >> 8);
    buf[35] = (uint8_t)pb;
    buf[36] = k->proto;
    buf[37] = k->family;
    buf[38] = (uint8_t)(k->vlan >> 8);
    buf[39] = (uint8_t)k->vlan;
    return hash_bytes(buf, sizeof buf, 0xf10f);
}

/* 0: k is the flow's forward direction, 1: reverse, -1: another flow. */
static int direction(const struct flow_key *f, const struct flow_key *k)
{
    if (f->proto != k->proto || f->family != k->family || f->vlan != k->vlan)
        return -1;
    if (f->sport == k->sport && f->dport == k->dport && memcmp(f->src, k->src, 16) == 0 &&
        memcmp(f->dst, k->dst, 16) == 0)
        return 0;
    if (f->sport == k->dport && f->dport == k->sport && memcmp(f->src, k->dst, 16) == 0 &&
        memcmp(f->dst, k->src, 16) == 0)
        return 1;
    return -1;
}

static void unlink_lru(flowtable *ft, struct node *n)
{
    if (n->older)
        n->older->newer = n->newer;
    else
        ft->oldest = n->newer;
    if (n->newer)
        n->newer->older = n->older;
    else
        ft->newest = n->older;
    n->older = n->newer = NULL;
}

static void push_newest(flowtable *ft, struct node *n)
{
    n->older = ft->newest;
    n->newer = NULL;
    if (ft->newest)
        ft->newest->newer = n;
    else
        ft->oldest = n;
    ft->newest = n;
}

static void unlink_bucket(flowtable *ft, struct node *n)
{
    struct node **pp = &ft->buckets[n->hash & (ft->nbuckets - 1)];
    while (*pp != n)
        pp = &(*pp)->next;
    *pp = n->next;
}

static int expire(flowtable *ft, struct node *n, enum flow_end why)
{
    n->f.end = why;
    int rc = ft->emit(&n->f, ft->ctx);
    unlink_lru(ft, n);
    unlink_bucket(ft, n);
    ft->count--;
    free(n);
    return rc;
}

static int grow(flowtable *ft)
{
    size_t nb = ft->nbuckets * 2;
    struct node **b = calloc(nb, sizeof *b);
    if (!b)
        return -1;
    for (size_t i = 0; i < ft->nbuckets; i++) {
        for (struct node *n = ft->buckets[i]; n;) {
            struct node *x = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
            n = x;
        }
    }
    free(ft->buckets);
    ft->buckets = b;
    ft->nbuckets = nb;
    return 0;
}

int ft_packet(flowtable *ft, const struct flow_key *k, uint64_t ts_ns, uint64_t bytes, uint16_t tcp_flags)
{
    if (ts_ns > ft->now)
        ft->now = ts_ns;
    while (ft->oldest && ft->now - ft->oldest->f.last_ns > ft->idle_ns) {
        int rc = expire(ft, ft->oldest, FLOW_END_IDLE);
        if (rc)
            return rc;
    }
    uint64_t h = key_hash(k);
    struct node *n = ft->buckets[h & (ft->nbuckets - 1)];
    int dir = -1;
    for (; n; n = n->next)
        if (n->hash == h && (dir = direction(&n->f.key, k)) >= 0)
            break;
    if (n && ts_ns > n->f.first_ns && ts_ns - n->f.first_ns > ft->active_ns) {
        int rc = expire(ft, n, FLOW_END_ACTIVE);
        if (rc)
            return rc;
        n = NULL;
    }
    if (!n) {
        if (ft->count >= ft->nbuckets && grow(ft) < 0)
            return -1;
        n = calloc(1, sizeof *n);
        if (!n)
            return -1;
        n->f.key = *k;
        n->f.first_ns = n->f.last_ns = ts_ns;
        n->hash = h;
        n->next = ft->buckets[h & (ft->nbuckets - 1)];
        ft->buckets[h & (ft->nbuckets - 1)] = n;
        ft->count++;
        dir = 0;
    } else {
        unlink_lru(ft, n);
    }
    push_newest(ft, n);
    n->f.packets[dir]++;
    n->f.bytes[dir] += bytes;
    n->f.flags[dir] |= tcp_flags;
    if (ts_ns > n->f.last_ns)
        n->f.last_ns = ts_ns;
    if (ts_ns < n->f.first_ns)
        n->f.first_ns = ts_ns;
    return 0;
}

static int by_first(const void *a, const void *b)
{
    const struct node *x = *(struct node *const *)a, *y = *(struct node *const *)b;
    return x->f.first_ns < y->f.first_ns ? -1 : x->f.first_ns > y->f.first_ns;
}

int ft_flush(flowtable *ft)
{
    size_t n = ft->count, i = 0;
    struct node **all = malloc((n ? n : 1) * sizeof *all);
    if (!all)
        return -1;
    for (struct node *x = ft->oldest; x; x = x->newer)
        all[i++] = x;
    qsort(all, n, sizeof *all, by_first);
    int rc = 0;
    for (i = 0; i < n && rc == 0; i++)
        rc = expire(ft, all[i], FLOW_END_FORCED);
    free(all);
    return rc;
}
