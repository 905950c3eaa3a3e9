/* anonframe: the address walk of one frame (see anonframe.h). */
#include "anonframe.h"

#include <stdlib.h>
#include <string.h>

#include "frame.h"

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* One's-complement sum of n bytes (n even) as 16-bit big-endian words. */
static uint32_t sum16(const uint8_t *p, size_t n)
{
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        s += be16(p + i);
    if (n & 1)
        s += (uint32_t)p[n - 1] << 8;
    return s;
}

static uint16_t fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

/* RFC 1624 eq. 3: HC' = ~(~HC + ~m + m') over the changed words. */
static void csum_adjust(uint8_t *csum, const uint8_t *old, const uint8_t *new, size_t n, bool udp)
{
    uint16_t hc = be16(csum);
    if (udp && hc == 0)
        return; /* UDP over IPv4 without a checksum stays without */
    uint32_t s = (uint16_t)~hc;
    s += (uint16_t)~fold(sum16(old, n));
    s += fold(sum16(new, n));
    uint16_t res = (uint16_t)~fold(s);
    if (udp && res == 0)
        res = 0xffff;
    put16(csum, res);
}

static void ipv4_header_checksum(uint8_t *ip, size_t hl)
{
    ip[10] = ip[11] = 0;
    put16(ip + 10, (uint16_t)~fold(sum16(ip, hl)));
}

static void anon_v4_addr(struct anonframe *a, uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    uint32_t o = cp_ipv4(a->cp, v);
    p[0] = (uint8_t)(o >> 24);
    p[1] = (uint8_t)(o >> 16);
    p[2] = (uint8_t)(o >> 8);
    p[3] = (uint8_t)o;
    a->addresses++;
}

static void anon_v6_addr(struct anonframe *a, uint8_t *p)
{
    cp_ipv6(a->cp, p, p);
    a->addresses++;
}

static size_t do_ipv4(struct anonframe *a, uint8_t *ip, size_t n, int depth);
static size_t do_ipv6(struct anonframe *a, uint8_t *ip, size_t n, int depth);
static size_t do_ether_payload(struct anonframe *a, uint16_t et, uint8_t *p, size_t n, int depth);
static uint32_t anonymize_frame(struct anonframe *a, uint16_t linktype, uint8_t *d, uint32_t n);

/* Checksum field offset in a transport header, or -1. */
static int l4_csum_offset(uint8_t proto)
{
    return proto == 6 ? 16 : proto == 17 ? 6 : proto == 58 ? 2 : -1;
}

/* Transport header length to keep for --payload drop. */
static size_t l4_header_len(uint8_t proto, const uint8_t *l4, size_t n)
{
    if (proto == 6 && n >= 13)
        return (size_t)(l4[12] >> 4) * 4;
    if (proto == 17 || proto == 1 || proto == 58)
        return 8;
    return 0;
}

/* Anonymise the packet inside p (n bytes) with fn and fix the checksum at csum (when not NULL)
 * for the bytes that changed (an ICMP error's quote, a GRE payload). */
static size_t inner_with_checksum(struct anonframe *a, uint8_t *p, size_t n, uint8_t *csum, uint16_t et, int depth)
{
    uint8_t *old = csum ? malloc(n) : NULL;
    if (csum && !old) {
        a->bad = true;
        return n;
    }
    if (old)
        memcpy(old, p, n);
    size_t keep = do_ether_payload(a, et, p, n, depth);
    if (old) {
        csum_adjust(csum, old, p, n, false);
        free(old);
    }
    return keep;
}

/* An ICMP/ICMPv6 error quoting a packet: anonymise the quote and fix the ICMP checksum
 * for the bytes that changed. */
static void do_icmp_quote(struct anonframe *a, uint8_t *icmp, size_t n, bool v6, int depth)
{
    if (n < 8 + 20 || depth > 0)
        return;
    uint8_t type = icmp[0];
    bool error = v6 ? type >= 1 && type <= 4 : type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
    if (!error)
        return;
    uint8_t *q = icmp + 8;
    uint16_t et = (q[0] >> 4) == 4 ? ETHERTYPE_IPV4 : (q[0] >> 4) == 6 ? ETHERTYPE_IPV6 : 0;
    if (et)
        inner_with_checksum(a, q, n - 8, icmp + 2, et, depth + 1);
}

/* GRE carrying IP or Ethernet (ERSPAN, transparent bridging): the inner addresses too, and the
 * GRE checksum when there is one. Returns the bytes to keep for --payload drop. */
