/* index: what a capture file holds, in one pass, for the catalog (`sluice catalog`, `sluice
 * extract`): packets, bytes, first/last timestamp, interfaces, the drop counters of the
 * file's closing Interface Statistics Blocks, and the per-file index: every IPv4/IPv6 address
 * (IP source and destination, ARP/RARP sender and target) and every (protocol, port) pair
 * (TCP, UDP, SCTP; first fragments only, as BPF sees them) with its packet count, and the count
 * of each IP protocol / IPv6 next header. One JSON object per file on stdout.
 *
 * The index is a superset of what a BPF `host`, `net`, `port`, `portrange`, `tcp`/`udp`/...
 * primitive can match in the file (VLAN-tagged frames included), so a file whose index lacks
 * an address can be skipped for `host ADDR` without reading it.
 * Exit 0; 1 when the file is damaged (the JSON then says where, with what was read before).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.h"
#include "tool.h"

struct addr_slot {
    uint8_t a[16]; /* IPv4 as ::ffff:a.b.c.d */
    uint64_t packets;
    uint32_t id;   /* order of first appearance */
    bool used;
    bool port;     /* a (protocol, port) key of the positions, not an address */
};

/* Where each address's packets are: (address id, record offset) for every packet and address. */
struct positions {
    bool on;
    uint32_t *ids;
    uint64_t *offs;
    size_t n, cap;
    uint8_t (*addrs)[16]; /* by id */
    size_t naddrs, addrcap;
};

struct index {
    struct addr_slot *slots;
    size_t cap, n;
    uint64_t (*ports)[65536]; /* [0] tcp, [1] udp, [2] sctp */
    uint64_t protos[256];
    uint64_t packets, bytes, captured, first, last;
    uint64_t cur_off;  /* offset of the record being indexed */
    struct positions pos;
};

static uint64_t addr_hash(const uint8_t *a)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 16; i++)
        h = (h ^ a[i]) * 1099511628211ull;
    return h;
}

static int addr_add_kind(struct index *x, const uint8_t a[16], bool port)
{
    if (2 * (x->n + 1) > x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 1024;
        struct addr_slot *ns = calloc(cap, sizeof *ns);
        if (!ns)
            return -1;
        for (size_t i = 0; i < x->cap; i++) {
            if (!x->slots[i].used)
                continue;
            size_t k = addr_hash(x->slots[i].a) & (cap - 1);
            while (ns[k].used)
                k = (k + 1) & (cap - 1);
            ns[k] = x->slots[i];
        }
        free(x->slots);
        x->slots = ns;
        x->cap = cap;
    }
    size_t k = addr_hash(a) & (x->cap - 1);
    while (x->slots[k].used && memcmp(x->slots[k].a, a, 16) != 0)
        k = (k + 1) & (x->cap - 1);
    if (!x->slots[k].used) {
        memcpy(x->slots[k].a, a, 16);
        x->slots[k].used = true;
        x->slots[k].port = port;
        x->slots[k].id = (uint32_t)x->n++;
        if (x->pos.on) {
            if (x->pos.naddrs == x->pos.addrcap) {
                size_t cap = x->pos.addrcap ? x->pos.addrcap * 2 : 1024;
                uint8_t(*na)[16] = realloc(x->pos.addrs, cap * 16);
                if (!na)
                    return -1;
                x->pos.addrs = na;
                x->pos.addrcap = cap;
            }
            memcpy(x->pos.addrs[x->pos.naddrs++], a, 16);
        }
    }
    x->slots[k].packets++;
    if (x->pos.on) {
        if (x->pos.n == x->pos.cap) {
            size_t cap = x->pos.cap ? x->pos.cap * 2 : 65536;
            uint32_t *ni = realloc(x->pos.ids, cap * sizeof *ni);
            if (ni)
                x->pos.ids = ni;
            uint64_t *no = ni ? realloc(x->pos.offs, cap * sizeof *no) : NULL;
            if (!no)
                return -1;
            x->pos.offs = no;
            x->pos.cap = cap;
        }
        x->pos.ids[x->pos.n] = x->slots[k].id;
        x->pos.offs[x->pos.n++] = x->cur_off;
    }
    return 0;
}

