/* anonymize: Crypto-PAn every IPv4/IPv6 address in IP headers, ARP, neighbour discovery
 * targets, and the IP header an ICMP error quotes; fix the checksums that cover them (IPv4 header recomputed; TCP/UDP/ICMPv6 by
 * the incremental rule of RFC 1624, which equals a recomputation when the original was right
 * and also works when the payload was cut by the snaplen). --payload drop keeps headers only. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cryptopan.h"
#include "frame.h"
#include "tool.h"

enum { PAYLOAD_KEEP, PAYLOAD_DROP };

struct anon {
    cryptopan *cp;
    int payload;
    uint64_t addresses;
    uint64_t changed; /* packets */
    uint8_t *buf;     /* the packet being rewritten */
};

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

static void anon_v4_addr(struct anon *a, uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    uint32_t o = cp_ipv4(a->cp, v);
    p[0] = (uint8_t)(o >> 24);
    p[1] = (uint8_t)(o >> 16);
    p[2] = (uint8_t)(o >> 8);
    p[3] = (uint8_t)o;
    a->addresses++;
}

static void anon_v6_addr(struct anon *a, uint8_t *p)
{
    cp_ipv6(a->cp, p, p);
    a->addresses++;
}

static size_t do_ipv4(struct anon *a, uint8_t *ip, size_t n, int depth);
static size_t do_ipv6(struct anon *a, uint8_t *ip, size_t n, int depth);

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

/* An ICMP/ICMPv6 error quoting a packet: anonymise the quote and fix the ICMP checksum
 * for the bytes that changed. */
static void do_icmp_quote(struct anon *a, uint8_t *icmp, size_t n, bool v6, int depth)
{
    if (n < 8 + 20 || depth > 0)
        return;
    uint8_t type = icmp[0];
    bool error = v6 ? type >= 1 && type <= 4 : type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
    if (!error)
        return;
    size_t qn = n - 8;
    uint8_t *q = icmp + 8;
    uint8_t *old = malloc(qn);
    if (!old)
        return;
    memcpy(old, q, qn);
    if ((q[0] >> 4) == 4)
        do_ipv4(a, q, qn, depth + 1);
    else if ((q[0] >> 4) == 6)
        do_ipv6(a, q, qn, depth + 1);
    csum_adjust(icmp + 2, old, q, qn, false);
    free(old);
}

/* Anonymise one IPv4 packet in place; returns the length to keep (payload drop) or n. */
static size_t do_ipv4(struct anon *a, uint8_t *ip, size_t n, int depth)
{
    if (n < 20 || (ip[0] >> 4) != 4)
        return n;
    size_t hl = (size_t)(ip[0] & 0x0f) * 4;
    if (hl < 20)
        return n;
    uint8_t old[8];
    memcpy(old, ip + 12, 8);
    anon_v4_addr(a, ip + 12);
    anon_v4_addr(a, ip + 16);
    if (hl <= n)
        ipv4_header_checksum(ip, hl);
    else
        csum_adjust(ip + 10, old, ip + 12, 8, false);
    uint8_t proto = ip[9];
    bool first_fragment = (be16(ip + 6) & 0x1fff) == 0;
    if (hl >= n || !first_fragment)
        return n;
    uint8_t *l4 = ip + hl;
    size_t l4n = n - hl;
    int co = l4_csum_offset(proto);
    if (co >= 0 && proto != 58 && l4n >= (size_t)co + 2)
        csum_adjust(l4 + co, old, ip + 12, 8, proto == 17);
    if (proto == 1)
        do_icmp_quote(a, l4, l4n, false, depth);
    if (a->payload == PAYLOAD_DROP && depth == 0) {
        size_t keep = hl + l4_header_len(proto, l4, l4n);
        if (proto == 1 && l4n >= 8 + 20)
            keep = n < hl + 8 + 60 + 8 ? n : hl + 8 + 60 + 8; /* the quoted headers */
        return keep < n ? keep : n;
    }
    return n;
}

/* Neighbour discovery is IPv6's ARP: the target (and a redirect's destination) is an address
 * of the network too. */
static void do_nd_target(struct anon *a, uint8_t *icmp, size_t n)
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

static size_t do_ipv6(struct anon *a, uint8_t *ip, size_t n, int depth)
{
    if (n < 40 || (ip[0] >> 4) != 6)
        return n;
    uint8_t old[32];
    memcpy(old, ip + 8, 32);
    anon_v6_addr(a, ip + 8);
    anon_v6_addr(a, ip + 24);
    uint8_t next = ip[6];
    size_t off = 40;
    /* Walk the extension headers to the transport header. */
    for (int hops = 0; hops < 8 && off + 8 <= n; hops++) {
        if (next == 0 || next == 43 || next == 60) {
            size_t len = ((size_t)ip[off + 1] + 1) * 8;
            next = ip[off];
            off += len;
        } else if (next == 44) {
            if ((be16(ip + off + 2) & 0xfff8) != 0)
                return n; /* not the first fragment: no transport header here */
            next = ip[off];
            off += 8;
        } else {
            break;
        }
    }
    if (off >= n)
        return n;
    uint8_t *l4 = ip + off;
    size_t l4n = n - off;
    int co = l4_csum_offset(next);
    if (co >= 0 && l4n >= (size_t)co + 2)
        csum_adjust(l4 + co, old, ip + 8, 32, false);
    if (next == 58) {
        do_icmp_quote(a, l4, l4n, true, depth);
        do_nd_target(a, l4, l4n);
    }
    if (a->payload == PAYLOAD_DROP && depth == 0) {
        size_t keep = off + l4_header_len(next, l4, l4n);
        if (next == 58 && l4n >= 8 + 40 && l4[0] < 128)
            keep = off + 8 + 40 + 8;
        return keep < n ? keep : n;
    }
    return n;
}

