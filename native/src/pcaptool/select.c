#include "select.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void select_init(struct select *s, const char *cmd)
{
    memset(s, 0, sizeof *s);
    s->cmd = cmd;
}

/* n digits at p as a number; -1 if any is not a digit. */
static long digits(const char *p, int n)
{
    long v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i]))
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* ".ddddddddd" (1 to 9 digits) at *p into ns; advances *p. */
static int fraction(const char **p, uint64_t *ns)
{
    *ns = 0;
    if (**p != '.')
        return 0;
    (*p)++;
    int n = 0;
    uint64_t v = 0;
    while (isdigit((unsigned char)**p)) {
        if (n == 9)
            return -1;
        v = v * 10 + (uint64_t)(**p - '0');
        n++;
        (*p)++;
    }
    if (n == 0)
        return -1;
    while (n++ < 9)
        v *= 10;
    *ns = v;
    return 0;
}

int select_parse_time(const char *s, uint64_t *ns)
{
    const char *p = s;
    uint64_t frac;
    if (strlen(s) >= 19 && s[4] == '-' && s[7] == '-' && (s[10] == 'T' || s[10] == 't' || s[10] == ' ')) {
        long y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2), h = digits(s + 11, 2),
             mi = digits(s + 14, 2), se = digits(s + 17, 2);
        if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
            se < 0 || se > 60 || s[13] != ':' || s[16] != ':')
            return -1;
        p = s + 19;
        if (fraction(&p, &frac) < 0)
            return -1;
        long zone = 0;
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            long zh = digits(p + 1, 2), zm = p[3] == ':' ? digits(p + 4, 2) : -1;
            if (zh < 0 || zh > 23 || zm < 0 || zm > 59)
                return -1;
            zone = (*p == '-' ? -1 : 1) * (zh * 3600 + zm * 60);
            p += 6;
        }
        if (*p)
            return -1;
        struct tm tm = {.tm_year = (int)y - 1900, .tm_mon = (int)mo - 1, .tm_mday = (int)d,
                        .tm_hour = (int)h, .tm_min = (int)mi, .tm_sec = (int)se};
        time_t t = timegm(&tm);
        if (t == (time_t)-1 || (long)t - zone < 0)
            return -1;
        *ns = (uint64_t)((long)t - zone) * 1000000000u + frac;
        return 0;
    }
    uint64_t secs = 0;
    int n = 0;
    while (isdigit((unsigned char)*p)) {
        if (++n > 11)
            return -1;
        secs = secs * 10 + (uint64_t)(*p++ - '0');
    }
    if (n == 0 || fraction(&p, &frac) < 0 || *p)
        return -1;
    *ns = secs * 1000000000u + frac;
    return 0;
}

/* The program for (linktype, snaplen), compiled on first use. NULL on error (printed). */
static struct bpf_program *program(struct select *s, uint16_t linktype, uint32_t snaplen)
{
    for (size_t i = 0; i < s->nprogs; i++)
        if (s->progs[i].linktype == linktype && s->progs[i].snaplen == snaplen)
            return &s->progs[i].prog;
    if (s->nprogs == SELECT_MAX_PROGS) {
        tool_fail(EXIT_USAGE, s->cmd, "more than %d different link types and snaplens", SELECT_MAX_PROGS);
        return NULL;
    }
    pcap_t *dead = pcap_open_dead_with_tstamp_precision(linktype, (int)snaplen, PCAP_TSTAMP_PRECISION_NANO);
    if (!dead) {
        tool_fail(EXIT_FAIL, s->cmd, "libpcap: cannot set up link type %u", linktype);
        return NULL;
    }
    struct select_prog *sp = &s->progs[s->nprogs];
    if (pcap_compile(dead, &sp->prog, s->expr, 1, PCAP_NETMASK_UNKNOWN) < 0) {
        tool_fail(EXIT_USAGE, s->cmd, "--filter '%s': %s (link type %s)", s->expr, pcap_geterr(dead),
                  pr_linktype_name(linktype));
        pcap_close(dead);
        return NULL;
    }
    pcap_close(dead);
    sp->linktype = linktype;
    sp->snaplen = snaplen;
    s->nprogs++;
    return &sp->prog;
}

