/* filter: a tcpdump expression compiled by libpcap into classic BPF, under a time limit.
 *
 * Promise: filter_compile returns the program within `timeout` seconds or refuses the filter
 * with one line in err: libpcap's optimiser is quadratic and a filter of a few thousand terms
 * takes minutes (the supervisor would wait, and the kernel would then run it on every packet).
 * The compile runs in a child process (the only way to stop libpcap part-way), before any
 * capture thread exists; SIGINT/SIGTERM pending meanwhile end the wait at once
 * (FILTER_INTERRUPTED). With iface set, the expression is compiled on a live libpcap handle of
 * the interface, so that libpcap applies the Linux specifics it applies for tcpdump (`vlan`
 * tests the tag the kernel took out of the frame). */
#ifndef SLUICE_CAPTURE_FILTER_H
#define SLUICE_CAPTURE_FILTER_H

#include <pcap/pcap.h>
#include <stdint.h>

#define FILTER_INTERRUPTED (-2)

/* 0 (prog filled; free with pcap_freecode), -1 (err says why), FILTER_INTERRUPTED. */
int filter_compile(const char *expr, const char *iface, int linktype, uint32_t snaplen, double timeout,
                   struct bpf_program *prog, char *err, size_t errlen);

/* Is SIGINT or SIGTERM pending (blocked, not yet taken)? Start-up checks it between steps. */
int stop_pending(void);

#endif
