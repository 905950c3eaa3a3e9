#include "pcapout.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <zstd.h>

#include "outfile.h"
#include "pcapenc.h"

#define OUTBUF (4u << 20)

struct pcapout {
    struct outfile of;
    char *path;
    struct po_options opt;
    uint8_t *buf;
    size_t len;
    ZSTD_CCtx *cctx;
    uint8_t *zbuf;
    size_t zcap;
    bool header_done;       /* pcap global header written */
    uint16_t pcap_linktype;
    uint32_t nifs;
    uint8_t *iface_ns;      /* pcapng: 1 when interface i is written in ns */
    uint64_t packets;
    char err[256];
};

static int failf(pcapout *po, const char *what)
{
    snprintf(po->err, sizeof po->err, "%s: %s: %s", po->path, what, strerror(errno));
    return -1;
}

static int write_all(pcapout *po, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(po->of.fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return failf(po, "write");
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int flush_buf(pcapout *po, bool end)
{
    if (!po->cctx) {
        int rc = write_all(po, po->buf, po->len);
        po->len = 0;
        return rc;
    }
    ZSTD_inBuffer in = {po->buf, po->len, 0};
    ZSTD_EndDirective mode = end ? ZSTD_e_end : ZSTD_e_continue;
    for (;;) {
        ZSTD_outBuffer out = {po->zbuf, po->zcap, 0};
        size_t rem = ZSTD_compressStream2(po->cctx, &out, &in, mode);
        if (ZSTD_isError(rem)) {
            snprintf(po->err, sizeof po->err, "%s: zstd: %s", po->path, ZSTD_getErrorName(rem));
            return -1;
        }
        if (write_all(po, po->zbuf, out.pos) < 0)
            return -1;
        if (end ? rem == 0 : in.pos == in.size)
            break;
    }
    po->len = 0;
    return 0;
}

/* reserve when the record does not fit behind what the buffer holds: flush, or grow for a record
 * larger than the buffer. Out of line, so that the per-record path below stays small. */
static __attribute__((noinline)) uint8_t *reserve_slow(pcapout *po, size_t n)
{
    if (po->len > 0 && flush_buf(po, false) < 0)
        return NULL;
    if (n > OUTBUF) {
        uint8_t *nb = realloc(po->buf, n);
        if (!nb) {
            snprintf(po->err, sizeof po->err, "out of memory");
            return NULL;
        }
        po->buf = nb;
    }
    return po->buf + po->len;
}

/* Room for n more bytes in the buffer (n may exceed the buffer: then it grows; NULL: po->err
 * says why). */
static inline uint8_t *reserve(pcapout *po, size_t n)
{
    return po->len + n <= OUTBUF ? po->buf + po->len : reserve_slow(po, n);
}

int po_parse_format(const char *s)
{
    if (strcmp(s, "pcap") == 0)
        return PR_FORMAT_PCAP;
    if (strcmp(s, "pcapng") == 0)
        return PR_FORMAT_PCAPNG;
    return -1;
}

static int put_shb(pcapout *po)
{
    struct utsname u;
    char os[200] = "", appl[64];
    if (uname(&u) == 0)
        snprintf(os, sizeof os, "%s %s", u.sysname, u.release);
    snprintf(appl, sizeof appl, "sluice-pcap");
    struct pcapenc_shb shb = {.hardware = uname(&u) == 0 ? u.machine : NULL, .os = os,
                              .userappl = appl, .comment = po->opt.comment, .key_id = po->opt.key_id};
    size_t n = pcapenc_shb(NULL, 0, &shb);
    uint8_t *p = reserve(po, n);
    if (!p)
        return -1;
    po->len += pcapenc_shb(p, n, &shb);
    return 0;
}

int po_open(pcapout **out, const char *path, const struct po_options *opt, char *err, size_t errlen)
{
    pcapout *po = calloc(1, sizeof *po);
    if (po)
        po->of.fd = -1;
    if (!po || !(po->buf = malloc(OUTBUF)) || !(po->path = strdup(path))) {
        snprintf(err, errlen, "out of memory");
        if (po)
            free(po->buf);
        free(po);
        return -1;
    }
    po->opt = *opt;
    if (of_open(&po->of, path, err, errlen) < 0) {
        po_abort(po);
        return -1;
    }
    if (opt->zstd_level > 0) {
        po->cctx = ZSTD_createCCtx();
        po->zcap = ZSTD_CStreamOutSize() * 8;
        po->zbuf = malloc(po->zcap);
        if (!po->cctx || !po->zbuf) {
            snprintf(err, errlen, "out of memory");
            po_abort(po);
            return -1;
        }
        ZSTD_CCtx_setParameter(po->cctx, ZSTD_c_compressionLevel, opt->zstd_level);
    }
    if (opt->format == PR_FORMAT_PCAPNG && put_shb(po) < 0) {
        snprintf(err, errlen, "%s", po->err);
        po_abort(po);
        return -1;
    }
    *out = po;
    return 0;
}

int po_add_iface(pcapout *po, uint16_t linktype, uint32_t snaplen, const char *name, bool nanosecond)
{
    if (po->opt.format == PR_FORMAT_PCAP) {
        if (po->header_done) {
            if (linktype == po->pcap_linktype)
                return 0;
            snprintf(po->err, sizeof po->err,
                     "%s: pcap holds one link type (%u) but the input also has %u: use --format pcapng",
                     po->path, po->pcap_linktype, linktype);
            return -1;
        }
        uint8_t *p = reserve(po, PCAP_GLOBAL_HDR_LEN);
        if (!p)
            return -1;
        po->len += pcapenc_pcap_header(p, PCAP_GLOBAL_HDR_LEN,
                                       po->opt.nanosecond ? PCAP_MAGIC_NS : PCAP_MAGIC_US, linktype,
                                       snaplen ? snaplen : PR_MAX_SNAPLEN);
        po->header_done = true;
        po->pcap_linktype = linktype;
        return 0;
    }
    bool ns = po->opt.iface_precision ? nanosecond : po->opt.nanosecond;
    if ((po->nifs & (po->nifs - 1)) == 0) {
        uint8_t *g = realloc(po->iface_ns, po->nifs ? 2 * (size_t)po->nifs : 1);
        if (!g) {
            snprintf(po->err, sizeof po->err, "out of memory");
            return -1;
        }
        po->iface_ns = g;
    }
    po->iface_ns[po->nifs] = ns;
    struct pcapenc_idb idb = {.linktype = linktype, .snaplen = snaplen, .name = name,
                              .tsresol = ns ? PCAPENC_TSRESOL_NS : PCAPENC_TSRESOL_US};
    size_t n = pcapenc_idb(NULL, 0, &idb);
    uint8_t *p = reserve(po, n);
    if (!p)
        return -1;
    po->len += pcapenc_idb(p, n, &idb);
    return (int)po->nifs++;
}

int po_write(pcapout *po, uint32_t iface, uint64_t ts_ns, const uint8_t *data, uint32_t caplen,
             uint32_t origlen)
{
    if (po->opt.format == PR_FORMAT_PCAP) {
        if (ts_ns / 1000000000u > UINT32_MAX) {
            snprintf(po->err, sizeof po->err, "%s: packet %llu is stamped after 2106-02-07T06:28:15Z, which pcap "
                     "cannot hold: use --format pcapng", po->path, (unsigned long long)po->packets + 1);
            return -1;
        }
        size_t n = PCAP_RECORD_HDR_LEN + caplen;
        uint8_t *p = reserve(po, n);
        if (!p)
            return -1;
        uint32_t sec = (uint32_t)(ts_ns / 1000000000u), ns = (uint32_t)(ts_ns % 1000000000u);
        pcapenc_pcap_record(p, n, sec, po->opt.nanosecond ? ns : ns / 1000u, data, caplen, origlen);
        po->len += n;
    } else {
        size_t n = pcapenc_epb_len(caplen);
        uint8_t *p = reserve(po, n);
        if (!p)
            return -1;
        uint64_t ts = iface < po->nifs && po->iface_ns[iface] ? ts_ns : ts_ns / 1000u;
        pcapenc_epb(p, n, iface, ts, data, caplen, origlen);
        po->len += n;
    }
    po->packets++;
    return 0;
}

int po_write_untimed(pcapout *po, uint32_t iface, const uint8_t *data, uint32_t caplen, uint32_t origlen)
{
    if (po->opt.format == PR_FORMAT_PCAP || iface != 0) {
        snprintf(po->err, sizeof po->err, "%s: packet %llu has no timestamp (a Simple Packet Block) and %s "
                 "cannot say so without inventing one: use --format pcapng", po->path,
                 (unsigned long long)po->packets + 1,
                 po->opt.format == PR_FORMAT_PCAP ? "pcap" : "an output where it is not on interface 0");
        return -1;
    }
    size_t n = 16 + (((size_t)caplen + 3) & ~(size_t)3);
    uint8_t *p = reserve(po, n);
    if (!p)
        return -1;
    memset(p, 0, n);
    pcapenc_put32(p, 3);
    pcapenc_put32(p + 4, (uint32_t)n);
    pcapenc_put32(p + 8, origlen);
    memcpy(p + 12, data, caplen);
    pcapenc_put32(p + n - 4, (uint32_t)n);
    po->len += n;
    po->packets++;
    return 0;
}

int po_commit(pcapout *po, char *err, size_t errlen)
{
    int rc = 0;
    if (po->opt.format == PR_FORMAT_PCAP && !po->header_done)
        rc = po_add_iface(po, 1, PR_MAX_SNAPLEN, NULL, po->opt.nanosecond) < 0 ? -1 : 0;
    if (rc == 0)
        rc = flush_buf(po, true);
    if (rc < 0) {
        snprintf(err, errlen, "%s", po->err);
        po_abort(po);
        return -1;
    }
    rc = of_commit(&po->of, err, errlen);
    po_abort(po);
    return rc;
}

void po_abort(pcapout *po)
{
    if (!po)
        return;
    of_abort(&po->of);
    ZSTD_freeCCtx(po->cctx);
    free(po->zbuf);
    free(po->iface_ns);
    free(po->path);
    free(po->buf);
    free(po);
}

uint64_t po_packets(const pcapout *po) { return po->packets; }
const char *po_error(const pcapout *po) { return po->err; }
