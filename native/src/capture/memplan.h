/* memplan: how much memory the capture takes, and the defaults sized from the machine.
 *
 * Promise: `auto` sizes are a documented share of the machine's RAM with a floor and a cap, so
 * a box that is not tuned still rides out a burst (a 64 MiB staging buffer lost a quarter of a
 * 5 s flood that the page cache let tcpdump keep), while leaving most of the memory to the rest
 * of the box:
 *   staging buffers (--buffer-mb auto): RAM / 16, at least 64 MiB, at most 4096 MiB;
 *   kernel rings (--ring-mb auto):       RAM / 64 shared by the workers, each 64..256 MiB.
 * A plan whose rings and buffers together exceed half of the RAM is refused (memplan_check):
 * locked memory that large would starve the box and the kernel. */
#ifndef SLUICE_CAPTURE_MEMPLAN_H
#define SLUICE_CAPTURE_MEMPLAN_H

#include <stddef.h>
#include <stdint.h>

#define MEMPLAN_BUFFER_DIVISOR 16
#define MEMPLAN_BUFFER_MIN_MB 64
#define MEMPLAN_BUFFER_MAX_MB 4096
#define MEMPLAN_RING_DIVISOR 64
#define MEMPLAN_RING_MIN_MB 64
#define MEMPLAN_RING_MAX_MB 256
#define MEMPLAN_MAX_SHARE_DIVISOR 2 /* rings + buffers: at most RAM / 2 */

/* Total RAM in bytes (sysconf), 0 when unknown. */
uint64_t memplan_ram_bytes(void);

/* The auto sizes in MiB for this much RAM (and, for rings, this many workers). */
uint64_t memplan_auto_buffer_mb(uint64_t ram_bytes);
uint64_t memplan_auto_ring_mb(uint64_t ram_bytes, unsigned workers);

/* 0 when ring_bytes x workers + buffer_bytes fits; else -1 with one line in err. */
int memplan_check(uint64_t ring_bytes, unsigned workers, uint64_t buffer_bytes, uint64_t ram_bytes,
                  char *err, size_t errlen);

#endif
