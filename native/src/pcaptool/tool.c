#include "tool.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int tool_fail(int code, const char *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "sluice-pcap %s: %s\n", cmd, msg);
    return code;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void progress_init(struct progress *pg, const char *label)
{
    pg->on = isatty(STDERR_FILENO);
    pg->label = label;
    pg->last = now_s();
}

void progress_update(struct progress *pg, const pr_reader *r, uint64_t packets)
{
    if (!pg->on || (packets & 0x3fff) != 0)
        return;
    double t = now_s();
    if (t - pg->last < 0.25)
        return;
    pg->last = t;
    uint64_t total, done = pr_progress(r, &total);
    if (total)
        fprintf(stderr, "\r%s: %5.1f%%  %llu packets", pg->label, 100.0 * (double)done / (double)total,
                (unsigned long long)packets);
    else
        fprintf(stderr, "\r%s: %llu packets", pg->label, (unsigned long long)packets);
}

void progress_done(struct progress *pg)
{
    if (pg->on)
        fprintf(stderr, "\r\033[K");
}

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
        if (strncmp(arg, "zstd", 4) == 0) {
            o->zstd_level = 3;
            if (arg[4] == ':') {
                char *end;
                long lv = strtol(arg + 5, &end, 10);
                if (*end || lv < 1 || lv > 19) {
                    tool_fail(EXIT_USAGE, cmd, "--compress zstd:LEVEL wants a level 1..19, not '%s'", arg);
                    return -1;
                }
                o->zstd_level = (int)lv;
            } else if (arg[4]) {
                tool_fail(EXIT_USAGE, cmd, "--compress must be none, zstd or zstd:LEVEL, not '%s'", arg);
                return -1;
            }
            return 1;
        }
        tool_fail(EXIT_USAGE, cmd, "--compress must be none, zstd or zstd:LEVEL, not '%s'", arg);
        return -1;
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

int tool_open(pr_reader **r, const char *path, enum pr_mode mode, const char *cmd)
{
    char err[256];
    int rc = pr_open(r, path, mode, err, sizeof err);
    if (rc)
        return tool_fail(rc == 1 ? EXIT_FAIL : EXIT_USAGE, cmd, "%s: %s", path, err);
    return 0;
}

int tool_read_error(const pr_reader *r, const char *path, const char *cmd)
{
    const struct pr_damage *d = pr_damage(r);
    return tool_fail(EXIT_FAIL, cmd, "%s: damaged at offset %llu, record %llu: %s (%s); "
                     "`sluice-pcap repair` recovers what it can", path,
                     (unsigned long long)d->offset, (unsigned long long)d->record, d->what,
                     pr_damage_name(d->kind));
}

int tool_each_file(int argc, char **argv, const char *cmd, int (*one)(const char *path, bool as_json))
{
    static const struct option opts[] = {{"json", no_argument, 0, OPT_JSON}, {0, 0, 0, 0}};
    bool as_json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == OPT_JSON)
            as_json = true;
        else
            return tool_fail(EXIT_USAGE, cmd, "usage: sluice-pcap %s [--json] FILE...", cmd);
    }
    if (optind >= argc)
        return tool_fail(EXIT_USAGE, cmd, "usage: sluice-pcap %s [--json] FILE...", cmd);
    int worst = 0;
    for (int i = optind; i < argc; i++) {
        int rc = one(argv[i], as_json);
        if (rc > worst)
            worst = rc;
    }
    return worst;
}

int tool_sync_ifaces(pcapout *po, const pr_reader *r, int *map, size_t *mapped, size_t mapcap,
                     const char *cmd)
{
    size_t n = pr_iface_count(r);
    for (; *mapped < n; (*mapped)++) {
        if (*mapped >= mapcap)
            return tool_fail(EXIT_FAIL, cmd, "more than %zu interfaces", mapcap);
        const struct pr_iface *ifc = pr_iface(r, *mapped);
        int idx = po_add_iface(po, ifc->linktype, ifc->snaplen, ifc->name[0] ? ifc->name : NULL,
                               pr_iface_nanosecond(ifc));
        if (idx < 0)
            return tool_fail(EXIT_FAIL, cmd, "%s", po_error(po));
        map[*mapped] = idx;
    }
    return 0;
}

static void json_key(struct json *j, const char *key)
{
    fputs(j->n++ ? ", " : "", j->f);
    fprintf(j->f, "\"%s\": ", key);
}

void json_begin(struct json *j)
{
    j->f = tool_report();
    j->n = 0;
    fputc('{', j->f);
}

