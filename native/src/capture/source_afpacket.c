/* source_afpacket: AF_PACKET TPACKET_V3 rings, one socket per worker in a PACKET_FANOUT group,
 * classic BPF from libpcap attached in the kernel, VLAN tags re-inserted as libpcap does. */
#include <errno.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <linux/if_ether.h>
#include <linux/net_tstamp.h>
#include <linux/sockios.h>
#include <linux/ethtool.h>
#include <linux/filter.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "filter.h"
#include "log.h"
#include "source.h"

#define LINKTYPE_ETHERNET 1
#define VLAN_TAG_LEN 4

struct afp_worker {
    int fd;
    uint8_t *ring;
    size_t ring_len;
    unsigned block_size;
    unsigned nblocks;
    unsigned cur;
    uint8_t frame[262144 + 64]; /* a frame with its VLAN tag put back */
    _Atomic uint64_t drops, freezes, packets; /* accumulated PACKET_STATISTICS */
};

struct afp_source {
    struct source base;
    struct afp_worker *w;
    int ifindex;
    char iface[IFNAMSIZ];
    _Atomic int hw_ok; /* hardware stamps in use and sane */
};

static void afp_close(struct source *s);

/* The kernel's counters reset on read: add them up here. */
static void afp_read_stats(struct afp_worker *w)
{
    struct tpacket_stats_v3 st;
    socklen_t len = sizeof st;
    if (getsockopt(w->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) {
        atomic_fetch_add(&w->packets, st.tp_packets);
        atomic_fetch_add(&w->drops, st.tp_drops);
        atomic_fetch_add(&w->freezes, st.tp_freeze_q_cnt);
    }
}

static void afp_counters(struct source *s, struct source_counters *out)
{
    struct afp_source *a = (struct afp_source *)s;
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < s->workers; i++) {
        struct afp_worker *w = &a->w[i];
        afp_read_stats(w);
        out->kernel_packets += atomic_load(&w->packets);
        out->kernel_drops += atomic_load(&w->drops);
        out->kernel_freezes += atomic_load(&w->freezes);
        unsigned used = 0;
        for (unsigned b = 0; b < w->nblocks; b++) {
            struct tpacket_block_desc *bd = (void *)(w->ring + (size_t)b * w->block_size);
            if (__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)
                used++;
        }
        double fill = (double)used / w->nblocks;
        if (fill > out->ring_fill)
            out->ring_fill = fill;
    }
    out->hw_stamps = atomic_load(&a->hw_ok);
}

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* A hardware clock more than 1 s away from the system clock is not to be trusted: fall back. */
static void afp_check_hw(struct afp_source *a, struct afp_worker *w, uint64_t ts, uint32_t status)
{
    uint64_t now = now_ns();
    uint64_t diff = ts > now ? ts - now : now - ts;
    if (!(status & TP_STATUS_TS_RAW_HARDWARE) || diff <= 1000000000u)
        return;
    int req = 0;
    setsockopt(w->fd, SOL_PACKET, PACKET_TIMESTAMP, &req, sizeof req);
    atomic_store(&a->hw_ok, 0);
    snprintf(a->base.ts_note, sizeof a->base.ts_note,
             "hardware clock %.3f s off the system clock: using software timestamps",
             (double)diff / 1e9);
    log_warning("%s", a->base.ts_note);
}

