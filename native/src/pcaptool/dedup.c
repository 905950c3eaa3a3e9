/* dedup: drop the copies a SPAN port makes. A packet is a copy when an earlier packet in the
 * window has the same bytes once the fields that differ between copies of one packet are masked:
 * the IPv4 TTL and header checksum and the IPv6 hop limit (routed SPAN), and with --ignore-vlan
 * the 802.1Q/802.1ad tags. The window keeps the bytes, so a copy is confirmed byte for byte. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dupwindow.h"
#include "frame.h"
#include "tool.h"

/* The packet as compared: masked fields zeroed, VLAN tags left out when ignore_vlan. */
static uint32_t canonical(uint16_t linktype, const uint8_t *d, uint32_t n, bool ignore_vlan, uint8_t *out)
{
    uint16_t et = 0;
    bool vlan;
    int l3 = frame_l3(linktype, d, n, &et, &vlan, NULL);
    uint32_t len = n;
    memcpy(out, d, n);
    if (l3 < 0)
        return n;
    if (ignore_vlan && vlan && linktype == 1) {
        /* dst+src MAC, then the innermost ethertype and everything after it. */
        uint32_t et_off = frame_ether_walk(d, n, NULL, NULL);
        memcpy(out + 12, d + et_off, n - et_off);
        len = n - (et_off - 12);
        l3 -= (int)(et_off - 12);
    }
    uint8_t *ip = out + l3;
    uint32_t left = len - (uint32_t)l3;
    if (et == 0x0800 && left >= 12 && (ip[0] >> 4) == 4) {
        ip[8] = 0;            /* TTL */
        ip[10] = ip[11] = 0;  /* header checksum */
    } else if (et == 0x86dd && left >= 8 && (ip[0] >> 4) == 6) {
        ip[7] = 0;            /* hop limit */
    }
    return len;
}

struct dedup {
    dupwindow *dw;
    uint8_t *canon;
    bool ignore_vlan;
    bool by_time;
    uint64_t dropped;
    uint64_t untimed;   /* Simple Packet Blocks: no time, so never in a time window */
};

/* tool_filter: a packet is written unless it is a copy of one in the window. */
static int dedup_packet(void *ctx, struct pr_packet *pkt)
{
    struct dedup *dd = ctx;
    if (dd->by_time && !pkt->has_ts) {
        dd->untimed++;
        return 1;
    }
    uint32_t n = canonical(pkt->linktype, pkt->data, pkt->caplen, dd->ignore_vlan, dd->canon);
    int seen = dw_seen(dd->dw, pkt->ts_ns, dd->canon, n);
    if (seen < 0)
        return -tool_fail(EXIT_FAIL, "dedup", "out of memory in the window");
    if (seen)
        dd->dropped++;
    return !seen;
}

int cmd_dedup(int argc, char **argv)
{
    enum { OPT_WINDOW = 1100, OPT_WINDOW_PACKETS, OPT_IGNORE_VLAN };
    static const struct option opts[] = {OUT_LONG_OPTIONS,
                                         {"window", required_argument, 0, OPT_WINDOW},
                                         {"window-packets", required_argument, 0, OPT_WINDOW_PACKETS},
                                         {"ignore-vlan", no_argument, 0, OPT_IGNORE_VLAN},
                                         {0, 0, 0, 0}};
    static const char *use = "usage: sluice-pcap dedup [--window TIME (1ms) | --window-packets N] "
                             "[--ignore-vlan] [--format F] [--json] IN OUT";
    struct out_opts oo = OUT_OPTS_INIT;
    bool as_json = false, ignore_vlan = false;
    int64_t window_ns = 1000000;
    uint64_t window_packets = 0;
    int c;
    optind = 1;
    while ((c = tool_getopt(argc, argv, "", opts, &oo, &as_json, "dedup")) != -1) {
        if (c == OPT_BAD_VALUE) {
            return EXIT_USAGE;
        } else if (c == OPT_WINDOW) {
            window_ns = parse_duration_ns(optarg);
            if (window_ns < 0)
                return tool_fail(EXIT_USAGE, "dedup", "--window wants a time such as 1ms or 0.001, not '%s'",
                                 optarg);
        } else if (c == OPT_WINDOW_PACKETS) {
            char *end;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (*end || v == 0 || v > 100000000ULL || optarg[0] == '-')
                return tool_fail(EXIT_USAGE, "dedup", "--window-packets wants a count 1..100000000, not '%s'",
                                 optarg);
            window_packets = v;
        } else if (c == OPT_IGNORE_VLAN) {
            ignore_vlan = true;
        } else {
            return tool_fail(EXIT_USAGE, "dedup", "%s", use);
        }
    }
    if (argc - optind != 2)
        return tool_fail(EXIT_USAGE, "dedup", "%s", use);
    const char *in_path = argv[optind], *out_path = argv[optind + 1];
    if (tool_check_output("dedup", out_path, argv + optind, 1))
        return EXIT_USAGE;
    pr_reader *r;
    int rc = tool_open(&r, in_path, PR_STRICT, "dedup");
    if (rc)
        return rc;
    struct dedup dd = {.dw = dw_new(window_ns, window_packets), .canon = malloc(PR_MAX_BLOCK),
                       .ignore_vlan = ignore_vlan, .by_time = window_packets == 0};
    struct po_options po_opt = out_resolve(&oo, r);
    uint64_t in, out_n;
    if (!dd.dw || !dd.canon)
        rc = tool_fail(EXIT_FAIL, "dedup", "out of memory");
    else
        rc = tool_copy("dedup", r, in_path, out_path, &po_opt, dedup_packet, &dd, &in, &out_n);
    if (rc == 0) {
        char text[240], js[260];
        if (window_packets)
            snprintf(text, sizeof text, "%" PRIu64 " copies removed (window %" PRIu64 " packets)", dd.dropped,
                     window_packets);
        else
            snprintf(text, sizeof text, "%" PRIu64 " copies removed (window %.6f s)", dd.dropped,
                     window_ns / 1e9);
        snprintf(js, sizeof js, "\"duplicates\": %" PRIu64 ", \"window_ns\": %" PRId64
                 ", \"window_packets\": %" PRIu64 ", \"not_compared_without_timestamp\": %" PRIu64, dd.dropped,
                 window_packets ? 0 : window_ns, window_packets, dd.untimed);
        if (dd.untimed)
            snprintf(text + strlen(text), sizeof text - strlen(text),
                     "; %" PRIu64 " packets without a timestamp (Simple Packet Blocks) kept, not compared",
                     dd.untimed);
        print_summary(as_json, "dedup", in, out_n, dd.dropped, text, js);
    }
    free(dd.canon);
    dw_free(dd.dw);
    pr_close(r);
    return rc;
}
