/* slice: the per-packet stage between the source and the block assembler.
 *
 * Promise: decides how many bytes of a frame are kept (--snaplen, and --slice header which keeps
 * the L2-L4 headers: Ethernet, any number of 802.1Q/802.1ad tags, IPv4 with options, IPv6 with
 * extension headers, TCP with options, UDP, ICMP/ICMPv6, the whole ARP message) and never
 * changes orig_len. Pure functions, no state: anonymisation plugs in here later as another
 * stage that may rewrite the kept bytes. */
#ifndef SLUICE_CAPTURE_SLICE_H
#define SLUICE_CAPTURE_SLICE_H

#include <stdint.h>

struct slice_cfg {
    uint32_t snaplen;
    int header_only;
    int linktype; /* only Ethernet (1) is parsed for header slicing; others keep snaplen bytes */
};

/* Length of the L2-L4 headers of an Ethernet frame (at most caplen). */
uint32_t slice_header_len(const uint8_t *frame, uint32_t caplen);

/* Bytes of this frame to keep. */
static inline uint32_t slice_keep(const struct slice_cfg *c, const uint8_t *frame, uint32_t caplen)
{
    uint32_t keep = caplen < c->snaplen ? caplen : c->snaplen;
    if (c->header_only && c->linktype == 1) {
        uint32_t h = slice_header_len(frame, keep);
        if (h < keep)
            keep = h;
    }
    return keep;
}

#endif
