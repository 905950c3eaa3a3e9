/* pcapread, the pcapng format: blocks, sections, interfaces, timestamps, and recovery. */
#include <stdio.h>
#include <string.h>

#include "pcapread_internal.h"

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
bool pr_shb_order(pr_reader *r, const uint8_t *p)
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

bool pr_ng_version_ok(const pr_reader *r, const uint8_t *p)
{
    return rd16(r, p + 12) == 1 && (rd16(r, p + 14) == 0 || rd16(r, p + 14) == 2);
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
        if (r->mode == PR_STRICT && !pr_ng_version_ok(r, p)) {
            *kind = PR_DAMAGE_BAD_HEADER;
            snprintf(why, whylen, "section %u: pcapng version %u.%u is not supported (1.0 and 1.2 are)",
                     r->section + 1, rd16(r, p + 12), rd16(r, p + 14));
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
        if (pr_add_iface(r, &ifc) < 0) {
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
        pr_note(r, PR_DAMAGE_GARBAGE, off, "block type %#x read as a packet block (its fields fit)", type);
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
    pkt->has_ts = type != NG_SPB;
    pkt->ts_ns = pkt->has_ts ? ts_to_ns(ifc, ts) : 0;
    if (pkt->ts_ns == UINT64_MAX) {
        *kind = PR_DAMAGE_BAD_TIMESTAMP;
        snprintf(why, whylen, "timestamp after 2554-07-21T23:34:33Z, beyond what 64-bit nanoseconds hold");
        return -1;
    }
    pkt->caplen = caplen;
    pkt->origlen = origlen; /* as written, also when below caplen (libpcap and Wireshark keep it) */
    pkt->iface = (uint32_t)(r->section_base + ifid);
    pkt->linktype = ifc->linktype;
    pkt->data = data;
    pkt->offset = off;
    pkt->index = ++r->index;
    return 1;
}

/* A packet from the start of the EPB/PB at p (interface ifid of the current section, checked by
 * the caller) whose data is cut to kept bytes; its original length is at least min_orig. */
static void ng_cut_packet(pr_reader *r, const uint8_t *p, uint32_t ifid, uint32_t kept, uint32_t min_orig,
                          uint64_t off, struct pr_packet *pkt)
{
    const struct pr_iface *ifc = &r->ifs[r->section_base + ifid];
    uint32_t orig = rd32(r, p + 24);
    pkt->ts_ns = ts_to_ns(ifc, (uint64_t)rd32(r, p + 12) << 32 | rd32(r, p + 16));
    pkt->has_ts = true;
    pkt->caplen = kept;
    pkt->origlen = orig < min_orig ? min_orig : orig;
    pkt->iface = (uint32_t)(r->section_base + ifid);
    pkt->linktype = ifc->linktype;
    pkt->data = p + 28;
    pkt->offset = off;
    pkt->index = ++r->index;
}

/* Structural check of a block header at p (avail bytes): type, length, trailing length. */
static bool ng_candidate(pr_reader *r, const uint8_t *p, size_t avail)
{
    if (avail < 12)
        return false;
    bool saved = r->swapped;
    uint32_t type = le32(p);
    if (type == NG_SHB && !pr_shb_order(r, p))
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

int pr_ng_next(pr_reader *r, struct pr_packet *pkt)
{
    for (;;) {
        const uint8_t *p;
        uint64_t off = bs_offset(r->bs);
        long got = pr_peek(r, 12, &p);
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
            if (le32(p) == NG_SHB && !pr_shb_order(r, p)) {
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
            got = pr_peek(r, len, &p);
            if (got < 0)
                return -1;
            uint64_t hole = bs_next_gap(r->bs, off + 1);
            if (hole < off + (uint64_t)got && hole < off + len) {
                /* The block runs into a hole (a skipped zstd frame): keep the packet bytes
                 * before it, never what follows. */
                size_t have = (size_t)(hole - off);
                pr_note(r, PR_DAMAGE_TRUNCATED, off, "block cut by damaged compressed data: %zu of %u bytes",
                     have, len);
                uint32_t type = rd32(r, p);
                if (have >= 33 && (type == NG_EPB || type == NG_PB) && r->nifs > r->section_base) {
                    uint32_t ifid = type == NG_EPB ? rd32(r, p + 8) : rd16(r, p + 8);
                    uint32_t caplen = rd32(r, p + 20);
                    if (ifid < r->nifs - r->section_base && caplen <= PR_MAX_BLOCK) {
                        ng_cut_packet(r, p, ifid, caplen < have - 28 ? caplen : (uint32_t)(have - 28), caplen,
                                      off, pkt);
                        return pr_skip(r, have) < 0 ? -1 : 1;
                    }
                }
                r->skipped += have;
                if (pr_skip(r, have) < 0)
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
                    if (pr_skip(r, len) < 0)
                        return -1;
                    if (rc == 1)
                        return 1;
                    continue;
                }
            }
        }
        if (r->mode == PR_STRICT)
            return pr_stop(r, kind, off, "%s", why);
        pr_note(r, kind, off, "%s", why);
        if (kind == PR_DAMAGE_TRUNCATED) {
            /* A cut-off packet block still holds the start of its packet. */
            uint32_t type = got >= 12 ? rd32(r, p) : 0;
            if (got >= 33 && (type == NG_EPB || type == NG_PB)) {
                uint32_t ifid = type == NG_EPB ? rd32(r, p + 8) : rd16(r, p + 8);
                uint32_t caplen = rd32(r, p + 20);
                uint32_t have = (uint32_t)got - 28;
                if (ifid < r->nifs - r->section_base && caplen <= PR_MAX_BLOCK) {
                    ng_cut_packet(r, p, ifid, caplen < have ? caplen : have, caplen, off, pkt);
                    r->skipped += (uint64_t)got - pkt->caplen;
                    return pr_skip(r, (uint64_t)got) < 0 ? -1 : 1;
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
            long have = pr_peek(r, (size_t)len + PR_MAX_SNAPLEN + 64, &q);
            if (have < 0)
                return -1;
            p = q; /* a peek may move the buffer: never use an older pointer */
            uint32_t type = rd32(r, q);
            uint32_t ifid = type == NG_EPB ? rd32(r, q + 8) : rd16(r, q + 8);
            for (size_t y = 32; y < len && y + 12 <= (size_t)have && ifid < r->nifs - r->section_base; y++) {
                if (!ng_candidate(r, q + y, (size_t)have - y))
                    continue;
                uint32_t caplen = rd32(r, q + 20);
                uint32_t kept = caplen < y - 28 ? caplen : (uint32_t)(y - 28);
                ng_cut_packet(r, q, ifid, kept, kept, off, pkt);
                return pr_skip(r, y) < 0 ? -1 : 1;
            }
        }
        /* Trailing length broken but leading sane: accept it when a block follows. */
        if (got >= 12 && kind == PR_DAMAGE_LENGTH_MISMATCH) {
            const uint8_t *q;
            long have = pr_peek(r, (size_t)len + 12, &q);
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
                    if (pr_skip(r, len) < 0)
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
                    long have = pr_peek(r, lo + 4096, &q);
                    if (have < 0)
                        return -1;
                    p = q; /* a peek may move the buffer: never use an older pointer */
                    for (size_t l = lo; l + 0 <= (size_t)have && l <= lo + 4092; l += 4) {
                        if (rd32(r, q + l - 4) != l)
                            continue;
                        int rc = ng_block(r, q, (uint32_t)l, off, pkt, &kind, why, sizeof why);
                        if (rc == 1)
                            return pr_skip(r, l) < 0 ? -1 : 1;
                        break;
                    }
                }
            }
        }
        /* Garbage: move on byte by byte to the next block that is whole and consistent. */
        uint64_t skipped = 0;
        for (;;) {
            if (pr_skip(r, 1) < 0)
                return -1;
            skipped++;
            got = pr_peek(r, 12, &p);
            if (got < 0)
                return -1;
            if (got < 12) {
                r->skipped += skipped + (uint64_t)got;
                return pr_skip(r, (uint64_t)got) < 0 ? -1 : 0;
            }
            uint32_t t = le32(p);
            bool maybe = t == NG_SHB || (t & 0xffffff00u) == 0 || (t & 0x00ffffffu) == 0;
            if (!maybe)
                continue;
            uint32_t l = rd32(r, p + 4);
            if (t == NG_SHB) {
                bool sv = r->swapped;
                if (!pr_shb_order(r, p))
                    continue;
                l = rd32(r, p + 4);
                r->swapped = sv;
            }
            if (l < 12 || l > PR_MAX_BLOCK || l % 4)
                continue;
            got = pr_peek(r, l, &p);
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
bool pr_find_pcapng_start(pr_reader *r)
{
    const uint8_t *p;
    long got = pr_peek(r, 1u << 20, &p);
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
                pr_note(r, PR_DAMAGE_BAD_HEADER, 0, "pcapng section header broken: read from the interface "
                     "block at offset %zu", off);
                r->skipped += off;
                return pr_skip(r, off) == 0;
            }
        }
    }
    return false;
}

