/* progress: progress of a job on stderr (only on a terminal). */
#ifndef SLUICE_PCAPTOOL_PROGRESS_H
#define SLUICE_PCAPTOOL_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "pcapread.h"

/* Progress on stderr, only when stderr is a terminal, at most 4 times a second. */
struct progress {
    bool on;
    const char *label;
    double last;
};
void progress_init(struct progress *pg, const char *label);
void progress_print(struct progress *pg, const pr_reader *r, uint64_t packets);
void progress_done(struct progress *pg);

/* Called for every packet: the test that almost always says "not now" is inline, so the copy
 * loops pay no call per packet for it. */
static inline void progress_update(struct progress *pg, const pr_reader *r, uint64_t packets)
{
    if (pg->on && (packets & 0x3fff) == 0)
        progress_print(pg, r, packets);
}

#endif