void json_str(struct json *j, const char *key, const char *val)
{
    json_key(j, key);
    if (!val) {
        fputs("null", j->f);
        return;
    }
    fputc('"', j->f);
    for (const unsigned char *p = (const unsigned char *)val; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(j->f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(j->f, "\\u%04x", *p);
        else
            fputc(*p, j->f);
    }
    fputc('"', j->f);
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
    json_key(j, key);
    fprintf(j->f, "%llu", (unsigned long long)v);
}

void json_f64(struct json *j, const char *key, double v)
{
    json_key(j, key);
    if (isfinite(v))
        fprintf(j->f, "%.9f", v);
    else
        fputs("null", j->f);
}

void json_bool(struct json *j, const char *key, bool v)
{
    json_key(j, key);
    fputs(v ? "true" : "false", j->f);
}

void json_raw(struct json *j, const char *key, const char *raw)
{
    json_key(j, key);
    fputs(raw, j->f);
}

void json_end(struct json *j)
{
    fputs("}\n", j->f);
    fflush(j->f);
}

void print_summary(bool as_json, const char *cmd, uint64_t in, uint64_t out, uint64_t changed,
                   const char *extra_text, const char *extra_json)
{
    if (as_json) {
        struct json j;
        json_begin(&j);
        json_str(&j, "command", cmd);
        json_u64(&j, "packets_in", in);
        json_u64(&j, "packets_out", out);
        json_u64(&j, "changed", changed);
        if (extra_json && *extra_json)
            fprintf(j.f, ", %s", extra_json);
        json_end(&j);
        return;
    }
    fprintf(tool_report(), "%s: packets in %llu, out %llu, changed %llu%s%s\n", cmd, (unsigned long long)in,
           (unsigned long long)out, (unsigned long long)changed, extra_text && *extra_text ? ", " : "",
           extra_text ? extra_text : "");
    fflush(tool_report());
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

int tool_copy(const char *cmd, pr_reader *r, const char *in_path, const char *out_path,
              const struct po_options *po_opt, tool_filter filter, void *ctx, uint64_t *n_in,
              uint64_t *n_out)
{
    char err[256];
    pcapout *po;
    if (po_open(&po, out_path, po_opt, err, sizeof err) < 0)
        return tool_fail(EXIT_FAIL, cmd, "%s", err);
    int map[4096];
    size_t mapped = 0;
    struct pr_packet pkt;
    struct progress pg;
    progress_init(&pg, cmd);
    int got, rc = 0;
    *n_in = *n_out = 0;
    while ((got = pr_next(r, &pkt)) == 1) {
        (*n_in)++;
        if ((rc = tool_sync_ifaces(po, r, map, &mapped, 4096, cmd)) != 0)
            break;
        int keep = filter ? filter(ctx, &pkt) : 1;
        if (keep < 0) {
            rc = -keep;
            break;
        }
        if (keep && (pkt.has_ts ? po_write(po, (uint32_t)map[pkt.iface], pkt.ts_ns, pkt.data, pkt.caplen,
                                           pkt.origlen)
                                : po_write_untimed(po, (uint32_t)map[pkt.iface], pkt.data, pkt.caplen,
                                                   pkt.origlen)) < 0) {
            rc = tool_fail(EXIT_FAIL, cmd, "%s", po_error(po));
            break;
        }
        progress_update(&pg, r, *n_in);
    }
    progress_done(&pg);
    if (rc == 0 && got < 0)
        rc = tool_read_error(r, in_path, cmd);
    if (rc == 0 && (rc = tool_sync_ifaces(po, r, map, &mapped, 4096, cmd)) == 0) {
        *n_out = po_packets(po);
        if (po_commit(po, err, sizeof err) < 0)
            return tool_fail(EXIT_FAIL, cmd, "%s", err);
        return 0;
    }
    po_abort(po);
    return rc;
}

int tool_copy_cmd(int argc, char **argv, const char *cmd, const char *use, enum pr_mode mode,
                  struct copy_job *job)
{
    static const struct option opts[] = {OUT_LONG_OPTIONS, {0, 0, 0, 0}};
    struct out_opts oo = OUT_OPTS_INIT;
    job->as_json = false;
    int c;
    optind = 1;
    if ((c = tool_getopt(argc, argv, "", opts, &oo, &job->as_json, cmd)) != -1)
        return c == OPT_BAD_VALUE ? EXIT_USAGE : tool_fail(EXIT_USAGE, cmd, "%s", use);
    if (argc - optind != 2)
        return tool_fail(EXIT_USAGE, cmd, "%s", use);
    if (tool_check_output(cmd, argv[optind + 1], argv + optind, 1))
        return EXIT_USAGE;
    int rc = tool_open(&job->r, argv[optind], mode, cmd);
    if (rc)
        return rc;
    job->po = out_resolve(&oo, job->r);
    rc = tool_copy(cmd, job->r, argv[optind], argv[optind + 1], &job->po, NULL, NULL, &job->in,
                   &job->out);
    if (rc)
        pr_close(job->r);
    return rc;
}

static FILE *report_stream;

FILE *tool_report(void) { return report_stream ? report_stream : stdout; }

int tool_check_output(const char *cmd, const char *out, char *const *ins, int nin)
{
    char err[512];
    if (of_check(out, err, sizeof err) < 0)
        return tool_fail(EXIT_USAGE, cmd, "%s", err);
    struct stat so, si, sout;
    bool is_stdout = of_is_stdout(out) || (stat(out, &so) == 0 && fstat(STDOUT_FILENO, &sout) == 0 &&
                                           so.st_dev == sout.st_dev && so.st_ino == sout.st_ino);
    if (is_stdout)
        report_stream = stderr; /* the data goes to stdout: the summary must not mix into it */
    if (of_is_stdout(out) || stat(out, &so) != 0 || !S_ISREG(so.st_mode))
        return 0;
    for (int i = 0; i < nin; i++)
        if (stat(ins[i], &si) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
            return tool_fail(EXIT_USAGE, cmd, "%s: the output would replace the input %s; inputs are never "
                             "modified, choose another output name", out, ins[i]);
    return 0;
}
