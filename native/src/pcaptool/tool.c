#include "tool.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
