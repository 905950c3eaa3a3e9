/* pcapread, the pcap format: strict records, resynchronisation, header inference. */
#include <stdio.h>
#include <string.h>

#include "pcapread_internal.h"

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

/* Lengths a real record can have. A captured length above the original one is read by libpcap
 * and Wireshark (tcpdump's own test files have it), so it is not damage; a record that was never
 * on the wire (origlen 0 with data) is. */
static bool lengths_ok(const pr_reader *r, const struct rec_hdr *h)
{
    return h->caplen <= r->maxcap && h->origlen <= PR_MAX_BLOCK && (h->origlen > 0 || h->caplen == 0);
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
    pkt->has_ts = true;
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

int pr_pcap_next_strict(pr_reader *r, struct pr_packet *pkt)
{
    const uint8_t *p;
    uint64_t off = bs_offset(r->bs);
    long got = pr_peek(r, 16, &p);
    if (got < 0)
        return -1;
    if (got == 0)
        return 0;
    if (got < 16)
        return pr_stop(r, PR_DAMAGE_TRUNCATED, off, "record header cut off: %ld of 16 bytes", got);
    struct rec_hdr h = parse_rec(r, p);
    if (h.caplen > r->maxcap)
        return pr_stop(r, PR_DAMAGE_BAD_LENGTH, off, "impossible record length %u (max %u)", h.caplen,
                    r->maxcap);
    /* A captured length above the original length and a fraction of a second that is a second
     * or more are read as they are, as libpcap and Wireshark read them (the time is seconds plus
     * the fraction, carried over). */
    got = pr_peek(r, 16 + (size_t)h.caplen, &p);
    if (got < 0)
        return -1;
    if (got < 16 + (long)h.caplen)
        return pr_stop(r, PR_DAMAGE_TRUNCATED, off, "record cut off: %ld of %u bytes", got - 16, h.caplen);
    fill_pcap_packet(r, pkt, &h, p + 16, h.caplen, h.origlen, off);
    return pr_skip(r, 16 + (uint64_t)h.caplen) < 0 ? -1 : 1;
}

int pr_pcap_next_resync(pr_reader *r, struct pr_packet *pkt)
{
    const size_t window = 2 * ((size_t)r->maxcap + 16) + 32;
    for (;;) {
        const uint8_t *p;
        uint64_t off = bs_offset(r->bs);
        long got = pr_peek(r, window, &p);
        if (got < 0)
            return -1;
        if (got == 0)
            return 0;
        bool at_eof = (size_t)got < window;
        size_t avail = (size_t)got;
        if (avail < 16) {
            pr_note(r, PR_DAMAGE_TRUNCATED, off, "record header cut off: %zu of 16 bytes", avail);
            r->skipped += avail;
            return pr_skip(r, avail) < 0 ? -1 : 0;
        }
        struct rec_hdr h = parse_rec(r, p);
        bool plausible = frac_ok(r, &h) && lengths_ok(r, &h);
        /* Bytes on both sides of a hole (a skipped zstd frame) never make one record. */
        uint64_t hole = bs_next_gap(r->bs, off + 1);
        size_t to_hole = hole - off < avail ? (size_t)(hole - off) : avail;
        if (to_hole < avail) {
            if (plausible && to_hole > 16 && 16 + (size_t)h.caplen > to_hole) {
                pr_note(r, PR_DAMAGE_TRUNCATED, off, "record cut by damaged compressed data: %zu of %u bytes",
                     to_hole - 16, h.caplen);
                fill_pcap_packet(r, pkt, &h, p + 16, (uint32_t)(to_hole - 16), h.origlen, off);
                return pr_skip(r, to_hole) < 0 ? -1 : 1;
            }
            if (to_hole < 16 || !plausible) {
                pr_note(r, PR_DAMAGE_GARBAGE, off, "%zu bytes before damaged compressed data", to_hole);
                r->skipped += to_hole;
                if (pr_skip(r, to_hole) < 0)
                    return -1;
                continue;
            }
        }
        if (plausible) {
            size_t end = 16 + (size_t)h.caplen;
            if (end > avail) {
                /* The last record is cut off: hand out the bytes that are there. */
                pr_note(r, PR_DAMAGE_TRUNCATED, off, "record cut off: %zu of %u bytes", avail - 16, h.caplen);
                uint32_t have = (uint32_t)(avail - 16);
                if (have == 0) {
                    r->skipped += avail;
                    return pr_skip(r, avail) < 0 ? -1 : 0;
                }
                fill_pcap_packet(r, pkt, &h, p + 16, have, h.origlen, off);
                return pr_skip(r, avail) < 0 ? -1 : 1;
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
                        pr_note(r, PR_DAMAGE_BAD_LENGTH, off, "record shorter than its length %u: next record "
                             "at +%zu", h.caplen, y);
                        fill_pcap_packet(r, pkt, &h, p + 16, (uint32_t)(y - 16), h.origlen, off);
                        return pr_skip(r, y) < 0 ? -1 : 1;
                    }
                }
            }
            if (fits) {
                fill_pcap_packet(r, pkt, &h, p + 16, h.caplen, h.origlen, off);
                return pr_skip(r, end) < 0 ? -1 : 1;
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
            pr_note(r, PR_DAMAGE_GARBAGE, off, "%zu bytes that are not records", limit);
            r->skipped += limit;
            if (pr_skip(r, limit) < 0)
                return -1;
            continue;
        }
        /* A record whose length field alone is broken: its timestamp fits and the next record
         * starts right after a sane amount of data. Keep it with the length the data has. */
        struct rec_hdr next = parse_rec(r, p + y);
        size_t gap = y - 16;
        if (y > 16 && y <= to_hole && frac_ok(r, &h) && near_sec(h.sec, next.sec) &&
            (!r->have_prev || near_prev(r, h.sec)) && gap <= r->maxcap && h.sec >= 100000000u) {
            pr_note(r, PR_DAMAGE_BAD_LENGTH, off, "record length %u/%u repaired to %zu", h.caplen,
                 h.origlen, gap);
            uint32_t orig = h.origlen >= gap && h.origlen <= 0x40000 ? h.origlen : (uint32_t)gap;
            fill_pcap_packet(r, pkt, &h, p + 16, (uint32_t)gap, orig, off);
            return pr_skip(r, y) < 0 ? -1 : 1;
        }
        pr_note(r, PR_DAMAGE_GARBAGE, off, "%zu bytes of garbage between records", y);
        r->skipped += y;
        if (pr_skip(r, y) < 0)
            return -1;
    }
}