static size_t do_gre(struct anonframe *a, uint8_t *g, size_t n, int depth)
{
    if (n < 4 || depth > 2)
        return n;
    uint16_t flags = be16(g), et = be16(g + 2);
    size_t hl = 4 + ((flags & 0x8000) ? 4 : 0) + ((flags & 0x2000) ? 4 : 0) + ((flags & 0x1000) ? 4 : 0);
    if ((flags & 7) != 0 || hl > n)
        return n; /* not GRE version 0 (PPTP's enhanced GRE carries PPP): left as it is */
    uint8_t *csum = (flags & 0x8000) ? g + 4 : NULL;
    uint8_t *in = g + hl;
    size_t inn = n - hl;
    if (et == 0x88be && (flags & 0x1000)) { /* ERSPAN type II: 8 bytes, then an Ethernet frame */
        if (inn < 8)
            return n;
        in += 8;
        inn -= 8;
        hl += 8;
        et = 0x6558;
    }
    if (et == 0x6558) {
        uint8_t *old = csum ? malloc(inn) : NULL;
        if (old)
            memcpy(old, in, inn);
        a->nest++;
        uint32_t keep = anonymize_frame(a, 1, in, (uint32_t)inn);
        a->nest--;
        if (old) {
            csum_adjust(csum, old, in, inn, false);
            free(old);
        }
        return hl + keep;
    }
    if (et == ETHERTYPE_IPV4 || et == ETHERTYPE_IPV6) {
        a->nest++;
        size_t keep = inner_with_checksum(a, in, inn, csum, et, depth);
        a->nest--;
        return hl + keep;
    }
    return n;
}

/* A tunnel inside UDP (by its well-known port): VXLAN (4789) and GENEVE (6081) carry Ethernet,
 * MPLS in UDP (6635) a label stack, GTP-U (2152) IP. The UDP checksum is adjusted for what
 * changed inside. Returns the bytes of the UDP payload to keep for --payload drop. */
static size_t do_udp_tunnel(struct anonframe *a, uint8_t *udp, size_t n, int depth)
{
    if (n < 8)
        return n;
    uint16_t dport = be16(udp + 2), sport = be16(udp);
    uint16_t port = dport == 4789 || dport == 6081 || dport == 6635 || dport == 2152 ? dport : sport;
    uint8_t *p = udp + 8;
    size_t pn = n - 8, hl;
    uint16_t linktype = 1;
    if (port == 4789) {
        hl = 8;
    } else if (port == 6081) {
        hl = pn >= 2 ? 8 + (size_t)(p[0] & 0x3f) * 4 : pn;
        if (pn >= 4 && be16(p + 2) != 0x6558)
            linktype = 0xffff; /* GENEVE carrying something other than Ethernet: not looked into */
    } else if (port == 6635) {
        hl = 0;
        linktype = 0xfffe; /* MPLS: a label stack */
    } else if (port == 2152) {
        hl = pn >= 1 ? ((p[0] & 0x07) ? 12 : 8) : pn;
        if (pn >= 2 && p[1] != 0xff)
            linktype = 0xffff; /* not a G-PDU: signalling, no user packet */
        else
            linktype = 101;
    } else {
        return n;
    }
    if (hl > pn || linktype == 0xffff)
        return n;
    uint8_t *csum = be16(udp + 6) ? udp + 6 : NULL;
    uint8_t *old = csum ? malloc(pn - hl) : NULL;
    if (old)
        memcpy(old, p + hl, pn - hl);
    a->nest++;
    uint32_t keep;
    if (linktype == 0xfffe) {
        /* An MPLS stack without a link header: open it as Ethernet's MPLS walk would. */
        size_t off = 0;
        while (off + 4 <= pn && !(p[off + 2] & 0x01))
            off += 4;
        off += 4;
        uint16_t et = off < pn ? ((p[off] >> 4) == 4 ? ETHERTYPE_IPV4 : (p[off] >> 4) == 6 ? ETHERTYPE_IPV6 : 0) : 0;
        if (!et) {
            a->bad = off <= pn; /* something under the labels we cannot read */
            keep = (uint32_t)pn;
        } else {
            keep = (uint32_t)(off + do_ether_payload(a, et, p + off, pn - off, depth));
        }
    } else {
        keep = (uint32_t)hl + anonymize_frame(a, linktype, p + hl, (uint32_t)(pn - hl));
    }
    a->nest--;
    if (old) {
        csum_adjust(csum, old, p + hl, pn - hl, true);
        free(old);
    }
    return 8 + keep;
}

