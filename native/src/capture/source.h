/* source: where packets come from, behind one small interface.
 *
 * Backends: AF_PACKET TPACKET_V3 rings (source_afpacket.c), libpcap live capture and libpcap
 * file replay (source_pcap.c). A source has `workers` independent packet streams; each worker
 * thread calls source_poll with its own index only. Packets handed to the callback are valid only
 * during the call (they point into a ring or a libpcap buffer): copy what you keep.
 * Errors from open are returned as one line in err; the caller reports them once.
 */
#ifndef SLUICE_CAPTURE_SOURCE_H
#define SLUICE_CAPTURE_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "opts.h"

struct packet {
    uint64_t ts_ns;       /* ns since the epoch */
    const uint8_t *data;  /* the frame as on the wire (VLAN tags re-inserted) */
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
     * none. Returns packets delivered (>= 0), SOURCE_EOF at the end of a file, -1 on error. */
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
    uint32_t snaplen;      /* the capture's snaplen */
    char ts_note[160];     /* why hw was not used, "" when nothing to say (set at open) */
    int is_file;           /* replay: runs to SOURCE_EOF */
};

/* Open the source described by opts. On failure returns NULL with one line in err. */
struct source *source_afpacket_open(const struct capture_opts *o, char *err, size_t errlen);
struct source *source_pcap_open(const struct capture_opts *o, char *err, size_t errlen);

/* Compile a tcpdump filter expression for linktype/snaplen with libpcap. Returns 0 and fills
 * prog (free with pcap_freecode) or -1 with one line in err. */
struct bpf_program;
int source_compile_filter(const char *expr, int linktype, uint32_t snaplen,
                          struct bpf_program *prog, char *err, size_t errlen);

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
