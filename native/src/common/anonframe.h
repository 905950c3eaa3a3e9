/* anonframe: Crypto-PAn of every address in one captured frame, in place: the one walk that
 * `sluice-pcap anonymize` and `sluice-capture --anonymize` share, so that a file anonymised at
 * capture has the same packet bytes as the plain capture anonymised afterwards.
 *
 * Coverage (the walk of issue 12): every IPv4/IPv6 address in IP headers, ARP/RARP, neighbour
 * discovery targets, the IP header an ICMP error quotes, IPv4 route options, IPv6 routing
 * headers/SRH/home address, tunnels (IP in IP, GRE/ERSPAN, UDP tunnels), on every link type
 * frame_l3 knows; checksums fixed over the true pseudo-header (IPv4 header recomputed;
 * TCP/UDP/ICMPv6 by the incremental rule of RFC 1624). drop_payload keeps headers only.
 * A frame the walk cannot parse to its addresses sets `bad`: its caller must not write it (it
 * may hold an address the walk could not see). Not thread-safe: one anonframe (and one
 * cryptopan, whose cache it writes) per thread. */
#ifndef SLUICE_COMMON_ANONFRAME_H
#define SLUICE_COMMON_ANONFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cryptopan.h"

struct anonframe {
    cryptopan *cp;
    bool drop_payload;
    uint64_t addresses; /* addresses rewritten so far (a bad frame's included) */
    int nest;           /* tunnels opened so far in this frame */
    bool bad;           /* this frame has a part the walk cannot parse: never write it */
};

/* Anonymises frame d (n captured bytes, link type linktype) in place; returns the bytes to keep
 * (n, or fewer with drop_payload). Sets a->bad for a frame that must not be written. */
uint32_t anonframe_rewrite(struct anonframe *a, uint16_t linktype, uint8_t *d, uint32_t n);

#endif
