/* flows: bidirectional flow records (CSV or IPFIX) from one or more captures read as one
 * stream. Every IPv4/IPv6 packet counts in exactly one flow (a non-first fragment has ports 0),
 * so packets over all flows equal the IP packets of the input. Bytes are IP bytes (header and
 * payload), as NetFlow/IPFIX count them. ICMP types/codes go in the destination port as
 * type*256+code, as NetFlow does. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "flowtable.h"
#include "frame.h"
#include "ipfix.h"
#include "tool.h"

enum { OUT_CSV, OUT_IPFIX };

struct sink {
    int format;
    FILE *f;
    ipfix_writer *ipfix;
    uint64_t flows, packets;
};

static int write_csv(const struct flow *f, FILE *out)
{
    char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
    int af = f->key.family == 4 ? AF_INET : AF_INET6;
    inet_ntop(af, f->key.src, src, sizeof src);
    inet_ntop(af, f->key.dst, dst, sizeof dst);
    return fprintf(out, "%" PRIu64 ".%09" PRIu64 ",%" PRIu64 ".%09" PRIu64 ",%s,%s,%u,%u,%u,%u,%" PRIu64
                   ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%u,%u\n",
                   f->first_ns / 1000000000u, f->first_ns % 1000000000u, f->last_ns / 1000000000u,
                   f->last_ns % 1000000000u, src, dst, f->key.sport, f->key.dport, f->key.proto, f->key.vlan,
                   f->packets[0], f->bytes[0], f->packets[1], f->bytes[1], f->flags[0], f->flags[1]) < 0
               ? -1
               : 0;
}

static int emit_flow(const struct flow *f, void *ctx)
{
    struct sink *s = ctx;
    s->flows++;
    s->packets += f->packets[0] + f->packets[1];
    if (s->format == OUT_CSV)
        return write_csv(f, s->f);
    return ipfix_add(s->ipfix, f);
}

/* Key, IP byte count and TCP flags of one frame; false when it is not IP. */
static bool dissect(uint16_t linktype, const uint8_t *d, uint32_t n, struct flow_key *k, uint64_t *bytes,
                    uint16_t *flags, uint32_t origlen)
{
    memset(k, 0, sizeof *k);
    *flags = 0;
    uint16_t et;
    int l3 = frame_l3(linktype, d, n, &et, NULL, &k->vlan);
    if (l3 < 0)
        return false;
    uint32_t off = (uint32_t)l3;
    const uint8_t *ip = d + off;
    uint32_t left = n > off ? n - off : 0;
    uint32_t l4off;
    uint8_t proto;
    bool first_frag = true;
    if (et == 0x0800) {
        if (left < 20 || (ip[0] >> 4) != 4)
            return false;
        k->family = 4;
        memcpy(k->src, ip + 12, 4);
        memcpy(k->dst, ip + 16, 4);
        proto = ip[9];
        uint16_t tot = be16(ip + 2);
        *bytes = tot ? tot : (origlen > off ? origlen - off : left);
        first_frag = (be16(ip + 6) & 0x1fff) == 0;
        l4off = (uint32_t)(ip[0] & 0x0f) * 4;
    } else if (et == 0x86dd) {
        if (left < 40 || (ip[0] >> 4) != 6)
            return false;
        k->family = 6;
        memcpy(k->src, ip + 8, 16);
        memcpy(k->dst, ip + 24, 16);
        *bytes = (uint64_t)be16(ip + 4) + 40;
        proto = ip[6];
        l4off = 40;
        for (int hops = 0; hops < 8 && l4off + 8 <= left; hops++) {
            if (proto == 0 || proto == 43 || proto == 60) {
                proto = ip[l4off];
                l4off += ((uint32_t)ip[l4off + 1] + 1) * 8;
            } else if (proto == 44) {
                first_frag = (be16(ip + l4off + 2) & 0xfff8) == 0;
                proto = ip[l4off];
                l4off += 8;
            } else {
                break;
            }
        }
    } else {
        return false;
    }
    k->proto = proto;
    if (!first_frag || l4off >= left)
        return true;
    const uint8_t *l4 = ip + l4off;
    uint32_t l4n = left - l4off;
    if ((proto == 6 || proto == 17 || proto == 132) && l4n >= 4) {
        k->sport = be16(l4);
        k->dport = be16(l4 + 2);
        if (proto == 6 && l4n >= 14)
            *flags = (uint16_t)(((l4[12] & 1) << 8) | l4[13]);
    } else if ((proto == 1 || proto == 58) && l4n >= 2) {
        k->dport = (uint16_t)(l4[0] << 8 | l4[1]);
    }
    return true;
}

