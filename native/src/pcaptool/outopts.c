/* outopts: see outopts.h. */
#include "tool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "zstdspec.h"

/* Handles OPT_FORMAT/PRECISION/COMPRESS; returns 1 if handled, 0 if not one of them,
 * -1 on a bad value (error printed). */
static int out_option(struct out_opts *o, int opt, const char *arg, const char *cmd)
{
    if (opt == OPT_FORMAT) {
        o->format = po_parse_format(arg);
        if (o->format < 0) {
            tool_fail(EXIT_USAGE, cmd, "--format must be pcap or pcapng, not '%s'", arg);
            return -1;
        }
        return 1;
    }
    if (opt == OPT_PRECISION) {
        if (strcmp(arg, "us") == 0 || strcmp(arg, "usec") == 0)
            o->nano = 0;
        else if (strcmp(arg, "ns") == 0 || strcmp(arg, "nsec") == 0)
            o->nano = 1;
        else {
            tool_fail(EXIT_USAGE, cmd, "--precision must be us or ns, not '%s'", arg);
            return -1;
        }
        return 1;
    }
    if (opt == OPT_COMPRESS) {
        if (strcmp(arg, "none") == 0) {
            o->zstd_level = 0;
            return 1;
        }
        int rc = zstd_spec_parse(arg, &o->zstd_level);
        if (rc == -2)
            tool_fail(EXIT_USAGE, cmd, "--compress zstd:LEVEL wants a level 1..19, not '%s'", arg);
        else if (rc == -1)
            tool_fail(EXIT_USAGE, cmd, "--compress must be none, zstd or zstd:LEVEL, not '%s'", arg);
        return rc == 0 ? 1 : -1;
    }
    return 0;
}

int tool_getopt(int argc, char **argv, const char *shortopts, const struct option *opts,
                struct out_opts *o, bool *as_json, const char *cmd)
{
    int c;
    while ((c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
        int h = out_option(o, c, optarg, cmd);
        if (h < 0)
            return OPT_BAD_VALUE;
        if (h)
            continue;
        if (c != OPT_JSON)
            return c;
        *as_json = true;
    }
    return -1;
}

struct po_options out_resolve(const struct out_opts *o, const pr_reader *r)
{
    struct po_options po = {0};
    po.format = o->format >= 0 ? (enum pr_format)o->format : pr_format(r);
    /* As the input: pcapng keeps each interface's resolution (a later section or interface
     * may stamp in ns); pcap has one precision for the whole file, so a pcapng input gives ns
     * pcap, which holds every timestamp exactly. */
    po.iface_precision = o->nano < 0;
    po.nanosecond = o->nano >= 0 ? o->nano : pr_format(r) == PR_FORMAT_PCAPNG || pr_nanosecond(r);
    po.zstd_level = o->zstd_level >= 0 ? o->zstd_level : (pr_compressed(r) ? 3 : 0);
    return po;
}

int64_t parse_duration_ns(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v >= 0) || v > 1e9)
        return -1;
    double mul = 1e9;
    if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
        mul = 1e9;
    else if (strcmp(end, "ms") == 0)
        mul = 1e6;
    else if (strcmp(end, "us") == 0)
        mul = 1e3;
    else if (strcmp(end, "ns") == 0)
        mul = 1;
    else if (strcmp(end, "m") == 0)
        mul = 60e9;
    else if (strcmp(end, "h") == 0)
        mul = 3600e9;
    else
        return -1;
    return (int64_t)llround(v * mul);
}
