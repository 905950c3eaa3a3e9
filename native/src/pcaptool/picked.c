#include "picked.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pcapread.h"

#define POS_HEADER 40u
#define POS_ENTRY 32u
/* One pread per record: this much is read at a record's offset and its own length says how
 * much of it is the record (a full-size Ethernet frame and its block fit); a longer record
 * takes a second read. Reading a little past a short record costs less than a second call. */
#define PICKED_READ 2048u

struct picked {
    int fd;
    bool ng, swap;
    uint64_t size, header_end;
    uint8_t *header;              /* the file's first header_end bytes */
    uint64_t *offs;               /* offsets of the keys' records, ascending, each once */
    size_t n;
    size_t next, end;             /* offs[next..end) are still to be handed out */
    uint64_t header_done;         /* header bytes handed out */
    uint8_t stage[PICKED_READ];   /* a record read for a dst with less room than PICKED_READ */
    size_t stage_pos, stage_len;
    uint64_t part_off, part_left; /* the rest of a record longer than its first read */
    uint64_t records;
    char err[256];
};

static int addr_key(const char *s, uint8_t a[16])
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
static int port_key(const char *s, uint8_t key[16])
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

int picked_add_key(struct picked_keys *keys, const char *arg, bool port)
{
    if (keys->n == PICKED_MAX_KEYS || (port ? port_key(arg, keys->key[keys->n]) : addr_key(arg, keys->key[keys->n])))
        return -1;
    keys->n++;
    return 0;
}

static int fail(struct picked *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct picked *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* The offsets of the records holding key k: appended to p->offs (cap: its room). */
static int key_offsets(struct picked *p, int pfd, uint64_t nkeys, const uint8_t k[16], size_t *cap)
{
    uint64_t lo = 0, hi = nkeys;
    uint8_t e[POS_ENTRY];
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (pread(pfd, e, POS_ENTRY, (off_t)(POS_HEADER + mid * POS_ENTRY)) != POS_ENTRY)
            return -1;
        int c = memcmp(e, k, 16);
        if (c < 0) {
            lo = mid + 1;
        } else if (c > 0) {
            hi = mid;
        } else {
            uint64_t first, count;
            memcpy(&first, e + 16, 8);
            memcpy(&count, e + 24, 8);
            if (p->n + count > *cap) {
                size_t nc = (p->n + count) * 2;
                uint64_t *no = realloc(p->offs, nc * sizeof *no);
                if (!no)
                    return -1;
                p->offs = no;
                *cap = nc;
            }
            off_t at = (off_t)(POS_HEADER + nkeys * POS_ENTRY + first * 8);
            if (count && pread(pfd, p->offs + p->n, count * 8, at) != (ssize_t)(count * 8))
                return -1;
            p->n += count;
            return 0;
        }
    }
    return 0; /* not in this file */
}

static int by_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t rd32(const uint8_t *b, bool swap)
{
    uint32_t v;
    memcpy(&v, b, 4);
    return swap ? __builtin_bswap32(v) : v;
}

/* The length of the record whose first 16 bytes are at b (at offset off); 0 when it cannot be a
 * whole record of this file. */
static uint64_t record_len(const struct picked *p, const uint8_t *b, uint64_t off)
{
    uint64_t len = p->ng ? rd32(b + 4, p->swap) : 16u + (uint64_t)rd32(b + 8, p->swap);
    return len < 16 || len > PR_MAX_BLOCK || off < p->header_end || off + len > p->size ? 0 : len;
}

