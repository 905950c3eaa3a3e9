/* pick: the records of a file that hold given addresses or (protocol, port) pairs, read at their offsets from the file's
 * positions (written by `sluice-pcap index --positions`), instead of reading the whole file.
 *
 * The output is the file's own bytes: its header (up to the first packet: section and interface
 * blocks, or the pcap global header) and then each chosen record or block verbatim, in file
 * order. So it is a valid capture that every reader parses exactly as it parses those records in
 * the original, and `merge --filter` over it selects what it selects over the whole file: the
 * addresses' records are a superset of what `host ADDR` matches (index.c).
 *
 * --from/--to (as merge's) keep the records of that window only: positions exist only for
 * files in time order, so the window is one run of the offsets, found by binary search on the
 * records' own timestamps (each read through pcapread after the file's header).
 *
 * Refused (exit 2) when the positions do not describe the file (another size) or are not a
 * positions file; exit 1 when a record at a listed offset is not whole.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "select.h"

#define POS_HEADER 40u
#define POS_ENTRY 32u
#define PICK_MAX_ADDRS 64

struct pick_out {
    int fd;
    uint8_t buf[1 << 20];
    size_t len;
};

static int out_flush(struct pick_out *o)
{
    size_t done = 0;
    while (done < o->len) {
        ssize_t w = write(o->fd, o->buf + done, o->len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        done += (size_t)w;
    }
    o->len = 0;
    return 0;
}

/* Append n bytes of fd at off to the output. */
static int out_copy(struct pick_out *o, int fd, uint64_t off, size_t n)
{
    while (n > 0) {
        if (o->len == sizeof o->buf && out_flush(o) < 0)
            return -1;
        size_t want = n < sizeof o->buf - o->len ? n : sizeof o->buf - o->len;
        ssize_t got = pread(fd, o->buf + o->len, want, (off_t)off);
        if (got <= 0)
            return -1;
        o->len += (size_t)got;
        off += (uint64_t)got;
        n -= (size_t)got;
    }
    return 0;
}

static int by_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int parse_addr(const char *s, uint8_t a[16])
{
    uint8_t v4[4];
    if (inet_pton(AF_INET, s, v4) == 1) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(a, mapped, 12);
        memcpy(a + 12, v4, 4);
        return 0;
    }
    return inet_pton(AF_INET6, s, a) == 1 ? 0 : -1;
}

/* "tcp/5060" as its positions key (index.c: port_key). */
static int parse_port(const char *s, uint8_t key[16])
{
    static const struct {
        const char *name;
        uint8_t proto;
    } protos[] = {{"tcp/", 6}, {"udp/", 17}, {"sctp/", 132}};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(protos[i].name);
        if (strncmp(s, protos[i].name, n) != 0)
            continue;
        char *end;
        long port = strtol(s + n, &end, 10);
        if (end == s + n || *end || port < 0 || port > 65535)
            return -1;
        memset(key, 0, 16);
        key[0] = 0xff, key[1] = 'S', key[2] = 'L', key[3] = 'P';
        key[13] = protos[i].proto;
        key[14] = (uint8_t)(port >> 8);
        key[15] = (uint8_t)port;
        return 0;
    }
    return -1;
}

/* The offsets of the records holding address a: appended to *offs. */
static int addr_offsets(int pfd, uint64_t na, const uint8_t a[16], uint64_t **offs, size_t *n, size_t *cap)
{
    uint64_t lo = 0, hi = na;
    uint8_t e[POS_ENTRY];
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (pread(pfd, e, POS_ENTRY, (off_t)(POS_HEADER + mid * POS_ENTRY)) != POS_ENTRY)
            return -1;
        int c = memcmp(e, a, 16);
        if (c == 0) {
            uint64_t first, count;
            memcpy(&first, e + 16, 8);
            memcpy(&count, e + 24, 8);
            if (*n + count > *cap) {
                size_t nc = (*n + count) * 2;
                uint64_t *no = realloc(*offs, nc * sizeof *no);
                if (!no)
                    return -1;
                *offs = no;
                *cap = nc;
            }
            off_t at = (off_t)(POS_HEADER + na * POS_ENTRY + first * 8);
            if (count && pread(pfd, *offs + *n, count * 8, at) != (ssize_t)(count * 8))
                return -1;
            *n += count;
            return 0;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0; /* not in this file */
}

static uint32_t rd32(const uint8_t *p, bool swap)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swap ? __builtin_bswap32(v) : v;
}

struct source {
    int fd;
    bool ng, swap;
    uint64_t size, header_end;
    uint8_t *header; /* the first header_end bytes, for record_ts() */
};

