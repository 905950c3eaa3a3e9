#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pcapread_internal.h"

/* Count a damage and keep the first one. */
__attribute__((format(printf, 4, 0)))
static void record_damage(pr_reader *r, enum pr_damage_kind kind, uint64_t offset, const char *fmt,
                          va_list ap)
{
    r->ndamage++;
    if (r->damage.kind != PR_DAMAGE_NONE)
        return;
    r->damage.kind = kind;
    r->damage.offset = offset;
    r->damage.record = r->index + 1;
    vsnprintf(r->damage.what, sizeof r->damage.what, fmt, ap);
}

void pr_note(pr_reader *r, enum pr_damage_kind kind, uint64_t offset, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record_damage(r, kind, offset, fmt, ap);
    va_end(ap);
}

/* Strict damage, or an I/O error in any mode: the reader stops. */
int pr_stop(pr_reader *r, enum pr_damage_kind kind, uint64_t offset, const char *fmt, ...)
{
    r->failed = true;
    va_list ap;
    va_start(ap, fmt);
    record_damage(r, kind, offset, fmt, ap);
    va_end(ap);
    return -1;
}

long pr_peek(pr_reader *r, size_t n, const uint8_t **p)
{
    long got = bs_peek(r->bs, n, p);
    if (got < 0)
        pr_stop(r, PR_DAMAGE_IO, bs_offset(r->bs), "%s", bs_error(r->bs));
    return got;
}

int pr_skip(pr_reader *r, uint64_t n)
{
    if (bs_skip(r->bs, n) < 0)
        return pr_stop(r, PR_DAMAGE_IO, bs_offset(r->bs), "%s", bs_error(r->bs));
    return 0;
}

int pr_add_iface(pr_reader *r, const struct pr_iface *ifc)
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

/* ---------------------------------------------------------------- open / misc --------- */

static int finish_open(pr_reader *r, pr_reader **out, char *err, size_t errlen)
{
    if (r->mode == PR_RESYNC)
        bs_set_lenient(r->bs);
    const uint8_t *p;
    long got = pr_peek(r, 24, &p);
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
            pr_note(r, PR_DAMAGE_TRUNCATED, 0, "pcap global header cut off: %ld of 24 bytes", got);
            r->format = PR_FORMAT_PCAP;
            r->maxcap = PR_MAX_SNAPLEN;
            struct pr_iface ifc = {.linktype = 1, .snaplen = PR_MAX_SNAPLEN, .tsresol = r->nano ? 9 : 6};
            pr_add_iface(r, &ifc);
            pr_skip(r, (uint64_t)got);
        } else {
            /* libpcap reads versions 2.0 to 2.4 (and refuses the rest: 1.x is "archaic"). */
            uint16_t major = rd16(r, p + 4), minor = rd16(r, p + 6);
            if ((major != 2 || minor > 4) && r->mode == PR_STRICT) {
                snprintf(err, errlen, "pcap version %u.%u is not supported (libpcap reads 2.0 to 2.4)", major,
                         minor);
                pr_close(r);
                return 2;
            }
            if (major != 2 || minor > 4)
                pr_note(r, PR_DAMAGE_BAD_HEADER, 0, "pcap version %u.%u read as 2.4", major, minor);
            if (pr_open_pcap_header(r, p) < 0 || pr_skip(r, 24) < 0)
                rc = 2;
        }
    } else if (got >= 12 && m == NG_SHB) {
        r->format = PR_FORMAT_PCAPNG;
        if (!pr_shb_order(r, p)) {
            if (r->mode == PR_STRICT) {
                snprintf(err, errlen, "pcapng section header with a bad byte-order magic");
                pr_close(r);
                return 1;
            }
        } else if (got >= 16 && r->mode == PR_STRICT && !pr_ng_version_ok(r, p)) {
            snprintf(err, errlen, "pcapng version %u.%u is not supported (libpcap and Wireshark read 1.0 and 1.2)",
                     rd16(r, p + 12), rd16(r, p + 14));
            pr_close(r);
            return 2;
        }
    } else if (r->mode == PR_RESYNC && got >= 4) {
        /* A whole interface block that chains to the next block is the stronger sign: try it
         * first, so a pcapng whose section header is zeroed is not read as junk pcap records. */
        rc = pr_find_pcapng_start(r) ? 0 : pr_infer_pcap_header(r, err, errlen);
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
        r->pending_rc = pr_ng_next(r, &r->pending) + 2;
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

int pr_open_fn(pr_reader **out, bs_fill_fn fill, const char *(*errmsg)(void *ctx), void *ctx, enum pr_mode mode,
               char *err, size_t errlen)
{
    pr_reader *r = new_reader(mode);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return 2;
    }
    if (bs_open_fn(&r->bs, fill, errmsg, ctx, err, errlen) < 0) {
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
        return pr_ng_next(r, pkt);
    return r->mode == PR_STRICT ? pr_pcap_next_strict(r, pkt) : pr_pcap_next_resync(r, pkt);
}

int pr_next(pr_reader *r, struct pr_packet *pkt)
{
    int rc = next_packet(r, pkt);
    while (bs_gaps(r->bs) > r->gaps_noted) {
        r->gaps_noted++;
        pr_note(r, PR_DAMAGE_IO, bs_offset(r->bs), "damaged zstd frame skipped, decoding resumed at the next frame");
    }
    if (rc == 0 && bs_failed(r->bs) && !r->io_noted) {
        /* Resync: the stream broke (e.g. zstd data corruption); what came before it counts. */
        r->io_noted = true;
        pr_note(r, PR_DAMAGE_IO, bs_offset(r->bs), "%s: the rest of the file cannot be read", bs_error(r->bs));
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
