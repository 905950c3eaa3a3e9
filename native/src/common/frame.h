/* frame: where the network header of a captured frame starts, for every libpcap link type that
 * carries IP (anonymize, dedup and flows in sluice-pcap; header slicing in sluice-capture).
 *
 * Promises: offsets never point beyond the captured bytes; nothing is read past n; pure
 * functions, no state. */
#ifndef SLUICE_FRAME_H
#define SLUICE_FRAME_H

#include <stdbool.h>
#include <stdint.h>

#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806
#define ETHERTYPE_RARP 0x8035
#define ETHERTYPE_IPV6 0x86dd

/* A big-endian 16-bit field. */
static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* The one Ethernet walk: skips the 802.1Q/802.1ad tags (0x8100, 0x88a8, 0x9100) and returns the
 * offset of the ethertype field (12 when untagged); *tags counts them, *vlan is the first
 * non-zero VLAN ID (0: none); either may be NULL. n must be at least 14. */
uint32_t frame_ether_walk(const uint8_t *d, uint32_t n, unsigned *tags, uint16_t *vlan);

/* Offset of the network header in frame d (n captured bytes), never beyond n, and its ethertype
 * (0x0800 IPv4, 0x86dd IPv6, 0x0806 ARP, 0x8035 RARP, or another ethertype for a frame that does
 * not carry IP); -1 for a link type not known here or a frame too short or too damaged to find
 * its network header. Link types: NULL (0) and LOOP (108) in either byte order and every BSD's
 * AF_INET6; Ethernet (1) with any 802.1Q/802.1ad tags, MPLS label stacks, PPPoE sessions,
 * MACsec without encryption (0x88e5 stays the ethertype of an encrypted one) and 802.2 LLC/SNAP; PPP (9), PPP in HDLC framing (50), PPP over Ethernet (51), Cisco HDLC (104);
 * raw IP (12, 14, 101, 228, 229: the ethertype from the IP version); Linux cooked v1 (113) and v2
 * (276); 802.11 data frames (105) alone or behind Prism (119), radiotap (127), AVS (163) or PPI
 * (192) headers (a protected frame has no IP in clear: ethertype 0). *tagged says whether
 * Ethernet had a VLAN tag, *vlan the first non-zero VLAN ID; either may be NULL. */
int frame_l3(uint16_t linktype, const uint8_t *d, uint32_t n, uint16_t *ethertype, bool *tagged,
             uint16_t *vlan);

#endif
