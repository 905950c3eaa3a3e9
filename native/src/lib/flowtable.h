/* flowtable: bidirectional flows (RFC 5103 style) from packets, with idle and active timeouts.
 *
 * A flow is keyed by (addresses, ports, protocol, VLAN) in either direction; its "forward"
 * direction is that of its first packet. Packets, bytes and OR-ed TCP flags are kept per
 * direction. A flow is handed to the emit callback when it has been idle longer than the idle
 * timeout (checked as packet time advances, oldest first), when it has lasted longer than the
 * active timeout (the packet then starts a new flow), and at ft_flush() (by first time).
 * Memory is what the live flows take; time is O(1) per packet.
 */
#ifndef SLUICE_FLOWTABLE_H
#define SLUICE_FLOWTABLE_H

#include <stdint.h>

enum flow_end { FLOW_END_IDLE = 1, FLOW_END_ACTIVE = 2, FLOW_END_FORCED = 4 };

struct flow_key {
    uint8_t family;   /* 4 or 6 */
    uint8_t proto;
    uint16_t vlan;    /* 0 = untagged */
    uint16_t sport, dport;
    uint8_t src[16], dst[16]; /* IPv4 in the first 4 bytes, rest zero */
};

struct flow {
    struct flow_key key;     /* as seen in the first packet */
    uint64_t first_ns, last_ns;
    uint64_t packets[2], bytes[2]; /* [0] forward, [1] reverse */
    uint16_t flags[2];
    enum flow_end end;
};

typedef struct flowtable flowtable;
typedef int (*flow_emit_fn)(const struct flow *f, void *ctx);

flowtable *ft_new(uint64_t idle_ns, uint64_t active_ns, flow_emit_fn emit, void *ctx);
void ft_free(flowtable *ft);
/* Account one packet. Returns 0, or the first non-zero emit result / -1 on out of memory. */
int ft_packet(flowtable *ft, const struct flow_key *k, uint64_t ts_ns, uint64_t bytes, uint16_t tcp_flags);
/* Emit every live flow, oldest first. */
int ft_flush(flowtable *ft);

#endif
