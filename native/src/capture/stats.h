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

#define STATS_SCHEMA_VERSION 1

/* The fields of each line, in order (--print-contract prints them; a test checks real lines). */
#define STATS_FIELDS_HEAD "\"type\",\"v\",\"ts\",\"interface\""
#define STATS_FIELDS_STATS                                                                        \
    "[" STATS_FIELDS_HEAD ",\"packets\",\"bytes\",\"kernel_drops\",\"kernel_freezes\","          \
    "\"writer_drops\",\"ring_fill\",\"buffer_fill\",\"bytes_written\",\"files_closed\","           \
    "\"current_file\",\"ts_source\",\"disk_error\",\"errors\",\"kernel_packets\",\"io\","           \
    "\"ring_bytes\",\"buffer_bytes\",\"link_bps\",\"burst_seconds\"]"
#define STATS_FIELDS_FILE                                                                         \
    "[" STATS_FIELDS_HEAD ",\"path\",\"packets\",\"bytes\",\"first_ns\",\"last_ns\"]"
#define STATS_FIELDS_RECOVERED                                                                    \
    "[" STATS_FIELDS_HEAD ",\"part\",\"path\",\"bytes\",\"cut_bytes\"]"

struct capture_stats {
    _Atomic uint64_t packets;       /* received from the source */
    _Atomic uint64_t bytes;         /* their wire length */
    _Atomic uint64_t writer_drops;  /* buffers full or disk failed */
    _Atomic uint64_t bytes_written; /* bytes in capture files */
    _Atomic uint64_t files_closed;
    _Atomic uint64_t errors;
    _Atomic int disk_errno;         /* 0, or the errno that stopped writing (ENOSPC, EIO...) */
    uint64_t ring_bytes;            /* kernel ring memory, all workers (set before the first line) */
    uint64_t buffer_bytes;          /* staging buffers */
    uint64_t link_bps;              /* the interface's link speed in bit/s, 0 = unknown */

    pthread_mutex_t mu; /* guards current_file and the output */
    char current_file[PATH_MAX];
    const char *iface;
    FILE *out;
    const char *io_mode; /* "none" before the first file, then "uring+direct",
                          * "uring+buffered", "pwrite+direct", "pwrite+buffered"
                          * or "zstd+buffered": how files are written */
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
