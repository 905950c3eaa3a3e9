/* Unit tests of sluice-capture's pure parts: header slicing and the recovery walk. */
#include <stdio.h>
#include <string.h>

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
    struct slice_cfg c = {100, 1, 1};
    memset(f, 0, sizeof f);
    o = eth(f, 0x0800, 0);
    f[o] = 0x45, f[o + 9] = 17;
    CHECK(slice_keep(&c, f, 1500) == o + 28);
    c.header_only = 0;
    CHECK(slice_keep(&c, f, 1500) == 100 && slice_keep(&c, f, 60) == 60);
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

int main(void)
{
    test_slice();
    test_recover_walk();
    if (failures)
        fprintf(stderr, "test_capture_units: %d failures\n", failures);
    else
        printf("test_capture_units: ok\n");
    return failures ? 1 : 0;
}
