/* What the pcapread fuzz targets share: read arbitrary bytes (pcap, pcapng, zstd) in one mode,
 * touching every packet's bytes so that the sanitizers see an out-of-bounds pointer. */
#ifndef SLUICE_FUZZ_PCAPREAD_H
#define SLUICE_FUZZ_PCAPREAD_H

#include <stddef.h>
#include <stdint.h>

#include "pcapread.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_pcapread(const uint8_t *data, size_t size, enum pr_mode mode)
{
    char err[256];
    pr_reader *r;
    if (pr_open_mem(&r, data, size, mode, err, sizeof err) != 0)
        return 0;
    struct pr_packet pkt;
    volatile uint8_t sink = 0;
    /* A reader must always move on: every packet starts further into the stream than the one
     * before (a loop would repeat an offset). Compressed input may expand a lot: stop after a
     * bounded number of packets rather than time out. */
    uint64_t last = 0;
    for (unsigned n = 0; n < (1u << 20) && pr_next(r, &pkt) == 1; n++) {
        if (n > 0 && pkt.offset <= last)
            __builtin_trap();
        last = pkt.offset;
        for (uint32_t i = 0; i < pkt.caplen; i++)
            sink ^= pkt.data[i];
        (void)pr_iface(r, pkt.iface)->linktype;
    }
    pr_close(r);
    (void)sink;
    return 0;
}

#endif
