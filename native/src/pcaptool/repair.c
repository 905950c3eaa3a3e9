/* repair: write a valid capture with every packet that can be recovered from a damaged one.
 * The reading (resynchronisation, header inference) is pcapread's PR_RESYNC mode; this file
 * only copies and reports. A packet is never made up: every byte written was in the input. */
#include <inttypes.h>

#include "tool.h"

int cmd_repair(int argc, char **argv)
{
    static const char *use = "usage: sluice-pcap repair [--format pcap|pcapng] [--precision us|ns] "
                             "[--compress none|zstd[:LEVEL]] [--json] IN OUT";
    struct copy_job job;
    int rc = tool_copy_cmd(argc, argv, "repair", use, PR_RESYNC, &job);
    if (rc)
        return rc;
    pr_reader *r = job.r;
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
    print_summary(job.as_json, "repair", job.in, job.out, nd, text, js);
    pr_close(r);
    return 0;
}