/* The length of the whole record at off; 0 when there is none. */
static uint64_t record_len(const struct source *src, uint64_t off)
{
    uint8_t rh[16];
    if (pread(src->fd, rh, 16, (off_t)off) != 16)
        return 0;
    uint64_t len = src->ng ? rd32(rh + 4, src->swap) : 16u + (uint64_t)rd32(rh + 8, src->swap);
    return len < 16 || len > PR_MAX_BLOCK || off < src->header_end || off + len > src->size ? 0 : len;
}

/* The timestamp of the record at off, read by pcapread after the file's header; -1 on error. */
static int record_ts(const struct source *src, uint64_t off, uint64_t *ts)
{
    uint64_t len = record_len(src, off);
    uint8_t *buf = len ? malloc(src->header_end + len) : NULL;
    int rc = -1;
    if (buf && pread(src->fd, buf + src->header_end, len, (off_t)off) == (ssize_t)len) {
        memcpy(buf, src->header, src->header_end);
        pr_reader *r;
        char err[160];
        struct pr_packet pkt;
        if (pr_open_mem(&r, buf, src->header_end + len, PR_STRICT, err, sizeof err) == 0) {
            if (pr_next(r, &pkt) == 1) {
                *ts = pkt.ts_ns;
                rc = 0;
            }
            pr_close(r);
        }
    }
    free(buf);
    return rc;
}

/* The first of offs[0..n) whose record is at or after t (the records are in time order). */
static int lower_bound(const struct source *src, const uint64_t *offs, size_t n, uint64_t t, size_t *at)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t ts;
        if (record_ts(src, offs[mid], &ts) < 0)
            return -1;
        if (ts < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    *at = lo;
    return 0;
}

