/* blockq: the bounded pool of staging blocks and the FIFO from the capture side to the writer.
 *
 * Promise: get_free never blocks (NULL when every block is in use: the caller drops and
 * counts), unless asked to wait (replay from a file must not drop). push/pop keep order. All
 * functions are thread-safe. Memory: nblocks * block_size, page-aligned, locked if allowed. */
#ifndef SLUICE_CAPTURE_BLOCKQ_H
#define SLUICE_CAPTURE_BLOCKQ_H

#include "block.h"

struct blockq;

struct blockq *blockq_create(size_t block_size, unsigned nblocks, char *err, size_t errlen);
void blockq_destroy(struct blockq *q);
struct block *blockq_get_free(struct blockq *q, int wait);
void blockq_put_free(struct blockq *q, struct block *b);
void blockq_push(struct blockq *q, struct block *b);
/* Next block for the writer; waits when wait != 0. NULL when closed and empty (or none ready). */
struct block *blockq_pop(struct blockq *q, int wait);
void blockq_close(struct blockq *q);
double blockq_fill(struct blockq *q);
size_t blockq_block_size(const struct blockq *q);

#endif