/* The timestamp of the record at off, read by pcapread after the file's header; -1 on error. */
static int record_ts(const struct picked *p, uint64_t off, uint64_t *ts)
{
    uint8_t rh[16];
    uint64_t len = pread(p->fd, rh, 16, (off_t)off) == 16 ? record_len(p, rh, off) : 0;
    uint8_t *buf = len ? malloc(p->header_end + len) : NULL;
    int rc = -1;
    if (buf && pread(p->fd, buf + p->header_end, len, (off_t)off) == (ssize_t)len) {
        memcpy(buf, p->header, p->header_end);
        pr_reader *r;
        char err[160];
        struct pr_packet pkt;
        if (pr_open_mem(&r, buf, p->header_end + len, PR_STRICT, err, sizeof err) == 0) {
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
static int lower_bound(const struct picked *p, uint64_t t, size_t *at)
{
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t ts;
        if (record_ts(p, p->offs[mid], &ts) < 0)
            return -1;
        if (ts < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    *at = lo;
    return 0;
}

/* The keys' offsets, ascending and each once (a record holds several of the keys). */
static int collect(struct picked *p, int pfd, uint64_t nkeys, const struct picked_keys *keys)
{
    size_t cap = 0;
    for (size_t k = 0; k < keys->n; k++)
        if (key_offsets(p, pfd, nkeys, keys->key[k], &cap) < 0)
            return -1;
    bool sorted = true;
    for (size_t i = 1; i < p->n && sorted; i++)
        sorted = p->offs[i - 1] < p->offs[i];
    if (!sorted && p->n) {
        qsort(p->offs, p->n, sizeof *p->offs, by_u64);
        size_t u = 1;
        for (size_t i = 1; i < p->n; i++)
            if (p->offs[i] != p->offs[u - 1])
                p->offs[u++] = p->offs[i];
        p->n = u;
    }
    return 0;
}

int picked_open(struct picked **out, const char *path, const char *pos_path, const struct picked_keys *keys,
                bool has_from, uint64_t from_ns, bool has_to, uint64_t to_ns, char *err, size_t errlen)
{
    struct picked *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return 1;
    }
    p->fd = open(path, O_RDONLY | O_CLOEXEC);
    int pfd = open(pos_path, O_RDONLY | O_CLOEXEC), rc = 0;
    uint8_t h[POS_HEADER], first[12];
    uint64_t nkeys = 0, noffs = 0;
    struct stat pst, st;
    if (p->fd < 0 || pfd < 0 || fstat(pfd, &pst) < 0 || fstat(p->fd, &st) < 0) {
        rc = 2, fail(p, "%s: %s", p->fd < 0 ? path : pos_path, strerror(errno));
    } else if (pread(pfd, h, POS_HEADER, 0) != POS_HEADER || memcmp(h, "SLPOS001", 8) != 0) {
        rc = 2, fail(p, "%s: not a positions file", pos_path);
    } else {
        memcpy(&p->header_end, h + 8, 8);
        memcpy(&p->size, h + 16, 8);
        memcpy(&nkeys, h + 24, 8);
        memcpy(&noffs, h + 32, 8);
        if ((uint64_t)pst.st_size != POS_HEADER + nkeys * POS_ENTRY + noffs * 8 || p->size != (uint64_t)st.st_size ||
            p->header_end > p->size || p->header_end > PR_MAX_BLOCK || pread(p->fd, first, 12, 0) != 12)
            rc = 2, fail(p, "%s: the positions %s do not describe it (index it again)", path, pos_path);
    }
    if (!rc && collect(p, pfd, nkeys, keys) < 0)
        rc = 1, fail(p, "%s: cannot read the positions", pos_path);
    if (!rc) {
        /* pcapng: block length at +4 in the section's byte order; pcap: caplen at +8 of a 16-byte header. */
        p->ng = rd32(first, false) == 0x0A0D0D0A;
        p->swap = p->ng ? rd32(first + 8, false) != 0x1A2B3C4D
                        : rd32(first, false) != 0xA1B2C3D4 && rd32(first, false) != 0xA1B23C4D;
        p->header = malloc(p->header_end ? p->header_end : 1);
        if (!p->header || pread(p->fd, p->header, p->header_end, 0) != (ssize_t)p->header_end)
            rc = 1, fail(p, "%s: cannot read its header", path);
    }
    p->end = p->n;
    if (!rc && p->n && ((has_from && lower_bound(p, from_ns, &p->next) < 0) ||
                        (has_to && lower_bound(p, to_ns, &p->end) < 0)))
        rc = 1, fail(p, "%s: cannot read the time of a listed record", path);
    if (p->end < p->next)
        p->end = p->next;
    if (pfd >= 0)
        close(pfd);
    if (rc) {
        snprintf(err, errlen, "%s", p->err);
        picked_close(p);
        return rc;
    }
    *out = p;
    return 0;
}

long picked_read(void *ctx, uint8_t *dst, size_t room)
{
    struct picked *p = ctx;
    size_t got = 0;
    while (got < room) {
        if (p->header_done < p->header_end) {
            uint64_t k = p->header_end - p->header_done < room - got ? p->header_end - p->header_done : room - got;
            memcpy(dst + got, p->header + p->header_done, (size_t)k);
            p->header_done += k;
            got += (size_t)k;
        } else if (p->stage_pos < p->stage_len) {
            size_t k = p->stage_len - p->stage_pos < room - got ? p->stage_len - p->stage_pos : room - got;
            memcpy(dst + got, p->stage + p->stage_pos, k);
            p->stage_pos += k;
            got += k;
        } else if (p->part_left) {
            size_t k = p->part_left < room - got ? (size_t)p->part_left : room - got;
            ssize_t r = pread(p->fd, dst + got, k, (off_t)p->part_off);
            if (r <= 0)
                return fail(p, "the record before offset %llu is not whole: %s",
                            (unsigned long long)(p->part_off + p->part_left), r < 0 ? strerror(errno) : "end of file");
            p->part_off += (uint64_t)r;
            p->part_left -= (uint64_t)r;
            got += (size_t)r;
        } else if (p->next == p->end || (got > 0 && room - got < PICKED_READ)) {
            break; /* the end, or the next record in one read next time */
        } else {
            uint64_t off = p->offs[p->next];
            uint8_t *at = room - got >= PICKED_READ ? dst + got : p->stage;
            size_t want = off < p->size && p->size - off < PICKED_READ ? (size_t)(p->size - off) : PICKED_READ;
            ssize_t r = off < p->size ? pread(p->fd, at, want, (off_t)off) : 0;
            uint64_t len = r >= 16 ? record_len(p, at, off) : 0;
            if (!len)
                return fail(p, "no whole record at offset %llu", (unsigned long long)off);
            size_t have = (uint64_t)r < len ? (size_t)r : (size_t)len;
            if (at == p->stage)
                p->stage_pos = 0, p->stage_len = have;
            else
                got += have;
            p->part_off = off + have;
            p->part_left = len - have;
            p->next++;
            p->records++;
        }
    }
    return (long)got;
}

const char *picked_error(void *ctx)
{
    return ((struct picked *)ctx)->err;
}

uint64_t picked_records(const struct picked *p)
{
    return p->records;
}

uint64_t picked_listed(const struct picked *p)
{
    return p->n;
}

void picked_close(struct picked *p)
{
    if (!p)
        return;
    if (p->fd >= 0)
        close(p->fd);
    free(p->offs);
    free(p->header);
    free(p);
}
