/* slice: L2-L4 header length of an Ethernet frame (see slice.h). */
#include "slice.h"

#include <stddef.h>

#include "frame.h"

#define ETH_HLEN 14

static uint32_t clamp(uint32_t want, uint32_t caplen) { return want < caplen ? want : caplen; }

/* Bytes of the L4 header starting at off (0 when the protocol has none we know). */
static uint32_t l4_len(const uint8_t *f, uint32_t caplen, uint32_t off, uint8_t proto)
{
    switch (proto) {
    case 6: /* TCP: data offset in 32-bit words */
        if (off + 13 > caplen)
            return 20;
        return (uint32_t)(f[off + 12] >> 4) * 4u < 20 ? 20 : (uint32_t)(f[off + 12] >> 4) * 4u;
    case 17:  /* UDP */
    case 136: /* UDP-Lite */
        return 8;
    case 1:  /* ICMP */
    case 58: /* ICMPv6 */
        return 8;
    case 132: /* SCTP common header */
        return 12;
    default:
        return 0;
    }
}

static uint32_t ipv4_len(const uint8_t *f, uint32_t caplen, uint32_t off)
{
    if (off + 20 > caplen)
        return caplen;
    uint32_t ihl = (uint32_t)(f[off] & 0x0f) * 4u;
    if (ihl < 20)
        ihl = 20;
    uint16_t frag = be16(f + off + 6);
    if ((frag & 0x1fff) != 0) /* a later fragment carries no L4 header */
        return clamp(off + ihl, caplen);
    return clamp(off + ihl + l4_len(f, caplen, off + ihl, f[off + 9]), caplen);
}

static uint32_t ipv6_len(const uint8_t *f, uint32_t caplen, uint32_t off)
{
    uint8_t next = off + 40 <= caplen ? f[off + 6] : 59;
    off += 40;
    for (int guard = 0; guard < 8 && off < caplen; guard++) {
        switch (next) {
        case 0:  /* hop-by-hop */
        case 43: /* routing */
        case 60: /* destination options */
            if (off + 2 > caplen)
                return caplen;
            next = f[off];
            off += ((uint32_t)f[off + 1] + 1u) * 8u;
            continue;
        case 44: /* fragment */
            if (off + 8 > caplen)
                return caplen;
            if ((be16(f + off + 2) & 0xfff8) != 0)
                return clamp(off + 8, caplen);
            next = f[off];
            off += 8;
            continue;
        case 51: /* AH: length in 32-bit words minus 2 */
            if (off + 2 > caplen)
                return caplen;
            next = f[off];
            off += ((uint32_t)f[off + 1] + 2u) * 4u;
            continue;
        default:
            return clamp(off + l4_len(f, caplen, off, next), caplen);
        }
    }
    return clamp(off, caplen);
}

uint32_t slice_header_len(const uint8_t *f, uint32_t caplen)
{
    if (caplen < ETH_HLEN)
        return caplen;
    uint32_t off = frame_ether_walk(f, caplen, NULL, NULL);
    uint16_t type = be16(f + off);
    off += 2;
    switch (type) {
    case ETHERTYPE_IPV4: return ipv4_len(f, caplen, off);
    case ETHERTYPE_IPV6: return ipv6_len(f, caplen, off);
    case ETHERTYPE_ARP: return clamp(off + 28, caplen);
    default: return clamp(off, caplen);
    }
}

uint32_t slice_keep_policy(const struct slice_cfg *c, const uint8_t *frame, uint32_t caplen,
                           uint32_t origlen, uint32_t keep)
{
    int header_only = c->header_only;
    if (c->exception != NULL && bpf_filter(c->exception, frame, origlen, caplen) != 0)
        header_only = !header_only;
    if (header_only && c->linktype == 1) {
        uint32_t h = slice_header_len(frame, keep);
        if (h < keep)
            keep = h;
    }
    return keep;
}
