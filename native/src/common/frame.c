#include "frame.h"

static inline uint32_t le32v(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint32_t frame_ether_walk(const uint8_t *d, uint32_t n, unsigned *tags, uint16_t *vlan)
{
    uint32_t off = 12;
    uint16_t et = be16(d + off);
    while ((et == 0x8100 || et == 0x88a8 || et == 0x9100) && off + 6 <= n) {
        if (tags)
            (*tags)++;
        if (vlan && !*vlan)
            *vlan = be16(d + off + 2) & 0x0fff;
        off += 4;
        et = be16(d + off);
    }
    return off;
}

/* IP by its version nibble (raw IP, the end of an MPLS label stack). */
static uint16_t ip_version_type(const uint8_t *d, uint32_t n, uint32_t off)
{
    if (off >= n)
        return 0;
    return (d[off] >> 4) == 4 ? ETHERTYPE_IPV4 : (d[off] >> 4) == 6 ? ETHERTYPE_IPV6 : 0;
}

/* PPP protocol number -> ethertype (0 for anything that is not IP). */
static uint16_t ppp_type(uint16_t proto)
{
    return proto == 0x0021 ? ETHERTYPE_IPV4 : proto == 0x0057 ? ETHERTYPE_IPV6 : 0;
}

/* What follows an ethertype field at off (the field itself is at off - 2): MPLS label stacks,
 * PPPoE sessions and 802.2 LLC/SNAP are opened up to the network header. */
static int after_ethertype(const uint8_t *d, uint32_t n, uint32_t off, uint16_t et, uint16_t *ethertype)
{
    for (int depth = 0; depth < 4; depth++) {
        if (et == 0x8847 || et == 0x8848) { /* MPLS: labels up to the bottom of the stack */
            while (off + 4 <= n && !(d[off + 2] & 0x01))
                off += 4;
            if (off + 4 > n)
                return -1;
            off += 4;
            et = ip_version_type(d, n, off);
            if (!et)
                return -1; /* an Ethernet pseudowire or something else: not IP that we can see */
            break;
        }
        if (et == 0x88e5) { /* MACsec: the SecTAG (8 or 16 bytes); the frame is clear unless E */
            if (off + 1 > n)
                return -1;
            uint8_t tci = d[off];
            if (tci & 0x08)
                break; /* encrypted: no IP in clear (ethertype stays 0x88e5) */
            uint32_t tag = 6 + ((tci & 0x20) ? 8 : 0);
            if (off + tag + 2 > n)
                return -1;
            et = be16(d + off + tag);
            off += tag + 2;
            continue;
        }
        if (et == 0x8864) { /* PPPoE session: 6-byte header, then the PPP protocol */
            if (off + 8 > n)
                return -1;
            et = ppp_type(be16(d + off + 6));
            off += 8;
            break;
        }
        if (et < 0x0600) { /* 802.3 length: 802.2 LLC, SNAP when AA AA 03 */
            if (off + 8 <= n && d[off] == 0xaa && d[off + 1] == 0xaa && d[off + 2] == 0x03) {
                et = be16(d + off + 6);
                off += 8;
                continue;
            }
            et = 0;
            break;
        }
        break;
    }
    *ethertype = et;
    return (int)(off <= n ? off : n);
}

/* An 802.11 frame at off: a data frame's LLC/SNAP header names the network protocol. */
static int ieee80211(const uint8_t *d, uint32_t n, uint32_t off, uint16_t *ethertype)
{
    if (off + 24 > n)
        return -1;
    uint8_t fc0 = d[off], fc1 = d[off + 1];
    if (((fc0 >> 2) & 3) != 2) { /* management or control: no network header */
        *ethertype = 0;
        return (int)n;
    }
    uint32_t hl = 24;
    if ((fc1 & 3) == 3)
        hl += 6; /* four addresses */
    if (fc0 & 0x80) {
        hl += 2; /* QoS control */
        if (fc1 & 0x80)
            hl += 4; /* HT control */
    }
    if ((fc0 & 0x40) || (fc1 & 0x40)) { /* null data, or protected: no IP in clear */
        *ethertype = 0;
        return (int)n;
    }
    off += hl;
    if (off + 8 > n)
        return -1;
    if (d[off] != 0xaa || d[off + 1] != 0xaa || d[off + 2] != 0x03) {
        *ethertype = 0;
        return (int)n;
    }
    *ethertype = be16(d + off + 6);
    return (int)(off + 8);
}

/* NULL/LOOP address family -> ethertype: AF_INET is 2 everywhere, AF_INET6 is 10 (Linux),
 * 24 (NetBSD, OpenBSD), 28 (FreeBSD), 30 (macOS). */
static uint16_t af_type(uint32_t af)
{
    return af == 2 ? ETHERTYPE_IPV4 : (af == 10 || af == 24 || af == 28 || af == 30) ? ETHERTYPE_IPV6 : 0;
}

int frame_l3(uint16_t linktype, const uint8_t *d, uint32_t n, uint16_t *ethertype, bool *tagged,
             uint16_t *vlan)
{
    if (tagged)
        *tagged = false;
    if (vlan)
        *vlan = 0;
    switch (linktype) {
    case 1: {
        if (n < 14)
            return -1;
        unsigned tags = 0;
        uint32_t off = frame_ether_walk(d, n, &tags, vlan);
        if (tagged)
            *tagged = tags > 0;
        uint16_t et = be16(d + off);
        if (et == ETHERTYPE_IPV4 || et == ETHERTYPE_IPV6) { /* the common case, first */
            *ethertype = et;
            return (int)off + 2;
        }
        return after_ethertype(d, n, off + 2, et, ethertype);
    }
    case 0:   /* NULL: the address family in the capturing host's byte order */
    case 108: /* LOOP: in network byte order */
        if (n < 4)
            return -1;
        *ethertype = af_type(le32v(d)) ? af_type(le32v(d)) : af_type(__builtin_bswap32(le32v(d)));
        return 4;
    case 9:  /* PPP: [FF 03] protocol */
    case 50: /* PPP in HDLC framing; Cisco HDLC frames also appear under it */
    case 104: {
        if (n < 2)
            return -1;
        if (linktype == 104 || (d[0] == 0x0f || d[0] == 0x8f)) { /* Cisco HDLC: addr, ctrl, ethertype */
            if (n < 4)
                return -1;
            return after_ethertype(d, n, 4, be16(d + 2), ethertype);
        }
        uint32_t off = n >= 2 && d[0] == 0xff && d[1] == 0x03 ? 2 : 0;
        if (off + 1 > n)
            return -1;
        uint16_t proto;
        if (d[off] & 1) { /* a compressed one-byte protocol field */
            proto = d[off];
            off += 1;
        } else {
            if (off + 2 > n)
                return -1;
            proto = be16(d + off);
            off += 2;
        }
        if (proto == 0x0281 || proto == 0x0283) /* MPLS unicast / multicast */
            return after_ethertype(d, n, off, 0x8847, ethertype);
        *ethertype = ppp_type(proto);
        return (int)off;
    }
    case 51: /* PPP over Ethernet, the PPPoE header first */
        if (n < 8)
            return -1;
        *ethertype = ppp_type(be16(d + 6));
        return 8;
    case 12:
    case 14:
    case 101:
    case 228:
    case 229:
        if (n < 1)
            return -1;
        *ethertype = ip_version_type(d, n, 0);
        return 0;
    case 113:
        if (n < 16)
            return -1;
        return after_ethertype(d, n, 16, be16(d + 14), ethertype);
    case 276:
        if (n < 20)
            return -1;
        return after_ethertype(d, n, 20, be16(d), ethertype);
    case 105:
        return ieee80211(d, n, 0, ethertype);
    case 119: /* Prism: a 144-byte header */
        return ieee80211(d, n, 144, ethertype);
    case 127: /* radiotap: its length, little-endian, at 2 */
        if (n < 4)
            return -1;
        return ieee80211(d, n, (uint32_t)(d[2] | d[3] << 8), ethertype);
    case 163: /* AVS: its length, big-endian, at 4 */
        if (n < 8)
            return -1;
        return ieee80211(d, n, (uint32_t)be16(d + 6) | (uint32_t)be16(d + 4) << 16, ethertype);
    case 192: /* PPI: length at 2, the link type of what follows at 4 (little-endian) */
        if (n < 8)
            return -1;
        if (le32v(d + 4) != 105)
            return -1;
        return ieee80211(d, n, (uint32_t)(d[2] | d[3] << 8), ethertype);
    default:
        return -1;
    }
}
