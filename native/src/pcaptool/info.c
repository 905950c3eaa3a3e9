/* info: what a capture holds: format, link types, packets, bytes, first/last time, snaplen. */
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tool.h"

struct info {
    uint64_t packets, bytes, wire_bytes, first_ns, last_ns;
    uint64_t untimed;    /* Simple Packet Blocks: no timestamp, so not in first/last */
    bool damaged;
};

static void fmt_time(char *buf, size_t n, uint64_t ns)
{
    time_t s = (time_t)(ns / 1000000000u);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%09" PRIu64 "Z", ns % 1000000000u);
}

static void link_list(const pr_reader *r, char *buf, size_t n, bool as_json)
{
    size_t k = 0;
    buf[0] = 0;
    if (as_json)
        k += (size_t)snprintf(buf + k, n - k, "[");
    uint16_t seen[64];
    size_t nseen = 0;
    for (size_t i = 0; i < pr_iface_count(r) && nseen < 64 && k < n; i++) {
        uint16_t lt = pr_iface(r, i)->linktype;
        bool dup = false;
        for (size_t j = 0; j < nseen; j++)
            dup |= seen[j] == lt;
        if (dup)
            continue;
        seen[nseen++] = lt;
        if (as_json)
            k += (size_t)snprintf(buf + k, n - k, "%s{\"linktype\": %u, \"name\": \"%s\"}",
                                  nseen > 1 ? ", " : "", lt, pr_linktype_name(lt));
        else
            k += (size_t)snprintf(buf + k, n - k, "%s%s(%u)", nseen > 1 ? "," : "",
                                  pr_linktype_name(lt), lt);
    }
    if (as_json && k < n)
        snprintf(buf + k, n - k, "]");
}

static int info_one(const char *path, bool as_json)
{
    pr_reader *r;
    int rc = tool_open(&r, path, PR_STRICT, "info");
    if (rc)
        return rc;
    struct info in = {.first_ns = UINT64_MAX};
    struct pr_packet pkt;
    struct progress pg;
    progress_init(&pg, "info");
    int got;
    while ((got = pr_next(r, &pkt)) == 1) {
        in.packets++;
        in.bytes += pkt.caplen;
        in.wire_bytes += pkt.origlen;
        if (!pkt.has_ts) {
            in.untimed++;
            progress_update(&pg, r, in.packets);
            continue;
        }
        if (pkt.ts_ns < in.first_ns)
            in.first_ns = pkt.ts_ns;
        if (pkt.ts_ns > in.last_ns)
            in.last_ns = pkt.ts_ns;
        progress_update(&pg, r, in.packets);
    }
    progress_done(&pg);
    struct stat st;
    uint64_t size = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
    const char *fmt = pr_format(r) == PR_FORMAT_PCAP ? "pcap" : "pcapng";
    const char *prec = pr_nanosecond(r) ? "ns" : "us";
    uint64_t timed = in.packets - in.untimed;
    double duration = timed ? (double)(in.last_ns - in.first_ns) / 1e9 : 0;
    char first[48] = "-", last[48] = "-", links[1024], untimed[96] = "";
    if (in.untimed)
        snprintf(untimed, sizeof untimed, " (%" PRIu64 " without a timestamp: Simple Packet Blocks)",
                 in.untimed);
    if (timed) {
        fmt_time(first, sizeof first, in.first_ns);
        fmt_time(last, sizeof last, in.last_ns);
    }
    link_list(r, links, sizeof links, as_json);
    if (as_json) {
        struct json j;
        json_begin(&j);
        json_str(&j, "file", path);
        json_str(&j, "format", fmt);
        json_bool(&j, "compressed", pr_compressed(r));
        json_str(&j, "precision", prec);
        json_raw(&j, "link_types", links);
        json_u64(&j, "interfaces", pr_iface_count(r));
        json_u64(&j, "packets", in.packets);
        json_u64(&j, "bytes", in.bytes);
        json_u64(&j, "wire_bytes", in.wire_bytes);
        json_u64(&j, "file_size", size);
        json_u64(&j, "packets_without_timestamp", in.untimed);
        if (timed) {
            json_u64(&j, "first_ns", in.first_ns);
            json_u64(&j, "last_ns", in.last_ns);
            json_str(&j, "first", first);
            json_str(&j, "last", last);
        } else {
            json_raw(&j, "first_ns", "null");
            json_raw(&j, "last_ns", "null");
        }
        json_f64(&j, "duration", duration);
        json_u64(&j, "snaplen", pr_snaplen(r));
        json_bool(&j, "damaged", got < 0);
        json_end(&j);
    } else {
        printf("%s: %s%s (%s), link types %s, %" PRIu64 " packets%s, %" PRIu64 " bytes (%" PRIu64
               " on the wire), first %s, last %s, duration %.6f s, snaplen %u\n",
               path, fmt, pr_compressed(r) ? "+zstd" : "", prec, links, in.packets, untimed, in.bytes,
               in.wire_bytes, first, last, duration, pr_snaplen(r));
        fflush(stdout);
    }
    rc = got < 0 ? tool_read_error(r, path, "info") : EXIT_OK;
    pr_close(r);
    return rc;
}

int cmd_info(int argc, char **argv)
{
    return tool_each_file(argc, argv, "info", info_one);
}
