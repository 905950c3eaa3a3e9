/* stats: the counters every thread updates and the JSON-lines stats channel on stdout.
 *
 * Promise: one JSON object per line, schema version 1 as documented in native/README.md,
 * flushed after each line, lines from different threads never interleave. Counters are
 * cumulative since the process started. */
#ifndef SLUICE_CAPTURE_STATS_H
#define SLUICE_CAPTURE_STATS_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "source.h"

struct capture_stats {
    _Atomic uint64_t packets;       /* received from the source */
    _Atomic uint64_t bytes;         /* their wire length */
    _Atomic uint64_t writer_drops;  /* buffers full or disk failed */
    _Atomic uint64_t bytes_written; /* bytes in capture files */
    _Atomic uint64_t files_closed;
    _Atomic uint64_t errors;
    _Atomic int disk_errno;         /* 0, or the errno that stopped writing (ENOSPC, EIO...) */
    _Atomic uint32_t failed_seq;    /* the file the writer gave up on (assembler reacts) */

    pthread_mutex_t mu; /* guards current_file and the output */
    char current_file[PATH_MAX];
    const char *iface;
    FILE *out;
    const char *io_mode; /* "uring", "pwrite", "buffered": how files are written */
};

void stats_init(struct capture_stats *s, const char *iface, FILE *out);
void stats_set_current_file(struct capture_stats *s, const char *path);

/* A "stats" (or, with type "final", the last) line. */
void stats_emit(struct capture_stats *s, const char *type, const struct source_counters *src,
                double buffer_fill, const char *ts_source);

/* A "file" line: one closed and renamed file. */
void stats_emit_file(struct capture_stats *s, const char *path, uint64_t packets, uint64_t bytes,
                     int has_packets, uint64_t first_ns, uint64_t last_ns);

#endif
