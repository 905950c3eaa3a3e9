/* convert: pcap <-> pcapng, µs <-> ns, zstd in or out; packets and times unchanged. */
#include "select.h"

int cmd_convert(int argc, char **argv)
{
    static const char *use = "usage: sluice-pcap convert [--format pcap|pcapng] [--precision us|ns] "
                             "[--compress none|zstd[:LEVEL]] [--from T] [--to T] [--filter EXPR] [--json] IN OUT";
    struct copy_job job;
    int rc = select_copy_cmd(argc, argv, "convert", use, &job);
    if (rc)
        return rc;
    const struct po_options po = job.po;
    char text[128], js[160];
    const char *f = po.format == PR_FORMAT_PCAP ? "pcap" : "pcapng";
    snprintf(text, sizeof text, "to %s (%s%s)", f, po.nanosecond ? "ns" : "us", po.zstd_level ? ", zstd" : "");
    snprintf(js, sizeof js, "\"format\": \"%s\", \"precision\": \"%s\", \"compressed\": %s", f,
             po.nanosecond ? "ns" : "us", po.zstd_level ? "true" : "false");
    print_summary(job.as_json, "convert", job.in, job.out, 0, text, js);
    pr_close(job.r);
    return 0;
}
