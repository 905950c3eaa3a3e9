/* blockq: pool + FIFO of staging blocks (see blockq.h). */
#include "blockq.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "clock.h"

#define PREFAULT_STEP (64u << 20)
/* A step of huge pages may take as long as small pages take on a busy machine (1.5 GiB in 2.5 s:
 * 100 ms a step; free huge pages take about 11 ms). Slower, the kernel is compacting memory to make
 * them (with the page cache full 1.5 GiB once took 13 s, a gap every restart of the writer would
 * add): the rest is faulted in as small pages, so the start costs at most one slow step more. */
#define HUGE_STEP_BUDGET_NS (100u * 1000000u)

struct blockq {
    pthread_mutex_t mu;
    pthread_cond_t ready; /* a block was pushed or the queue closed */
    pthread_cond_t freed; /* a block came back to the pool */
    struct block *free_list;
    struct block *head, *tail;
    unsigned nblocks, nfree;
    size_t block_size;
    int closed;
    struct block *all;
    _Atomic uint32_t failed_seq; /* writer -> assembler: the file given up on */
    uint8_t *mem;
    size_t mem_len;
};

/* Faults [mem, mem + len) in. With huge set, says whether that took longer than the budget. */
static int prefault_step(uint8_t *mem, size_t len, int huge)
{
    uint64_t start = huge ? mono_ns() : 0;
#ifdef MADV_POPULATE_WRITE
    if (madvise(mem, len, MADV_POPULATE_WRITE) != 0)
#endif
        for (size_t p = 0; p < len; p += 4096)
            mem[p] = 0;
    return huge && mono_ns() - start > HUGE_STEP_BUDGET_NS;
}

struct blockq *blockq_create(size_t block_size, unsigned nblocks, int (*cancelled)(void), char *err,
                             size_t errlen)
{
    struct blockq *q = calloc(1, sizeof *q);
    if (q == NULL)
        goto oom;
    q->mem_len = block_size * nblocks;
    q->mem = mmap(NULL, q->mem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q->mem == MAP_FAILED)
        goto oom;
    /* Fault everything in now and lock it (best effort): a page fault later would stall a
     * capture thread. In steps, so that start-up can be cancelled (SIGTERM) part-way through a
     * few GiB. Huge pages while they come cheap (HUGE_STEP_BUDGET_NS): bench_capture's 1.5 M
     * full-size frames took 0.85 s of CPU with them against 0.99 s without (TLB misses in the copy
     * into the blocks, 512 times more pages for O_DIRECT to pin), and free huge pages fault in
     * faster than small pages (native/README.md, "Old code against new"). */
    int huge = 1;
    madvise(q->mem, q->mem_len, MADV_HUGEPAGE);
    for (size_t off = 0; off < q->mem_len; off += PREFAULT_STEP) {
        if (cancelled != NULL && cancelled()) {
            errno = EINTR;
            goto oom;
        }
        size_t len = q->mem_len - off < PREFAULT_STEP ? q->mem_len - off : PREFAULT_STEP;
        if (prefault_step(q->mem + off, len, huge)) { /* compacting: small pages from here on */
            huge = 0;
            if (off + len < q->mem_len)
                madvise(q->mem + off + len, q->mem_len - off - len, MADV_NOHUGEPAGE);
        }
    }
    mlock(q->mem, q->mem_len);
    q->all = calloc(nblocks, sizeof *q->all);
    if (q->all == NULL)
        goto oom;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->ready, NULL);
    pthread_cond_init(&q->freed, NULL);
    q->nblocks = q->nfree = nblocks;
    q->block_size = block_size;
    /* Block 0 ends up first in the free list, and blocks come back to its head (LIFO): the
     * capture keeps reusing the first blocks, the ones faulted in while huge pages were cheap,
     * and reaches the small-page blocks only when the disk falls behind. */
    for (unsigned i = nblocks; i-- > 0;) {
        q->all[i].data = q->mem + (size_t)i * block_size;
        q->all[i].cap = block_size;
        q->all[i].next = q->free_list;
        q->free_list = &q->all[i];
    }
    return q;
oom:
    snprintf(err, errlen, "cannot allocate %zu MiB of staging buffers: %s",
             (block_size * nblocks) >> 20, strerror(errno ? errno : ENOMEM));
    if (q != NULL && q->mem != NULL && q->mem != MAP_FAILED)
        munmap(q->mem, q->mem_len);
    free(q);
    return NULL;
}

void blockq_destroy(struct blockq *q)
{
    if (q == NULL)
        return;
    munmap(q->mem, q->mem_len);
    free(q->all);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->ready);
    pthread_cond_destroy(&q->freed);
    free(q);
}

struct block *blockq_get_free(struct blockq *q, int wait)
{
    pthread_mutex_lock(&q->mu);
    while (wait && q->free_list == NULL)
        pthread_cond_wait(&q->freed, &q->mu);
    struct block *b = q->free_list;
    if (b != NULL) {
        q->free_list = b->next;
        q->nfree--;
    }
    pthread_mutex_unlock(&q->mu);
    if (b != NULL) {
        b->next = NULL;
        b->len = 0;
        b->flags = 0;
        b->npackets = 0;
        b->file = NULL;
    }
    return b;
}

void blockq_put_free(struct blockq *q, struct block *b)
{
    if (b->flags & BLOCK_CONTROL) {
        free(b);
        return;
    }
    pthread_mutex_lock(&q->mu);
    b->next = q->free_list;
    q->free_list = b;
    q->nfree++;
    pthread_cond_signal(&q->freed);
    pthread_mutex_unlock(&q->mu);
}

void blockq_push(struct blockq *q, struct block *b)
{
    b->next = NULL;
    pthread_mutex_lock(&q->mu);
    if (q->tail != NULL)
        q->tail->next = b;
    else
        q->head = b;
    q->tail = b;
    pthread_cond_signal(&q->ready);
    pthread_mutex_unlock(&q->mu);
}

struct block *blockq_pop(struct blockq *q, int wait)
{
    pthread_mutex_lock(&q->mu);
    while (wait && q->head == NULL && !q->closed)
        pthread_cond_wait(&q->ready, &q->mu);
    struct block *b = q->head;
    if (b != NULL) {
        q->head = b->next;
        if (q->head == NULL)
            q->tail = NULL;
        b->next = NULL;
    }
    pthread_mutex_unlock(&q->mu);
    return b;
}

void blockq_close(struct blockq *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->ready);
    pthread_mutex_unlock(&q->mu);
}

double blockq_fill(struct blockq *q)
{
    pthread_mutex_lock(&q->mu);
    double f = (double)(q->nblocks - q->nfree) / q->nblocks;
    pthread_mutex_unlock(&q->mu);
    return f;
}

size_t blockq_block_size(const struct blockq *q) { return q->block_size; }

void blockq_report_failed(struct blockq *q, uint32_t seq) { atomic_store(&q->failed_seq, seq); }

const _Atomic uint32_t *blockq_failed_seq(struct blockq *q) { return &q->failed_seq; }
