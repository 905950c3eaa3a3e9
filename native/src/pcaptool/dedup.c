/* dedup: drop the copies a SPAN port makes. A packet is a copy when an earlier packet in the
 * window has the same bytes once the fields that differ between copies of one packet are masked:
 * the IPv4 TTL and header checksum and the IPv6 hop limit (routed SPAN), and with --ignore-vlan
 * the 802.1Q/802.1ad tags. The window keeps the bytes, so a copy is confirmed byte for byte. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "dupwindow.h"
#include "tool.h"

/* Offset of the network header and its ethertype for the link types we know; -1 otherwise. */
static int l3_offset(uint16_t linktype, const uint8_t *d, uint32_t n, uint16_t *ethertype, bool *vlan)
{
    *vlan = false;
    switch (linktype) {
    case 1: {
        if (n < 14)
            return -1;
        uint32_t off = 12;
        uint16_t et = (uint16_t)(d[off] << 8 | d[off + 1]);
        while ((et == 0x8100 || et == 0x88a8 || et == 0x9100) && off + 6 <= n) {
            *vlan = true;
            off += 4;
            et = (uint16_t)(d[off] << 8 | d[off + 1]);
        }
        *ethertype = et;
        return (int)off + 2;
    }
    case 113:
        if (n < 16)
            return -1;
        *ethertype = (uint16_t)(d[14] << 8 | d[15]);
        return 16;
    case 276:
        if (n < 20)
            return -1;
        *ethertype = (uint16_t)(d[0] << 8 | d[1]);
        return 20;
    case 101:
    case 228:
    case 229:
        if (n < 1)
            return -1;
        *ethertype = (d[0] >> 4) == 4 ? 0x0800 : (d[0] >> 4) == 6 ? 0x86dd : 0;
        return 0;
    default:
        return -1;
    }
}

/* The packet as compared: masked fields zeroed, VLAN tags left out when ignore_vlan. */
static uint32_t canonical(uint16_t linktype, const uint8_t *d, uint32_t n, bool ignore_vlan, uint8_t *out)
{
    uint16_t et = 0;
    bool vlan;
    int l3 = l3_offset(linktype, d, n, &et, &vlan);
    uint32_t len = n;
    memcpy(out, d, n);
    if (l3 < 0)
        return n;
    if (ignore_vlan && vlan && linktype == 1) {
        /* dst+src MAC, then the innermost ethertype and everything after it. */
        memcpy(out + 12, d + l3 - 2, n - (uint32_t)l3 + 2);
        len = n - ((uint32_t)l3 - 14);
        l3 = 14;
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
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int h = out_option(&oo, c, optarg, "dedup");
        if (h < 0)
            return EXIT_USAGE;
        if (h)
            continue;
        if (c == OPT_JSON) {
            as_json = true;
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
    if (tool_refuse_overwrite("dedup", out_path, argv + optind, 1))
        return EXIT_USAGE;
    pr_reader *r;
    int rc = tool_open(&r, in_path, PR_STRICT, "dedup");
    if (rc)
        return rc;
    dupwindow *dw = dw_new(window_ns, window_packets);
    uint8_t *canon = malloc(PR_MAX_BLOCK);
    struct po_options po_opt = out_resolve(&oo, r);
    char err[256];
    pcapout *po = NULL;
    if (!dw || !canon) {
        rc = tool_fail(EXIT_FAIL, "dedup", "out of memory");
        goto out;
    }
    if (po_open(&po, out_path, &po_opt, err, sizeof err) < 0) {
        rc = tool_fail(EXIT_FAIL, "dedup", "%s", err);
        goto out;
    }
    int map[4096];
    size_t mapped = 0;
    uint64_t in = 0, dropped = 0;
    struct pr_packet pkt;
    struct progress pg;
    progress_init(&pg, "dedup");
    int got;
    while ((got = pr_next(r, &pkt)) == 1) {
        in++;
        if ((rc = tool_sync_ifaces(po, r, map, &mapped, 4096, "dedup")) != 0)
            break;
        uint32_t n = canonical(pkt.linktype, pkt.data, pkt.caplen, ignore_vlan, canon);
        int seen = dw_seen(dw, pkt.ts_ns, canon, n);
        if (seen < 0) {
            rc = tool_fail(EXIT_FAIL, "dedup", "out of memory in the window");
            break;
        }
        if (seen) {
            dropped++;
        } else if (po_write(po, (uint32_t)map[pkt.iface], pkt.ts_ns, pkt.data, pkt.caplen, pkt.origlen) < 0) {
            rc = tool_fail(EXIT_FAIL, "dedup", "%s", po_error(po));
            break;
        }
        progress_update(&pg, r, in);
    }
    progress_done(&pg);
    if (rc == 0 && got < 0)
        rc = tool_read_error(r, in_path, "dedup");
    if (rc == 0)
        rc = tool_sync_ifaces(po, r, map, &mapped, 4096, "dedup");
    if (rc) {
        po_abort(po);
        goto out;
    }
    uint64_t out_n = po_packets(po);
    if (po_commit(po, err, sizeof err) < 0) {
        rc = tool_fail(EXIT_FAIL, "dedup", "%s", err);
        goto out;
    }
    char text[160], js[200];
    if (window_packets)
        snprintf(text, sizeof text, "%" PRIu64 " copies removed (window %" PRIu64 " packets)", dropped, window_packets);
    else
        snprintf(text, sizeof text, "%" PRIu64 " copies removed (window %.6f s)", dropped, window_ns / 1e9);
    snprintf(js, sizeof js, "\"duplicates\": %" PRIu64 ", \"window_ns\": %" PRId64 ", \"window_packets\": %" PRIu64,
             dropped, window_packets ? 0 : window_ns, window_packets);
    print_summary(as_json, "dedup", in, out_n, dropped, text, js);
out:
    free(canon);
    dw_free(dw);
    pr_close(r);
    return rc;
}
