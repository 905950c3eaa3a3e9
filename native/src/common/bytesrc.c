#include "bytesrc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define CHUNK (1u << 20)

struct bytesrc {
    int fd;                 /* -1 for memory and fill sources */
    bs_fill_fn fill;        /* fill source */
    const char *(*fill_err)(void *ctx);
    void *fill_ctx;
    const uint8_t *mem;     /* memory source */
    size_t mem_len;
    uint8_t *buf;           /* decoded bytes: [start, end) unconsumed */
    size_t cap, start, end;
    uint64_t offset;        /* stream offset of buf[start] */
    bool eof;
    bool zstd;
    ZSTD_DCtx *dctx;
    uint8_t *zin;           /* compressed input */
    ZSTD_inBuffer zib;
    bool zin_eof;
    uint64_t size_hint, raw_read;
    bool lenient, failed;
    uint64_t gaps;          /* lenient: damaged zstd frames skipped */
    uint64_t gap_at[64];    /* decoded offsets where a skipped frame left a hole, ascending */
    size_t ngap;
    char err[160];
};

static const uint8_t ZSTD_MAGIC_BYTES[4] = {0x28, 0xb5, 0x2f, 0xfd};

static int fail(bytesrc *bs, const char *msg)
{
    snprintf(bs->err, sizeof bs->err, "%s", msg);
    return -1;
}

static long read_raw(bytesrc *bs, uint8_t *dst, size_t n)
{
    for (;;) {
        ssize_t r = read(bs->fd, dst, n);
        if (r >= 0) {
            bs->raw_read += (uint64_t)r;
            return (long)r;
        }
        if (errno != EINTR) {
            snprintf(bs->err, sizeof bs->err, "read: %s", strerror(errno));
            return -1;
        }
    }
}

static int init(bytesrc **out, bytesrc *bs, char *err, size_t errlen)
{
    /* Memory sources are often tiny (fuzzing, tests): start small, peeks grow it. Fill sources
     * too: a buffer that stays in the cache beats a large one (measured on picked records). */
    bs->cap = bs->fd < 0 ? 65536 : CHUNK * 4;
    bs->buf = malloc(bs->cap);
    if (!bs->buf) {
        snprintf(err, errlen, "out of memory");
        free(bs);
        return -1;
    }
    *out = bs;
    return 0;
}

