/* pcapread: THE one reader of capture files of sluice-pcap (sluice-capture -r reads through libpcap).
 *
 * Reads pcap (microsecond or nanosecond magic, either byte order) and pcapng (several sections,
 * several interfaces, any if_tsresol, if_tsoffset; EPB, SPB and the obsolete PB), both also
 * zstd-compressed (recognised by content, see bytesrc.h), from a file, "-" or memory.
 *
 * Two modes:
 *  PR_STRICT  every record must be exactly as the format says; the first problem stops the
 *             reader: pr_next() returns -1 and pr_damage() says what, where (offset in the
 *             decompressed stream, record number) and which kind.
 *  PR_RESYNC  for repair: a problem is counted (pr_damage_count(), pr_damage() keeps the first)
 *             and the reader recovers what can be recovered: it infers a broken pcap global
 *             header (byte order, µs/ns from the data), resynchronises after garbage on the next
 *             plausible record/block (a header that chains to the next one), restores a record
 *             whose length field is impossible when the next record is found right after it,
 *             accepts the pcapng block length that chains when leading and trailing disagree,
 *             and hands out a cut-off last record with caplen = the bytes present. It never
 *             makes up packet bytes.
 *
 * Promises: memory is bounded (no allocation follows an untrusted length beyond PR_MAX_BLOCK);
 * every call consumes input or ends, so no input loops forever; nothing is printed.
 * Packet data pointers stay valid until the next pr_next() on the same reader.
 */
#ifndef SLUICE_PCAPREAD_H
#define SLUICE_PCAPREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bytesrc.h"

#define PR_MAX_BLOCK (16u << 20)   /* largest pcapng block / pcap record accepted */
#define PR_MAX_SNAPLEN 262144u     /* libpcap's MAXIMUM_SNAPLEN: larger caplens are impossible */

enum pr_mode { PR_STRICT = 0, PR_RESYNC = 1 };
enum pr_format { PR_FORMAT_PCAP = 1, PR_FORMAT_PCAPNG = 2 };

enum pr_damage_kind {
    PR_DAMAGE_NONE = 0,
    PR_DAMAGE_TRUNCATED,      /* the file ends inside a record/block */
    PR_DAMAGE_BAD_LENGTH,     /* impossible caplen/origlen or block length */
    PR_DAMAGE_GARBAGE,        /* bytes that are not a record between records */
    PR_DAMAGE_BAD_TIMESTAMP,  /* timestamp fraction out of range */
    PR_DAMAGE_LENGTH_MISMATCH,/* pcapng leading and trailing block lengths differ */
    PR_DAMAGE_BAD_INTERFACE,  /* pcapng packet names an interface that was not described */
    PR_DAMAGE_BAD_HEADER,     /* pcap global header / pcapng SHB broken */
    PR_DAMAGE_IO,             /* read or decompression error */
};

struct pr_damage {
    enum pr_damage_kind kind;
    uint64_t offset;   /* where in the (decompressed) stream */
    uint64_t record;   /* number of the record (1-based) at or after which it happened */
    char what[160];    /* one human line, no newline */
};

struct pr_iface {
    uint16_t linktype;
    uint32_t snaplen;
    uint8_t tsresol;     /* pcapng if_tsresol byte: 6 = µs, 9 = ns, 0x80|n = 2^-n */
    int64_t tsoffset;    /* seconds */
    uint32_t section;    /* 0-based pcapng section; always 0 for pcap */
    char name[64];       /* if_name, or "" */
};

struct pr_packet {
    uint64_t ts_ns;      /* nanoseconds since the epoch; 0 when !has_ts */
    bool has_ts;         /* false for a pcapng Simple Packet Block, which has no timestamp */
    uint32_t caplen;
    uint32_t origlen;
    uint32_t iface;      /* index into the reader's interfaces (across all sections) */
    uint16_t linktype;
    const uint8_t *data; /* caplen bytes */
    uint64_t offset;     /* stream offset of the record header */
    uint64_t index;      /* 1-based record number */
};

/* The interface stamps finer than a microsecond (a µs copy would cut its timestamps). */
static inline bool pr_iface_nanosecond(const struct pr_iface *ifc)
{
    return (ifc->tsresol & 0x80) ? (ifc->tsresol & 0x7f) > 19 : ifc->tsresol > 6;
}

typedef struct pr_reader pr_reader;

/* Open a file ("-" = stdin). Returns 0; or 2 when it cannot be opened or is not a capture
 * (message in err), 1 when the header is damaged in PR_STRICT mode (message in err). */
int pr_open(pr_reader **out, const char *path, enum pr_mode mode, char *err, size_t errlen);
/* The same over caller-owned memory (fuzzing, tests). */
int pr_open_mem(pr_reader **out, const uint8_t *data, size_t len, enum pr_mode mode,
                char *err, size_t errlen);
/* The same over the byte stream of a fill function (bytesrc.h: bs_open_fn). */
int pr_open_fn(pr_reader **out, bs_fill_fn fill, const char *(*errmsg)(void *ctx), void *ctx, enum pr_mode mode,
               char *err, size_t errlen);
void pr_close(pr_reader *r);

/* Next packet: 1 with *pkt filled, 0 at the clean end, -1 on damage (PR_STRICT; sticky) or
 * on an I/O error (both modes; see pr_damage()). Non-packet blocks are consumed silently. */
int pr_next(pr_reader *r, struct pr_packet *pkt);

enum pr_format pr_format(const pr_reader *r);
bool pr_compressed(const pr_reader *r);
/* pcap: the nanosecond magic; pcapng: some interface has a resolution finer than 1 µs. */
bool pr_nanosecond(const pr_reader *r);
/* pcap: the header's snaplen; pcapng: the largest interface snaplen seen so far. */
uint32_t pr_snaplen(const pr_reader *r);
size_t pr_iface_count(const pr_reader *r);
const struct pr_iface *pr_iface(const pr_reader *r, size_t i);
/* True when the pcap global header was inferred (PR_RESYNC) instead of read. */
bool pr_header_inferred(const pr_reader *r);

const struct pr_damage *pr_damage(const pr_reader *r); /* first damage, kind NONE if none */
uint64_t pr_damage_count(const pr_reader *r);
uint64_t pr_bytes_skipped(const pr_reader *r);         /* PR_RESYNC: bytes not used */
/* Progress: raw bytes read so far and the raw size (0 if unknown). */
uint64_t pr_progress(const pr_reader *r, uint64_t *total);

const char *pr_damage_name(enum pr_damage_kind kind);
const char *pr_linktype_name(uint16_t linktype);

#endif
