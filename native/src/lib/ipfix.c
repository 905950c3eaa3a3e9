#include "ipfix.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MSG_MAX 65000u
#define PEN_REVERSE 29305u
#define TID_V4 256
#define TID_V6 257

struct ie {
    uint16_t id, len;
    uint32_t pen; /* 0 = IANA */
};

/* The record layout; address fields are filled per family. */
static const struct ie FIELDS_V4[] = {
    {152, 8, 0}, {153, 8, 0}, {8, 4, 0}, {12, 4, 0}, {7, 2, 0}, {11, 2, 0}, {4, 1, 0}, {58, 2, 0},
    {6, 2, 0}, {2, 8, 0}, {1, 8, 0}, {6, 2, PEN_REVERSE}, {2, 8, PEN_REVERSE}, {1, 8, PEN_REVERSE},
    {136, 1, 0}};
static const struct ie FIELDS_V6[] = {
    {152, 8, 0}, {153, 8, 0}, {27, 16, 0}, {28, 16, 0}, {7, 2, 0}, {11, 2, 0}, {4, 1, 0}, {58, 2, 0},
    {6, 2, 0}, {2, 8, 0}, {1, 8, 0}, {6, 2, PEN_REVERSE}, {2, 8, PEN_REVERSE}, {1, 8, PEN_REVERSE},
    {136, 1, 0}};
#define NFIELDS (sizeof FIELDS_V4 / sizeof FIELDS_V4[0])

struct set {
    uint8_t buf[MSG_MAX];
    size_t len;
};

struct ipfix_writer {
    FILE *out;
    uint32_t domain, seq;
    struct set v4, v6;
    uint32_t n4, n6;
};

static size_t put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return 2;
}

static size_t put32(uint8_t *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
    return 4;
}

static size_t put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
    return 8;
}

ipfix_writer *ipfix_new(FILE *out, uint32_t observation_domain)
{
    ipfix_writer *w = calloc(1, sizeof *w);
    if (w) {
        w->out = out;
        w->domain = observation_domain;
    }
    return w;
}

static size_t template_record(uint8_t *p, uint16_t tid, const struct ie *f)
{
    size_t k = put16(p, tid);
    k += put16(p + k, (uint16_t)NFIELDS);
    for (size_t i = 0; i < NFIELDS; i++) {
        k += put16(p + k, (uint16_t)(f[i].id | (f[i].pen ? 0x8000 : 0)));
        k += put16(p + k, f[i].len);
        if (f[i].pen)
            k += put32(p + k, f[i].pen);
    }
    return k;
}

static size_t record_len(int family)
{
    size_t n = 0;
    for (size_t i = 0; i < NFIELDS; i++)
        n += (family == 4 ? FIELDS_V4 : FIELDS_V6)[i].len;
    return n;
}

/* One message: header, template set, then the data set of one family. */
static int emit(ipfix_writer *w, struct set *s, uint16_t tid, uint32_t nrec)
{
    if (s->len == 0)
        return 0;
    uint8_t hdr[16], tset[512];
    size_t tl = 4;
    tl += template_record(tset + tl, TID_V4, FIELDS_V4);
    tl += template_record(tset + tl, TID_V6, FIELDS_V6);
    put16(tset, 2);
    put16(tset + 2, (uint16_t)tl);
    uint8_t dhdr[4];
    put16(dhdr, tid);
    put16(dhdr + 2, (uint16_t)(4 + s->len));
    size_t total = 16 + tl + 4 + s->len;
    put16(hdr, 10);
    put16(hdr + 2, (uint16_t)total);
    put32(hdr + 4, (uint32_t)time(NULL));
    put32(hdr + 8, w->seq);
    put32(hdr + 12, w->domain);
    w->seq += nrec; /* RFC 7011: the sequence counts data records */
    if (fwrite(hdr, 1, 16, w->out) != 16 || fwrite(tset, 1, tl, w->out) != tl ||
        fwrite(dhdr, 1, 4, w->out) != 4 || fwrite(s->buf, 1, s->len, w->out) != s->len)
        return -1;
    s->len = 0;
    return 0;
}

int ipfix_add(ipfix_writer *w, const struct flow *f)
{
    bool v4 = f->key.family == 4;
    struct set *s = v4 ? &w->v4 : &w->v6;
    uint32_t *n = v4 ? &w->n4 : &w->n6;
    size_t rl = record_len(v4 ? 4 : 6);
    if (16 + 512 + 4 + s->len + rl > MSG_MAX) {
        if (emit(w, s, v4 ? TID_V4 : TID_V6, *n) < 0)
            return -1;
        *n = 0;
    }
    uint8_t *p = s->buf + s->len;
    size_t k = 0;
    size_t alen = v4 ? 4 : 16;
    k += put64(p + k, f->first_ns / 1000000u);
    k += put64(p + k, f->last_ns / 1000000u);
    memcpy(p + k, f->key.src, alen);
    k += alen;
    memcpy(p + k, f->key.dst, alen);
    k += alen;
    k += put16(p + k, f->key.sport);
    k += put16(p + k, f->key.dport);
    p[k++] = f->key.proto;
    k += put16(p + k, f->key.vlan);
    k += put16(p + k, f->flags[0]);
    k += put64(p + k, f->packets[0]);
    k += put64(p + k, f->bytes[0]);
    k += put16(p + k, f->flags[1]);
    k += put64(p + k, f->packets[1]);
    k += put64(p + k, f->bytes[1]);
    p[k++] = (uint8_t)(f->end == FLOW_END_FORCED ? 4 : f->end);
    s->len += k;
    (*n)++;
    return 0;
}

int ipfix_finish(ipfix_writer *w)
{
    int rc = emit(w, &w->v4, TID_V4, w->n4);
    if (rc == 0)
        rc = emit(w, &w->v6, TID_V6, w->n6);
    free(w);
    return rc;
}
