/* worker: the capture thread (see worker.h). */
#include "worker.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "thread.h"

static uint64_t now_ms(void) { return mono_ns() / 1000000u; }

/* Adds under the lock that one poll's batch holds, taken at its first packet: a source never
 * blocks once it has delivered. */
static void add_in_batch(struct worker *w, const struct packet *p, uint32_t keep)
{
    if (!w->locked) {
        assembler_lock(w->asm_);
        w->locked = 1;
    }
    assembler_add_locked(w->asm_, p, keep);
}

/* Before the assembler: no clear address reaches a block. Apart from on_packet so that the
 * plain path keeps no frame for it (registers, a stack canary) and ends in a tail call. */
static __attribute__((noinline)) void add_anonymised(struct worker *w, const struct packet *p,
                                                     uint32_t keep)
{
    if (!w->cipher_locked) {
        pthread_mutex_lock(&w->cipher_lock);
        w->cipher_locked = 1;
    }
    uint8_t *frame = p->writable; /* in place where the source allows it: no copy */
    if (frame == NULL) {
        memcpy(w->anon_buf, p->data, keep);
        frame = w->anon_buf;
    }
    struct packet anonymised = *p;
    anonymised.data = frame;
    keep = anonframe_rewrite(&w->anon, w->linktype, frame, keep);
    if (w->anon.bad) { /* it may hold an address the walk cannot see: left out, as sluice-pcap */
        w->anon_left_out++;
        return;
    }
    if (w->threads > 1) {
        /* the assembler's lock for the add only: Crypto-PAn, the dear part, runs outside it,
         * so the capture threads anonymise side by side */
        assembler_lock(w->asm_);
        assembler_add_locked(w->asm_, &anonymised, keep);
        assembler_unlock(w->asm_);
        return;
    }
    add_in_batch(w, &anonymised, keep); /* one thread: nobody to wait, so one lock for the batch */
}

static void on_packet(void *ctx, const struct packet *p)
{
    struct worker *w = ctx;
    w->packets++;
    w->bytes += p->origlen;
    uint32_t keep = slice_keep(&w->slice, p->data, p->caplen, p->origlen);
    if (w->anonymize)
        add_anonymised(w, p, keep);
    else
        add_in_batch(w, p, keep);
}

/* One poll of the source; the batch it delivered is added under one lock (plain capture, or one
 * capture thread), or, with several threads anonymising, under the thread's cipher lock and
 * added packet by packet. */
static int poll_batch(struct worker *w, int timeout_ms)
{
    int rc = source_poll(w->src, w->index, timeout_ms, on_packet, w);
    if (w->locked) {
        assembler_unlock(w->asm_);
        w->locked = 0;
    }
    if (w->cipher_locked) {
        pthread_mutex_unlock(&w->cipher_lock);
        w->cipher_locked = 0;
    }
    if (w->packets) {
        atomic_fetch_add_explicit(&w->st->packets, w->packets, memory_order_relaxed);
        atomic_fetch_add_explicit(&w->st->bytes, w->bytes, memory_order_relaxed);
        w->packets = w->bytes = 0;
    }
    return rc;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[16];
    snprintf(name, sizeof name, "capture-%u", w->index); /* as ps -T and /proc/PID/task show it */
    pthread_setname_np(pthread_self(), name);
    while (!atomic_load_explicit(w->stop, memory_order_relaxed)) {
        int rc = poll_batch(w, 100);
        if (rc == SOURCE_EOF) {
            atomic_store(&w->finished, 1);
            return NULL;
        }
        if (rc < 0) {
            atomic_store(&w->finished, 2);
            return NULL;
        }
    }
    /* Stopping: take what the ring holds, including the block the kernel retires within its
     * timeout (a few ms), then leave; bounded, since traffic may never pause. */
    uint64_t deadline = now_ms() + 100;
    for (int idle = 0; !w->src->is_file && idle < 2 && now_ms() < deadline;)
        idle = poll_batch(w, 20) > 0 ? 0 : idle + 1;
    atomic_store(&w->finished, 1);
    return NULL;
}

int worker_start(struct worker *w)
{
    return thread_start_on(&w->thread, w->cpu, worker_main, w);
}

void worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
}
