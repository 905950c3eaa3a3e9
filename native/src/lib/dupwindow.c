#include "dupwindow.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

struct entry {
    uint64_t hash, ts, seq;
    size_t pos;     /* offset of the bytes in the arena */
    uint32_t len;
};

struct dupwindow {
    int64_t window_ns;
    uint64_t window_packets;
    struct entry *ring;     /* FIFO of entries: [tail, head) modulo cap */
    size_t cap, tail, count;
    uint64_t next_seq;
    uint8_t *arena;         /* bytes: FIFO too, [atail, ahead) possibly wrapped */
    size_t acap, ahead, aused;
    uint64_t *slots;        /* hash index: seq+1 of the newest entry with that content, 0 empty */
    size_t nslots;
};

dupwindow *dw_new(int64_t window_ns, uint64_t window_packets)
{
    dupwindow *dw = calloc(1, sizeof *dw);
    if (!dw)
        return NULL;
    dw->window_ns = window_ns;
    dw->window_packets = window_packets;
    dw->cap = 1024;
    dw->acap = 1 << 20;
    dw->nslots = 4096;
    dw->ring = malloc(dw->cap * sizeof *dw->ring);
    dw->arena = malloc(dw->acap);
    dw->slots = calloc(dw->nslots, sizeof *dw->slots);
    if (!dw->ring || !dw->arena || !dw->slots) {
        dw_free(dw);
        return NULL;
    }
    return dw;
}

void dw_free(dupwindow *dw)
{
    if (!dw)
        return;
    free(dw->ring);
    free(dw->arena);
    free(dw->slots);
    free(dw);
}

static struct entry *by_seq(dupwindow *dw, uint64_t seq)
{
    uint64_t oldest = dw->next_seq - dw->count;
    if (seq < oldest || seq >= dw->next_seq)
        return NULL;
    return &dw->ring[(dw->tail + (size_t)(seq - oldest)) % dw->cap];
}

/* Linear probing with backward-shift deletion keeps lookups exact without tombstones. */
static size_t slot_of(const dupwindow *dw, uint64_t hash) { return (size_t)hash & (dw->nslots - 1); }

static void index_remove(dupwindow *dw, const struct entry *e)
{
    size_t i = slot_of(dw, e->hash);
    while (dw->slots[i]) {
        if (dw->slots[i] == e->seq + 1)
            break;
        i = (i + 1) & (dw->nslots - 1);
    }
    if (!dw->slots[i])
        return;
    dw->slots[i] = 0;
    size_t j = i;
    for (;;) {
        j = (j + 1) & (dw->nslots - 1);
        if (!dw->slots[j])
            return;
        struct entry *ej = by_seq(dw, dw->slots[j] - 1);
        size_t home = ej ? slot_of(dw, ej->hash) : j;
        /* Move j back to i when its home is not in (i, j] cyclically. */
        bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            dw->slots[i] = dw->slots[j];
            dw->slots[j] = 0;
            i = j;
        }
    }
}

static void pop_oldest(dupwindow *dw)
{
    struct entry *e = &dw->ring[dw->tail];
    index_remove(dw, e);
    dw->aused -= e->len;
    /* The arena is a FIFO too: the oldest entry's bytes are at its tail. */
    dw->tail = (dw->tail + 1) % dw->cap;
    dw->count--;
    if (dw->count == 0) {
        dw->aused = 0;
        dw->ahead = 0;
    }
}

static int grow_ring(dupwindow *dw)
{
    size_t ncap = dw->cap * 2;
    struct entry *n = malloc(ncap * sizeof *n);
    if (!n)
        return -1;
    for (size_t k = 0; k < dw->count; k++)
        n[k] = dw->ring[(dw->tail + k) % dw->cap];
    free(dw->ring);
    dw->ring = n;
    dw->cap = ncap;
    dw->tail = 0;
    /* Keep the index at most half full. */
    if (dw->nslots < ncap * 2) {
        size_t ns = dw->nslots;
        while (ns < ncap * 2)
            ns *= 2;
        uint64_t *s = calloc(ns, sizeof *s);
        if (!s)
            return -1;
        free(dw->slots);
        dw->slots = s;
        dw->nslots = ns;
        for (size_t k = 0; k < dw->count; k++) {
            struct entry *e = &dw->ring[k];
            size_t i = slot_of(dw, e->hash);
            while (dw->slots[i]) {
                struct entry *o = by_seq(dw, dw->slots[i] - 1);
                if (o && o->hash == e->hash && o->len == e->len &&
                    memcmp(dw->arena + o->pos, dw->arena + e->pos, e->len) == 0)
                    break;
                i = (i + 1) & (dw->nslots - 1);
            }
            dw->slots[i] = e->seq + 1;
        }
    }
    return 0;
}

