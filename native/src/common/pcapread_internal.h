/* pcapread_internal: what the parts of the reader share (pcapread.c: open, dispatch, bookkeeping;
 * pcapread_pcap.c: the pcap format; pcapread_ng.c: pcapng). Not for use outside the reader. */
#ifndef SLUICE_PCAPREAD_INTERNAL_H
#define SLUICE_PCAPREAD_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "bytesrc.h"
#include "pcapread.h"

#define PCAP_MAGIC_US 0xa1b2c3d4u
#define PCAP_MAGIC_NS 0xa1b23c4du
#define NG_SHB 0x0a0d0d0au
#define NG_IDB 1u
#define NG_PB 2u
#define NG_SPB 3u
#define NG_NRB 4u
#define NG_ISB 5u
#define NG_EPB 6u
#define NG_DSB 0x0au
#define NG_BOM 0x1a2b3c4du
#define DAY 86400

struct pr_reader {
    bytesrc *bs;
    enum pr_mode mode;
    enum pr_format format;
    bool swapped;
    bool nano;
    bool inferred;
    bool failed;               /* sticky end after strict damage or I/O error */
    uint32_t snaplen;
    uint32_t maxcap;           /* largest caplen accepted */
    struct pr_iface *ifs;
    size_t nifs, capifs;
    size_t section_base;       /* first interface of the current pcapng section */
    uint32_t section;
    bool have_prev;
    int64_t prev_sec;
    uint64_t index;
    struct pr_damage damage;
    uint64_t ndamage;
    bool io_noted;
    uint64_t gaps_noted;
    int pending_rc;            /* a packet read ahead at open (pcapng: to know the interfaces) */
    struct pr_packet pending;
    uint64_t skipped;
};

static inline uint32_t rd32(const pr_reader *r, const uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return r->swapped ? __builtin_bswap32(v) : v;
}

static inline uint16_t rd16(const pr_reader *r, const uint8_t *p)
{
    uint16_t v = (uint16_t)(p[0] | p[1] << 8);
    return r->swapped ? __builtin_bswap16(v) : v;
}

static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Damage in PR_RESYNC: counted, the first one kept; reading goes on. */
void pr_note(pr_reader *r, enum pr_damage_kind kind, uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Strict damage, or an I/O error in any mode: the reader stops (sticky). Returns -1. */
int pr_stop(pr_reader *r, enum pr_damage_kind kind, uint64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* bs_peek/bs_skip that turn a stream error into pr_stop. */
long pr_peek(pr_reader *r, size_t n, const uint8_t **p);
int pr_skip(pr_reader *r, uint64_t n);
int pr_add_iface(pr_reader *r, const struct pr_iface *ifc);

/* pcap (pcapread_pcap.c) */
int pr_open_pcap_header(pr_reader *r, const uint8_t *p);
int pr_infer_pcap_header(pr_reader *r, char *err, size_t errlen);
int pr_pcap_next_strict(pr_reader *r, struct pr_packet *pkt);
int pr_pcap_next_resync(pr_reader *r, struct pr_packet *pkt);

/* pcapng (pcapread_ng.c) */
bool pr_shb_order(pr_reader *r, const uint8_t *p);
/* The SHB at p (16 bytes, byte order known) has a version the peers read: 1.0 or 1.2. */
bool pr_ng_version_ok(const pr_reader *r, const uint8_t *p);
int pr_ng_next(pr_reader *r, struct pr_packet *pkt);
bool pr_find_pcapng_start(pr_reader *r);

#endif
