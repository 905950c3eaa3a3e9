/* assembler: turns packets into the byte stream of rotated capture files, cut into blocks.
 *
 * Promise: every file is SHB+IDB (pcapng) or the global header (pcap), then whole records, then
 * (pcapng) an ISB; a record is never split across files. Blocks are handed to the disk writer
 * through the blockq in stream order. The assembler never waits for the disk: when no block is
 * free, the packet is dropped and counted in stats->writer_drops (except in `wait_for_blocks`
 * mode, used for replay from a file). All functions are thread-safe (one mutex).
 *
 * Without compression records straddle block boundaries so that every full block is an aligned
 * O_DIRECT write; with compression each block holds whole records and becomes one independent
 * zstd frame. */
#ifndef SLUICE_CAPTURE_ASSEMBLER_H
#define SLUICE_CAPTURE_ASSEMBLER_H

#include <stdint.h>

#include "blockq.h"
#include "naming.h"
#include "opts.h"
#include "source.h" /* struct packet */
#include "stats.h"

struct isb_counters {
    uint64_t kernel_packets; /* isb_ifrecv (0 = unknown: the packets received are used) */
    uint64_t kernel_drops;   /* isb_ifdrop */
};

struct assembler_cfg {
    enum out_format format;
    int compress;          /* blocks = whole records (zstd frames) */
    int linktype;
    uint32_t snaplen;
    uint64_t rotate_size;  /* 0 = off */
    uint64_t rotate_ns;    /* 0 = off; wall-clock aligned */
    int wait_for_blocks;   /* replay: wait for a free block instead of dropping */
    struct naming naming;
    const char *filter;
    const char *description; /* IDB if_description */
    const char *userappl;    /* SHB shb_userappl */
    const char *shb_comment; /* SHB opt_comment, optional */
    const char *key_id;      /* SHB: the anonymisation key's id (never the key), optional */
    uint64_t capture_start_ns;
    /* The Interface Statistics Block's counters at the moment a file closes (any thread). */
    void (*counters)(void *ctx, struct isb_counters *out);
    void *counters_ctx;
};

struct assembler;

struct assembler *assembler_create(const struct assembler_cfg *cfg, struct blockq *q,
                                   struct capture_stats *stats);
void assembler_destroy(struct assembler *a);

/* A batch of packets: lock once, add many, unlock (a worker does this per ring block, so the
 * mutex costs nothing per packet). Of each packet `keep` bytes are written (keep <= caplen). */
void assembler_lock(struct assembler *a);
void assembler_add_locked(struct assembler *a, const struct packet *pkt, uint32_t keep);
void assembler_unlock(struct assembler *a);

/* Periodic work from the main thread: time rotation (on now_ns, real time), pushing data older
 * than a second to the writer and reopening a file a second after the disk failed (on mono_ns,
 * the monotonic clock: see clock.h). */
void assembler_tick(struct assembler *a, uint64_t now_ns, uint64_t mono_ns);

/* Close the current file now and start the next one (SIGHUP). */
void assembler_rotate(struct assembler *a, uint64_t now_ns);
/* The same with the lock held: a key rotation changes the SHB's key id (the strings the cfg
 * points to) and the workers' ciphers under the lock, then opens the next file. */
void assembler_rotate_locked(struct assembler *a, uint64_t now_ns);

/* Close the current file for good (exit). */
void assembler_finish(struct assembler *a);

#endif