int select_option(struct select *s, int opt, const char *arg)
{
    switch (opt) {
    case OPT_SEL_FROM:
    case OPT_SEL_TO: {
        uint64_t ns;
        if (select_parse_time(arg, &ns) < 0) {
            tool_fail(EXIT_USAGE, s->cmd, "--%s '%s' is not a time: use epoch seconds (1700000000.123456789) or "
                      "RFC 3339 (2026-11-29T10:02:00.5Z)", opt == OPT_SEL_FROM ? "from" : "to", arg);
            return -1;
        }
        if (opt == OPT_SEL_FROM)
            s->has_from = true, s->from_ns = ns;
        else
            s->has_to = true, s->to_ns = ns;
        return 1;
    }
    case OPT_SEL_FILTER:
        s->expr = arg;
        return program(s, 1, PR_MAX_SNAPLEN) ? 1 : -1;
    case OPT_SEL_GROWING:
        if (s->ngrowing == SELECT_MAX_GROWING) {
            tool_fail(EXIT_USAGE, s->cmd, "more than %d --growing inputs", SELECT_MAX_GROWING);
            return -1;
        }
        s->growing[s->ngrowing++] = arg;
        return 1;
    default:
        return 0;
    }
}

int select_filter(struct select *s, const pr_reader *r, const struct pr_packet *pkt)
{
    const struct pr_iface *ifc = pr_iface(r, pkt->iface);
    uint32_t snaplen = ifc && ifc->snaplen ? ifc->snaplen : PR_MAX_SNAPLEN;
    struct bpf_program *prog = program(s, pkt->linktype, snaplen);
    if (!prog)
        return -EXIT_USAGE;
    struct pcap_pkthdr hdr = {.caplen = pkt->caplen, .len = pkt->origlen};
    hdr.ts.tv_sec = (time_t)(pkt->ts_ns / 1000000000u);
    hdr.ts.tv_usec = (suseconds_t)(pkt->ts_ns % 1000000000u);
    return pcap_offline_filter(prog, &hdr, pkt->data) != 0;
}

int select_keep(void *ctx, struct pr_packet *pkt)
{
    struct select *s = ctx;
    return select_match(s, s->reader, pkt);
}

int select_read_end(const struct select *s, const pr_reader *r, const char *path)
{
    for (size_t i = 0; i < s->ngrowing; i++)
        if (strcmp(s->growing[i], path) == 0)
            return 0;
    return tool_read_error(r, path, s->cmd);
}

void select_output_done(const char *out_path)
{
    if (strcmp(out_path, "-") != 0)
        return;
    fflush(stdout);
    dup2(STDERR_FILENO, STDOUT_FILENO);
}

void select_free(struct select *s)
{
    for (size_t i = 0; i < s->nprogs; i++)
        pcap_freecode(&s->progs[i].prog);
    s->nprogs = 0;
}

int select_copy_cmd(int argc, char **argv, const char *cmd, const char *use, struct copy_job *job)
{
    static const struct option opts[] = {OUT_LONG_OPTIONS, SELECT_LONG_OPTIONS, {0, 0, 0, 0}};
    struct out_opts oo = OUT_OPTS_INIT;
    struct select s;
    select_init(&s, cmd);
    job->as_json = false;
    int c, rc = 0;
    optind = 1;
    while (!rc && (c = tool_getopt(argc, argv, "", opts, &oo, &job->as_json, cmd)) != -1) {
        int h = c == OPT_BAD_VALUE ? -1 : select_option(&s, c, optarg);
        if (h < 0)
            rc = EXIT_USAGE;
        else if (h == 0)
            rc = tool_fail(EXIT_USAGE, cmd, "%s", use);
    }
    if (!rc && argc - optind != 2)
        rc = tool_fail(EXIT_USAGE, cmd, "%s", use);
    if (!rc && tool_check_output(cmd, argv[optind + 1], argv + optind, 1))
        rc = EXIT_USAGE;
    if (!rc)
        rc = tool_open(&job->r, argv[optind], PR_STRICT, cmd);
    if (!rc) {
        job->po = out_resolve(&oo, job->r);
        s.reader = job->r;
        bool selecting = s.has_from || s.has_to || s.expr;
        rc = tool_copy(cmd, job->r, argv[optind], argv[optind + 1], &job->po, selecting ? select_keep : NULL,
                       &s, &job->in, &job->out);
        if (rc)
            pr_close(job->r);
        else
            select_output_done(argv[optind + 1]);
    }
    select_free(&s);
    return rc;
}