int bs_open_file(bytesrc **out, const char *path, char *err, size_t errlen)
{
    bytesrc *bs = calloc(1, sizeof *bs);
    if (!bs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (strcmp(path, "-") == 0) {
        bs->fd = 0;
    } else {
        bs->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (bs->fd < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            free(bs);
            return -1;
        }
        struct stat st;
        if (fstat(bs->fd, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                snprintf(err, errlen, "%s: is a directory", path);
                close(bs->fd);
                free(bs);
                return -1;
            }
            if (S_ISREG(st.st_mode))
                bs->size_hint = (uint64_t)st.st_size;
        }
    }
    if (init(out, bs, err, errlen) < 0)
        return -1;
    /* Sniff the zstd magic from the first raw bytes; they become the first decoded bytes
     * when the stream is not compressed. */
    long got = 0;
    while (got < 4) {
        long r = read_raw(bs, bs->buf + got, (size_t)(4 - got));
        if (r < 0) {
            snprintf(err, errlen, "%s: %s", path, bs->err);
            bs_close(bs);
            return -1;
        }
        if (r == 0)
            break;
        got += r;
    }
    if (got == 4 && memcmp(bs->buf, ZSTD_MAGIC_BYTES, 4) == 0) {
        bs->zstd = true;
        bs->dctx = ZSTD_createDCtx();
        bs->zin = malloc(ZSTD_DStreamInSize() > CHUNK ? ZSTD_DStreamInSize() : CHUNK);
        if (!bs->dctx || !bs->zin) {
            snprintf(err, errlen, "out of memory");
            bs_close(bs);
            return -1;
        }
        memcpy(bs->zin, ZSTD_MAGIC_BYTES, 4);
        bs->zib.src = bs->zin;
        bs->zib.size = 4;
        bs->zib.pos = 0;
        bs->size_hint = 0;
    } else {
        bs->end = (size_t)got;
    }
    return 0;
}

int bs_open_mem(bytesrc **out, const uint8_t *data, size_t len, char *err, size_t errlen)
{
    bytesrc *bs = calloc(1, sizeof *bs);
    if (!bs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    bs->fd = -1;
    bs->size_hint = len;
    if (init(out, bs, err, errlen) < 0)
        return -1;
    if (len >= 4 && memcmp(data, ZSTD_MAGIC_BYTES, 4) == 0) {
        bs->zstd = true;
        bs->dctx = ZSTD_createDCtx();
        if (!bs->dctx) {
            snprintf(err, errlen, "out of memory");
            bs_close(bs);
            return -1;
        }
        bs->zib.src = data;
        bs->zib.size = len;
        bs->zin_eof = true;
    } else {
        bs->mem = data;
        bs->mem_len = len;
    }
    return 0;
}

int bs_open_fn(bytesrc **out, bs_fill_fn fill, const char *(*errmsg)(void *ctx), void *ctx, char *err,
               size_t errlen)
{
    bytesrc *bs = calloc(1, sizeof *bs);
    if (!bs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    bs->fd = -1;
    bs->fill = fill;
    bs->fill_err = errmsg;
    bs->fill_ctx = ctx;
    return init(out, bs, err, errlen);
}

void bs_close(bytesrc *bs)
{
    if (!bs)
        return;
    if (bs->fd > 0)
        close(bs->fd);
    ZSTD_freeDCtx(bs->dctx);
    free(bs->zin);
    free(bs->buf);
    free(bs);
}

/* Lenient: after damaged compressed data, continue at the next zstd frame (a writer that
 * compresses in independent frames loses only the damaged one). False if there is none. */
static bool next_frame(bytesrc *bs)
{
    size_t start = bs->zib.pos + 1;
    for (;;) {
        const uint8_t *src = bs->zib.src;
        for (size_t i = start; i + 4 <= bs->zib.size; i++) {
            if (memcmp(src + i, ZSTD_MAGIC_BYTES, 4) == 0) {
                bs->zib.pos = i;
                ZSTD_DCtx_reset(bs->dctx, ZSTD_reset_session_only);
                bs->gaps++;
                return true;
            }
        }
        if (bs->zin_eof || !bs->zin)
            return false;
        /* Keep the last 3 bytes (a magic may straddle the refill) and read on. */
        size_t keep = bs->zib.size - (start + 3 > bs->zib.size ? (start < bs->zib.size ? start : bs->zib.size)
                                                                 : bs->zib.size - 3);
        memmove(bs->zin, src + bs->zib.size - keep, keep);
        long r = read_raw(bs, bs->zin + keep, CHUNK - keep);
        if (r <= 0) {
            bs->zin_eof = true;
            return false;
        }
        bs->zib.src = bs->zin;
        bs->zib.size = keep + (size_t)r;
        bs->zib.pos = 0;
        start = 0;
    }
}

/* Append decoded bytes to buf[end..cap). Returns bytes added, 0 at the end, -1 on error. */
static long produce(bytesrc *bs)
{
    size_t room = bs->cap - bs->end;
    if (bs->fill) {
        long r = room ? bs->fill(bs->fill_ctx, bs->buf + bs->end, room) : 0;
        if (r < 0)
            return fail(bs, bs->fill_err(bs->fill_ctx));
        bs->end += (size_t)r;
        bs->raw_read += (uint64_t)r;
        return r;
    }
    if (!bs->zstd) {
        if (bs->fd < 0) {
            size_t n = bs->mem_len < room ? bs->mem_len : room;
            memcpy(bs->buf + bs->end, bs->mem, n);
            bs->mem += n;
            bs->mem_len -= n;
            bs->end += n;
            return (long)n;
        }
        long r = read_raw(bs, bs->buf + bs->end, room < CHUNK ? room : CHUNK);
        if (r > 0)
            bs->end += (size_t)r;
        return r;
    }
    for (;;) {
        if (bs->zib.pos == bs->zib.size && !bs->zin_eof) {
            long r = read_raw(bs, bs->zin, CHUNK);
            if (r < 0)
                return -1;
            if (r == 0)
                bs->zin_eof = true;
            bs->zib.src = bs->zin;
            bs->zib.size = (size_t)r;
            bs->zib.pos = 0;
        }
        if (bs->zib.pos == bs->zib.size && bs->zin_eof)
            return 0;
        ZSTD_outBuffer ob = {bs->buf + bs->end, room, 0};
        size_t rc = ZSTD_decompressStream(bs->dctx, &ob, &bs->zib);
        if (ZSTD_isError(rc)) {
            snprintf(bs->err, sizeof bs->err, "zstd: %s", ZSTD_getErrorName(rc));
            bs->end += ob.pos; /* what was decoded before the damage still counts */
            if (bs->lenient && next_frame(bs)) {
                if (bs->ngap == sizeof bs->gap_at / sizeof bs->gap_at[0]) {
                    memmove(bs->gap_at, bs->gap_at + 1, (bs->ngap - 1) * sizeof bs->gap_at[0]);
                    bs->ngap--;
                }
                bs->gap_at[bs->ngap++] = bs->offset + (bs->end - bs->start);
                if (ob.pos > 0)
                    return (long)ob.pos;
                continue;
            }
            return -1;
        }
        bs->end += ob.pos;
        if (ob.pos > 0)
            return (long)ob.pos;
    }
}

long bs_peek(bytesrc *bs, size_t n, const uint8_t **p)
{
    if (bs->end - bs->start < n && !bs->eof) {
        if (bs->start > 0) {
            memmove(bs->buf, bs->buf + bs->start, bs->end - bs->start);
            bs->end -= bs->start;
            bs->start = 0;
        }
        if (n > bs->cap) {
            size_t cap = bs->cap;
            while (cap < n)
                cap *= 2;
            uint8_t *nb = realloc(bs->buf, cap);
            if (!nb)
                return fail(bs, "out of memory");
            bs->buf = nb;
            bs->cap = cap;
        }
        while (bs->end < n) {
            long r = produce(bs);
            if (r < 0 && bs->lenient) {
                bs->failed = true;
                bs->eof = true;
                break;
            }
            if (r < 0)
                return -1;
            if (r == 0) {
                bs->eof = true;
                break;
            }
        }
    }
    size_t avail = bs->end - bs->start;
    *p = bs->buf + bs->start;
    return (long)(avail < n ? avail : n);
}

int bs_skip(bytesrc *bs, uint64_t n)
{
    while (n > 0) {
        size_t avail = bs->end - bs->start;
        if (avail == 0) {
            const uint8_t *p;
            long r = bs_peek(bs, n < bs->cap ? (size_t)n : bs->cap, &p);
            if (r < 0)
                return -1;
            if (r == 0)
                return 0;
            continue;
        }
        size_t k = avail < n ? avail : (size_t)n;
        bs->start += k;
        bs->offset += k;
        n -= k;
    }
    return 0;
}

uint64_t bs_offset(const bytesrc *bs) { return bs->offset; }
bool bs_compressed(const bytesrc *bs) { return bs->zstd; }
uint64_t bs_size_hint(const bytesrc *bs) { return bs->size_hint; }
uint64_t bs_raw_offset(const bytesrc *bs) { return bs->fd < 0 && !bs->fill ? bs->offset : bs->raw_read; }
const char *bs_error(const bytesrc *bs) { return bs->err; }

void bs_set_lenient(bytesrc *bs) { bs->lenient = true; }
bool bs_failed(const bytesrc *bs) { return bs->failed; }
uint64_t bs_gaps(const bytesrc *bs) { return bs->gaps; }

uint64_t bs_next_gap(bytesrc *bs, uint64_t from)
{
    size_t k = 0;
    while (k < bs->ngap && bs->gap_at[k] < from)
        k++;
    if (k) {
        memmove(bs->gap_at, bs->gap_at + k, (bs->ngap - k) * sizeof bs->gap_at[0]);
        bs->ngap -= k;
    }
    return bs->ngap ? bs->gap_at[0] : UINT64_MAX;
}