/* What follows an IP header: tunnels, ICMP quotes. Returns the bytes to keep from l4. */
static size_t do_l4(struct anonframe *a, uint8_t proto, uint8_t *l4, size_t l4n, int depth)
{
    if (a->nest > 3)
        return l4n;
    size_t keep = l4n;
    if (proto == 4 || proto == 41) { /* IP in IP */
        a->nest++;
        keep = proto == 4 ? do_ipv4(a, l4, l4n, depth) : do_ipv6(a, l4, l4n, depth);
        a->nest--;
    } else if (proto == 47) {
        keep = do_gre(a, l4, l4n, depth);
    } else if (proto == 17) {
        keep = do_udp_tunnel(a, l4, l4n, depth);
    } else if (proto == 143 || (proto == 97 && l4n >= 2)) {
        /* Ethernet in IPv6 (SRv6 L2 services), EtherIP (2-byte header) */
        size_t hl = proto == 97 ? 2 : 0;
        a->nest++;
        keep = hl + anonymize_frame(a, 1, l4 + hl, (uint32_t)(l4n - hl));
        a->nest--;
    } else if (proto == 103 && l4n >= 8 + 20 && (l4[0] & 0x0f) == 1) {
        /* PIM register: the multicast packet it carries, after 8 bytes (the PIM checksum covers
         * only the PIM header for a register, RFC 7761 4.9). */
        uint16_t et = (l4[8] >> 4) == 4 ? ETHERTYPE_IPV4 : (l4[8] >> 4) == 6 ? ETHERTYPE_IPV6 : 0;
        if (et) {
            a->nest++;
            keep = 8 + do_ether_payload(a, et, l4 + 8, l4n - 8, depth);
            a->nest--;
        }
    }
    return keep;
}

/* Anonymise one IPv4 packet in place; returns the length to keep (payload drop) or n. Source
 * route, record route and timestamp options hold addresses too; the transport checksum's
 * pseudo-header uses the final destination (the last address of a source route). */
static size_t do_ipv4(struct anonframe *a, uint8_t *ip, size_t n, int depth)
{
    if (n < 20 || (ip[0] >> 4) != 4 || (ip[0] & 0x0f) < 5) {
        a->bad = true;
        return n;
    }
    size_t hl = (size_t)(ip[0] & 0x0f) * 4;
    size_t have = hl <= n ? hl : n;
    uint8_t old_hdr[60], old_ps[8], new_ps[8];
    if (hl > n)
        memcpy(old_hdr, ip, have); /* only a cut header needs the incremental checksum */
    size_t addr[16], naddr = 0, pdst = 16;
    for (size_t o = 20; o < have;) {
        uint8_t t = ip[o];
        if (t == 0)
            break;
        if (t == 1) {
            o++;
            continue;
        }
        if (o + 2 > have || ip[o + 1] < 2 || o + ip[o + 1] > have) {
            if (hl > n)
                break; /* options cut by the snaplen: what is there was done */
            a->bad = true;
            return n;
        }
        size_t len = ip[o + 1];
        if (t == 7 || t == 131 || t == 137) { /* record route, loose / strict source route */
            for (size_t k = o + 3; k + 4 <= o + len && naddr < 16; k += 4)
                addr[naddr++] = k;
            if ((t == 131 || t == 137) && len >= 7)
                pdst = o + 3 + ((len - 3) / 4 - 1) * 4;
        } else if (t == 68 && len >= 4 && ((ip[o + 3] & 0x0f) == 1 || (ip[o + 3] & 0x0f) == 3)) {
            for (size_t k = o + 4; k + 8 <= o + len && naddr < 16; k += 8)
                addr[naddr++] = k; /* timestamp with addresses */
        }
        o += len;
    }
    memcpy(old_ps, ip + 12, 4);
    memcpy(old_ps + 4, ip + pdst, 4);
    anon_v4_addr(a, ip + 12);
    anon_v4_addr(a, ip + 16);
    for (size_t k = 0; k < naddr; k++)
        anon_v4_addr(a, ip + addr[k]);
    memcpy(new_ps, ip + 12, 4);
    memcpy(new_ps + 4, ip + pdst, 4);
    if (hl <= n)
        ipv4_header_checksum(ip, hl);
    else
        csum_adjust(ip + 10, old_hdr, ip, have & ~(size_t)1, false);
    uint8_t proto = ip[9];
    bool first_fragment = (be16(ip + 6) & 0x1fff) == 0;
    if (hl >= n || !first_fragment)
        return n;
    uint8_t *l4 = ip + hl;
    size_t l4n = n - hl;
    int co = l4_csum_offset(proto);
    if (co >= 0 && proto != 58 && l4n >= (size_t)co + 2)
        csum_adjust(l4 + co, old_ps, new_ps, 8, proto == 17);
    if (proto == 1)
        do_icmp_quote(a, l4, l4n, false, depth);
    size_t inner = do_l4(a, proto, l4, l4n, depth);
    if (a->drop_payload && depth == 0) {
        size_t keep = hl + l4_header_len(proto, l4, l4n);
        if (proto == 1 && l4n >= 8 + 20)
            keep = n < hl + 8 + 60 + 8 ? n : hl + 8 + 60 + 8; /* the quoted headers */
        if (proto == 4 || proto == 41 || proto == 47 || proto == 97 || proto == 103 || proto == 143 ||
            (proto == 17 && inner < l4n))
            keep = hl + inner;
        return keep < n ? keep : n;
    }
    return n;
}

