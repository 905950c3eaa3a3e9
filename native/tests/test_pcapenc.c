/* Unit test of pcapenc: block layout, lengths, "nothing written when too small".
 * With an argument DIR it also writes DIR/enc.pcapng and DIR/enc.pcap so that a pytest test can
 * have tshark read them. */
#include "pcapenc.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>


static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Walks pcapng blocks: every block's leading and trailing lengths agree and are 4-aligned. */
static int count_blocks(const uint8_t *b, size_t n)
{
    size_t off = 0;
    int blocks = 0;
    while (off < n) {
        uint32_t len = get32(b + off + 4);
        CHECK(len % 4 == 0 && len >= 12 && off + len <= n);
        if (len < 12 || off + len > n)
            return -1;
        CHECK(get32(b + off + len - 4) == len);
        off += len;
        blocks++;
    }
    return blocks;
}

int main(int argc, char **argv)
{
    static uint8_t buf[65536];
    uint8_t pkt[61];
    for (size_t i = 0; i < sizeof pkt; i++)
        pkt[i] = (uint8_t)i;

    struct pcapenc_shb shb = {"x86_64", "Linux", "sluice test", "a comment", "key-1"};
    size_t need = pcapenc_shb(NULL, 0, &shb);
    memset(buf, 0xEE, sizeof buf);
    CHECK(pcapenc_shb(buf, need - 1, &shb) == need);
    CHECK(buf[0] == 0xEE); /* too small: nothing written */
    size_t off = pcapenc_shb(buf, sizeof buf, &shb);
    CHECK(off == need && off % 4 == 0);
    CHECK(get32(buf) == PCAPNG_BT_SHB && get32(buf + 8) == PCAPNG_BYTE_ORDER_MAGIC);
    CHECK(memmem(buf, off, "key-1", 5) != NULL);

    struct pcapenc_idb idb = {1, 262144, "rx0", "test iface", "udp port 53", PCAPENC_TSRESOL_NS};
    size_t idb_len = pcapenc_idb(buf + off, sizeof buf - off, &idb);
    CHECK(get32(buf + off) == PCAPNG_BT_IDB && get32(buf + off + 12) == 262144);
    CHECK(memmem(buf + off, idb_len, "\x09\x00\x01\x00\x09", 5) != NULL); /* if_tsresol=9 */
    off += idb_len;

    uint64_t ts = 1764140000123456789ull;
    size_t epb = pcapenc_epb(buf + off, sizeof buf - off, 0, ts, pkt, sizeof pkt, 1500);
    CHECK(epb == pcapenc_epb_len(sizeof pkt) && epb == 32 + 64);
    CHECK(get32(buf + off + 12) == (uint32_t)(ts >> 32) && get32(buf + off + 16) == (uint32_t)ts);
    CHECK(get32(buf + off + 20) == sizeof pkt && get32(buf + off + 24) == 1500);
    CHECK(memcmp(buf + off + 28, pkt, sizeof pkt) == 0 && buf[off + 28 + 61] == 0);
    CHECK(pcapenc_epb(buf + off, 10, 0, ts, pkt, sizeof pkt, 1500) == epb);
    off += epb;

    /* every padding length, on memory that was not zero: data, padding and fields all as meant
     * (the header zeroes the padding's word before the data is copied over it) */
    for (uint32_t caplen = 0; caplen <= 8; caplen++) {
        static uint8_t rec[64];
        memset(rec, 0xEE, sizeof rec);
        size_t len = pcapenc_epb(rec, sizeof rec, 0, ts, pkt, caplen, 1500);
        CHECK(len == pcapenc_epb_len(caplen) && len % 4 == 0);
        CHECK(get32(rec + 4) == len && get32(rec + len - 4) == len);
        CHECK(get32(rec + 20) == caplen && get32(rec + 24) == 1500);
        CHECK(memcmp(rec + 28, pkt, caplen) == 0);
        for (size_t i = 28 + caplen; i < len - 4; i++)
            CHECK(rec[i] == 0);
        CHECK(rec[len] == 0xEE); /* nothing written past the block */
    }

    struct pcapenc_isb isb = {0, ts + 1, ts, ts + 1, 10, 2, 3, 1, "sluice writer_drops=3"};
    off += pcapenc_isb(buf + off, sizeof buf - off, &isb);
    CHECK(count_blocks(buf, off) == 4);
    size_t ng_len = off;

    static uint8_t pc[4096];
    size_t poff = pcapenc_pcap_header(pc, sizeof pc, PCAP_MAGIC_NS, 1, 65535);
    CHECK(poff == 24 && get32(pc) == PCAP_MAGIC_NS && get32(pc + 20) == 1);
    CHECK(pcapenc_pcap_header(pc, 23, PCAP_MAGIC_NS, 1, 65535) == 24);
    size_t rec = pcapenc_pcap_record(pc + poff, sizeof pc - poff, (uint32_t)(ts / 1000000000u),
                                     (uint32_t)(ts % 1000000000u), pkt, sizeof pkt, 1500);
    CHECK(rec == 16 + sizeof pkt && get32(pc + poff + 8) == sizeof pkt);
    poff += rec;

    if (argc > 1) {
        char path[4096];
        snprintf(path, sizeof path, "%s/enc.pcapng", argv[1]);
        FILE *f = fopen(path, "wb");
        CHECK(f != NULL && fwrite(buf, 1, ng_len, f) == ng_len && fclose(f) == 0);
        snprintf(path, sizeof path, "%s/enc.pcap", argv[1]);
        f = fopen(path, "wb");
        CHECK(f != NULL && fwrite(pc, 1, poff, f) == poff && fclose(f) == 0);
    }
    if (failures)
        fprintf(stderr, "test_pcapenc: %d failures\n", failures);
    else
        printf("test_pcapenc: ok\n");
    return failures ? 1 : 0;
}
