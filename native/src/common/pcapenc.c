/* pcapenc: pcapng SHB/IDB/ISB and pcap global header encoders (see pcapenc.h). */
#include "pcapenc.h"

#define OPT_ENDOFOPT 0
#define OPT_COMMENT 1
#define SHB_HARDWARE 2
#define SHB_OS 3
#define SHB_USERAPPL 4
#define IF_NAME 2
#define IF_DESCRIPTION 3
#define IF_TSRESOL 9
#define IF_FILTER 11
#define ISB_STARTTIME 2
#define ISB_ENDTIME 3
#define ISB_IFRECV 4
#define ISB_IFDROP 5
#define ISB_OSDROP 7

/* A cursor that measures always and writes only while everything fits, so one pass both sizes
 * and encodes a block. */
struct enc {
    uint8_t *buf;
    size_t cap;
    size_t len;
};

static void put_bytes(struct enc *e, const void *p, size_t n)
{
    if (e->len + n <= e->cap && n > 0)
        memcpy(e->buf + e->len, p, n);
    e->len += n;
}

static void put_u16(struct enc *e, uint16_t v) { put_bytes(e, &v, 2); }
static void put_u32(struct enc *e, uint32_t v) { put_bytes(e, &v, 4); }

static void put_pad(struct enc *e, size_t n)
{
    static const uint8_t zeros[4] = {0};
    put_bytes(e, zeros, n);
}

static size_t pad4(size_t n) { return (4 - (n & 3)) & 3; }

static void opt_raw(struct enc *e, uint16_t code, const void *val, size_t len)
{
    put_u16(e, code);
    put_u16(e, (uint16_t)len);
    put_bytes(e, val, len);
    put_pad(e, pad4(len));
}

static void opt_str(struct enc *e, uint16_t code, const char *s)
{
    if (s == NULL || s[0] == '\0')
        return;
    size_t n = strlen(s);
    if (n > 0xFFF0)
        n = 0xFFF0; /* an option length is 16 bits */
    opt_raw(e, code, s, n);
}

static void opt_u64(struct enc *e, uint16_t code, uint64_t v) { opt_raw(e, code, &v, 8); }

static void opt_end(struct enc *e)
{
    put_u16(e, OPT_ENDOFOPT);
    put_u16(e, 0);
}

/* Block header with a placeholder length; finish_block patches both length fields. */
static size_t begin_block(struct enc *e, uint32_t type)
{
    size_t start = e->len;
    put_u32(e, type);
    put_u32(e, 0);
    return start;
}

static size_t finish_block(struct enc *e, size_t start)
{
    uint32_t total = (uint32_t)(e->len + 4 - start);
    put_u32(e, total);
    if (e->len <= e->cap)
        pcapenc_put32(e->buf + start + 4, total);
    return e->len;
}

static size_t finish(struct enc *e)
{
    return e->len;
}

/* "Nothing written if too small": measure first with a zero-capacity cursor, then encode. */
#define MEASURE_THEN_ENCODE(fn, buf, cap, ...)        \
    do {                                              \
        size_t need_ = fn(NULL, 0, __VA_ARGS__);      \
        if (need_ > (cap))                            \
            return need_;                             \
        return fn((buf), (cap), __VA_ARGS__);         \
    } while (0)

static size_t encode_shb(uint8_t *buf, size_t cap, const struct pcapenc_shb *shb)
{
    struct enc e = {buf, cap, 0};
    size_t start = begin_block(&e, PCAPNG_BT_SHB);
    put_u32(&e, PCAPNG_BYTE_ORDER_MAGIC);
    put_u16(&e, 1); /* major */
    put_u16(&e, 0); /* minor */
    uint64_t section_len = UINT64_MAX; /* unknown: the writer streams */
    put_bytes(&e, &section_len, 8);
    opt_str(&e, OPT_COMMENT, shb->comment);
    opt_str(&e, SHB_HARDWARE, shb->hardware);
    opt_str(&e, SHB_OS, shb->os);
    opt_str(&e, SHB_USERAPPL, shb->userappl);
    if (shb->key_id != NULL && shb->key_id[0] != '\0') {
        /* custom option value: PEN then the UTF-8 string */
        size_t n = strlen(shb->key_id);
        if (n > 0xFF00)
            n = 0xFF00;
        put_u16(&e, PCAPNG_OPT_CUSTOM_UTF8);
        put_u16(&e, (uint16_t)(4 + n));
        put_u32(&e, SLUICE_PEN);
        put_bytes(&e, shb->key_id, n);
        put_pad(&e, pad4(4 + n));
    }
    opt_end(&e);
    finish_block(&e, start);
    return finish(&e);
}