static size_t do_arp(struct anon *a, uint8_t *arp, size_t n)
{
    /* Ethernet/IPv4 ARP: sender protocol address at 14, target at 24. */
    if (n >= 28 && be16(arp) == 1 && be16(arp + 2) == 0x0800 && arp[4] == 6 && arp[5] == 4) {
        anon_v4_addr(a, arp + 14);
        anon_v4_addr(a, arp + 24);
    }
    return n;
}

/* Anonymise one frame in place; returns the new caplen. */
static uint32_t anonymize_frame(struct anon *a, uint16_t linktype, uint8_t *d, uint32_t n)
{
    uint16_t et;
    int l3 = frame_l3(linktype, d, n, &et, NULL, NULL);
    if (l3 < 0)
        return n;
    size_t off = (size_t)l3;
    size_t keep;
    if (et == 0x0800)
        keep = do_ipv4(a, d + off, n - off, 0);
    else if (et == 0x86dd)
        keep = do_ipv6(a, d + off, n - off, 0);
    else if (et == 0x0806)
        keep = do_arp(a, d + off, n - off);
    else
        keep = a->payload == PAYLOAD_DROP ? 0 : n - off;
    return (uint32_t)(off + keep);
}

/* tool_filter: the packet, anonymised in a copy. */
static int anonymize_packet(void *ctx, struct pr_packet *pkt)
{
    struct anon *a = ctx;
    memcpy(a->buf, pkt->data, pkt->caplen);
    uint64_t before = a->addresses;
    uint32_t n = anonymize_frame(a, pkt->linktype, a->buf, pkt->caplen);
    a->changed += a->addresses != before || n != pkt->caplen;
    pkt->data = a->buf;
    pkt->caplen = n;
    return 1;
}

int cmd_anonymize(int argc, char **argv)
{
    enum { OPT_KEY_FILE = 1300, OPT_PAYLOAD };
    static const struct option opts[] = {OUT_LONG_OPTIONS,
                                         {"key-file", required_argument, 0, OPT_KEY_FILE},
                                         {"payload", required_argument, 0, OPT_PAYLOAD},
                                         {0, 0, 0, 0}};
    static const char *use = "usage: sluice-pcap anonymize --key-file KEY [--payload keep|drop] "
                             "[--format pcapng|pcap] [--json] IN OUT";
    struct out_opts oo = OUT_OPTS_INIT;
    bool as_json = false;
    const char *key_path = NULL;
    struct anon a = {.payload = PAYLOAD_KEEP};
    int c;
    optind = 1;
    while ((c = tool_getopt(argc, argv, "", opts, &oo, &as_json, "anonymize")) != -1) {
        if (c == OPT_BAD_VALUE)
            return EXIT_USAGE;
        if (c == OPT_KEY_FILE)
            key_path = optarg;
        else if (c == OPT_PAYLOAD && strcmp(optarg, "keep") == 0)
            a.payload = PAYLOAD_KEEP;
        else if (c == OPT_PAYLOAD && strcmp(optarg, "drop") == 0)
            a.payload = PAYLOAD_DROP;
        else if (c == OPT_PAYLOAD)
            return tool_fail(EXIT_USAGE, "anonymize", "--payload must be keep or drop, not '%s'", optarg);
        else
            return tool_fail(EXIT_USAGE, "anonymize", "%s", use);
    }
    if (argc - optind != 2 || !key_path)
        return tool_fail(EXIT_USAGE, "anonymize", "%s", use);
    const char *in_path = argv[optind], *out_path = argv[optind + 1];
    if (tool_check_output("anonymize", out_path, argv + optind, 1))
        return EXIT_USAGE;
    uint8_t key[CP_KEY_LEN];
    char err[256];
    if (cp_read_key_file(key_path, key, err, sizeof err) < 0)
        return tool_fail(EXIT_USAGE, "anonymize", "%s", err);
    char key_id[24];
    cp_key_id(key, key_id);
    a.cp = cp_new(key, err, sizeof err);
    memset(key, 0, sizeof key);
    if (!a.cp)
        return tool_fail(EXIT_FAIL, "anonymize", "%s", err);
    pr_reader *r;
    int rc = tool_open(&r, in_path, PR_STRICT, "anonymize");
    if (rc) {
        cp_free(a.cp);
        return rc;
    }
    /* pcapng by default: its SHB records which key anonymised the file. */
    struct po_options po_opt = out_resolve(&oo, r);
    if (oo.format < 0)
        po_opt.format = PR_FORMAT_PCAPNG;
    po_opt.key_id = key_id;
    char comment[96];
    snprintf(comment, sizeof comment, "anonymised by sluice-pcap (Crypto-PAn, key id %s%s)", key_id,
             a.payload == PAYLOAD_DROP ? ", payload dropped" : "");
    po_opt.comment = comment;
    a.buf = malloc(PR_MAX_BLOCK);
    uint64_t in, out;
    if (!a.buf)
        rc = tool_fail(EXIT_FAIL, "anonymize", "out of memory");
    else
        rc = tool_copy("anonymize", r, in_path, out_path, &po_opt, anonymize_packet, &a, &in, &out);
    if (rc == 0) {
        char text[160], js[200];
        snprintf(text, sizeof text, "%" PRIu64 " addresses anonymised, key id %s", a.addresses, key_id);
        snprintf(js, sizeof js, "\"addresses\": %" PRIu64 ", \"key_id\": \"%s\", \"payload\": \"%s\"",
                 a.addresses, key_id, a.payload == PAYLOAD_DROP ? "drop" : "keep");
        print_summary(as_json, "anonymize", in, out, a.changed, text, js);
    }
    free(a.buf);
    pr_close(r);
    cp_free(a.cp);
    return rc;
}