/* Compact the live bytes to the start of a (possibly larger) arena. */
static int repack_arena(dupwindow *dw, size_t need)
{
    size_t ncap = dw->acap;
    while (ncap < dw->aused + need + 1)
        ncap *= 2;
    uint8_t *n = malloc(ncap);
    if (!n)
        return -1;
    size_t pos = 0;
    for (size_t k = 0; k < dw->count; k++) {
        struct entry *e = &dw->ring[(dw->tail + k) % dw->cap];
        memcpy(n + pos, dw->arena + e->pos, e->len);
        e->pos = pos;
        pos += e->len;
    }
    free(dw->arena);
    dw->arena = n;
    dw->acap = ncap;
    dw->ahead = pos;
    return 0;
}

/* Where the next len bytes go: after the newest entry, wrapping to 0 when the oldest live
 * bytes are far enough ahead, else a repack. */
static int arena_place(dupwindow *dw, uint32_t len, size_t *pos)
{
    size_t oldest = dw->count ? dw->ring[dw->tail].pos : 0;
    bool wrapped = dw->count && dw->ahead <= oldest;
    if (!wrapped) {
        if (dw->ahead + len <= dw->acap) {
            *pos = dw->ahead;
            return 0;
        }
        if (len < oldest) {
            *pos = 0;
            return 0;
        }
    } else if (dw->ahead + len <= oldest) {
        *pos = dw->ahead;
        return 0;
    }
    if (repack_arena(dw, len) < 0)
        return -1;
    *pos = dw->ahead;
    return 0;
}

/* Entries the window may hold at most, whatever the times say (editcap's MAX_DUP_DEPTH). */
#define DW_MAX_ENTRIES 1000000u

static uint64_t ts_distance(uint64_t a, uint64_t b) { return a > b ? a - b : b - a; }

int dw_seen(dupwindow *dw, uint64_t ts_ns, const uint8_t *bytes, uint32_t len)
{
    uint64_t seq = dw->next_seq;
    /* Forget what fell out of the window, in arrival order. Time may go backwards (a clock
     * step, merged files): an entry is out when it lies more than the window away from this
     * packet on either side, so one packet from the far future or past never freezes the
     * window. The entry count is capped too, so memory stays bounded whatever the times. */
    while (dw->count) {
        struct entry *e = &dw->ring[dw->tail];
        bool old = dw->window_packets ? seq - e->seq >= dw->window_packets
                                      : ts_distance(ts_ns, e->ts) > (uint64_t)dw->window_ns ||
                                            dw->count >= DW_MAX_ENTRIES;
        if (!old)
            break;
        pop_oldest(dw);
    }
    uint64_t h = hash_bytes(bytes, len, 0x5eed);
    /* The index holds one slot per content, pointing at its newest entry. */
    int dup = 0;
    if (dw->count + 1 >= dw->cap && grow_ring(dw) < 0)
        return -1;
    size_t i = slot_of(dw, h);
    while (dw->slots[i]) {
        struct entry *o = by_seq(dw, dw->slots[i] - 1);
        if (o && o->hash == h && o->len == len && memcmp(dw->arena + o->pos, bytes, len) == 0) {
            /* A copy lies within the window of its original in both directions. */
            dup = dw->window_packets || ts_distance(ts_ns, o->ts) <= (uint64_t)dw->window_ns;
            break;
        }
        i = (i + 1) & (dw->nslots - 1);
    }
    size_t pos;
    if (arena_place(dw, len, &pos) < 0)
        return -1;
    memcpy(dw->arena + pos, bytes, len);
    dw->ahead = pos + len;
    dw->aused += len;
    struct entry *e = &dw->ring[(dw->tail + dw->count) % dw->cap];
    *e = (struct entry){.hash = h, .ts = ts_ns, .seq = seq, .pos = pos, .len = len};
    dw->count++;
    dw->next_seq++;
    /* The index points at the newest entry of each content. */
    dw->slots[i] = seq + 1;
    return dup;
}