static int addr_add(struct index *x, const uint8_t a[16])
{
    return addr_add_kind(x, a, false);
}

static int addr4(struct index *x, const uint8_t *p)
{
    uint8_t a[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memcpy(a + 12, p, 4);
    return addr_add(x, a);
}

/* A packet's two addresses, counted once each (once when they are the same). */
static int addr_pair4(struct index *x, const uint8_t *a, const uint8_t *b)
{
    return addr4(x, a) < 0 || (memcmp(a, b, 4) != 0 && addr4(x, b) < 0) ? -1 : 0;
}

/* The positions key of (proto, port): ff:'S':'L':'P', zeros, proto, port (big-endian). Were a
 * real IPv6 address ever the same bytes, its records would only be read in addition: the merge
 * filter decides. */
static int port_key(struct index *x, uint8_t proto, uint16_t port)
{
    uint8_t key[16] = {0xff, 'S', 'L', 'P'};
    key[13] = proto;
    key[14] = (uint8_t)(port >> 8);
    key[15] = (uint8_t)port;
    return addr_add_kind(x, key, true);
}

static int port_pair(struct index *x, uint8_t proto, const uint8_t *l4, uint32_t left)
{
    int k = proto == 6 ? 0 : proto == 17 ? 1 : proto == 132 ? 2 : -1;
    if (k < 0 || left < 4)
        return 0;
    uint16_t sp = be16(l4), dp = be16(l4 + 2);
    x->ports[k][sp]++;
    if (dp != sp)
        x->ports[k][dp]++;
    if (!x->pos.on)
        return 0;
    return port_key(x, proto, sp) < 0 || (dp != sp && port_key(x, proto, dp) < 0) ? -1 : 0;
}

/* Index one frame's network header. Returns -1 only when out of memory. */
static int index_frame(struct index *x, const struct pr_packet *pkt)
{
    uint16_t et;
    int off = frame_l3(pkt->linktype, pkt->data, pkt->caplen, &et, NULL, NULL);
    if (off < 0)
        return 0;
    const uint8_t *l3 = pkt->data + off;
    uint32_t n = pkt->caplen - (uint32_t)off;
    if (et == 0x0800 && n >= 20 && (l3[0] >> 4) == 4) {
        if (addr_pair4(x, l3 + 12, l3 + 16) < 0)
            return -1;
        x->protos[l3[9]]++;
        uint32_t ihl = (uint32_t)(l3[0] & 0x0f) * 4;
        bool first_fragment = (be16(l3 + 6) & 0x1fff) == 0;
        if (first_fragment && ihl >= 20 && n > ihl)
            return port_pair(x, l3[9], l3 + ihl, n - ihl);
    } else if (et == 0x86dd && n >= 40 && (l3[0] >> 4) == 6) {
        if (addr_add(x, l3 + 8) < 0 || (memcmp(l3 + 8, l3 + 24, 16) != 0 && addr_add(x, l3 + 24) < 0))
            return -1;
        x->protos[l3[6]]++;
        if (port_pair(x, l3[6], l3 + 40, n - 40) < 0)
            return -1;
        /* libpcap's `tcp`, `udp`, ... also look behind a fragment header. */
        if (l3[6] == 44 && n >= 48) {
            x->protos[l3[40]]++;
            if ((be16(l3 + 42) & 0xfff8) == 0)
                return port_pair(x, l3[40], l3 + 48, n - 48);
        }
    } else if ((et == 0x0806 || et == 0x8035) && n >= 28 && be16(l3 + 2) == 0x0800 && l3[4] == 6 && l3[5] == 4) {
        if (addr_pair4(x, l3 + 14, l3 + 24) < 0)
            return -1;
    }
    return 0;
}

static uint32_t rd32(const uint8_t *p, bool swap)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swap ? __builtin_bswap32(v) : v;
}

