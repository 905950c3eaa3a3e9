/* clockstep: an LD_PRELOAD library for tests that steps the real-time clock of one process.
 *
 * SLUICE_TEST_REALTIME_STEP="AFTER:OFFSET": once AFTER seconds (monotonic) have passed since the
 * process started, CLOCK_REALTIME reads OFFSET seconds later (negative: a backward step, as an
 * operator's `date -s` or a bad NTP server makes it). The monotonic clock is left alone. This is
 * how a test steps the clock without stepping the machine's, which other programs share. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime;
static double step_after = -1, step_offset;
static struct timespec started;

__attribute__((constructor)) static void clockstep_init(void)
{
    real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    real_clock_gettime(CLOCK_MONOTONIC, &started);
    const char *spec = getenv("SLUICE_TEST_REALTIME_STEP");
    char *end;
    if (spec != NULL) {
        step_after = strtod(spec, &end);
        step_offset = *end == ':' ? strtod(end + 1, NULL) : 0;
    }
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    int rc = real_clock_gettime(id, ts);
    if (rc != 0 || id != CLOCK_REALTIME || step_after < 0)
        return rc;
    struct timespec now;
    real_clock_gettime(CLOCK_MONOTONIC, &now);
    double since = (double)(now.tv_sec - started.tv_sec) + (double)(now.tv_nsec - started.tv_nsec) / 1e9;
    if (since >= step_after) {
        int64_t ns = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec + (int64_t)(step_offset * 1e9);
        ts->tv_sec = (time_t)(ns / 1000000000);
        ts->tv_nsec = (long)(ns % 1000000000);
    }
    return rc;
}
