/* block: the unit that travels from the capture side to the disk writer.
 *
 * A block is a page-aligned staging buffer holding a contiguous piece of one output file's
 * byte stream, starting at file offset file_off (a multiple of BLOCK_ALIGN) so that it can be
 * written with O_DIRECT as is. A file_job describes one output file; the assembler creates it,
 * the disk writer owns and frees it after the block flagged BLOCK_LAST. */
#ifndef SLUICE_CAPTURE_BLOCK_H
#define SLUICE_CAPTURE_BLOCK_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define BLOCK_ALIGN 4096u

enum {
    BLOCK_FIRST = 1,   /* opens file->part_path; the block starts with the file header */
    BLOCK_LAST = 2,    /* the file ends after this block: truncate, close, rename */
    BLOCK_PARTIAL = 4, /* len is not aligned and the next block rewrites the tail page */
    BLOCK_CONTROL = 8, /* not from the pool (len 0): free it instead of returning it */
};

struct file_job {
    uint32_t seq;
    char dir[PATH_MAX];        /* where the file lives (created if missing: --date-dirs) */
    char part_path[PATH_MAX + 8]; /* name while written */
    char final_path[PATH_MAX]; /* name once complete */
    uint64_t first_ns;         /* first packet's timestamp (valid when packets > 0) */
    uint64_t packets;          /* set by the assembler at close */
    uint64_t last_ns;
    uint64_t length;           /* uncompressed stream length at close */
};

struct block {
    struct block *next;
    uint8_t *data;
    size_t cap;         /* a multiple of BLOCK_ALIGN */
    size_t len;
    uint64_t file_off;  /* stream offset of data[0] */
    uint64_t whole_end; /* stream offset after the last whole record of the file so far */
    uint64_t last_ns;   /* timestamp of that record */
    uint64_t first_ns;  /* timestamp of the first record ending in this block (npackets > 0) */
    uint32_t npackets;  /* records that end in this block */
    unsigned flags;
    struct file_job *file;
};

#endif
