/* progress: see progress.h. */
#include "tool.h"

#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void progress_init(struct progress *pg, const char *label)
{
    pg->on = isatty(STDERR_FILENO);
    pg->label = label;
    pg->last = now_s();
}

void progress_print(struct progress *pg, const pr_reader *r, uint64_t packets)
{
    double t = now_s();
    if (t - pg->last < 0.25)
        return;
    pg->last = t;
    uint64_t total, done = pr_progress(r, &total);
    if (total)
        fprintf(stderr, "\r%s: %5.1f%%  %llu packets", pg->label, 100.0 * (double)done / (double)total,
                (unsigned long long)packets);
    else
        fprintf(stderr, "\r%s: %llu packets", pg->label, (unsigned long long)packets);
}

void progress_done(struct progress *pg)
{
    if (pg->on)
        fprintf(stderr, "\r\033[K");
}