static void deliver(struct afp_worker *w, struct tpacket3_hdr *h, packet_fn fn, void *ctx)
{
    struct packet p;
    uint8_t *mac = (uint8_t *)h + h->tp_mac;
    p.ts_ns = (uint64_t)h->tp_sec * 1000000000u + h->tp_nsec;
    p.caplen = h->tp_snaplen;
    p.origlen = h->tp_len;
    p.data = mac;
    p.writable = mac; /* the ring block is ours until afp_poll hands it back, and the kernel
                       * reads nothing of a block it gets back (mapped read-write) */
    /* The kernel took the 802.1Q tag out of the frame; libpcap puts it back after the MACs so
     * the bytes on disk are the bytes on the wire. Do the same. */
    if ((h->hv1.tp_vlan_tci != 0 || (h->tp_status & TP_STATUS_VLAN_VALID)) && p.caplen >= 12 &&
        p.caplen + VLAN_TAG_LEN <= sizeof w->frame) {
        uint16_t tpid = (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->hv1.tp_vlan_tpid
                                                                    : ETH_P_8021Q;
        uint16_t tag[2] = {htons(tpid), htons((uint16_t)h->hv1.tp_vlan_tci)};
        memcpy(w->frame, mac, 12);
        memcpy(w->frame + 12, tag, VLAN_TAG_LEN);
        memcpy(w->frame + 16, mac + 12, p.caplen - 12);
        p.data = p.writable = w->frame;
        p.caplen += VLAN_TAG_LEN;
        p.origlen += VLAN_TAG_LEN;
    }
    fn(ctx, &p);
}

/* The kernel flags the socket (POLLERR, ENETDOWN) when the link goes down and when the interface
 * is deleted. Reading SO_ERROR clears the flag (else poll would return at once for ever: a busy
 * loop). A link that is merely down comes back by itself; an interface that is gone does not. */
static int socket_error(struct afp_source *a, struct afp_worker *w)
{
    int e = 0;
    socklen_t len = sizeof e;
    if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
        e = errno;
    if ((int)if_nametoindex(a->iface) == a->ifindex)
        return 0;
    snprintf(a->base.error, sizeof a->base.error,
             "interface %s disappeared (link or namespace deleted; %s): stopping", a->iface,
             strerror(e ? e : ENODEV));
    return -1;
}

static int afp_poll(struct source *s, unsigned worker, int timeout_ms, packet_fn fn, void *ctx)
{
    struct afp_source *a = (struct afp_source *)s;
    struct afp_worker *w = &a->w[worker];
    for (;;) {
        struct tpacket_block_desc *bd = (void *)(w->ring + (size_t)w->cur * w->block_size);
        if (!(__atomic_load_n(&bd->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) {
            if (timeout_ms == 0)
                return 0;
            struct pollfd pfd = {.fd = w->fd, .events = POLLIN | POLLERR};
            if (poll(&pfd, 1, timeout_ms) < 0 && errno != EINTR) {
                snprintf(s->error, sizeof s->error, "interface %s: poll: %s", a->iface, strerror(errno));
                return -1;
            }
            if ((pfd.revents & POLLERR) && socket_error(a, w) != 0)
                return -1;
            timeout_ms = 0;
            continue;
        }
        uint32_t n = bd->hdr.bh1.num_pkts;
        struct tpacket3_hdr *h = (void *)((uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt);
        if (n > 0 && atomic_load_explicit(&a->hw_ok, memory_order_relaxed))
            afp_check_hw(a, w, (uint64_t)h->tp_sec * 1000000000u + h->tp_nsec, h->tp_status);
        for (uint32_t i = 0; i < n; i++) {
            struct tpacket3_hdr *next = (void *)((uint8_t *)h + h->tp_next_offset);
            /* The kernel wrote the next frame on another CPU: start fetching its header and first
             * bytes while this one is copied (76 B frames: the capture thread took 0.128 s for 3 M
             * against 0.138 s without, native/README.md "Old code against new"). */
            if (i + 1 < n) {
                __builtin_prefetch(next);
                __builtin_prefetch((const uint8_t *)next + 64);
            }
            deliver(w, h, fn, ctx);
            h = next;
        }
        __atomic_store_n(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        w->cur = (w->cur + 1) % w->nblocks;
        return (int)n; /* one block per call: the caller's batch stays short */
    }
}

static const struct source_ops afp_ops = {afp_poll, afp_counters, afp_close};

static void afp_close(struct source *s)
{
    struct afp_source *a = (struct afp_source *)s;
    for (unsigned i = 0; i < s->workers; i++) {
        if (a->w[i].ring != NULL && a->w[i].ring != MAP_FAILED)
            munmap(a->w[i].ring, a->w[i].ring_len);
        if (a->w[i].fd >= 0)
            close(a->w[i].fd);
    }
    free(a->w);
    free(a);
}

/* Ask the driver to stamp every received packet; 0 when it agreed. */
static int enable_hw_stamps(int fd, const char *iface)
{
    struct hwtstamp_config cfg = {0};
    cfg.tx_type = HWTSTAMP_TX_OFF;
    cfg.rx_filter = HWTSTAMP_FILTER_ALL;
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", iface);
    ifr.ifr_data = (void *)&cfg;
    if (ioctl(fd, SIOCSHWTSTAMP, &ifr) != 0)
        return -1;
    int req = SOF_TIMESTAMPING_RAW_HARDWARE;
    return setsockopt(fd, SOL_PACKET, PACKET_TIMESTAMP, &req, sizeof req);
}

static int fanout_arg(const struct capture_opts *o)
{
    unsigned mode = PACKET_FANOUT_HASH;
    switch (o->fanout) {
    case FANOUT_HASH: mode = PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG; break;
    case FANOUT_LB: mode = PACKET_FANOUT_LB; break;
    case FANOUT_CPU: mode = PACKET_FANOUT_CPU; break;
    case FANOUT_QM: mode = PACKET_FANOUT_QM; break;
    }
    return (int)(((unsigned)getpid() & 0xffffu) | (mode << 16));
}

static int open_worker(struct afp_worker *w, const struct capture_opts *o, int ifindex,
                       const struct sock_fprog *filter, char *err, size_t errlen)
{
    const char *what = "socket";
    w->fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: nothing arrives before bind */
    if (w->fd < 0)
        goto fail;
    int v = TPACKET_V3;
    what = "PACKET_VERSION";
    if (setsockopt(w->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof v) != 0)
        goto fail;
    /* One kernel timestamp per packet shared by every tap (tcpdump sees the same ns). */
    v = 1;
    setsockopt(w->fd, SOL_SOCKET, SO_TIMESTAMPNS, &v, sizeof v);
    w->block_size = 1u << 20;
    w->nblocks = (unsigned)(o->ring_bytes / w->block_size);
    struct tpacket_req3 req = {0};
    req.tp_block_size = w->block_size;
    req.tp_block_nr = w->nblocks;
    req.tp_frame_size = 2048;
    req.tp_frame_nr = (unsigned)((size_t)w->block_size * w->nblocks / req.tp_frame_size);
    req.tp_retire_blk_tov = 8; /* ms: a quiet link still reaches the disk soon */
    what = "PACKET_RX_RING";
    if (setsockopt(w->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) != 0)
        goto fail;
    w->ring_len = (size_t)w->block_size * w->nblocks;
    what = "mmap of the ring";
    /* Locked and prefaulted: a page fault in the ring would stall the capture thread. */
    w->ring = mmap(NULL, w->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED | MAP_POPULATE,
                   w->fd, 0);
    if (w->ring == MAP_FAILED)
        w->ring = mmap(NULL, w->ring_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, w->fd, 0);
    if (w->ring == MAP_FAILED)
        goto fail;
    what = "SO_ATTACH_FILTER";
    if (filter != NULL && setsockopt(w->fd, SOL_SOCKET, SO_ATTACH_FILTER, filter, sizeof *filter) != 0)
        goto fail;
    struct sockaddr_ll sll = {0};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = ifindex;
    what = "bind";
    if (bind(w->fd, (struct sockaddr *)&sll, sizeof sll) != 0)
        goto fail;
    struct packet_mreq mr = {0};
    mr.mr_ifindex = ifindex;
    mr.mr_type = PACKET_MR_PROMISC;
    what = "promiscuous mode";
    if (setsockopt(w->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) != 0)
        goto fail;
    if (o->workers > 1) {
        int arg = fanout_arg(o);
        what = "PACKET_FANOUT";
        if (setsockopt(w->fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) != 0)
            goto fail;
    }
    /* Forget counters from before the filter was attached. */
    struct tpacket_stats_v3 st;
    socklen_t len = sizeof st;
    getsockopt(w->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len);
    return 0;
fail:
    snprintf(err, errlen, "interface %s: %s: %s", o->iface, what, strerror(errno));
    return -1;
}

uint64_t source_link_bps(const char *iface)
{
    struct ethtool_cmd cmd = {.cmd = ETHTOOL_GSET};
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", iface);
    ifr.ifr_data = (void *)&cmd;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int rc = fd >= 0 ? ioctl(fd, SIOCETHTOOL, &ifr) : -1;
    if (fd >= 0)
        close(fd);
    uint32_t mbps = ethtool_cmd_speed(&cmd);
    if (rc != 0 || mbps == 0 || mbps == (uint32_t)SPEED_UNKNOWN)
        return 0;
    return (uint64_t)mbps * 1000000u;
}

/* Ethernet framing only: that is what a SPAN port or tap delivers. */
static int link_type_of(const char *iface, char *err, size_t errlen)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", iface);
    int rc = fd >= 0 ? ioctl(fd, SIOCGIFHWADDR, &ifr) : -1;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (rc != 0) {
        snprintf(err, errlen, "interface %s: %s", iface, strerror(e));
        return -1;
    }
    if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER && ifr.ifr_hwaddr.sa_family != ARPHRD_LOOPBACK) {
        snprintf(err, errlen, "interface %s: not an Ethernet interface (ARPHRD %d); try --backend pcap",
                 iface, ifr.ifr_hwaddr.sa_family);
        return -1;
    }
    return LINKTYPE_ETHERNET;
}

struct source *source_afpacket_open(const struct capture_opts *o, char *err, size_t errlen)
{
    int ifindex = (int)if_nametoindex(o->iface);
    if (ifindex == 0) {
        snprintf(err, errlen, "interface %s: no such interface", o->iface);
        return NULL;
    }
    int linktype = link_type_of(o->iface, err, errlen);
    if (linktype < 0)
        return NULL;
    struct bpf_program prog = {0};
    if (o->filter != NULL &&
        filter_compile(o->filter, o->iface, linktype, o->snaplen, o->filter_timeout, &prog, err, errlen) != 0)
        return NULL;
    struct sock_fprog fprog = {.len = (unsigned short)prog.bf_len, .filter = (void *)prog.bf_insns};

    struct afp_source *a = calloc(1, sizeof *a);
    if (a != NULL)
        a->w = calloc(o->workers, sizeof *a->w);
    if (a == NULL || a->w == NULL) {
        snprintf(err, errlen, "out of memory");
        free(a);
        pcap_freecode(&prog);
        return NULL;
    }
    a->base.ops = &afp_ops;
    a->base.workers = o->workers;
    a->base.linktype = linktype;
    a->ifindex = ifindex;
    snprintf(a->iface, sizeof a->iface, "%s", o->iface);
    for (unsigned i = 0; i < o->workers; i++)
        a->w[i].fd = -1;
    for (unsigned i = 0; i < o->workers; i++) {
        if (open_worker(&a->w[i], o, ifindex, o->filter ? &fprog : NULL, err, errlen) != 0) {
            pcap_freecode(&prog);
            afp_close(&a->base);
            return NULL;
        }
    }
    pcap_freecode(&prog);
    if (o->hw_timestamps) {
        int ok = 1;
        for (unsigned i = 0; i < o->workers && ok; i++)
            ok = enable_hw_stamps(a->w[i].fd, o->iface) == 0;
        if (ok) {
            atomic_store(&a->hw_ok, 1);
        } else {
            snprintf(a->base.ts_note, sizeof a->base.ts_note,
                     "interface %s has no hardware timestamps (%s): using software timestamps",
                     o->iface, strerror(errno));
            log_warning("%s", a->base.ts_note);
            for (unsigned i = 0; i < o->workers; i++) {
                int req = 0;
                setsockopt(a->w[i].fd, SOL_PACKET, PACKET_TIMESTAMP, &req, sizeof req);
            }
        }
    }
    return &a->base;
}
