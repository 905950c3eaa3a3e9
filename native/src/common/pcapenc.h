/* pcapenc: the one pcap / pcapng ENCODER of Sluice (sluice-capture and sluice-pcap).
 *
 * Promise: every function encodes one complete header or block, in host byte order (pcapng
 * readers detect it from the SHB byte-order magic; pcap readers from the magic number), into the
 * caller's memory buffer `buf` of `cap` bytes. Each returns the number of bytes the encoding
 * takes. If that number is larger than `cap`, NOTHING was written: call again with a buffer of at
 * least that size (so `f(NULL, 0, ...)` asks for the size). No allocation, no I/O, no global state.
 *
 * pcapng blocks follow draft-ietf-opsawg-pcapng: options are 32-bit aligned and end with
 * opt_endofopt; strings are UTF-8 and not NUL-terminated on disk; NULL or "" strings are
 * omitted. Timestamps given to the EPB/ISB encoders are in units of the interface's if_tsresol
 * (pass PCAPENC_TSRESOL_NS, i.e. nanoseconds, to pcapenc_idb and then give ns everywhere).
 *
 * The EPB and pcap record encoders are static inline: they are on the capture hot path.
 * Split variants (`*_header`) write only the fixed part so that the caller can place the packet
 * bytes itself (e.g. straight from a ring) and then the padding/trailer.
 */
#ifndef SLUICE_PCAPENC_H
#define SLUICE_PCAPENC_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PCAPNG_BT_SHB 0x0A0D0D0Au
#define PCAPNG_BT_IDB 0x00000001u
#define PCAPNG_BT_ISB 0x00000005u
#define PCAPNG_BT_EPB 0x00000006u
#define PCAPNG_BYTE_ORDER_MAGIC 0x1A2B3C4Du

#define PCAP_MAGIC_US 0xA1B2C3D4u /* classic pcap, microsecond timestamps */
#define PCAP_MAGIC_NS 0xA1B23C4Du /* pcap with nanosecond timestamps */
#define PCAP_GLOBAL_HDR_LEN 24u
#define PCAP_RECORD_HDR_LEN 16u

/* EPB fixed part before the packet data: type, length, if id, ts high, ts low, caplen, origlen. */
#define PCAPNG_EPB_HDR_LEN 28u
/* The whole EPB overhead around the (padded) packet data: fixed part + trailing length. */
#define PCAPNG_EPB_OVERHEAD 32u

#define PCAPENC_TSRESOL_NS 9 /* if_tsresol value: 10^-9 s */
#define PCAPENC_TSRESOL_US 6 /* if_tsresol value: 10^-6 s */

/* Private Enterprise Number used in Sluice's custom options. 32473 is the number RFC 5612
 * reserves for documentation; replace with a registered PEN before shipping outside the lab. */
#define SLUICE_PEN 32473u
#define PCAPNG_OPT_CUSTOM_UTF8 2988u /* custom option, UTF-8 string, may be copied */

/* Section Header Block: every pcapng file starts with one. */
struct pcapenc_shb {
    const char *hardware; /* shb_hardware, e.g. "x86_64" */
    const char *os;       /* shb_os, e.g. "Linux 6.1.0" */
    const char *userappl; /* shb_userappl, e.g. "sluice-capture 0.1 host=h1" */
    const char *comment;  /* opt_comment, optional */
    const char *key_id;   /* anonymisation key id, written as a custom UTF-8 option; optional */
};
size_t pcapenc_shb(uint8_t *buf, size_t cap, const struct pcapenc_shb *shb);

/* Interface Description Block: one per captured interface, index = order of appearance. */
struct pcapenc_idb {
    uint16_t linktype;       /* DLT/LINKTYPE_, e.g. 1 for Ethernet */
    uint32_t snaplen;        /* 0 = no limit */
    const char *name;        /* if_name, e.g. "eth1"; optional */
    const char *description; /* if_description, e.g. "host h1, slice header"; optional */
    const char *filter;      /* if_filter as a libpcap expression string; optional */
    int tsresol;             /* PCAPENC_TSRESOL_NS or PCAPENC_TSRESOL_US */
};
size_t pcapenc_idb(uint8_t *buf, size_t cap, const struct pcapenc_idb *idb);