/* Neighbour discovery is IPv6's ARP: the target (and a redirect's destination) is an address
 * of the network too. */
static void do_nd_target(struct anonframe *a, uint8_t *icmp, size_t n)
{
    uint8_t type = icmp[0];
    int addrs = type == 135 || type == 136 ? 1 : type == 137 ? 2 : 0;
    if (addrs == 0 || n < 8 + 16 * (size_t)addrs)
        return;
    uint8_t old[32];
    memcpy(old, icmp + 8, 16 * (size_t)addrs);
    for (int i = 0; i < addrs; i++)
        anon_v6_addr(a, icmp + 8 + 16 * i);
    csum_adjust(icmp + 2, old, icmp + 8, 16 * (size_t)addrs, false);
}

/* IPv6: the header's addresses, those of a routing header (type 0, type 2 for mobile IPv6,
 * type 4 the segment routing header) and of a home address option. The transport checksum's
 * pseudo-header holds the final destination (the last hop of the route) and, with a home
 * address option, the home address as source: both before and after anonymisation. */
static size_t do_ipv6(struct anonframe *a, uint8_t *ip, size_t n, int depth)
{
    if (n < 40 || (ip[0] >> 4) != 6) {
        a->bad = true;
        return n;
    }
    size_t addr[40], naddr = 0, psrc = 8, pdst = 24;
    addr[naddr++] = 8;
    addr[naddr++] = 24;
    uint8_t next = ip[6];
    size_t off = 40;
    bool l4_here = true;
    for (int hops = 0; hops < 8; hops++) {
        if (next != 0 && next != 43 && next != 60 && next != 44 && next != 51)
            break;
        if (off + 8 > n) {
            if (next == 43 || next == 60)
                a->bad = true; /* cut inside a header that may hold addresses */
            l4_here = false;
            break;
        }
        size_t len = next == 44 ? 8 : next == 51 ? ((size_t)ip[off + 1] + 2) * 4 : ((size_t)ip[off + 1] + 1) * 8;
        if ((next == 43 || next == 60) && off + len > n) {
            a->bad = true;
            l4_here = false;
            break;
        }
        if (next == 43) {
            uint8_t type = ip[off + 2], left = ip[off + 3];
            size_t count = ((size_t)ip[off + 1]) / 2;
            if (type == 4 && (size_t)ip[off + 4] + 1 < count)
                count = (size_t)ip[off + 4] + 1; /* SRH: segments, then TLVs */
            if (type == 0 || type == 2 || type == 4) {
                for (size_t k = 0; k < count && naddr < 40; k++)
                    addr[naddr++] = off + 8 + 16 * k;
                if (left > 0 && count > 0)
                    pdst = type == 4 ? off + 8 : off + 8 + 16 * (count - 1);
            } else if (left > 0 || type == 3) {
                a->bad = true; /* a route we cannot read (RPL's compressed one, unknown types) */
            }
        } else if (next == 60) {
            for (size_t o = off + 2; o + 2 <= off + len;) {
                uint8_t t = ip[o];
                if (t == 0) {
                    o++;
                    continue;
                }
                size_t ol = (size_t)ip[o + 1] + 2;
                if (t == 201 && ol == 18 && o + ol <= off + len && naddr < 40) {
                    addr[naddr++] = o + 2; /* home address */
                    psrc = o + 2;
                }
                o += ol;
            }
        } else if (next == 44 && (be16(ip + off + 2) & 0xfff8) != 0) {
            l4_here = false; /* a later fragment: no transport header here */
        }
        next = ip[off];
        off += len;
        if (!l4_here)
            break;
    }
    uint8_t old_ps[32], new_ps[32];
    memcpy(old_ps, ip + psrc, 16);
    memcpy(old_ps + 16, ip + pdst, 16);
    for (size_t k = 0; k < naddr; k++)
        anon_v6_addr(a, ip + addr[k]);
    memcpy(new_ps, ip + psrc, 16);
    memcpy(new_ps + 16, ip + pdst, 16);
    if (!l4_here || off >= n)
        return n;
    uint8_t *l4 = ip + off;
    size_t l4n = n - off;
    int co = l4_csum_offset(next);
    if (co >= 0 && l4n >= (size_t)co + 2)
        csum_adjust(l4 + co, old_ps, new_ps, 32, false);
    if (next == 58) {
        do_icmp_quote(a, l4, l4n, true, depth);
        do_nd_target(a, l4, l4n);
    }
    size_t inner = do_l4(a, next, l4, l4n, depth);
    if (a->drop_payload && depth == 0) {
        size_t keep = off + l4_header_len(next, l4, l4n);
        if (next == 58 && l4n >= 8 + 40 && l4[0] < 128)
            keep = off + 8 + 40 + 8;
        if (next == 4 || next == 41 || next == 47 || next == 97 || next == 103 || next == 143 ||
            (next == 17 && inner < l4n))
            keep = off + inner;
        return keep < n ? keep : n;
    }
    return n;
}

