#include "pcapread.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytesrc.h"

#define PCAP_MAGIC_US 0xa1b2c3d4u
#define PCAP_MAGIC_NS 0xa1b23c4du
#define NG_SHB 0x0a0d0d0au
#define NG_IDB 1u
#define NG_PB 2u
#define NG_SPB 3u
#define NG_NRB 4u
#define NG_ISB 5u
#define NG_EPB 6u
#define NG_DSB 0x0au
#define NG_BOM 0x1a2b3c4du
#define DAY 86400

struct pr_reader {
    bytesrc *bs;
    enum pr_mode mode;
    enum pr_format format;
    bool swapped;
    bool nano;
    bool inferred;
    bool failed;               /* sticky end after strict damage or I/O error */
    uint32_t snaplen;
    uint32_t maxcap;           /* largest caplen accepted */
    struct pr_iface *ifs;
    size_t nifs, capifs;
    size_t section_base;       /* first interface of the current pcapng section */
    uint32_t section;
    bool have_prev;
    int64_t prev_sec;
    uint64_t index;
    struct pr_damage damage;
    uint64_t ndamage;
    bool io_noted;
    uint64_t gaps_noted;
    int pending_rc;            /* a packet read ahead at open (pcapng: to know the interfaces) */
    struct pr_packet pending;
    uint64_t skipped;
};

static uint32_t rd32(const pr_reader *r, const uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return r->swapped ? __builtin_bswap32(v) : v;
}

static uint16_t rd16(const pr_reader *r, const uint8_t *p)
{
    uint16_t v = (uint16_t)(p[0] | p[1] << 8);
    return r->swapped ? __builtin_bswap16(v) : v;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void note(pr_reader *r, enum pr_damage_kind kind, uint64_t offset, const char *fmt, ...)
{
    r->ndamage++;
    if (r->damage.kind != PR_DAMAGE_NONE)
        return;
    r->damage.kind = kind;
    r->damage.offset = offset;
    r->damage.record = r->index + 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->damage.what, sizeof r->damage.what, fmt, ap);
    va_end(ap);
}

