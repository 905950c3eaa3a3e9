/* pcapout: a capture file being written by sluice-pcap, through pcapenc (the one encoder).
 *
 * Promises: the output goes where outfile.h says ("-" and FIFOs/character devices in place;
 * a file to a hidden temporary that gets its final name only in po_commit(), so an interrupted
 * job never leaves a half file under the final name; po_abort() removes the temporary). Buffered writes; optional zstd compression.
 * pcap output holds one link type; asking for a second is refused (use pcapng).
 * Errors are returned with a message in po_error(), never printed.
 */
#ifndef SLUICE_PCAPOUT_H
#define SLUICE_PCAPOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcapread.h"

struct po_options {
    enum pr_format format;   /* PR_FORMAT_PCAP or PR_FORMAT_PCAPNG */
    bool nanosecond;         /* pcap: ns magic; pcapng: if_tsresol 9 (else 6) for every interface */
    bool iface_precision;    /* pcapng: each interface takes the resolution given to po_add_iface
                              * instead (the input interface's), so no timestamp is cut */
    int zstd_level;          /* 0: not compressed */
    const char *comment;     /* pcapng SHB comment, optional */
    const char *key_id;      /* pcapng SHB anonymisation key id, optional */
};

typedef struct pcapout pcapout;

int po_open(pcapout **out, const char *path, const struct po_options *opt, char *err, size_t errlen);
/* Describe an interface (nanosecond: its timestamps need ns, used with iface_precision); returns
 * its index in the output, or -1 (see po_error()). */
int po_add_iface(pcapout *po, uint16_t linktype, uint32_t snaplen, const char *name, bool nanosecond);
int po_write(pcapout *po, uint32_t iface, uint64_t ts_ns, const uint8_t *data, uint32_t caplen,
             uint32_t origlen);
/* A packet without a timestamp (from a Simple Packet Block): pcapng writes a Simple Packet
 * Block again (interface 0 only, as the format says); pcap cannot say "no time" and refuses
 * rather than invent one. Returns 0 or -1 (see po_error()). */
int po_write_untimed(pcapout *po, uint32_t iface, const uint8_t *data, uint32_t caplen, uint32_t origlen);
/* Flush, close and rename to the final name. Frees po. Returns 0 or -1 with a message. */
int po_commit(pcapout *po, char *err, size_t errlen);
/* Remove the temporary file and free po. */
void po_abort(pcapout *po);
uint64_t po_packets(const pcapout *po);
const char *po_error(const pcapout *po);

/* Parse "pcap" / "pcapng"; -1 if neither. */
int po_parse_format(const char *s);

#endif