/* Drop counters of the Interface Statistics Blocks that end an uncompressed pcapng file (the
 * writer puts one per interface there at close). false when there are none to read. */
static bool closing_isbs(const char *path, uint64_t *ifrecv, uint64_t *ifdrop, uint64_t *osdrop)
{
    *ifrecv = *ifdrop = *osdrop = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    uint8_t shb[12], blk[4096];
    bool found = false;
    if (fstat(fd, &st) == 0 && pread(fd, shb, 12, 0) == 12 && rd32(shb, false) == 0x0A0D0D0A) {
        bool swap = rd32(shb + 8, false) != 0x1A2B3C4D;
        off_t pos = st.st_size;
        while (pos >= 40) {
            uint8_t t[4];
            if (pread(fd, t, 4, pos - 4) != 4)
                break;
            uint32_t len = rd32(t, swap);
            if (len < 32 || len > sizeof blk || (off_t)len > pos || len % 4)
                break;
            if (pread(fd, blk, len, pos - (off_t)len) != (ssize_t)len || rd32(blk, swap) != 5)
                break;
            found = true;
            for (uint32_t o = 20; o + 4 <= len - 4;) {
                uint16_t c16, l16;
                memcpy(&c16, blk + o, 2);
                memcpy(&l16, blk + o + 2, 2);
                uint16_t code = swap ? __builtin_bswap16(c16) : c16, olen = swap ? __builtin_bswap16(l16) : l16;
                if (code == 0 || o + 4 + olen > len - 4)
                    break;
                if (olen == 8 && (code == 4 || code == 5 || code == 7)) {
                    uint64_t v;
                    memcpy(&v, blk + o + 4, 8);
                    v = swap ? __builtin_bswap64(v) : v;
                    *(code == 4 ? ifrecv : code == 5 ? ifdrop : osdrop) += v;
                }
                o += 4 + ((olen + 3u) & ~3u);
            }
            pos -= len;
        }
    }
    close(fd);
    return found;
}

static void print_index(const struct index *x, const char *path, const pr_reader *r, const char *damage, bool sorted,
                        bool positions)
{
    struct json j;
    json_begin(&j);
    json_str(&j, "path", path);
    json_str(&j, "format", pr_format(r) == PR_FORMAT_PCAP ? "pcap" : "pcapng");
    json_bool(&j, "compressed", pr_compressed(r));
    json_u64(&j, "packets", x->packets);
    json_u64(&j, "bytes", x->bytes);
    json_u64(&j, "captured_bytes", x->captured);
    if (x->packets) {
        json_u64(&j, "first_ns", x->first);
        json_u64(&j, "last_ns", x->last);
    } else {
        json_raw(&j, "first_ns", "null");
        json_raw(&j, "last_ns", "null");
    }
    json_str(&j, "damage", damage);
    json_bool(&j, "sorted", sorted);
    json_bool(&j, "positions", positions);
    uint64_t ifrecv, ifdrop, osdrop;
    if (!pr_compressed(r) && pr_format(r) == PR_FORMAT_PCAPNG && closing_isbs(path, &ifrecv, &ifdrop, &osdrop))
        fprintf(j.f, ", \"drops\": {\"ifrecv\": %llu, \"ifdrop\": %llu, \"osdrop\": %llu}",
                (unsigned long long)ifrecv, (unsigned long long)ifdrop, (unsigned long long)osdrop);
    else
        json_raw(&j, "drops", "null");
    fputs(", \"interfaces\": [", j.f);
    for (size_t i = 0; i < pr_iface_count(r); i++) {
        const struct pr_iface *ifc = pr_iface(r, i);
        fprintf(j.f, "%s{\"linktype\": %u, \"snaplen\": %u, \"name\": \"", i ? ", " : "", ifc->linktype,
                ifc->snaplen);
        for (const char *p = ifc->name; *p; p++)
            if ((unsigned char)*p >= 0x20 && *p != '"' && *p != '\\')
                fputc(*p, j.f);
        fputs("\"}", j.f);
    }
    fputs("], \"addresses\": {", j.f);
    int k = 0;
    for (size_t i = 0; i < x->cap; i++) {
        const struct addr_slot *s = &x->slots[i];
        if (!s->used || s->port)
            continue;
        char text[INET6_ADDRSTRLEN];
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(s->a, mapped, 12) == 0)
            inet_ntop(AF_INET, s->a + 12, text, sizeof text);
        else
            inet_ntop(AF_INET6, s->a, text, sizeof text);
        fprintf(j.f, "%s\"%s\": %llu", k++ ? ", " : "", text, (unsigned long long)s->packets);
    }
    static const char *names[3] = {"tcp", "udp", "sctp"};
    fputs("}, \"ports\": {", j.f);
    k = 0;
    for (int p = 0; p < 3; p++)
        for (int port = 0; port < 65536; port++)
            if (x->ports[p][port])
                fprintf(j.f, "%s\"%s/%d\": %llu", k++ ? ", " : "", names[p], port,
                        (unsigned long long)x->ports[p][port]);
    fputs("}, \"protocols\": {", j.f);
    k = 0;
    for (int p = 0; p < 256; p++)
        if (x->protos[p])
            fprintf(j.f, "%s\"%d\": %llu", k++ ? ", " : "", p, (unsigned long long)x->protos[p]);
    fputc('}', j.f);
    j.n++;
    json_end(&j);
}

