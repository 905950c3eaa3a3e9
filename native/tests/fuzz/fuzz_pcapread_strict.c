/* libFuzzer target: pcapread in PR_STRICT mode over arbitrary bytes (pcap, pcapng, zstd).
 * Every packet's bytes are read so that the sanitizers see an out-of-bounds pointer. */
#include "fuzz_pcapread.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_pcapread(data, size, PR_STRICT);
}
