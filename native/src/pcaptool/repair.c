/* repair: write a valid capture with every packet that can be recovered from a damaged one.
 * The reading (resynchronisation, header inference) is pcapread's PR_RESYNC mode; this file
 * only copies and reports. A packet is never made up: every byte written was in the input. */
#include <getopt.h>
#include <inttypes.h>

#include "tool.h"

int cmd_repair(int argc, char **argv)
{
    static const struct option opts[] = {OUT_LONG_OPTIONS, {0, 0, 0, 0}};
    static const char *use = "usage: sluice-pcap repair [--format pcap|pcapng] [--precision us|ns] "
                             "[--compress none|zstd[:LEVEL]] [--json] IN OUT";
    struct out_opts oo = OUT_OPTS_INIT;
    bool as_json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int h = out_option(&oo, c, optarg, "repair");
        if (h < 0)
            return EXIT_USAGE;
        if (h == 0 && c == OPT_JSON)
            as_json = true;
        else if (h == 0)
            return tool_fail(EXIT_USAGE, "repair", "%s", use);
    }
    if (argc - optind != 2)
        return tool_fail(EXIT_USAGE, "repair", "%s", use);
    if (tool_refuse_overwrite("repair", argv[optind + 1], argv + optind, 1))
        return EXIT_USAGE;
    pr_reader *r;
    int rc = tool_open(&r, argv[optind], PR_RESYNC, "repair");
    if (rc)
        return rc;
    struct po_options po = out_resolve(&oo, r);
    uint64_t in, out;
    rc = tool_copy("repair", r, argv[optind], argv[optind + 1], &po, &in, &out);
    if (rc == 0) {
        const struct pr_damage *d = pr_damage(r);
        char text[400], js[600];
        uint64_t nd = pr_damage_count(r);
        if (nd)
            snprintf(text, sizeof text, "%" PRIu64 " damage(s), %" PRIu64 " bytes dropped, first at offset %"
                     PRIu64 ": %s (%s)", nd, pr_bytes_skipped(r), d->offset, d->what, pr_damage_name(d->kind));
        else
            snprintf(text, sizeof text, "no damage found");
        snprintf(js, sizeof js, "\"damages\": %" PRIu64 ", \"bytes_dropped\": %" PRIu64
                 ", \"header_inferred\": %s, \"first_damage\": %s%s%s", nd, pr_bytes_skipped(r),
                 pr_header_inferred(r) ? "true" : "false", nd ? "\"" : "", nd ? pr_damage_name(d->kind) : "null",
                 nd ? "\"" : "");
        print_summary(as_json, "repair", in, out, nd, text, js);
    }
    pr_close(r);
    return rc;
}
