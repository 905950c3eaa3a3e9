/* Unit tests of sluice-capture's pure parts: header slicing, the recovery walk, sizes, the
 * memory plan, JSON strings and the order in which the staging pool hands out blocks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonout.h"
#include "../src/capture/blockq.h"
#include "../src/capture/memplan.h"
#include "../src/capture/opts.h"
#include "../src/capture/recover.h"
#include "../src/capture/slice.h"
#include "pcapenc.h"
#include "testutil.h"


static size_t eth(uint8_t *f, uint16_t type, int vlans)
{
    memset(f, 0x11, 12);
    size_t off = 12;
    for (int i = 0; i < vlans; i++) {
        f[off] = 0x81, f[off + 1] = 0x00, f[off + 2] = 0, f[off + 3] = 7;
        off += 4;
    }
    f[off] = (uint8_t)(type >> 8), f[off + 1] = (uint8_t)type;
    return off + 2;
}

static void test_slice(void)
{
    uint8_t f[2000];
    memset(f, 0, sizeof f);
    /* IPv4 with 8 bytes of options, TCP with 12 bytes of options */
    size_t o = eth(f, 0x0800, 1);
    f[o] = 0x47, f[o + 9] = 6;
    f[o + 28 + 12] = 0x80;
    CHECK(slice_header_len(f, 1500) == o + 28 + 32);
    /* a later IPv4 fragment: no L4 header */
    f[o + 6] = 0x00, f[o + 7] = 0x10;
    CHECK(slice_header_len(f, 1500) == o + 28);
    /* IPv6 + hop-by-hop (8) + UDP */
    memset(f, 0, sizeof f);
    o = eth(f, 0x86DD, 0);
    f[o + 6] = 0;
    f[o + 40] = 17, f[o + 41] = 0;
    CHECK(slice_header_len(f, 1500) == o + 40 + 8 + 8);
    /* ARP, QinQ, unknown ethertype, short frames */
    o = eth(f, 0x0806, 2);
    CHECK(slice_header_len(f, 1500) == o + 28);
    o = eth(f, 0x88B5, 0);
    CHECK(slice_header_len(f, 1500) == o);
    CHECK(slice_header_len(f, 10) == 10);
    struct slice_cfg c = {100, 1, 1, NULL};
    memset(f, 0, sizeof f);
    o = eth(f, 0x0800, 0);
    f[o] = 0x45, f[o + 9] = 17;
    CHECK(slice_keep(&c, f, 1500, 1500) == o + 28);
    c.header_only = 0;
    CHECK(slice_keep(&c, f, 1500, 1500) == 100 && slice_keep(&c, f, 60, 60) == 60);
    /* the payload policy: the packets a filter names get the other policy, either way */
    struct bpf_program prog;
    pcap_t *dead = pcap_open_dead(1, 262144);
    CHECK(dead && pcap_compile(dead, &prog, "udp port 53", 1, PCAP_NETMASK_UNKNOWN) == 0);
    struct slice_cfg policy = {262144, 1, 1, prog.bf_insns};
    f[o] = 0x45, f[o + 2] = 0x05, f[o + 3] = 0xc8, f[o + 9] = 17; /* IPv4 total 1480, UDP */
    f[o + 22] = 0, f[o + 23] = 53;                                /* to port 53 */
    CHECK(slice_keep(&policy, f, 1494, 1494) == 1494);
    f[o + 23] = 54;
    CHECK(slice_keep(&policy, f, 1494, 1494) == o + 28);
    policy.header_only = 0; /* --drop-payload: the reverse */
    CHECK(slice_keep(&policy, f, 1494, 1494) == 1494);
    f[o + 23] = 53;
    CHECK(slice_keep(&policy, f, 1494, 1494) == o + 28);
    pcap_freecode(&prog);
    pcap_close(dead);
}

