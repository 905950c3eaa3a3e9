/* convert: pcap <-> pcapng, µs <-> ns, zstd in or out; packets and times unchanged. */
#include <getopt.h>

#include "tool.h"

int cmd_convert(int argc, char **argv)
{
    static const struct option opts[] = {OUT_LONG_OPTIONS, {0, 0, 0, 0}};
    static const char *use = "usage: sluice-pcap convert [--format pcap|pcapng] [--precision us|ns] "
                             "[--compress none|zstd[:LEVEL]] [--json] IN OUT";
    struct out_opts oo = OUT_OPTS_INIT;
    bool as_json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int h = out_option(&oo, c, optarg, "convert");
        if (h < 0)
            return EXIT_USAGE;
        if (h == 0 && c == OPT_JSON)
            as_json = true;
        else if (h == 0)
            return tool_fail(EXIT_USAGE, "convert", "%s", use);
    }
    if (argc - optind != 2)
        return tool_fail(EXIT_USAGE, "convert", "%s", use);
    if (tool_refuse_overwrite("convert", argv[optind + 1], argv + optind, 1))
        return EXIT_USAGE;
    pr_reader *r;
    int rc = tool_open(&r, argv[optind], PR_STRICT, "convert");
    if (rc)
        return rc;
    struct po_options po = out_resolve(&oo, r);
    uint64_t in, out;
    rc = tool_copy("convert", r, argv[optind], argv[optind + 1], &po, &in, &out);
    if (rc == 0) {
        char text[128], js[160];
        const char *f = po.format == PR_FORMAT_PCAP ? "pcap" : "pcapng";
        snprintf(text, sizeof text, "to %s (%s%s)", f, po.nanosecond ? "ns" : "us", po.zstd_level ? ", zstd" : "");
        snprintf(js, sizeof js, "\"format\": \"%s\", \"precision\": \"%s\", \"compressed\": %s", f,
                 po.nanosecond ? "ns" : "us", po.zstd_level ? "true" : "false");
        print_summary(as_json, "convert", in, out, 0, text, js);
    }
    pr_close(r);
    return rc;
}
