/* dupwindow: the recent packets a de-duplicator compares against.
 *
 * Holds copies of the (already canonicalised) bytes of the packets of the last window, in
 * arrival order, with a hash index to the newest entry of each content. dw_seen() says whether
 * an entry with exactly the same bytes is in the window (confirmed by memcmp, so two different
 * packets are never taken for each other) and then records the new packet. Memory is bounded by
 * what the window holds. Every packet is recorded, copies included (as editcap does).
 */
#ifndef SLUICE_DUPWINDOW_H
#define SLUICE_DUPWINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dupwindow dupwindow;

/* window_ns > 0: time window (a copy is at most window_ns from its original, before or after,
 * inclusive: time may go backwards in a capture);
 * window_packets > 0: a copy and its original lie within window_packets packets (the copy
 * included, as editcap -D counts: at most window_packets - 1 packets apart). */
dupwindow *dw_new(int64_t window_ns, uint64_t window_packets);
void dw_free(dupwindow *dw);
/* 1: a copy of an earlier packet in the window; 0: new; -1: out of memory. */
int dw_seen(dupwindow *dw, uint64_t ts_ns, const uint8_t *bytes, uint32_t len);

#endif