/* ARP and RARP with IPv4 protocol addresses, over any hardware. */
static size_t do_arp(struct anonframe *a, uint8_t *arp, size_t n)
{
    if (n < 8) {
        a->bad = true;
        return n;
    }
    size_t hlen = arp[4], plen = arp[5];
    if (be16(arp + 2) != ETHERTYPE_IPV4 || plen != 4)
        return n;
    if (n < 8 + 2 * hlen + 8) {
        a->bad = true;
        return n;
    }
    anon_v4_addr(a, arp + 8 + hlen);
    anon_v4_addr(a, arp + 8 + 2 * hlen + 4);
    return n;
}

/* Protocols known to carry no IP packet (0: not IP by the link layer itself: 802.2 LLC without
 * SNAP, 802.11 management/control/protected frames, PPP control protocols). Any other ethertype
 * may hide IP behind a header the tool does not know, so its packets are left out. */
static bool known_not_ip(uint16_t et)
{
    switch (et) {
    case 0:
    case 0x8863: /* PPPoE discovery */
    case 0x8809: /* slow protocols: LACP, OAM */
    case 0x888e: /* 802.1X */
    case 0x88cc: /* LLDP */
    case 0x88f7: /* PTP */
    case 0x88e5: /* MACsec, encrypted (frame.c opens a clear one) */
    case 0x8902: /* CFM */
    case 0x88b5: /* local experimental, lab generators */
    case 0x9000: /* loopback */
    case 0x8137: /* IPX */
    case 0x809b: /* AppleTalk */
    case 0x80f3: /* AARP */
    case 0x8906: /* FCoE */
    case 0x8914: /* FIP */
    case 0x88a2: /* ATA over Ethernet */
    case 0x6002: /* DEC MOP */
    case 0x6003: /* DECnet */
    case 0x6004: /* DEC LAT */
    case 0x2000: /* CDP (SNAP) */
    case 0x2004: /* DTP (SNAP) */
    case 0x010b: /* PVST+ (SNAP) */
        return true;
    default:
        return false;
    }
}

/* The network layer named by ethertype et at p; returns the bytes of it to keep. */
static size_t do_ether_payload(struct anonframe *a, uint16_t et, uint8_t *p, size_t n, int depth)
{
    if (et == ETHERTYPE_IPV4)
        return do_ipv4(a, p, n, depth);
    if (et == ETHERTYPE_IPV6)
        return do_ipv6(a, p, n, depth);
    if (et == ETHERTYPE_ARP || et == ETHERTYPE_RARP)
        return do_arp(a, p, n);
    if (!known_not_ip(et))
        a->bad = true; /* it may carry IP in a way the tool does not know (a vendor's tag) */
    return a->drop_payload ? 0 : n; /* not IP: no address we know of */
}

/* Anonymise one frame in place; returns the new caplen. A frame whose network header cannot be
 * found (a link type not known here, cut too short) sets a->bad. */
static uint32_t anonymize_frame(struct anonframe *a, uint16_t linktype, uint8_t *d, uint32_t n)
{
    uint16_t et;
    int l3 = frame_l3(linktype, d, n, &et, NULL, NULL);
    if (l3 < 0) {
        a->bad = true;
        return n;
    }
    size_t off = (size_t)l3;
    return (uint32_t)(off + do_ether_payload(a, et, d + off, n - off, 0));
}

uint32_t anonframe_rewrite(struct anonframe *a, uint16_t linktype, uint8_t *d, uint32_t n)
{
    a->bad = false;
    a->nest = 0;
    return anonymize_frame(a, linktype, d, n);
}
