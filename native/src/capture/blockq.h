/* blockq: the bounded pool of staging blocks and the FIFO from the capture side to the writer.
 *
 * Promise: get_free never blocks (NULL when every block is in use: the caller drops and
 * counts), unless asked to wait (replay from a file must not drop). push/pop keep order. All
 * functions are thread-safe. Memory: nblocks * block_size, page-aligned, faulted in and locked if
 * allowed, in huge pages as far as the kernel has them without compacting for long (blockq.c).
 *
 * The queue also carries the one message that goes the other way: the disk writer reports a
 * file it gave up on (blockq_report_failed, by the file's sequence number) and the assembler
 * reads it (the word blockq_failed_seq points to, on every packet: no call) before it adds to
 * that file, then starts a new one later. */
#ifndef SLUICE_CAPTURE_BLOCKQ_H
#define SLUICE_CAPTURE_BLOCKQ_H

#include "block.h"

struct blockq;

/* cancelled (may be NULL) is asked between steps of faulting the memory in: when it says yes,
 * NULL is returned (errno EINTR). */
struct blockq *blockq_create(size_t block_size, unsigned nblocks, int (*cancelled)(void), char *err,
                             size_t errlen);
void blockq_destroy(struct blockq *q);
struct block *blockq_get_free(struct blockq *q, int wait);
void blockq_put_free(struct blockq *q, struct block *b);
void blockq_push(struct blockq *q, struct block *b);
/* Next block for the writer; waits when wait != 0. NULL when closed and empty (or none ready). */
struct block *blockq_pop(struct blockq *q, int wait);
void blockq_close(struct blockq *q);
double blockq_fill(struct blockq *q);
void blockq_report_failed(struct blockq *q, uint32_t seq);
/* 0 = none yet (sequence numbers start at 1); read it relaxed */
const _Atomic uint32_t *blockq_failed_seq(struct blockq *q);
size_t blockq_block_size(const struct blockq *q);

#endif