int pr_open_pcap_header(pr_reader *r, const uint8_t *p)
{
    r->format = PR_FORMAT_PCAP;
    r->snaplen = rd32(r, p + 16);
    uint32_t network = rd32(r, p + 20);
    r->maxcap = r->snaplen > PR_MAX_SNAPLEN && r->snaplen <= PR_MAX_BLOCK ? r->snaplen : PR_MAX_SNAPLEN;
    struct pr_iface ifc = {.linktype = (uint16_t)(network & 0xffff), .snaplen = r->snaplen,
                           .tsresol = r->nano ? 9 : 6};
    return pr_add_iface(r, &ifc);
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
        /* A packet is never 0 bytes long on the wire: zeros do not chain as records. */
        if (!frac_ok(r, &h) || !lengths_ok(r, &h) || h.origlen > 0x40000 || h.origlen == 0)
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
int pr_infer_pcap_header(pr_reader *r, char *err, size_t errlen)
{
    const uint8_t *p;
    size_t want = 24 + 64 * ((size_t)PR_MAX_SNAPLEN / 8);
    long got = pr_peek(r, want, &p);
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
    pr_note(r, PR_DAMAGE_BAD_HEADER, 0, "pcap global header broken: inferred %s-endian, %s timestamps",
         best_swap ? "big" : "little", best_ns ? "nanosecond" : "microsecond");
    struct pr_iface ifc = {.linktype = link, .snaplen = r->snaplen, .tsresol = r->nano ? 9 : 6};
    if (pr_add_iface(r, &ifc) < 0 || pr_skip(r, 24) < 0) {
        snprintf(err, errlen, "out of memory");
        return 2;
    }
    return 0;
}

