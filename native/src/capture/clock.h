/* clock: the two clocks of sluice-capture, and which job each has.
 *
 * Real time (CLOCK_REALTIME) says what time it is: file names, rotation at wall-clock
 * boundaries, ISB times, the stats lines' "ts". Packets carry the kernel's own real-time stamp.
 * Everything that measures a period (the stats interval, "data older than a second", the retry
 * after a disk error, timeouts) uses CLOCK_MONOTONIC, so a clock step (backward or forward)
 * never delays or hurries them. */
#ifndef SLUICE_CAPTURE_CLOCK_H
#define SLUICE_CAPTURE_CLOCK_H

#include <stdint.h>
#include <time.h>

#define NS_PER_S 1000000000ull

/* Never inlined: its timespec would give every caller a stack canary (-fstack-protector-strong),
 * the assembler's per-packet function among them; clock_gettime is a call anyway. */
static __attribute__((noinline, unused)) uint64_t clock_ns(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (uint64_t)t.tv_sec * NS_PER_S + (uint64_t)t.tv_nsec;
}

static inline uint64_t wall_ns(void) { return clock_ns(CLOCK_REALTIME); }
static inline uint64_t mono_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

#endif
