/* memplan: memory sizes of the capture (see memplan.h). */
#include "memplan.h"

#include <stdio.h>
#include <unistd.h>

#define MIB (1ull << 20)

uint64_t memplan_ram_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

static uint64_t clamp(uint64_t v, uint64_t lo, uint64_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

uint64_t memplan_auto_buffer_mb(uint64_t ram_bytes)
{
    uint64_t mb = clamp(ram_bytes / MEMPLAN_BUFFER_DIVISOR / MIB, MEMPLAN_BUFFER_MIN_MB,
                        MEMPLAN_BUFFER_MAX_MB);
    return mb / 4 * 4; /* whole 4 MiB staging blocks */
}

uint64_t memplan_auto_ring_mb(uint64_t ram_bytes, unsigned workers)
{
    return clamp(ram_bytes / MEMPLAN_RING_DIVISOR / (workers ? workers : 1) / MIB,
                 MEMPLAN_RING_MIN_MB, MEMPLAN_RING_MAX_MB);
}

int memplan_check(uint64_t ring_bytes, unsigned workers, uint64_t buffer_bytes, uint64_t ram_bytes,
                  char *err, size_t errlen)
{
    uint64_t total = ring_bytes * workers + buffer_bytes;
    if (ram_bytes == 0 || total <= ram_bytes / MEMPLAN_MAX_SHARE_DIVISOR)
        return 0;
    snprintf(err, errlen,
             "--ring-mb %llu x --workers %u + --buffer-mb %llu = %llu MiB is more than half of this "
             "machine's %llu MiB of memory: use smaller sizes (or auto)",
             (unsigned long long)(ring_bytes / MIB), workers, (unsigned long long)(buffer_bytes / MIB),
             (unsigned long long)(total / MIB), (unsigned long long)(ram_bytes / MIB));
    return -1;
}
