/* ipfix: flow records as an IPFIX file (RFC 7011 messages one after another, the file format
 * of RFC 5655), with standard information elements and the RFC 5103 reverse elements
 * (enterprise 29305) for the reverse direction of a biflow. Every message starts with the
 * templates (256: IPv4, 257: IPv6), so any message can be read on its own. */
#ifndef SLUICE_IPFIX_H
#define SLUICE_IPFIX_H

#include <stdint.h>
#include <stdio.h>

#include "flowtable.h"

typedef struct ipfix_writer ipfix_writer;

ipfix_writer *ipfix_new(FILE *out, uint32_t observation_domain);
/* 0, or -1 on a write error. */
int ipfix_add(ipfix_writer *w, const struct flow *f);
/* Write what is buffered and free w. 0 or -1. */
int ipfix_finish(ipfix_writer *w);

#endif
