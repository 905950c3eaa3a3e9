/* source: where packets come from, behind one small interface.
 *
 * Backends: AF_PACKET TPACKET_V3 rings (source_afpacket.c), libpcap live capture and libpcap
 * file replay (source_pcap.c). A source has `workers` independent packet streams; each worker
 * thread calls source_poll with its own index only. Packets handed to the callback are valid only
 * during the call (they point into a ring or a libpcap buffer): copy what you keep.
 * Errors from open are returned as one line in err; the caller reports them once.
 *
 * A source never blocks once it has delivered: poll may wait (at most timeout_ms) only before
 * the first packet of a call; once the callback has run, poll returns without waiting. The
 * worker holds the assembler's lock from the first packet of a call to its return (one lock
 * per ring block), so a source that waited after delivering would stall every other worker.
 * A source whose interface disappears (link deleted, namespace gone) returns -1 with one line
 * in source_error(), never spins.
 */
#ifndef SLUICE_CAPTURE_SOURCE_H
#define SLUICE_CAPTURE_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "opts.h"

struct packet {
    uint64_t ts_ns;       /* ns since the epoch */
    const uint8_t *data;  /* the frame as on the wire (VLAN tags re-inserted) */
    uint8_t *writable;    /* data, when the callback may rewrite it in place (memory of this
                           * worker's only, read by nobody after the callback returns), or NULL */
    uint32_t caplen;      /* bytes in data */
    uint32_t origlen;     /* length on the wire */
};

typedef void (*packet_fn)(void *ctx, const struct packet *pkt);

struct source_counters {
    uint64_t kernel_packets; /* packets the kernel queued to us (PACKET_STATISTICS/pcap_stats) */
    uint64_t kernel_drops;   /* packets lost because the ring was full */
    uint64_t kernel_freezes; /* ring freeze events (TPACKET_V3 tp_freeze_q_cnt) */
    double ring_fill;        /* 0..1, the fullest worker ring */
    int hw_stamps;           /* 1 while hardware timestamps are in use */
};

struct source;

struct source_ops {
    /* Delivers the packets ready for this worker, waiting at most timeout_ms when there are
     * none. Returns packets delivered (>= 0), SOURCE_EOF at the end of a file, -1 on an error
     * that ends the capture (error says why). */
    int (*poll)(struct source *s, unsigned worker, int timeout_ms, packet_fn fn, void *ctx);
    /* Cumulative counters (resets of the kernel's counters are accumulated here). Thread-safe
     * against poll. */
    void (*counters)(struct source *s, struct source_counters *out);
    void (*close)(struct source *s);
};

#define SOURCE_EOF (-2)

struct source {
    const struct source_ops *ops;
    unsigned workers;
    int linktype;          /* LINKTYPE_ of the frames */
    char ts_note[160];     /* why hw was not used, "" when nothing to say (set at open) */
    char error[256];       /* why poll returned -1 (set once, by the worker that failed) */
    int is_file;           /* replay: runs to SOURCE_EOF */
};

/* Open the source described by opts. On failure returns NULL with one line in err. */
struct source *source_afpacket_open(const struct capture_opts *o, char *err, size_t errlen);
struct source *source_pcap_open(const struct capture_opts *o, char *err, size_t errlen);

/* The link speed of an interface in bit/s (ethtool), 0 when the driver does not say. */
uint64_t source_link_bps(const char *iface);

static inline int source_poll(struct source *s, unsigned worker, int timeout_ms, packet_fn fn,
                              void *ctx)
{
    return s->ops->poll(s, worker, timeout_ms, fn, ctx);
}

static inline void source_counters(struct source *s, struct source_counters *out)
{
    s->ops->counters(s, out);
}

static inline void source_close(struct source *s)
{
    if (s != NULL)
        s->ops->close(s);
}

#endif