/* Strict damage, or an I/O error in any mode: the reader stops. */
static int stop(pr_reader *r, enum pr_damage_kind kind, uint64_t offset, const char *fmt, ...)
{
    r->ndamage++;
    r->failed = true;
    if (r->damage.kind == PR_DAMAGE_NONE) {
        r->damage.kind = kind;
        r->damage.offset = offset;
        r->damage.record = r->index + 1;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->damage.what, sizeof r->damage.what, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static long peek(pr_reader *r, size_t n, const uint8_t **p)
{
    long got = bs_peek(r->bs, n, p);
    if (got < 0)
        stop(r, PR_DAMAGE_IO, bs_offset(r->bs), "%s", bs_error(r->bs));
    return got;
}

static int skip(pr_reader *r, uint64_t n)
{
    if (bs_skip(r->bs, n) < 0)
        return stop(r, PR_DAMAGE_IO, bs_offset(r->bs), "%s", bs_error(r->bs));
    return 0;
}

static int add_iface(pr_reader *r, const struct pr_iface *ifc)
{
    if (r->nifs == r->capifs) {
        size_t cap = r->capifs ? r->capifs * 2 : 8;
        if (cap > 1u << 20)
            return -1;
        struct pr_iface *n = realloc(r->ifs, cap * sizeof *n);
        if (!n)
            return -1;
        r->ifs = n;
        r->capifs = cap;
    }
    r->ifs[r->nifs++] = *ifc;
    if (ifc->snaplen > r->snaplen)
        r->snaplen = ifc->snaplen;
    if (!(ifc->tsresol & 0x80) ? ifc->tsresol > 6 : ifc->tsresol > 19)
        r->nano = true;
    return 0;
}

/* ---------------------------------------------------------------- pcap ---------------- */

struct rec_hdr {
    uint32_t sec, frac, caplen, origlen;
};

static struct rec_hdr parse_rec(const pr_reader *r, const uint8_t *p)
{
    struct rec_hdr h = {rd32(r, p), rd32(r, p + 4), rd32(r, p + 8), rd32(r, p + 12)};
    return h;
}

static bool frac_ok(const pr_reader *r, const struct rec_hdr *h)
{
    return h->frac < (r->nano ? 1000000000u : 1000000u);
}

/* Lengths a real record can have. */
static bool lengths_ok(const pr_reader *r, const struct rec_hdr *h)
{
    return h->caplen <= r->maxcap && h->caplen <= h->origlen && h->origlen <= PR_MAX_BLOCK;
}

static bool near_sec(int64_t a, int64_t b)
{
    return a >= b - DAY && a <= b + 7 * DAY;
}

static bool near_prev(const pr_reader *r, uint32_t sec)
{
    return r->have_prev && near_sec(sec, r->prev_sec);
}

/* A resync candidate at p[off]: plausible header whose record either ends exactly at the end
 * of the data or is followed by another plausible header close in time. */
static bool candidate_at(const pr_reader *r, const uint8_t *p, size_t avail, bool at_eof, size_t off)
{
    if (off + 16 > avail)
        return false;
    struct rec_hdr h = parse_rec(r, p + off);
    if (!frac_ok(r, &h) || !lengths_ok(r, &h) || h.caplen == 0)
        return false;
    if (h.origlen > 0x40000)
        return false;
    if (r->have_prev && !near_prev(r, h.sec))
        return false;
    size_t end = off + 16 + h.caplen;
    if (end == avail && at_eof)
        return true;
    if (end + 16 > avail)
        return false;
    struct rec_hdr n = parse_rec(r, p + end);
    return frac_ok(r, &n) && lengths_ok(r, &n) && near_sec(n.sec, h.sec);
}

/* The header after an accepted record looks like a record close in time. */
static bool next_fits(const pr_reader *r, const uint8_t *p, uint32_t sec)
{
    struct rec_hdr n = parse_rec(r, p);
    return frac_ok(r, &n) && lengths_ok(r, &n) && near_sec(n.sec, sec);
}

static void fill_pcap_packet(pr_reader *r, struct pr_packet *pkt, const struct rec_hdr *h,
                             const uint8_t *data, uint32_t caplen, uint32_t origlen, uint64_t off)
{
    pkt->ts_ns = (uint64_t)h->sec * 1000000000u + (r->nano ? h->frac : (uint64_t)h->frac * 1000u);
    pkt->caplen = caplen;
    pkt->origlen = origlen;
    pkt->iface = 0;
    pkt->linktype = r->ifs[0].linktype;
    pkt->data = data;
    pkt->offset = off;
    pkt->index = ++r->index;
    r->have_prev = true;
    r->prev_sec = h->sec;
}

static int pcap_next_strict(pr_reader *r, struct pr_packet *pkt)
{
    const uint8_t *p;
    uint64_t off = bs_offset(r->bs);
    long got = peek(r, 16, &p);
    if (got < 0)
        return -1;
    if (got == 0)
        return 0;
    if (got < 16)
        return stop(r, PR_DAMAGE_TRUNCATED, off, "record header cut off: %ld of 16 bytes", got);
    struct rec_hdr h = parse_rec(r, p);
    if (h.caplen > r->maxcap)
        return stop(r, PR_DAMAGE_BAD_LENGTH, off, "impossible record length %u (max %u)", h.caplen,
                    r->maxcap);
    if (h.caplen > h.origlen)
        return stop(r, PR_DAMAGE_BAD_LENGTH, off, "captured length %u exceeds original length %u",
                    h.caplen, h.origlen);
    if (!frac_ok(r, &h))
        return stop(r, PR_DAMAGE_BAD_TIMESTAMP, off, "timestamp fraction %u out of range", h.frac);
    got = peek(r, 16 + (size_t)h.caplen, &p);
    if (got < 0)
        return -1;
    if (got < 16 + (long)h.caplen)
        return stop(r, PR_DAMAGE_TRUNCATED, off, "record cut off: %ld of %u bytes", got - 16, h.caplen);
    fill_pcap_packet(r, pkt, &h, p + 16, h.caplen, h.origlen, off);
    return skip(r, 16 + (uint64_t)h.caplen) < 0 ? -1 : 1;
}

static int pcap_next_resync(pr_reader *r, struct pr_packet *pkt)
{
    const size_t window = 2 * ((size_t)r->maxcap + 16) + 32;
    for (;;) {
        const uint8_t *p;
        uint64_t off = bs_offset(r->bs);
        long got = peek(r, window, &p);
        if (got < 0)
            return -1;
        if (got == 0)
            return 0;
        bool at_eof = (size_t)got < window;
        size_t avail = (size_t)got;
        if (avail < 16) {
            note(r, PR_DAMAGE_TRUNCATED, off, "record header cut off: %zu of 16 bytes", avail);
            r->skipped += avail;
            return skip(r, avail) < 0 ? -1 : 0;
        }
        struct rec_hdr h = parse_rec(r, p);
        bool plausible = frac_ok(r, &h) && lengths_ok(r, &h);
        /* Bytes on both sides of a hole (a skipped zstd frame) never make one record. */
        uint64_t hole = bs_next_gap(r->bs, off + 1);
        size_t to_hole = hole - off < avail ? (size_t)(hole - off) : avail;
        if (to_hole < avail) {
            if (plausible && to_hole > 16 && 16 + (size_t)h.caplen > to_hole) {
                note(r, PR_DAMAGE_TRUNCATED, off, "record cut by damaged compressed data: %zu of %u bytes",
                     to_hole - 16, h.caplen);
                fill_pcap_packet(r, pkt, &h, p + 16, (uint32_t)(to_hole - 16), h.origlen, off);
                return skip(r, to_hole) < 0 ? -1 : 1;
            }
            if (to_hole < 16 || !plausible) {
                note(r, PR_DAMAGE_GARBAGE, off, "%zu bytes before damaged compressed data", to_hole);
                r->skipped += to_hole;
                if (skip(r, to_hole) < 0)
                    return -1;
                continue;
            }
        }
        if (plausible) {
            size_t end = 16 + (size_t)h.caplen;
            if (end > avail) {
                /* The last record is cut off: hand out the bytes that are there. */
                note(r, PR_DAMAGE_TRUNCATED, off, "record cut off: %zu of %u bytes", avail - 16, h.caplen);
                uint32_t have = (uint32_t)(avail - 16);
                if (have == 0) {
                    r->skipped += avail;
                    return skip(r, avail) < 0 ? -1 : 0;
                }
                fill_pcap_packet(r, pkt, &h, p + 16, have, h.origlen, off);
                return skip(r, avail) < 0 ? -1 : 1;
            }
            bool chains = end == avail ? at_eof : end + 16 <= avail && next_fits(r, p + end, h.sec);
            /* Zeros and other garbage also pass the length checks: a record must also fit in
             * time (near the previous one, or a real date that chains to the next record). */
            bool real_time = h.sec >= 100000000u;
            bool fits = h.caplen > 0 && (r->have_prev ? near_prev(r, h.sec) || (chains && real_time)
                                                      : chains || real_time);
            if (fits && !chains) {
                /* The next record does not follow: if one starts inside this record's claimed
                 * extent, bytes went missing here; cut this record there rather than swallow
                 * the next one. */
                for (size_t y = 17; y < end && y + 16 <= avail; y++) {
                    if (candidate_at(r, p, avail, at_eof, y) && near_sec(parse_rec(r, p + y).sec, h.sec)) {
                        note(r, PR_DAMAGE_BAD_LENGTH, off, "record shorter than its length %u: next record "
                             "at +%zu", h.caplen, y);
                        fill_pcap_packet(r, pkt, &h, p + 16, (uint32_t)(y - 16), h.origlen, off);
                        return skip(r, y) < 0 ? -1 : 1;
                    }
                }
            }
            if (fits) {
                fill_pcap_packet(r, pkt, &h, p + 16, h.caplen, h.origlen, off);
                return skip(r, end) < 0 ? -1 : 1;
            }
        }
        /* Damage at off: look for the next record that chains. */
        size_t limit = avail > 16 + (size_t)r->maxcap ? 16 + (size_t)r->maxcap : avail;
        size_t y = 0;
        for (size_t o = 1; o <= limit; o++) {
            if (candidate_at(r, p, avail, at_eof, o)) {
                y = o;
                break;
            }
        }
        if (y == 0) {
            note(r, PR_DAMAGE_GARBAGE, off, "%zu bytes that are not records", limit);
            r->skipped += limit;
            if (skip(r, limit) < 0)
                return -1;
            continue;
        }
        /* A record whose length field alone is broken: its timestamp fits and the next record
         * starts right after a sane amount of data. Keep it with the length the data has. */
        struct rec_hdr next = parse_rec(r, p + y);
        size_t gap = y - 16;
        if (y > 16 && y <= to_hole && frac_ok(r, &h) && near_sec(h.sec, next.sec) &&
            (!r->have_prev || near_prev(r, h.sec)) && gap <= r->maxcap && h.sec >= 100000000u) {
            note(r, PR_DAMAGE_BAD_LENGTH, off, "record length %u/%u repaired to %zu", h.caplen,
                 h.origlen, gap);
            uint32_t orig = h.origlen >= gap && h.origlen <= 0x40000 ? h.origlen : (uint32_t)gap;
            fill_pcap_packet(r, pkt, &h, p + 16, (uint32_t)gap, orig, off);
            return skip(r, y) < 0 ? -1 : 1;
        }
        note(r, PR_DAMAGE_GARBAGE, off, "%zu bytes of garbage between records", y);
        r->skipped += y;
        if (skip(r, y) < 0)
            return -1;
    }
}

static int open_pcap_header(pr_reader *r, const uint8_t *p)
{
    r->format = PR_FORMAT_PCAP;
    r->snaplen = rd32(r, p + 16);
    uint32_t network = rd32(r, p + 20);
    r->maxcap = r->snaplen > PR_MAX_SNAPLEN && r->snaplen <= PR_MAX_BLOCK ? r->snaplen : PR_MAX_SNAPLEN;
    struct pr_iface ifc = {.linktype = (uint16_t)(network & 0xffff), .snaplen = r->snaplen,
                           .tsresol = r->nano ? 9 : 6};
    return add_iface(r, &ifc);
}

static uint16_t guess_linktype(const uint8_t *d, size_t n)
{
    if (n >= 14) {
        uint16_t et = (uint16_t)(d[12] << 8 | d[13]);
        if (et == 0x0800 || et == 0x86dd || et == 0x0806 || et == 0x8100 || et == 0x88a8)
            return 1;
    }
    if (n >= 1 && ((d[0] >> 4) == 4 || (d[0] >> 4) == 6))
        return 101;
    return 1;
}

/* Count records chaining from `start` under the current byte order/precision guess. */
static unsigned chain_length(pr_reader *r, const uint8_t *p, size_t avail, bool at_eof, size_t start,
                             bool *saw_ns_frac)
{
    unsigned n = 0;
    size_t off = start;
    int64_t prev = -1;
    while (off + 16 <= avail && n < 256) {
        struct rec_hdr h = parse_rec(r, p + off);
        if (!frac_ok(r, &h) || !lengths_ok(r, &h) || h.origlen > 0x40000)
            break;
        if (prev >= 0 && !near_sec(h.sec, prev))
            break;
        size_t end = off + 16 + h.caplen;
        if (end > avail && !at_eof)
            break;
        if (end > avail)
            break;
        if (h.frac >= 1000000u)
            *saw_ns_frac = true;
        prev = h.sec;
        n++;
        off = end;
    }
    return n;
}

/* The magic is broken: find the byte order from which records chain after a 24-byte header,
 * and µs/ns from the fractions (a nanosecond file has fractions >= 10^6 almost always). */
static int infer_pcap_header(pr_reader *r, char *err, size_t errlen)
{
    const uint8_t *p;
    size_t want = 24 + 64 * ((size_t)PR_MAX_SNAPLEN / 8);
    long got = peek(r, want, &p);
    if (got < 0) {
        snprintf(err, errlen, "%s", r->damage.what);
        return 2;
    }
    bool at_eof = (size_t)got < want;
    unsigned best = 0;
    bool best_swap = false, best_ns = false;
    for (int swap = 0; swap < 2; swap++) {
        r->swapped = swap;
        r->nano = true;
        r->maxcap = PR_MAX_SNAPLEN;
        bool ns_frac = false;
        unsigned n = chain_length(r, p, (size_t)got, at_eof, 24, &ns_frac);
        if (n > best) {
            best = n;
            best_swap = swap;
            best_ns = ns_frac;
        }
    }
    if (best < 2 && !(best == 1 && at_eof)) {
        snprintf(err, errlen, "not a pcap or pcapng file and no records found after a pcap header");
        return 2;
    }
    r->swapped = best_swap;
    r->nano = best_ns;
    r->inferred = true;
    /* Keep snaplen and link type when the rest of the header still reads as version 2.4. */
    bool version_ok = rd16(r, p + 4) == 2 && rd16(r, p + 6) == 4;
    uint32_t snap = rd32(r, p + 16), net = rd32(r, p + 20);
    struct rec_hdr first = parse_rec(r, p + 24);
    uint16_t link = version_ok && net < 512 && net != 0 ? (uint16_t)net
                                                          : guess_linktype(p + 40, first.caplen);
    r->format = PR_FORMAT_PCAP;
    r->snaplen = version_ok && snap > 0 && snap <= PR_MAX_BLOCK ? snap : PR_MAX_SNAPLEN;
    r->maxcap = r->snaplen > PR_MAX_SNAPLEN ? r->snaplen : PR_MAX_SNAPLEN;
    note(r, PR_DAMAGE_BAD_HEADER, 0, "pcap global header broken: inferred %s-endian, %s timestamps",
         best_swap ? "big" : "little", best_ns ? "nanosecond" : "microsecond");
    struct pr_iface ifc = {.linktype = link, .snaplen = r->snaplen, .tsresol = r->nano ? 9 : 6};
    if (add_iface(r, &ifc) < 0 || skip(r, 24) < 0) {
        snprintf(err, errlen, "out of memory");
        return 2;
    }
    return 0;
}

/* ---------------------------------------------------------------- pcapng -------------- */

static bool known_block(uint32_t type)
{
    return type == NG_SHB || type == NG_IDB || type == NG_PB || type == NG_SPB || type == NG_NRB ||
           type == NG_ISB || type == NG_EPB || type == NG_DSB || type == 0x00000bad ||
           type == 0x40000bad;
}

static uint64_t ts_to_ns(const struct pr_iface *ifc, uint64_t ts)
{
    unsigned v = ifc->tsresol & 0x7f;
    unsigned __int128 ns;
    if (ifc->tsresol & 0x80) {
        ns = v >= 64 ? 0 : ((unsigned __int128)ts * 1000000000u) >> v;
    } else if (v <= 9) {
        static const uint64_t mul[10] = {1000000000u, 100000000u, 10000000u, 1000000u, 100000u,
                                         10000u, 1000u, 100u, 10u, 1u};
        ns = (unsigned __int128)ts * mul[v];
    } else {
        uint64_t div = 1;
        for (unsigned i = 9; i < v && i < 28; i++)
            div *= 10;
        ns = v >= 29 ? 0 : ts / div;
    }
    ns += (unsigned __int128)((__int128)ifc->tsoffset * 1000000000);
    return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

static void parse_idb_options(const pr_reader *r, const uint8_t *o, size_t n, struct pr_iface *ifc)
{
    size_t i = 0;
    while (i + 4 <= n) {
        uint16_t code = rd16(r, o + i), len = rd16(r, o + i + 2);
        if (code == 0 || i + 4 + len > n)
            break;
        const uint8_t *v = o + i + 4;
        if (code == 9 && len >= 1)
            ifc->tsresol = v[0];
        else if (code == 14 && len == 8)
            ifc->tsoffset = (int64_t)((uint64_t)rd32(r, v + (r->swapped ? 0 : 4)) << 32 |
                                      rd32(r, v + (r->swapped ? 4 : 0)));
        else if (code == 2) {
            size_t k = len < sizeof ifc->name - 1 ? len : sizeof ifc->name - 1;
            memcpy(ifc->name, v, k);
            ifc->name[k] = 0;
        }
        i += 4 + (((size_t)len + 3) & ~(size_t)3);
    }
}

/* Byte order of a section from its SHB at p (at least 12 bytes). */
static bool shb_order(pr_reader *r, const uint8_t *p)
{
    uint32_t bom = le32(p + 8);
    if (bom == NG_BOM)
        r->swapped = false;
    else if (bom == __builtin_bswap32(NG_BOM))
        r->swapped = true;
    else
        return false;
    return true;
}

/* Interpret one complete block of len bytes at p. Returns 1 with a packet, 0 for a block
 * that is not a packet, -1 for damage (already recorded by the caller's convention). */
static int ng_block(pr_reader *r, const uint8_t *p, uint32_t len, uint64_t off, struct pr_packet *pkt,
                    enum pr_damage_kind *kind, char *why, size_t whylen)
{
    uint32_t type = rd32(r, p);
    const size_t nsec = r->nifs - r->section_base;
    if (type == NG_SHB) {
        if (len < 28) {
            *kind = PR_DAMAGE_BAD_LENGTH;
            snprintf(why, whylen, "section header block too short (%u bytes)", len);
            return -1;
        }
        r->section_base = r->nifs;
        r->section++;
        return 0;
    }
    if (type == NG_IDB) {
        if (len < 20) {
            *kind = PR_DAMAGE_BAD_LENGTH;
            snprintf(why, whylen, "interface block too short (%u bytes)", len);
            return -1;
        }
        struct pr_iface ifc = {.linktype = rd16(r, p + 8), .snaplen = rd32(r, p + 12), .tsresol = 6,
                               .section = r->section ? r->section - 1 : 0};
        parse_idb_options(r, p + 16, len - 20, &ifc);
        if (add_iface(r, &ifc) < 0) {
            *kind = PR_DAMAGE_BAD_LENGTH;
            snprintf(why, whylen, "too many interfaces");
            return -1;
        }
        return 0;
    }
    uint32_t ifid, caplen, origlen;
    uint64_t ts;
    const uint8_t *data;
    if (type == NG_EPB || type == NG_PB) {
        if (len < 32) {
            *kind = PR_DAMAGE_BAD_LENGTH;
            snprintf(why, whylen, "packet block too short (%u bytes)", len);
            return -1;
        }
        ifid = type == NG_EPB ? rd32(r, p + 8) : rd16(r, p + 8);
        ts = (uint64_t)rd32(r, p + 12) << 32 | rd32(r, p + 16);
        caplen = rd32(r, p + 20);
        origlen = rd32(r, p + 24);
        data = p + 28;
        if (caplen > len - 32) {
            *kind = PR_DAMAGE_BAD_LENGTH;
            snprintf(why, whylen, "captured length %u does not fit the %u-byte block", caplen, len);
            return -1;
        }
    } else if (type == NG_SPB) {
        if (len < 16) {
            *kind = PR_DAMAGE_BAD_LENGTH;
            snprintf(why, whylen, "simple packet block too short (%u bytes)", len);
            return -1;
        }
        ifid = 0;
        ts = 0;
        origlen = rd32(r, p + 8);
        caplen = len - 16 < origlen ? len - 16 : origlen;
        if (nsec > 0 && r->ifs[r->section_base].snaplen && caplen > r->ifs[r->section_base].snaplen)
            caplen = r->ifs[r->section_base].snaplen;
        data = p + 12;
    } else if (r->mode == PR_RESYNC && !known_block(type) && len >= 32 && rd32(r, p + 8) < nsec &&
               32 + (((size_t)rd32(r, p + 20) + 3) & ~(size_t)3) == len && rd32(r, p + 24) >= rd32(r, p + 20)) {
        /* Resync: a block whose type field is damaged but whose fields are exactly those of an
         * enhanced packet block (interface, caplen that accounts for the length, origlen). */
        note(r, PR_DAMAGE_GARBAGE, off, "block type %#x read as a packet block (its fields fit)", type);
        ifid = rd32(r, p + 8);
        ts = (uint64_t)rd32(r, p + 12) << 32 | rd32(r, p + 16);
        caplen = rd32(r, p + 20);
        origlen = rd32(r, p + 24);
        data = p + 28;
    } else {
        return 0;
    }
    if (ifid >= nsec) {
        *kind = PR_DAMAGE_BAD_INTERFACE;
        snprintf(why, whylen, "packet on interface %u but the section describes %zu", ifid, nsec);
        return -1;
    }
    const struct pr_iface *ifc = &r->ifs[r->section_base + ifid];
    pkt->ts_ns = type == NG_SPB ? 0 : ts_to_ns(ifc, ts);
    pkt->caplen = caplen;
    pkt->origlen = origlen < caplen ? caplen : origlen;
    pkt->iface = (uint32_t)(r->section_base + ifid);
    pkt->linktype = ifc->linktype;
    pkt->data = data;
    pkt->offset = off;
    pkt->index = ++r->index;
    return 1;
}

/* Structural check of a block header at p (avail bytes): type, length, trailing length. */
static bool ng_candidate(pr_reader *r, const uint8_t *p, size_t avail)
{
    if (avail < 12)
        return false;
    bool saved = r->swapped;
    uint32_t type = le32(p);
    if (type == NG_SHB && !shb_order(r, p))
        return false;
    type = rd32(r, p);
    uint32_t len = rd32(r, p + 4);
    bool ok = known_block(type) && type != 0x00000bad && type != 0x40000bad && len >= 12 &&
              len % 4 == 0 && len <= PR_MAX_BLOCK && len <= avail && rd32(r, p + len - 4) == len;
    if (ok && (type == NG_EPB || type == NG_PB)) {
        uint32_t ifid = type == NG_EPB ? rd32(r, p + 8) : rd16(r, p + 8);
        ok = len >= 32 && ifid < r->nifs - r->section_base && rd32(r, p + 20) <= len - 32;
    }
    if (type != NG_SHB || !ok)
        r->swapped = saved;
    return ok;
}

static int ng_next(pr_reader *r, struct pr_packet *pkt)
{
    for (;;) {
        const uint8_t *p;
        uint64_t off = bs_offset(r->bs);
        long got = peek(r, 12, &p);
        if (got < 0)
            return -1;
        if (got == 0)
            return 0;
        enum pr_damage_kind kind = PR_DAMAGE_NONE;
        char why[128] = "";
        uint32_t len = 0;
        if (got < 12) {
            kind = PR_DAMAGE_TRUNCATED;
            snprintf(why, sizeof why, "block header cut off: %ld of 12 bytes", got);
        } else {
            if (le32(p) == NG_SHB && !shb_order(r, p)) {
                kind = PR_DAMAGE_BAD_HEADER;
                snprintf(why, sizeof why, "section header with a bad byte-order magic");
            }
            len = rd32(r, p + 4);
            if (kind == PR_DAMAGE_NONE && (len < 12 || len % 4 != 0 || len > PR_MAX_BLOCK)) {
                kind = PR_DAMAGE_BAD_LENGTH;
                snprintf(why, sizeof why, "impossible block length %u", len);
            }
        }
        if (kind == PR_DAMAGE_NONE) {
            got = peek(r, len, &p);
            if (got < 0)
                return -1;
            uint64_t hole = bs_next_gap(r->bs, off + 1);
            if (hole < off + (uint64_t)got && hole < off + len) {
                /* The block runs into a hole (a skipped zstd frame): keep the packet bytes
                 * before it, never what follows. */
                size_t have = (size_t)(hole - off);
                note(r, PR_DAMAGE_TRUNCATED, off, "block cut by damaged compressed data: %zu of %u bytes",
                     have, len);
                uint32_t type = rd32(r, p);
                if (have >= 33 && (type == NG_EPB || type == NG_PB) && r->nifs > r->section_base) {
                    uint32_t ifid = type == NG_EPB ? rd32(r, p + 8) : rd16(r, p + 8);
                    uint32_t caplen = rd32(r, p + 20);
                    if (ifid < r->nifs - r->section_base && caplen <= PR_MAX_BLOCK) {
                        const struct pr_iface *ifc = &r->ifs[r->section_base + ifid];
                        pkt->ts_ns = ts_to_ns(ifc, (uint64_t)rd32(r, p + 12) << 32 | rd32(r, p + 16));
                        pkt->caplen = caplen < have - 28 ? caplen : (uint32_t)(have - 28);
                        uint32_t orig = rd32(r, p + 24);
                        pkt->origlen = orig < caplen ? caplen : orig;
                        pkt->iface = (uint32_t)(r->section_base + ifid);
                        pkt->linktype = ifc->linktype;
                        pkt->data = p + 28;
                        pkt->offset = off;
                        pkt->index = ++r->index;
                        return skip(r, have) < 0 ? -1 : 1;
                    }
                }
                r->skipped += have;
                if (skip(r, have) < 0)
                    return -1;
                continue;
            }
            if ((uint32_t)got < len) {
                kind = PR_DAMAGE_TRUNCATED;
                snprintf(why, sizeof why, "block cut off: %ld of %u bytes", got, len);
            } else if (rd32(r, p + len - 4) != len) {
                kind = PR_DAMAGE_LENGTH_MISMATCH;
                snprintf(why, sizeof why, "block length %u but trailing length %u", len,
                         rd32(r, p + len - 4));
            } else {
                int rc = ng_block(r, p, len, off, pkt, &kind, why, sizeof why);
                if (rc >= 0) {
                    if (skip(r, len) < 0)
                        return -1;
                    if (rc == 1)
                        return 1;
                    continue;
                }
            }
        }
        if (r->mode == PR_STRICT)
            return stop(r, kind, off, "%s", why);
        note(r, kind, off, "%s", why);
        if (kind == PR_DAMAGE_TRUNCATED) {
            /* A cut-off packet block still holds the start of its packet. */
            uint32_t type = got >= 12 ? rd32(r, p) : 0;
            if (got >= 33 && (type == NG_EPB || type == NG_PB)) {
                uint32_t ifid = type == NG_EPB ? rd32(r, p + 8) : rd16(r, p + 8);
                uint32_t caplen = rd32(r, p + 20);
                uint32_t have = (uint32_t)got - 28;
                if (ifid < r->nifs - r->section_base && caplen <= PR_MAX_BLOCK) {
                    const struct pr_iface *ifc = &r->ifs[r->section_base + ifid];
                    pkt->ts_ns = ts_to_ns(ifc, (uint64_t)rd32(r, p + 12) << 32 | rd32(r, p + 16));
                    pkt->caplen = caplen < have ? caplen : have;
                    uint32_t orig = rd32(r, p + 24);
                    pkt->origlen = orig < caplen ? caplen : orig;
                    pkt->iface = (uint32_t)(r->section_base + ifid);
                    pkt->linktype = ifc->linktype;
                    pkt->data = p + 28;
                    pkt->offset = off;
                    pkt->index = ++r->index;
                    r->skipped += (uint64_t)got - pkt->caplen;
                    return skip(r, (uint64_t)got) < 0 ? -1 : 1;
                }
            }
            if (got >= 12 && known_block(type) && len <= PR_MAX_BLOCK && (uint32_t)got < len) {
                /* Not at the end yet? Only at the end is a block cut off; fall through to scan. */
            }
        }
        /* Bytes missing inside this block: its claimed length runs into the next block. If a
         * whole block starts inside it, cut this one there (packet bytes up to that point). */
        if (got >= 32 && kind == PR_DAMAGE_LENGTH_MISMATCH && (rd32(r, p) == NG_EPB || rd32(r, p) == NG_PB)) {
            const uint8_t *q;
            long have = peek(r, (size_t)len + PR_MAX_SNAPLEN + 64, &q);
            if (have < 0)
                return -1;
            p = q; /* a peek may move the buffer: never use an older pointer */
            uint32_t type = rd32(r, q);
            uint32_t ifid = type == NG_EPB ? rd32(r, q + 8) : rd16(r, q + 8);
            for (size_t y = 32; y < len && y + 12 <= (size_t)have && ifid < r->nifs - r->section_base; y++) {
                if (!ng_candidate(r, q + y, (size_t)have - y))
                    continue;
                const struct pr_iface *ifc = &r->ifs[r->section_base + ifid];
                uint32_t caplen = rd32(r, q + 20), orig = rd32(r, q + 24);
                pkt->ts_ns = ts_to_ns(ifc, (uint64_t)rd32(r, q + 12) << 32 | rd32(r, q + 16));
                pkt->caplen = caplen < y - 28 ? caplen : (uint32_t)(y - 28);
                pkt->origlen = orig < pkt->caplen ? pkt->caplen : orig;
                pkt->iface = (uint32_t)(r->section_base + ifid);
                pkt->linktype = ifc->linktype;
                pkt->data = q + 28;
                pkt->offset = off;
                pkt->index = ++r->index;
                return skip(r, y) < 0 ? -1 : 1;
            }
        }
        /* Trailing length broken but leading sane: accept it when a block follows. */
        if (got >= 12 && kind == PR_DAMAGE_LENGTH_MISMATCH) {
            const uint8_t *q;
            long have = peek(r, (size_t)len + 12, &q);
            if (have < 0)
                return -1;
            p = q; /* a peek may move the buffer: never use an older pointer */
            /* ...or when the packet block's own fields account for exactly its length. */
            bool exact_epb = len >= 32 && rd32(r, q) == NG_EPB && (size_t)have >= len &&
                             32 + (((size_t)rd32(r, q + 20) + 3) & ~(size_t)3) == len;
            if ((size_t)have == len || exact_epb || ((size_t)have >= (size_t)len + 12 &&
                                                     known_block(rd32(r, q + len)))) {
                int rc = ng_block(r, q, len, off, pkt, &kind, why, sizeof why);
                if (rc >= 0) {
                    if (skip(r, len) < 0)
                        return -1;
                    if (rc == 1)
                        return 1;
                    continue;
                }
            }
        }
        /* Leading length broken but trailing intact: find the trailing length that chains. */
        if (got >= 28) {
            uint32_t type = rd32(r, p);
            if (type == NG_EPB || type == NG_PB) {
                uint32_t caplen = rd32(r, p + 20);
                if (caplen <= PR_MAX_SNAPLEN) {
                    size_t lo = 32 + (((size_t)caplen + 3) & ~(size_t)3);
                    const uint8_t *q;
                    long have = peek(r, lo + 4096, &q);
                    if (have < 0)
                        return -1;
                    p = q; /* a peek may move the buffer: never use an older pointer */
                    for (size_t l = lo; l + 0 <= (size_t)have && l <= lo + 4092; l += 4) {
                        if (rd32(r, q + l - 4) != l)
                            continue;
                        int rc = ng_block(r, q, (uint32_t)l, off, pkt, &kind, why, sizeof why);
                        if (rc == 1)
                            return skip(r, l) < 0 ? -1 : 1;
                        break;
                    }
                }
            }
        }
        /* Garbage: move on byte by byte to the next block that is whole and consistent. */
        uint64_t skipped = 0;
        for (;;) {
            if (skip(r, 1) < 0)
                return -1;
            skipped++;
            got = peek(r, 12, &p);
            if (got < 0)
                return -1;
            if (got < 12) {
                r->skipped += skipped + (uint64_t)got;
                return skip(r, (uint64_t)got) < 0 ? -1 : 0;
            }
            uint32_t t = le32(p);
            bool maybe = t == NG_SHB || (t & 0xffffff00u) == 0 || (t & 0x00ffffffu) == 0;
            if (!maybe)
                continue;
            uint32_t l = rd32(r, p + 4);
            if (t == NG_SHB) {
                bool sv = r->swapped;
                if (!shb_order(r, p))
                    continue;
                l = rd32(r, p + 4);
                r->swapped = sv;
            }
            if (l < 12 || l > PR_MAX_BLOCK || l % 4)
                continue;
            got = peek(r, l, &p);
            if (got < 0)
                return -1;
            if (ng_candidate(r, p, (size_t)got))
                break;
        }
        r->skipped += skipped;
    }
}

/* The block at p is followed by the end of the data or by a block whose lengths agree. */
static bool ng_chains(const pr_reader *r, const uint8_t *p, size_t avail)
{
    uint32_t len = rd32(r, p + 4);
    if (len == avail)
        return true;
    if ((size_t)len + 12 > avail)
        return false;
    const uint8_t *q = p + len;
    uint32_t nlen = rd32(r, q + 4);
    return known_block(rd32(r, q)) && nlen >= 12 && nlen % 4 == 0 && (size_t)len + nlen <= avail &&
           rd32(r, q + nlen - 4) == nlen;
}

/* The section header is broken: a pcapng whose first interface block is still whole can be
 * read from there on (in the byte order that makes the block consistent). */
static bool find_pcapng_start(pr_reader *r)
{
    const uint8_t *p;
    long got = peek(r, 1u << 20, &p);
    if (got < 12)
        return false;
    for (size_t off = 0; off + 12 <= (size_t)got; off++) {
        for (int swap = 0; swap < 2; swap++) {
            r->swapped = swap;
            if (rd32(r, p + off) == NG_IDB && ng_candidate(r, p + off, (size_t)got - off) &&
                ng_chains(r, p + off, (size_t)got - off)) {
                r->format = PR_FORMAT_PCAPNG;
                r->section = 1;
                r->nano = false;
                note(r, PR_DAMAGE_BAD_HEADER, 0, "pcapng section header broken: read from the interface "
                     "block at offset %zu", off);
                r->skipped += off;
                return skip(r, off) == 0;
            }
        }
    }
    return false;
}

/* ---------------------------------------------------------------- open / misc --------- */

static int finish_open(pr_reader *r, pr_reader **out, char *err, size_t errlen)
{
    if (r->mode == PR_RESYNC)
        bs_set_lenient(r->bs);
    const uint8_t *p;
    long got = peek(r, 24, &p);
    if (got < 0) {
        snprintf(err, errlen, "%s", r->damage.what);
        pr_close(r);
        return 2;
    }
    if (got == 0) {
        snprintf(err, errlen, "empty file, not a capture");
        pr_close(r);
        return 2;
    }
    uint32_t m = got >= 4 ? le32(p) : 0;
    int rc = 0;
    if (got >= 4 && (m == PCAP_MAGIC_US || m == PCAP_MAGIC_NS || m == __builtin_bswap32(PCAP_MAGIC_US) ||
                     m == __builtin_bswap32(PCAP_MAGIC_NS))) {
        r->swapped = m == __builtin_bswap32(PCAP_MAGIC_US) || m == __builtin_bswap32(PCAP_MAGIC_NS);
        r->nano = m == PCAP_MAGIC_NS || m == __builtin_bswap32(PCAP_MAGIC_NS);
        if (got < 24) {
            if (r->mode == PR_STRICT) {
                snprintf(err, errlen, "pcap global header cut off: %ld of 24 bytes", got);
                pr_close(r);
                return 1;
            }
            note(r, PR_DAMAGE_TRUNCATED, 0, "pcap global header cut off: %ld of 24 bytes", got);
            r->format = PR_FORMAT_PCAP;
            r->maxcap = PR_MAX_SNAPLEN;
            struct pr_iface ifc = {.linktype = 1, .snaplen = PR_MAX_SNAPLEN, .tsresol = r->nano ? 9 : 6};
            add_iface(r, &ifc);
            skip(r, (uint64_t)got);
        } else {
            if (open_pcap_header(r, p) < 0 || skip(r, 24) < 0)
                rc = 2;
        }
    } else if (got >= 12 && m == NG_SHB) {
        r->format = PR_FORMAT_PCAPNG;
        if (!shb_order(r, p)) {
            if (r->mode == PR_STRICT) {
                snprintf(err, errlen, "pcapng section header with a bad byte-order magic");
                pr_close(r);
                return 1;
            }
        }
    } else if (r->mode == PR_RESYNC && got >= 4) {
        rc = infer_pcap_header(r, err, errlen);
        if (rc && find_pcapng_start(r))
            rc = 0;
        if (rc) {
            pr_close(r);
            return rc;
        }
    } else {
        if (got >= 4 && m == 0x28b52ffdu)
            snprintf(err, errlen, "zstd data inside zstd, not a capture");
        else if (got >= 4 && (m == PCAP_MAGIC_US || m == 0x0a0d0d0au))
            snprintf(err, errlen, "capture header cut off");
        else
            snprintf(err, errlen, "not a pcap or pcapng file (starts with %02x %02x %02x %02x)",
                     p[0], got > 1 ? p[1] : 0, got > 2 ? p[2] : 0, got > 3 ? p[3] : 0);
        pr_close(r);
        return 2;
    }
    if (rc) {
        snprintf(err, errlen, "out of memory");
        pr_close(r);
        return 2;
    }
    if (r->format == PR_FORMAT_PCAPNG) {
        /* Read up to the first packet so that the interfaces (link types, resolution) are
         * known before the caller decides on its output. */
        r->pending_rc = ng_next(r, &r->pending) + 2;
    }
    *out = r;
    return 0;
}

static pr_reader *new_reader(enum pr_mode mode)
{
    pr_reader *r = calloc(1, sizeof *r);
    if (r)
        r->mode = mode;
    return r;
}

int pr_open(pr_reader **out, const char *path, enum pr_mode mode, char *err, size_t errlen)
{
    pr_reader *r = new_reader(mode);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return 2;
    }
    if (bs_open_file(&r->bs, path, err, errlen) < 0) {
        free(r);
        return 2;
    }
    return finish_open(r, out, err, errlen);
}

int pr_open_mem(pr_reader **out, const uint8_t *data, size_t len, enum pr_mode mode, char *err,
                size_t errlen)
{
    pr_reader *r = new_reader(mode);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return 2;
    }
    if (bs_open_mem(&r->bs, data, len, err, errlen) < 0) {
        free(r);
        return 2;
    }
    return finish_open(r, out, err, errlen);
}

void pr_close(pr_reader *r)
{
    if (!r)
        return;
    bs_close(r->bs);
    free(r->ifs);
    free(r);
}

static int next_packet(pr_reader *r, struct pr_packet *pkt)
{
    if (r->pending_rc) {
        int rc = r->pending_rc - 2;
        r->pending_rc = 0;
        if (rc == 1)
            *pkt = r->pending;
        return rc;
    }
    if (r->failed)
        return -1;
    if (r->format == PR_FORMAT_PCAPNG)
        return ng_next(r, pkt);
    return r->mode == PR_STRICT ? pcap_next_strict(r, pkt) : pcap_next_resync(r, pkt);
}

int pr_next(pr_reader *r, struct pr_packet *pkt)
{
    int rc = next_packet(r, pkt);
    while (bs_gaps(r->bs) > r->gaps_noted) {
        r->gaps_noted++;
        note(r, PR_DAMAGE_IO, bs_offset(r->bs), "damaged zstd frame skipped, decoding resumed at the next frame");
    }
    if (rc == 0 && bs_failed(r->bs) && !r->io_noted) {
        /* Resync: the stream broke (e.g. zstd data corruption); what came before it counts. */
        r->io_noted = true;
        note(r, PR_DAMAGE_IO, bs_offset(r->bs), "%s: the rest of the file cannot be read", bs_error(r->bs));
    }
    return rc;
}

enum pr_format pr_format(const pr_reader *r) { return r->format; }
bool pr_compressed(const pr_reader *r) { return bs_compressed(r->bs); }
bool pr_nanosecond(const pr_reader *r) { return r->nano; }
uint32_t pr_snaplen(const pr_reader *r) { return r->snaplen; }
size_t pr_iface_count(const pr_reader *r) { return r->nifs; }
const struct pr_iface *pr_iface(const pr_reader *r, size_t i) { return i < r->nifs ? &r->ifs[i] : NULL; }
bool pr_header_inferred(const pr_reader *r) { return r->inferred; }
const struct pr_damage *pr_damage(const pr_reader *r) { return &r->damage; }
uint64_t pr_damage_count(const pr_reader *r) { return r->ndamage; }
uint64_t pr_bytes_skipped(const pr_reader *r) { return r->skipped; }

uint64_t pr_progress(const pr_reader *r, uint64_t *total)
{
    *total = bs_size_hint(r->bs);
    return bs_raw_offset(r->bs);
}

const char *pr_damage_name(enum pr_damage_kind kind)
{
    static const char *const names[] = {"none", "truncated", "bad-length", "garbage", "bad-timestamp",
                                        "length-mismatch", "bad-interface", "bad-header", "io-error"};
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "unknown";
}

const char *pr_linktype_name(uint16_t linktype)
{
    switch (linktype) {
    case 0: return "NULL";
    case 1: return "EN10MB";
    case 101: return "RAW";
    case 105: return "IEEE802_11";
    case 113: return "LINUX_SLL";
    case 127: return "IEEE802_11_RADIOTAP";
    case 228: return "IPV4";
    case 229: return "IPV6";
    case 276: return "LINUX_SLL2";
    default: return "OTHER";
    }
}
