/* source_pcap: libpcap as the packet source, for a live interface (--backend pcap) or a file
 * (-r FILE, read with nanosecond precision). */
#include <errno.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "source.h"

struct pcap_source {
    struct source base;
    pcap_t *p;
    packet_fn fn;
    void *ctx;
    int delivered;
    struct source_counters last;
};

static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
    struct pcap_source *ps = (struct pcap_source *)user;
    struct packet p;
    /* Opened with nanosecond precision: tv_usec holds nanoseconds. A pcap file's seconds are
     * unsigned 32-bit, which libpcap hands over sign-extended: read them back as unsigned so a
     * time after 2038-01-19 does not wrap. */
    p.ts_ns = (uint64_t)(uint32_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec;
    p.data = bytes;
    p.writable = NULL; /* libpcap's buffer: not ours to rewrite */
    p.caplen = h->caplen;
    p.origlen = h->len;
    ps->fn(ps->ctx, &p);
    ps->delivered++;
}

static int pcap_poll(struct source *s, unsigned worker, int timeout_ms, packet_fn fn, void *ctx)
{
    struct pcap_source *ps = (struct pcap_source *)s;
    ps->fn = fn;
    ps->ctx = ctx;
    ps->delivered = 0;
    if (!s->is_file) {
        struct pollfd pfd = {.fd = pcap_get_selectable_fd(ps->p), .events = POLLIN};
        if (pfd.fd >= 0 && poll(&pfd, 1, timeout_ms) == 0)
            return 0;
    }
    int rc = pcap_dispatch(ps->p, s->is_file ? 4096 : -1, on_packet, (u_char *)ps);
    if (rc == PCAP_ERROR) {
        snprintf(s->error, sizeof s->error, "libpcap: %s", pcap_geterr(ps->p));
        return -1;
    }
    if (s->is_file && rc == 0)
        return SOURCE_EOF;
    return ps->delivered;
}

static void pcap_counters(struct source *s, struct source_counters *out)
{
    struct pcap_source *ps = (struct pcap_source *)s;
    struct pcap_stat st;
    memset(out, 0, sizeof *out);
    if (!s->is_file && pcap_stats(ps->p, &st) == 0) {
        out->kernel_packets = st.ps_recv;
        out->kernel_drops = st.ps_drop;
    }
}

static void pcap_source_close(struct source *s)
{
    struct pcap_source *ps = (struct pcap_source *)s;
    if (ps->p != NULL)
        pcap_close(ps->p);
    free(ps);
}

static const struct source_ops pcap_ops = {pcap_poll, pcap_counters, pcap_source_close};

static int apply_filter(struct pcap_source *ps, const struct capture_opts *o, char *err, size_t errlen)
{
    if (o->filter == NULL)
        return 0;
    struct bpf_program prog;
    if (filter_compile(o->filter, NULL, pcap_datalink(ps->p), o->snaplen, o->filter_timeout, &prog, err,
                       errlen) != 0)
        return -1;
    int rc = pcap_setfilter(ps->p, &prog);
    pcap_freecode(&prog);
    if (rc != 0)
        snprintf(err, errlen, "filter '%s': %s", o->filter, pcap_geterr(ps->p));
    return rc == 0 ? 0 : -1;
}

static pcap_t *open_live(const struct capture_opts *o, char *err, size_t errlen)
{
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    pcap_t *p = pcap_create(o->iface, ebuf);
    if (p == NULL) {
        snprintf(err, errlen, "interface %s: %s", o->iface, ebuf);
        return NULL;
    }
    pcap_set_snaplen(p, (int)o->snaplen);
    pcap_set_promisc(p, 1);
    pcap_set_timeout(p, 100);
    pcap_set_buffer_size(p, (int)(o->ring_bytes > (1u << 30) ? (1u << 30) : o->ring_bytes));
    pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO);
    int rc = pcap_activate(p);
    if (rc < 0) {
        if (rc == PCAP_ERROR_NO_SUCH_DEVICE)
            snprintf(err, errlen, "interface %s: no such interface", o->iface);
        else
            snprintf(err, errlen, "interface %s: %s", o->iface, pcap_geterr(p));
        pcap_close(p);
        return NULL;
    }
    pcap_setnonblock(p, 1, ebuf);
    return p;
}

/* The LINKTYPE_ value for the file header: libpcap hands out a DLT_ (12 for raw IP on Linux,
 * where the file says 101) and keeps the field's upper bits (FCS length) apart. */
static int file_linktype(pcap_t *p)
{
    int dlt = pcap_datalink(p);
    int lt = dlt == 12 ? 101 : dlt == 11 ? 100 : dlt;
    return lt | pcap_datalink_ext(p);
}

struct source *source_pcap_open(const struct capture_opts *o, char *err, size_t errlen)
{
    struct pcap_source *ps = calloc(1, sizeof *ps);
    if (ps == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ps->base.ops = &pcap_ops;
    ps->base.workers = 1;
    if (o->read_file != NULL) {
        char ebuf[PCAP_ERRBUF_SIZE] = "";
        ps->p = pcap_open_offline_with_tstamp_precision(o->read_file, PCAP_TSTAMP_PRECISION_NANO, ebuf);
        if (ps->p == NULL) {
            snprintf(err, errlen, "cannot read %s: %s", o->read_file, ebuf);
            free(ps);
            return NULL;
        }
        ps->base.is_file = 1;
    } else {
        ps->p = open_live(o, err, errlen);
        if (ps->p == NULL) {
            free(ps);
            return NULL;
        }
        if (o->hw_timestamps)
            snprintf(ps->base.ts_note, sizeof ps->base.ts_note,
                     "--backend pcap uses software timestamps");
    }
    ps->base.linktype = file_linktype(ps->p);
    if (apply_filter(ps, o, err, errlen) != 0) {
        pcap_source_close(&ps->base);
        return NULL;
    }
    return &ps->base;
}