int cmd_pick(int argc, char **argv)
{
    enum { OPT_POS = 1500, OPT_ADDR, OPT_PORT, OPT_FROM, OPT_TO };
    static const struct option opts[] = {{"positions", required_argument, 0, OPT_POS},
                                         {"addr", required_argument, 0, OPT_ADDR},
                                         {"port", required_argument, 0, OPT_PORT},
                                         {"from", required_argument, 0, OPT_FROM},
                                         {"to", required_argument, 0, OPT_TO},
                                         {"output", required_argument, 0, 'o'},
                                         {0, 0, 0, 0}};
    static const char *use = "usage: sluice-pcap pick --positions POS (--addr ADDR | --port PROTO/N)... [--from T] [--to T] "
                             "-o OUT|- FILE";
    const char *pos_path = NULL, *out_path = NULL;
    uint8_t addrs[PICK_MAX_ADDRS][16];
    size_t naddr = 0;
    bool has_from = false, has_to = false;
    uint64_t from_ns = 0, to_ns = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        if (c == OPT_POS)
            pos_path = optarg;
        else if (c == 'o')
            out_path = optarg;
        else if (c == OPT_ADDR && naddr < PICK_MAX_ADDRS && parse_addr(optarg, addrs[naddr]) == 0)
            naddr++;
        else if (c == OPT_PORT && naddr < PICK_MAX_ADDRS && parse_port(optarg, addrs[naddr]) == 0)
            naddr++;
        else if ((c == OPT_FROM || c == OPT_TO) && select_parse_time(optarg, c == OPT_FROM ? &from_ns : &to_ns) == 0)
            *(c == OPT_FROM ? &has_from : &has_to) = true;
        else if (c == OPT_FROM || c == OPT_TO)
            return tool_fail(EXIT_USAGE, "pick", "--%s '%s' is not a time", c == OPT_FROM ? "from" : "to", optarg);
        else if (c == OPT_PORT)
            return tool_fail(EXIT_USAGE, "pick", "--port '%s' is not tcp/N, udp/N or sctp/N (at most %d keys)", optarg,
                             PICK_MAX_ADDRS);
        else if (c == OPT_ADDR)
            return tool_fail(EXIT_USAGE, "pick", "--addr '%s' is not an IPv4 or IPv6 address (at most %d)", optarg,
                             PICK_MAX_ADDRS);
        else
            return tool_fail(EXIT_USAGE, "pick", "%s", use);
    }
    if (!pos_path || !out_path || !naddr || argc - optind != 1)
        return tool_fail(EXIT_USAGE, "pick", "%s", use);
    const char *in_path = argv[optind];
    if (tool_check_output("pick", out_path, argv + optind, 1))
        return EXIT_USAGE;
    int rc = 0, pfd = open(pos_path, O_RDONLY | O_CLOEXEC), fd = open(in_path, O_RDONLY | O_CLOEXEC);
    uint8_t h[POS_HEADER], first[12];
    uint64_t header_end = 0, size = 0, na = 0, noffs = 0;
    struct stat pst, st;
    if (pfd < 0 || fd < 0 || fstat(pfd, &pst) < 0 || fstat(fd, &st) < 0)
        rc = tool_fail(EXIT_USAGE, "pick", "%s: %s", fd < 0 ? in_path : pos_path, strerror(errno));
    else if (pread(pfd, h, POS_HEADER, 0) != POS_HEADER || memcmp(h, "SLPOS001", 8) != 0)
        rc = tool_fail(EXIT_USAGE, "pick", "%s: not a positions file", pos_path);
    if (!rc) {
        memcpy(&header_end, h + 8, 8);
        memcpy(&size, h + 16, 8);
        memcpy(&na, h + 24, 8);
        memcpy(&noffs, h + 32, 8);
        if ((uint64_t)pst.st_size != POS_HEADER + na * POS_ENTRY + noffs * 8 || size != (uint64_t)st.st_size ||
            header_end > size || pread(fd, first, 12, 0) != 12)
            rc = tool_fail(EXIT_USAGE, "pick", "%s: the positions %s do not describe it (index it again)", in_path,
                           pos_path);
    }
    uint64_t *offs = NULL;
    size_t n = 0, cap = 0;
    for (size_t k = 0; k < naddr && !rc; k++)
        if (addr_offsets(pfd, na, addrs[k], &offs, &n, &cap) < 0)
            rc = tool_fail(EXIT_FAIL, "pick", "%s: cannot read the positions", pos_path);
    if (!rc && n) {
        qsort(offs, n, sizeof *offs, by_u64);
        size_t u = 1;
        for (size_t i = 1; i < n; i++)
            if (offs[i] != offs[u - 1])
                offs[u++] = offs[i];
        n = u;
    }
    /* pcapng: block length at +4 in the section's byte order; pcap: caplen at +8 of a 16-byte header. */
    bool ng = rd32(first, false) == 0x0A0D0D0A;
    bool swap = ng ? rd32(first + 8, false) != 0x1A2B3C4D
                   : rd32(first, false) != 0xA1B2C3D4 && rd32(first, false) != 0xA1B23C4D;
    struct pick_out *o = rc ? NULL : malloc(sizeof *o);
    struct outfile of = {.fd = -1};
    if (!rc && !o)
        rc = tool_fail(EXIT_FAIL, "pick", "out of memory");
    if (!rc) {
        /* outfile.h: "-", FIFOs and character devices in place, files through a temporary. */
        char err[512];
        o->len = 0;
        o->fd = -1;
        if (of_open(&of, out_path, err, sizeof err) < 0)
            rc = tool_fail(EXIT_FAIL, "pick", "%s", err);
        else
            o->fd = of.fd;
    }
    if (!rc && out_copy(o, fd, 0, header_end) < 0)
        rc = tool_fail(EXIT_FAIL, "pick", "%s: cannot copy the header: %s", in_path, strerror(errno));
    struct source src = {fd, ng, swap, size, header_end, NULL};
    size_t lo = 0, hi = n;
    if (!rc && n && (has_from || has_to)) {
        src.header = header_end <= PR_MAX_BLOCK ? malloc(header_end ? header_end : 1) : NULL;
        if (!src.header || pread(fd, src.header, header_end, 0) != (ssize_t)header_end ||
            (has_from && lower_bound(&src, offs, n, from_ns, &lo) < 0) ||
            (has_to && lower_bound(&src, offs, n, to_ns, &hi) < 0))
            rc = tool_fail(EXIT_FAIL, "pick", "%s: cannot read the time of a listed record", in_path);
        hi = hi < lo ? lo : hi;
    }
    uint64_t picked = 0;
    for (size_t i = lo; i < hi && !rc; i++) {
        uint64_t len = record_len(&src, offs[i]);
        if (!len) {
            rc = tool_fail(EXIT_FAIL, "pick", "%s: no whole record at offset %llu", in_path,
                           (unsigned long long)offs[i]);
            break;
        }
        if (out_copy(o, fd, offs[i], (size_t)len) < 0)
            rc = tool_fail(EXIT_FAIL, "pick", "%s: %s", in_path, strerror(errno));
        picked++;
    }
    if (!rc && out_flush(o) < 0)
        rc = tool_fail(EXIT_FAIL, "pick", "%s: write: %s", out_path, strerror(errno));
    if (of.path) {
        char err[512];
        if (rc)
            of_abort(&of);
        else if (of_commit(&of, err, sizeof err) < 0)
            rc = tool_fail(EXIT_FAIL, "pick", "%s", err);
    }
    if (!rc)
        fprintf(tool_report(), "pick: records %llu of %llu addresses' positions\n", (unsigned long long)picked,
                (unsigned long long)n);
    free(offs);
    free(src.header);
    free(o);
    if (pfd >= 0)
        close(pfd);
    if (fd >= 0)
        close(fd);
    return rc;
}