static size_t encode_idb(uint8_t *buf, size_t cap, const struct pcapenc_idb *idb)
{
    struct enc e = {buf, cap, 0};
    size_t start = begin_block(&e, PCAPNG_BT_IDB);
    put_u16(&e, idb->linktype);
    put_u16(&e, 0);
    put_u32(&e, idb->snaplen);
    opt_str(&e, IF_NAME, idb->name);
    opt_str(&e, IF_DESCRIPTION, idb->description);
    if (idb->filter != NULL && idb->filter[0] != '\0') {
        /* if_filter: first byte 0 = a libpcap filter string */
        size_t n = strlen(idb->filter);
        if (n > 0xFF00)
            n = 0xFF00;
        put_u16(&e, IF_FILTER);
        put_u16(&e, (uint16_t)(1 + n));
        put_pad(&e, 1);
        put_bytes(&e, idb->filter, n);
        put_pad(&e, pad4(1 + n));
    }
    uint8_t resol = (uint8_t)idb->tsresol;
    if (resol != PCAPENC_TSRESOL_US) /* 6 is the default: omitting it is the same thing */
        opt_raw(&e, IF_TSRESOL, &resol, 1);
    opt_end(&e);
    finish_block(&e, start);
    return finish(&e);
}

static size_t encode_isb(uint8_t *buf, size_t cap, const struct pcapenc_isb *isb)
{
    struct enc e = {buf, cap, 0};
    size_t start = begin_block(&e, PCAPNG_BT_ISB);
    put_u32(&e, isb->if_id);
    put_u32(&e, (uint32_t)(isb->ts >> 32));
    put_u32(&e, (uint32_t)isb->ts);
    opt_str(&e, OPT_COMMENT, isb->comment);
    if (isb->starttime != 0) {
        uint32_t v[2] = {(uint32_t)(isb->starttime >> 32), (uint32_t)isb->starttime};
        opt_raw(&e, ISB_STARTTIME, v, 8);
    }
    if (isb->endtime != 0) {
        uint32_t v[2] = {(uint32_t)(isb->endtime >> 32), (uint32_t)isb->endtime};
        opt_raw(&e, ISB_ENDTIME, v, 8);
    }
    if (isb->has_counters) {
        opt_u64(&e, ISB_IFRECV, isb->ifrecv);
        opt_u64(&e, ISB_IFDROP, isb->ifdrop);
        opt_u64(&e, ISB_OSDROP, isb->osdrop);
    }
    opt_end(&e);
    finish_block(&e, start);
    return finish(&e);
}

size_t pcapenc_pcap_header(uint8_t *buf, size_t cap, uint32_t magic, uint32_t linktype,
                           uint32_t snaplen)
{
    if (cap < PCAP_GLOBAL_HDR_LEN)
        return PCAP_GLOBAL_HDR_LEN;
    struct enc e = {buf, cap, 0};
    put_u32(&e, magic);
    put_u16(&e, 2);
    put_u16(&e, 4);
    put_u32(&e, 0); /* thiszone */
    put_u32(&e, 0); /* sigfigs */
    put_u32(&e, snaplen);
    put_u32(&e, linktype);
    return finish(&e);
}

size_t pcapenc_shb(uint8_t *buf, size_t cap, const struct pcapenc_shb *shb)
{
    MEASURE_THEN_ENCODE(encode_shb, buf, cap, shb);
}

size_t pcapenc_idb(uint8_t *buf, size_t cap, const struct pcapenc_idb *idb)
{
    MEASURE_THEN_ENCODE(encode_idb, buf, cap, idb);
}

size_t pcapenc_isb(uint8_t *buf, size_t cap, const struct pcapenc_isb *isb)
{
    MEASURE_THEN_ENCODE(encode_isb, buf, cap, isb);
}