static int parse_seconds(const char *s, uint64_t *ns)
{
    int64_t v = parse_duration_ns(s);
    if (v <= 0)
        return -1;
    *ns = (uint64_t)v;
    return 0;
}

int cmd_flows(int argc, char **argv)
{
    enum { OPT_IDLE = 1400, OPT_ACTIVE };
    static const struct option opts[] = {{"format", required_argument, 0, OPT_FORMAT},
                                         {"json", no_argument, 0, OPT_JSON},
                                         {"output", required_argument, 0, 'o'},
                                         {"idle-timeout", required_argument, 0, OPT_IDLE},
                                         {"active-timeout", required_argument, 0, OPT_ACTIVE},
                                         {0, 0, 0, 0}};
    static const char *use = "usage: sluice-pcap flows [--format csv|ipfix] [--idle-timeout S (300)] "
                             "[--active-timeout S (1800)] [--json] -o OUT IN...";
    struct sink sink = {.format = OUT_CSV};
    const char *out_path = NULL;
    bool as_json = false;
    uint64_t idle = 300000000000ull, active = 1800000000000ull;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        if (c == 'o')
            out_path = optarg;
        else if (c == OPT_JSON)
            as_json = true;
        else if (c == OPT_FORMAT && strcmp(optarg, "csv") == 0)
            sink.format = OUT_CSV;
        else if (c == OPT_FORMAT && strcmp(optarg, "ipfix") == 0)
            sink.format = OUT_IPFIX;
        else if (c == OPT_FORMAT)
            return tool_fail(EXIT_USAGE, "flows", "--format must be csv or ipfix, not '%s'", optarg);
        else if (c == OPT_IDLE && parse_seconds(optarg, &idle) == 0)
            continue;
        else if (c == OPT_ACTIVE && parse_seconds(optarg, &active) == 0)
            continue;
        else if (c == OPT_IDLE || c == OPT_ACTIVE)
            return tool_fail(EXIT_USAGE, "flows", "%s wants a positive time in seconds (or 10ms, 5m), not '%s'",
                             c == OPT_IDLE ? "--idle-timeout" : "--active-timeout", optarg);
        else
            return tool_fail(EXIT_USAGE, "flows", "%s", use);
    }
    if (!out_path || optind >= argc)
        return tool_fail(EXIT_USAGE, "flows", "%s", use);
    if (tool_check_output("flows", out_path, argv + optind, argc - optind))
        return EXIT_USAGE;
    /* Open every input first: a bad one fails before any output exists. */
    int nin = argc - optind, rc = 0;
    pr_reader **rs = calloc((size_t)nin, sizeof *rs);
    if (!rs)
        return tool_fail(EXIT_FAIL, "flows", "out of memory");
    for (int i = 0; i < nin && !rc; i++)
        rc = tool_open(&rs[i], argv[optind + i], PR_STRICT, "flows");
    struct outfile of = {.fd = -1};
    flowtable *ft = NULL;
    if (!rc) {
        char err[512];
        if (of_open(&of, out_path, err, sizeof err) < 0)
            rc = tool_fail(EXIT_FAIL, "flows", "%s", err);
        else if (!(sink.f = fdopen(of.fd, "wb")))
            rc = tool_fail(EXIT_FAIL, "flows", "%s: %s", out_path, strerror(errno));
    }
    if (!rc) {
        setvbuf(sink.f, NULL, _IOFBF, 1 << 20);
        if (sink.format == OUT_CSV)
            fputs("first_ts,last_ts,src_addr,dst_addr,src_port,dst_port,proto,vlan,packets,bytes,"
                  "rev_packets,rev_bytes,tcp_flags,rev_tcp_flags\n", sink.f);
        else
            sink.ipfix = ipfix_new(sink.f, 1);
        ft = ft_new(idle, active, emit_flow, &sink);
        if (!ft || (sink.format == OUT_IPFIX && !sink.ipfix))
            rc = tool_fail(EXIT_FAIL, "flows", "out of memory");
    }
    uint64_t in = 0, ip_packets = 0, last_ts = 0;
    struct progress pg;
    progress_init(&pg, "flows");
    for (int i = 0; i < nin && !rc; i++) {
        struct pr_packet pkt;
        int got;
        while ((got = pr_next(rs[i], &pkt)) == 1) {
            in++;
            struct flow_key k;
            uint64_t bytes = 0;
            uint16_t flags;
            if (dissect(pkt.linktype, pkt.data, pkt.caplen, &k, &bytes, &flags, pkt.origlen)) {
                ip_packets++;
                /* A packet without a timestamp (a Simple Packet Block) counts at the time of the
                 * packet before it, never at 1970. */
                if (pkt.has_ts)
                    last_ts = pkt.ts_ns;
                if (ft_packet(ft, &k, last_ts, bytes, flags) != 0) {
                    rc = tool_fail(EXIT_FAIL, "flows", "%s: %s", out_path,
                                   errno ? strerror(errno) : "cannot write");
                    break;
                }
            }
            progress_update(&pg, rs[i], in);
        }
        if (!rc && got < 0)
            rc = tool_read_error(rs[i], argv[optind + i], "flows");
    }
    progress_done(&pg);
    if (!rc && ft_flush(ft) != 0)
        rc = tool_fail(EXIT_FAIL, "flows", "%s: cannot write", out_path);
    if (!rc && sink.ipfix) {
        rc = ipfix_finish(sink.ipfix) ? tool_fail(EXIT_FAIL, "flows", "%s: cannot write", out_path) : 0;
        sink.ipfix = NULL;
    }
    if (sink.ipfix)
        ipfix_finish(sink.ipfix);
    if (sink.f) {
        /* fclose() closes the descriptor (stdout's too: nothing follows on it). */
        if (fclose(sink.f) != 0 && !rc)
            rc = tool_fail(EXIT_FAIL, "flows", "%s: %s", out_path, strerror(errno));
        of.fd = -1;
    }
    if (of.path) {
        char err[512];
        if (rc)
            of_abort(&of);
        else if (of_commit(&of, err, sizeof err) < 0)
            rc = tool_fail(EXIT_FAIL, "flows", "%s", err);
    }
    if (!rc) {
        char text[200], js[220];
        snprintf(text, sizeof text, "%" PRIu64 " flows with %" PRIu64 " IP packets, %" PRIu64
                 " packets not attributed to a flow (not IP, or not parsable)", sink.flows, sink.packets,
                 in - ip_packets);
        snprintf(js, sizeof js, "\"flows\": %" PRIu64 ", \"ip_packets\": %" PRIu64 ", \"not_attributed\": %" PRIu64
                 ", \"format\": \"%s\"", sink.flows, ip_packets, in - ip_packets,
                 sink.format == OUT_CSV ? "csv" : "ipfix");
        print_summary(as_json, "flows", in, sink.flows, 0, text, js);
    }
    ft_free(ft);
    for (int i = 0; i < nin; i++)
        pr_close(rs[i]);
    free(rs);
    return rc;
}
