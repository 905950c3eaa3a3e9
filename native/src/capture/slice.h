/* slice: the per-packet stage between the source and the block assembler.
 *
 * Promise: decides how many bytes of a frame are kept (--snaplen, and --slice header which keeps
 * the L2-L4 headers: Ethernet, any number of 802.1Q/802.1ad tags, IPv4 with options, IPv6 with
 * extension headers, TCP with options, UDP, ICMP/ICMPv6, the whole ARP message) and never
 * changes orig_len. The payload policy: a classic BPF program (libpcap's, of --keep-payload or
 * --drop-payload, run on the frame as captured, before anything is rewritten) names the packets
 * that are the exception to the default (headers only with --slice header, whole frames
 * without). Pure functions, no state; anonymisation is the next stage (worker.c). */
#ifndef SLUICE_CAPTURE_SLICE_H
#define SLUICE_CAPTURE_SLICE_H

#include <pcap/pcap.h> /* bpf_filter, struct bpf_insn */
#include <stddef.h>
#include <stdint.h>

struct slice_cfg {
    uint32_t snaplen;
    int header_only;
    int linktype; /* only Ethernet (1) is parsed for header slicing; others keep snaplen bytes */
    const struct bpf_insn *exception; /* packets it matches get the other policy; NULL: none */
};

/* Length of the L2-L4 headers of an Ethernet frame (at most caplen). */
uint32_t slice_header_len(const uint8_t *frame, uint32_t caplen);

/* slice_keep's work when a payload policy or header slicing is on (slice.c). */
uint32_t slice_keep_policy(const struct slice_cfg *c, const uint8_t *frame, uint32_t caplen,
                           uint32_t origlen, uint32_t keep);

/* Bytes of this frame (caplen captured of origlen) to keep. Inline for the common case, whole
 * frames up to snaplen: the capture calls it for every packet. */
static inline uint32_t slice_keep(const struct slice_cfg *c, const uint8_t *frame, uint32_t caplen, uint32_t origlen)
{
    uint32_t keep = caplen < c->snaplen ? caplen : c->snaplen;
    if (c->exception == NULL && !c->header_only)
        return keep;
    return slice_keep_policy(c, frame, caplen, origlen, keep);
}

#endif