static void test_recover_walk(void)
{
    static uint8_t buf[1 << 16];
    uint8_t pkt[100] = {0};
    struct pcapenc_shb shb = {"x", "Linux", "test", NULL, NULL};
    struct pcapenc_idb idb = {1, 262144, "rx0", NULL, NULL, PCAPENC_TSRESOL_NS};
    size_t off = pcapenc_shb(buf, sizeof buf, &shb);
    off += pcapenc_idb(buf + off, sizeof buf - off, &idb);
    size_t hdr = off;
    CHECK(recover_valid_length(buf, hdr, 0) == hdr);
    CHECK(recover_valid_length(buf, hdr - 1, 0) == 0); /* no whole IDB: nothing to keep */
    for (int i = 0; i < 3; i++)
        off += pcapenc_epb(buf + off, sizeof buf - off, 0, 1000u + i, pkt, sizeof pkt, 100);
    size_t whole = off;
    memset(buf + off, 0, 8192); /* preallocated, never written */
    CHECK(recover_valid_length(buf, whole + 8192, 0) == whole);
    CHECK(recover_valid_length(buf, whole - 5, 0) == whole - pcapenc_epb_len(100));

    size_t p = pcapenc_pcap_header(buf, sizeof buf, PCAP_MAGIC_NS, 1, 262144);
    for (int i = 0; i < 3; i++)
        p += pcapenc_pcap_record(buf + p, sizeof buf - p, 5, 999999999u, pkt, sizeof pkt, 100);
    memset(buf + p, 0, 4096);
    CHECK(recover_valid_length(buf, p + 4096, 0) == p);
    CHECK(recover_valid_length(buf, p - 1, 0) == p - 116);
    CHECK(recover_valid_length(buf, 10, 0) == 0);
}

static void test_sizes(void)
{
    uint64_t v = 0;
    CHECK(opts_parse_size("1G", &v) == 0 && v == 1ull << 30);
    CHECK(opts_parse_size("1.5G", &v) == 0 && v == 3ull << 29); /* as appliance/config.py parses it */
    CHECK(opts_parse_size(" 512 MiB ", &v) == 0 && v == 512ull << 20);
    CHECK(opts_parse_size("64kb", &v) == 0 && v == 64ull << 10);
    CHECK(opts_parse_size("4096", &v) == 0 && v == 4096);
    CHECK(opts_parse_size("12Q", &v) != 0);
    CHECK(opts_parse_size("1.G", &v) != 0);
    CHECK(opts_parse_size("-1M", &v) != 0);
    CHECK(opts_parse_size("1Mi", &v) != 0);
    CHECK(opts_parse_size("99999999T", &v) != 0); /* beyond 64 bits */
}

static void test_memplan(void)
{
    uint64_t gib = 1ull << 30;
    CHECK(memplan_auto_buffer_mb(24 * gib) == 1536);
    CHECK(memplan_auto_buffer_mb(512ull << 20) == MEMPLAN_BUFFER_MIN_MB);
    CHECK(memplan_auto_buffer_mb(256 * gib) == MEMPLAN_BUFFER_MAX_MB);
    CHECK(memplan_auto_ring_mb(24 * gib, 1) == 256);
    CHECK(memplan_auto_ring_mb(24 * gib, 4) == 96);
    CHECK(memplan_auto_ring_mb(2 * gib, 1) == MEMPLAN_RING_MIN_MB);
    char err[256];
    CHECK(memplan_check(256ull << 20, 1, 1536ull << 20, 24 * gib, err, sizeof err) == 0);
    CHECK(memplan_check(4 * gib, 4, 1 * gib, 24 * gib, err, sizeof err) != 0 && strstr(err, "half"));
}

static void test_json_string(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    json_put_string(f, "a\"b\\c\nd\x01\xc3\xa9\xff");
    fclose(f);
    CHECK(strcmp(buf, "\"a\\\"b\\\\c\\u000ad\\u0001\xc3\xa9\\udcff\"") == 0);
    free(buf);
}

/* The pool hands out its first block (the lowest address: faulted in first, in huge pages while
 * they were cheap) first, and a block given back is the next one handed out (LIFO). */
static void test_blockq_order(void)
{
    char err[128];
    struct blockq *q = blockq_create(1 << 20, 8, NULL, err, sizeof err);
    CHECK(q != NULL);
    if (q == NULL)
        return;
    struct block *a = blockq_get_free(q, 0), *b = blockq_get_free(q, 0);
    CHECK(a != NULL && b != NULL && b->data == a->data + (1 << 20));
    for (int i = 0; i < 6; i++) {
        struct block *c = blockq_get_free(q, 0);
        CHECK(c != NULL && c->data > a->data);
    }
    CHECK(blockq_get_free(q, 0) == NULL); /* all 8 out */
    blockq_put_free(q, b);
    blockq_put_free(q, a);
    CHECK(blockq_get_free(q, 0) == a);
    CHECK(blockq_get_free(q, 0) == b);
    blockq_destroy(q);
}

int main(void)
{
    test_slice();
    test_recover_walk();
    test_sizes();
    test_memplan();
    test_json_string();
    test_blockq_order();
    if (failures)
        fprintf(stderr, "test_capture_units: %d failures\n", failures);
    else
        printf("test_capture_units: ok\n");
    return failures ? 1 : 0;
}