/* Interface Statistics Block: counters of one interface, usually at the end of a file. */
struct pcapenc_isb {
    uint32_t if_id;
    uint64_t ts;         /* time of the statistics, in if_tsresol units */
    uint64_t starttime;  /* isb_starttime, 0 = omit */
    uint64_t endtime;    /* isb_endtime, 0 = omit */
    uint64_t ifrecv;     /* isb_ifrecv: packets received (passed the filter) */
    uint64_t ifdrop;     /* isb_ifdrop: packets the interface/kernel ring dropped */
    uint64_t osdrop;     /* isb_osdrop: packets the capturing software dropped (Sluice's own) */
    int has_counters;    /* 0: omit ifrecv/ifdrop/osdrop */
    const char *comment; /* optional, e.g. "sluice writer_drops=3 (buffers full)" */
};
size_t pcapenc_isb(uint8_t *buf, size_t cap, const struct pcapenc_isb *isb);

/* pcap global header; magic is PCAP_MAGIC_NS or PCAP_MAGIC_US. */
size_t pcapenc_pcap_header(uint8_t *buf, size_t cap, uint32_t magic, uint32_t linktype,
                           uint32_t snaplen);

/* Bytes an EPB holding caplen bytes of packet data takes. */
static inline size_t pcapenc_epb_len(uint32_t caplen)
{
    return PCAPNG_EPB_OVERHEAD + (((size_t)caplen + 3u) & ~(size_t)3u);
}

static inline void pcapenc_put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* EPB fixed part (PCAPNG_EPB_HDR_LEN bytes) for a packet of caplen bytes, and the zero padding
 * after the data; the caller then puts the data at buf + PCAPNG_EPB_HDR_LEN and calls
 * pcapenc_epb_trailer. buf must have pcapenc_epb_len(caplen) bytes. */
static inline void pcapenc_epb_header(uint8_t *buf, uint32_t if_id, uint64_t ts, uint32_t caplen,
                                      uint32_t origlen)
{
    uint32_t total = (uint32_t)pcapenc_epb_len(caplen);
    /* The padding (0-3 bytes) ends the 4-byte word before the trailer: zero that whole word now
     * and the data, copied next, overwrites all of it but the padding (with no data, the header
     * below does). A fixed store instead of a memset call for every record. */
    pcapenc_put32(buf + total - 8, 0);
    pcapenc_put32(buf, PCAPNG_BT_EPB);
    pcapenc_put32(buf + 4, total);
    pcapenc_put32(buf + 8, if_id);
    pcapenc_put32(buf + 12, (uint32_t)(ts >> 32));
    pcapenc_put32(buf + 16, (uint32_t)ts);
    pcapenc_put32(buf + 20, caplen);
    pcapenc_put32(buf + 24, origlen);
}

/* The trailing block length (the padding was zeroed by pcapenc_epb_header). */
static inline void pcapenc_epb_trailer(uint8_t *buf, uint32_t caplen)
{
    size_t total = pcapenc_epb_len(caplen);
    pcapenc_put32(buf + total - 4, (uint32_t)total);
}

/* A whole EPB without options. Returns its length (nothing written if > cap). */
static inline size_t pcapenc_epb(uint8_t *buf, size_t cap, uint32_t if_id, uint64_t ts,
                                 const uint8_t *data, uint32_t caplen, uint32_t origlen)
{
    size_t total = pcapenc_epb_len(caplen);
    if (total > cap)
        return total;
    pcapenc_epb_header(buf, if_id, ts, caplen, origlen);
    memcpy(buf + PCAPNG_EPB_HDR_LEN, data, caplen);
    pcapenc_epb_trailer(buf, caplen);
    return total;
}

/* pcap record header (PCAP_RECORD_HDR_LEN bytes); ts_frac is ns or µs per the file's magic. */
static inline void pcapenc_pcap_record_header(uint8_t *buf, uint32_t ts_sec, uint32_t ts_frac,
                                              uint32_t caplen, uint32_t origlen)
{
    pcapenc_put32(buf, ts_sec);
    pcapenc_put32(buf + 4, ts_frac);
    pcapenc_put32(buf + 8, caplen);
    pcapenc_put32(buf + 12, origlen);
}

/* A whole pcap record. Returns its length (nothing written if > cap). */
static inline size_t pcapenc_pcap_record(uint8_t *buf, size_t cap, uint32_t ts_sec,
                                         uint32_t ts_frac, const uint8_t *data, uint32_t caplen,
                                         uint32_t origlen)
{
    size_t total = PCAP_RECORD_HDR_LEN + (size_t)caplen;
    if (total > cap)
        return total;
    pcapenc_pcap_record_header(buf, ts_sec, ts_frac, caplen, origlen);
    memcpy(buf + PCAP_RECORD_HDR_LEN, data, caplen);
    return total;
}

#endif
