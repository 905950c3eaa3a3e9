/* worker: one capture thread: source -> per-packet stage (slice) -> assembler.
 * Promise: runs until *stop is set (then drains what the source already holds) or the source
 * ends (replay); never waits on the disk. With cpu >= 0 the thread runs on that CPU only
 * (--cpus: the CPU that takes its RX queue's interrupts, so the packet stays in its cache). */
#ifndef SLUICE_CAPTURE_WORKER_H
#define SLUICE_CAPTURE_WORKER_H

#include <pthread.h>
#include <stdatomic.h>

#include "anonframe.h"
#include "assembler.h"
#include "slice.h"
#include "source.h"
#include "stats.h"

struct worker {
    pthread_t thread;
    unsigned index;
    int cpu;             /* -1 = not pinned */
    struct source *src;
    struct assembler *asm_;
    struct capture_stats *st;
    struct slice_cfg slice;
    atomic_int *stop;
    atomic_int finished; /* 1 at the end of a file, 2 after an error */
    int locked;          /* holds the assembler during one poll's batch */
    uint64_t packets, bytes; /* this poll's counts, added to stats once per poll */
    int anonymize;           /* --anonymize, --key-dir or --key-socket */
    struct anonframe anon;   /* this thread's own walk and cipher; anon.cp is used and swapped
                              * (key rotation) under cipher_lock only */
    pthread_mutex_t cipher_lock; /* held for one poll's batch while anonymising: a key rotation
                              * takes every thread's before the assembler's, so the frames of a
                              * batch are anonymised with the key of the file they go into */
    int cipher_locked;
    unsigned threads;        /* capture threads in all: with more than one, each anonymises outside
                              * the assembler's lock and takes it per packet */
    uint16_t linktype;
    uint8_t *anon_buf;       /* the frame being anonymised when the source's is read-only */
    uint64_t anon_left_out;  /* frames the walk could not parse: never written */
};

/* 0, or an errno (EINVAL: no such CPU) */
int worker_start(struct worker *w);
void worker_join(struct worker *w);

#endif
