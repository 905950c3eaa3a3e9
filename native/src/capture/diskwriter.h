/* diskwriter: the thread that puts blocks on disk.
 *
 * Promise: takes blocks from the blockq in order and writes them at their file offsets:
 * O_DIRECT through io_uring (liburing), or pwrite when io_uring is unavailable or --io pwrite;
 * buffered writes, logged once, where the filesystem refuses O_DIRECT (ramfs; tmpfs
 * accepts it since Linux 6.6). Preallocates
 * with fallocate ahead of the data and truncates to the real length at close, then renames
 * `X.part` to `X` and reports the file on the stats channel. On ENOSPC/EIO it closes the file at
 * its last whole record (everything written stays readable), reports disk_error in the stats,
 * counts the lost packets as writer drops and tells the assembler through the blockq
 * (blockq_report_failed), which starts a new file 0.1 s later (assembler.c: DISK_RETRY_NS). With compression, each block
 * becomes one zstd frame. Every `.part` is held under an exclusive flock from its creation
 * until after its rename, so recovery (recover.h) never touches a file a live writer holds. */
#ifndef SLUICE_CAPTURE_DISKWRITER_H
#define SLUICE_CAPTURE_DISKWRITER_H

#include <stddef.h>
#include <stdint.h>

#include "blockq.h"
#include "opts.h"
#include "stats.h"

struct diskwriter_cfg {
    enum io_mode io;
    int compress_level;     /* 0 = plain */
    uint64_t prealloc_step; /* fallocate granularity */
    int cpu;                /* --writer-cpu, -1 = not pinned */
    int readers_gid;        /* --group: files 0640 and folders 0750 of this group; -1 = none */
};

struct diskwriter;

/* Starts the writer thread. NULL with one line in err on failure. */
struct diskwriter *diskwriter_start(const struct diskwriter_cfg *cfg, struct blockq *q,
                                    struct capture_stats *st, char *err, size_t errlen);

/* Waits until the writer has written everything pushed before blockq_close, then frees it. */
void diskwriter_join(struct diskwriter *dw);

#endif