static const uint8_t (*sort_addrs)[16];

static int by_addr(const void *a, const void *b)
{
    return memcmp(sort_addrs[*(const uint32_t *)a], sort_addrs[*(const uint32_t *)b], 16);
}

static int put64(FILE *f, uint64_t v)
{
    return fwrite(&v, 8, 1, f) == 1 ? 0 : -1;
}

/* The positions file (see pick.c): "SLPOS001", u64 header_end, u64 file size, u64 addresses,
 * u64 offsets; per address in byte order {16 bytes, u64 first, u64 count}; then the offsets,
 * each address's ascending. Little-endian (this machine's order; read back only here). */
static int write_positions(const struct index *x, const char *out, uint64_t header_end, uint64_t size)
{
    const struct positions *p = &x->pos;
    size_t na = p->naddrs;
    uint64_t *start = calloc(na + 1, sizeof *start), *fill = calloc(na + 1, sizeof *fill);
    uint64_t *grouped = malloc((p->n ? p->n : 1) * sizeof *grouped);
    uint32_t *order = malloc((na ? na : 1) * sizeof *order);
    char tmp[4200];
    int rc = -1;
    FILE *f = NULL;
    if (!start || !fill || !grouped || !order || snprintf(tmp, sizeof tmp, "%s.%ld.tmp", out, (long)getpid()) >=
                                                       (int)sizeof tmp)
        goto done;
    for (size_t i = 0; i < p->n; i++)
        start[p->ids[i] + 1]++;
    for (size_t k = 0; k < na; k++)
        start[k + 1] += start[k];
    memcpy(fill, start, (na + 1) * sizeof *fill);
    for (size_t i = 0; i < p->n; i++)
        grouped[fill[p->ids[i]]++] = p->offs[i];
    for (size_t k = 0; k < na; k++)
        order[k] = (uint32_t)k;
    sort_addrs = (const uint8_t(*)[16])p->addrs;
    qsort(order, na, sizeof *order, by_addr);
    if (!(f = fopen(tmp, "wb")))
        goto done;
    bool ok = fwrite("SLPOS001", 8, 1, f) == 1 && put64(f, header_end) == 0 && put64(f, size) == 0 &&
              put64(f, na) == 0 && put64(f, p->n) == 0;
    for (size_t k = 0; k < na && ok; k++)
        ok = fwrite(p->addrs[order[k]], 16, 1, f) == 1 && put64(f, start[order[k]]) == 0 &&
             put64(f, start[order[k] + 1] - start[order[k]]) == 0;
    ok = ok && (p->n == 0 || fwrite(grouped, sizeof *grouped, p->n, f) == p->n);
    ok = (fclose(f) == 0) && ok;
    f = NULL;
    if (ok && rename(tmp, out) == 0)
        rc = 0;
    else
        unlink(tmp);
done:
    if (rc)
        tool_fail(EXIT_FAIL, "index", "%s: cannot write the positions: %s", out, strerror(errno));
    free(start);
    free(fill);
    free(grouped);
    free(order);
    return rc;
}

