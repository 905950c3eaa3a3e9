/* frame: where the network header of a captured frame starts, for the link types the
 * subcommands that look into packets know (anonymize, dedup, flows). */
#ifndef SLUICE_PCAPTOOL_FRAME_H
#define SLUICE_PCAPTOOL_FRAME_H

#include <stdbool.h>
#include <stdint.h>

/* A big-endian 16-bit field. */
static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* Offset of the network header in frame d (n captured bytes), never beyond n, and its ethertype;
 * -1 for a link type not known here or a frame too short for its link header. Ethernet (1): the
 * 802.1Q/802.1ad tags (0x8100, 0x88a8, 0x9100) are skipped, *tagged says whether there was one
 * and *vlan is the first non-zero VLAN ID (0: none); either may be NULL. Linux cooked v1 (113)
 * and v2 (276). Raw IP (101, 228, 229): the ethertype is 0x0800 or 0x86dd by the IP version,
 * 0 for anything else. */
int frame_l3(uint16_t linktype, const uint8_t *d, uint32_t n, uint16_t *ethertype, bool *tagged,
             uint16_t *vlan);

#endif
