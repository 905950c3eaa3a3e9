/* libFuzzer target: pcapread in PR_STRICT mode over arbitrary bytes (pcap, pcapng, zstd).
 * Every packet's bytes are read so that the sanitizers see an out-of-bounds pointer. */
#include <stddef.h>
#include <stdint.h>

#include "pcapread.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    pr_reader *r;
    if (pr_open_mem(&r, data, size, PR_STRICT, err, sizeof err) != 0)
        return 0;
    struct pr_packet pkt;
    volatile uint8_t sink = 0;
    /* A reader must end on any input: each packet consumes at least one byte, so more packets
     * than bytes would mean it loops. */
    size_t limit = size + 16;
    while (pr_next(r, &pkt) == 1 && limit-- > 0) {
        for (uint32_t i = 0; i < pkt.caplen; i++)
            sink ^= pkt.data[i];
        (void)pr_iface(r, pkt.iface)->linktype;
    }
    if (limit == (size_t)-1)
        __builtin_trap();
    pr_close(r);
    (void)sink;
    return 0;
}