static int index_one(const char *path, const char *positions_out)
{
    pr_reader *r;
    int rc = tool_open(&r, path, PR_STRICT, "index");
    if (rc)
        return rc;
    struct index x = {0};
    x.ports = calloc(3, sizeof *x.ports);
    if (!x.ports) {
        pr_close(r);
        return tool_fail(EXIT_FAIL, "index", "out of memory");
    }
    /* Positions are file offsets only when the file is not compressed. */
    x.pos.on = positions_out && !pr_compressed(r);
    bool sorted = true, same_ifaces = true;
    uint64_t header_end = 0;
    size_t ifaces_at_first = 0;
    struct pr_packet pkt;
    int got;
    while ((got = pr_next(r, &pkt)) == 1) {
        if (x.packets == 0) {
            header_end = pkt.offset;
            ifaces_at_first = pr_iface_count(r);
        }
        sorted &= x.packets == 0 || pkt.ts_ns >= x.last;
        same_ifaces &= pr_iface_count(r) == ifaces_at_first;
        if (x.packets == 0 || pkt.ts_ns < x.first)
            x.first = pkt.ts_ns;
        if (x.packets == 0 || pkt.ts_ns > x.last)
            x.last = pkt.ts_ns;
        x.packets++;
        x.bytes += pkt.origlen;
        x.captured += pkt.caplen;
        x.cur_off = pkt.offset;
        if (index_frame(&x, &pkt) < 0) {
            rc = tool_fail(EXIT_FAIL, "index", "out of memory");
            break;
        }
    }
    bool positions = false;
    if (!rc && x.pos.on && got == 0 && same_ifaces && sorted) {
        struct stat st;
        if (stat(path, &st) != 0)
            rc = tool_fail(EXIT_FAIL, "index", "%s: %s", path, strerror(errno));
        else if (write_positions(&x, positions_out, x.packets ? header_end : (uint64_t)st.st_size,
                                 (uint64_t)st.st_size) == 0)
            positions = true;
        else
            rc = EXIT_FAIL;
    }
    if (!rc) {
        char damage[256] = "";
        if (got < 0) {
            const struct pr_damage *d = pr_damage(r);
            snprintf(damage, sizeof damage, "offset %llu, record %llu: %s (%s)", (unsigned long long)d->offset,
                     (unsigned long long)d->record, d->what, pr_damage_name(d->kind));
            rc = EXIT_FAIL;
        }
        print_index(&x, path, r, got < 0 ? damage : NULL, sorted, positions);
    }
    free(x.slots);
    free(x.ports);
    free(x.pos.ids);
    free(x.pos.offs);
    free(x.pos.addrs);
    pr_close(r);
    return rc;
}

int cmd_index(int argc, char **argv)
{
    enum { OPT_POSITIONS = 1400 };
    static const struct option opts[] = {{"json", no_argument, 0, OPT_JSON},
                                         {"positions", required_argument, 0, OPT_POSITIONS},
                                         {0, 0, 0, 0}};
    static const char *use = "usage: sluice-pcap index [--positions OUT] FILE...";
    const char *positions = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == OPT_POSITIONS)
            positions = optarg;
        else if (c != OPT_JSON)
            return tool_fail(EXIT_USAGE, "index", "%s", use);
    }
    if (optind >= argc || (positions && argc - optind != 1))
        return tool_fail(EXIT_USAGE, "index", "%s (--positions: one FILE)", use);
    int worst = 0;
    for (int i = optind; i < argc; i++) {
        int rc = index_one(argv[i], positions);
        if (rc > worst)
            worst = rc;
    }
    return worst;
}
