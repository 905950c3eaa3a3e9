/* merge: many captures into one, by timestamp: a min-heap on (timestamp, input position), so
 * equal times keep the order of the inputs (the first input's packet first; mergecap puts the
 * later input's first) and each input keeps its own order. A packet without a timestamp (a
 * Simple Packet Block) stays right after the packet before it in its input; one with no packet
 * before it cannot be placed by time and is refused. --offset FILE=SECONDS shifts one input (a box's known clock error).
 * Interfaces that are the same (link type, snaplen, name) share one IDB; different link types
 * make the output pcapng.
 * --positions FILE=POS with keys (--addr A, --port PROTO/N) reads FILE only at the records of
 * those keys (picked.h; within --from/--to), in this process: what `pick ... | merge` gives, with
 * no copy through a pipe. Positions that do not describe FILE (another size, missing) are left
 * aside with a line on stderr: FILE is read whole, with the same result. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "picked.h"
#include "select.h"

#define MAX_OUT_IFS 4096

struct input {
    const char *path;
    pr_reader *r;
    struct picked *picked; /* read only at the keys' records (--positions) */
    int64_t offset_ns;
    struct pr_packet pkt;
    uint64_t key;       /* timestamp after the offset */
    bool timed;         /* a packet with a timestamp was read (its key stands for untimed ones) */
    int *map;           /* reader interface -> output interface */
    size_t mapped, mapcap;
};

struct out_iface {
    uint16_t linktype;
    bool ns;                 /* its timestamps are written in ns */
    uint32_t snaplen;
    char name[64];
};

struct merge {
    struct input *in;
    size_t n;
    size_t *heap, hn;
    pcapout *po;
    struct out_iface ifs[MAX_OUT_IFS];
    size_t nifs;
};

static bool before(const struct merge *m, size_t a, size_t b)
{
    const struct input *x = &m->in[a], *y = &m->in[b];
    return x->key < y->key || (x->key == y->key && a < b);
}

static void sift_down(struct merge *m, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, s = i;
        if (l < m->hn && before(m, m->heap[l], m->heap[s]))
            s = l;
        if (l + 1 < m->hn && before(m, m->heap[l + 1], m->heap[s]))
            s = l + 1;
        if (s == i)
            return;
        size_t t = m->heap[i];
        m->heap[i] = m->heap[s];
        m->heap[s] = t;
        i = s;
    }
}

static void sift_up(struct merge *m, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(m, m->heap[i], m->heap[p]))
            return;
        size_t t = m->heap[i];
        m->heap[i] = m->heap[p];
        m->heap[p] = t;
        i = p;
    }
}

static uint64_t shifted(uint64_t ts, int64_t off)
{
    if (off < 0 && (uint64_t)(-off) > ts)
        return 0;
    return ts + (uint64_t)off;
}

/* advance's rare case, out of line: the error line for an input whose first packet has no
 * timestamp. */
static __attribute__((noinline)) int untimed_first(const struct input *in)
{
    tool_fail(EXIT_FAIL, "merge", "%s: packet %llu has no timestamp (a Simple Packet Block) and no packet "
              "before it: it cannot be placed by time", in->path, (unsigned long long)in->pkt.index);
    return -2;
}

/* Read the next packet of input i: 1, 0 at its end, -1 on a read error, -2 for a packet
 * without a timestamp that has no packet before it (error line printed). */
static inline int advance(struct input *in)
{
    int got = pr_next(in->r, &in->pkt);
    if (got == 1 && in->pkt.has_ts) {
        in->key = shifted(in->pkt.ts_ns, in->offset_ns);
        in->timed = true;
    } else if (got == 1 && !in->timed) {
        return untimed_first(in);
    }
    return got;
}

/* Open input in: through its positions when it has some and they describe it, else whole.
 * Returns 0 or the exit code (error line printed). */
static int open_input(struct input *in, const char *pos_path, const struct picked_keys *keys,
                      const struct select *sel)
{
    if (pos_path && keys->n) {
        char err[512];
        bool window = in->offset_ns == 0; /* the positions' times are the file's own */
        int rc = picked_open(&in->picked, in->path, pos_path, keys, window && sel->has_from, sel->from_ns,
                             window && sel->has_to, sel->to_ns, err, sizeof err);
        if (rc == 1)
            return tool_fail(EXIT_FAIL, "merge", "%s", err);
        if (rc == 0) {
            rc = pr_open_fn(&in->r, picked_read, picked_error, in->picked, PR_STRICT, err, sizeof err);
            return rc ? tool_fail(rc == 1 ? EXIT_FAIL : EXIT_USAGE, "merge", "%s: %s", in->path, err) : 0;
        }
        fprintf(stderr, "sluice-pcap merge: %s: reading it whole\n", err);
    }
    return tool_open(&in->r, in->path, PR_STRICT, "merge");
}

/* Output interface for interface k of input in (added on first use). */
static int out_iface(struct merge *m, struct input *in, size_t k)
{
    while (in->mapped <= k) {
        const struct pr_iface *ifc = pr_iface(in->r, in->mapped);
        size_t j;
        for (j = 0; j < m->nifs; j++)
            if (m->ifs[j].linktype == ifc->linktype && m->ifs[j].snaplen == ifc->snaplen &&
                strcmp(m->ifs[j].name, ifc->name) == 0 && m->ifs[j].ns == pr_iface_nanosecond(ifc))
                break;
        if (j == m->nifs) {
            if (m->nifs == MAX_OUT_IFS)
                return tool_fail(EXIT_FAIL, "merge", "more than %d interfaces", MAX_OUT_IFS), -1;
            int idx = po_add_iface(m->po, ifc->linktype, ifc->snaplen, ifc->name[0] ? ifc->name : NULL,
                                   pr_iface_nanosecond(ifc));
            if (idx < 0)
                return tool_fail(EXIT_FAIL, "merge", "%s", po_error(m->po)), -1;
            m->ifs[j].linktype = ifc->linktype;
            m->ifs[j].snaplen = ifc->snaplen;
            m->ifs[j].ns = pr_iface_nanosecond(ifc);
            snprintf(m->ifs[j].name, sizeof m->ifs[j].name, "%s", ifc->name);
            m->nifs++;
            /* pcap has one interface: every input maps to index 0. */
            if (idx == 0 && j > 0)
                j = 0;
        }
        if (in->mapped == in->mapcap) {
            size_t cap = in->mapcap ? in->mapcap * 2 : 8;
            int *n = realloc(in->map, cap * sizeof *n);
            if (!n)
                return tool_fail(EXIT_FAIL, "merge", "out of memory"), -1;
            in->map = n;
            in->mapcap = cap;
        }
        in->map[in->mapped++] = (int)j;
    }
    return in->map[k];
}

static int parse_offset(const char *arg, char **file, int64_t *ns)
{
    const char *eq = strrchr(arg, '=');
    if (!eq || eq == arg)
        return -1;
    char *end;
    double s = strtod(eq + 1, &end);
    if (end == eq + 1 || *end || !isfinite(s) || fabs(s) > 1e9)
        return -1;
    *file = strndup(arg, (size_t)(eq - arg));
    *ns = (int64_t)llround(s * 1e9);
    return *file ? 0 : -1;
}

int cmd_merge(int argc, char **argv)
{
    enum { OPT_OFFSET = 1200, OPT_POSITIONS, OPT_ADDR, OPT_PORT };
    static const struct option opts[] = {OUT_LONG_OPTIONS,
                                         {"offset", required_argument, 0, OPT_OFFSET},
                                         {"positions", required_argument, 0, OPT_POSITIONS},
                                         {"addr", required_argument, 0, OPT_ADDR},
                                         {"port", required_argument, 0, OPT_PORT},
                                         {"output", required_argument, 0, 'o'},
                                         SELECT_LONG_OPTIONS,
                                         {0, 0, 0, 0}};
    static const char *use = "usage: sluice-pcap merge [--offset FILE=SECONDS]... [--format F] [--json] "
                             "[--from T] [--to T] [--filter EXPR] [--growing IN]... "
                             "[--positions FILE=POS... (--addr A | --port PROTO/N)...] -o|-w OUT IN...";
    struct out_opts oo = OUT_OPTS_INIT;
    bool as_json = false;
    const char *out_path = NULL;
    char *off_file[256];
    int64_t off_ns[256];
    size_t noff = 0;
    char *pos_file[256], *pos_path[256];
    size_t npos = 0;
    struct picked_keys keys = {.n = 0};
    int c, rc = 0;
    struct select sel;
    select_init(&sel, "merge");
    optind = 1;
    while ((c = tool_getopt(argc, argv, "o:w:", opts, &oo, &as_json, "merge")) != -1) {
        int sel_opt = c == OPT_BAD_VALUE ? -1 : select_option(&sel, c, optarg);
        if (sel_opt < 0)
            rc = EXIT_USAGE;
        else if (sel_opt)
            continue;
        else if (c == 'o' || c == 'w') /* -w: mergecap's habit */
            out_path = optarg;
        else if (c == OPT_OFFSET && noff < 256 && parse_offset(optarg, &off_file[noff], &off_ns[noff]) == 0)
            noff++;
        else if (c == OPT_OFFSET)
            rc = tool_fail(EXIT_USAGE, "merge", "--offset wants FILE=SECONDS (e.g. a.pcap=-0.25), not '%s'",
                           optarg);
        else if (c == OPT_POSITIONS && npos < 256 && strrchr(optarg, '=') && strrchr(optarg, '=') != optarg &&
                 strrchr(optarg, '=')[1]) {
            const char *eq = strrchr(optarg, '=');
            pos_file[npos] = strndup(optarg, (size_t)(eq - optarg));
            pos_path[npos] = pos_file[npos] ? strdup(eq + 1) : NULL;
            if (!pos_file[npos] || !pos_path[npos]) {
                free(pos_file[npos]);
                rc = tool_fail(EXIT_FAIL, "merge", "out of memory");
            } else {
                npos++;
            }
        } else if (c == OPT_POSITIONS)
            rc = tool_fail(EXIT_USAGE, "merge", "--positions wants FILE=POSITIONS (at most 256), not '%s'", optarg);
        else if ((c == OPT_ADDR || c == OPT_PORT) && picked_add_key(&keys, optarg, c == OPT_PORT) < 0)
            rc = tool_fail(EXIT_USAGE, "merge", "--%s '%s' is not %s (at most %d keys)", c == OPT_ADDR ? "addr" : "port",
                           optarg, c == OPT_ADDR ? "an IPv4 or IPv6 address" : "tcp/N, udp/N or sctp/N",
                           PICKED_MAX_KEYS);
        else if (c == OPT_ADDR || c == OPT_PORT)
            continue;
        else
            rc = tool_fail(EXIT_USAGE, "merge", "%s", use);
        if (rc)
            break;
    }
    if (!rc && (!out_path || optind >= argc))
        rc = tool_fail(EXIT_USAGE, "merge", "%s", use);
    for (size_t k = 0; k < noff + npos && !rc; k++) {
        const char *named = k < noff ? off_file[k] : pos_file[k - noff];
        bool found = false;
        for (int i = optind; i < argc; i++)
            found |= strcmp(argv[i], named) == 0;
        if (!found)
            rc = tool_fail(EXIT_USAGE, "merge", "--%s names %s, which is not an input", k < noff ? "offset" : "positions",
                           named);
    }
    if (!rc && npos && !keys.n)
        rc = tool_fail(EXIT_USAGE, "merge", "--positions needs the keys to read: --addr A or --port PROTO/N");
    if (!rc && tool_check_output("merge", out_path, argv + optind, argc - optind))
        rc = EXIT_USAGE;
    struct merge *m = rc ? NULL : calloc(1, sizeof *m);
    if (!rc && !m)
        rc = tool_fail(EXIT_FAIL, "merge", "out of memory");
    size_t n = rc ? 0 : (size_t)(argc - optind);
    if (m) {
        m->in = calloc(n, sizeof *m->in);
        m->heap = calloc(n, sizeof *m->heap);
        if (!m->in || !m->heap)
            rc = tool_fail(EXIT_FAIL, "merge", "out of memory");
    }
    bool all_pcap = true, any_ns = false, any_zstd = false;
    uint16_t lt0 = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        struct input *in = &m->in[i];
        in->path = argv[optind + (int)i];
        for (size_t k = 0; k < noff; k++)
            if (strcmp(off_file[k], in->path) == 0)
                in->offset_ns = off_ns[k];
        const char *pos = NULL;
        for (size_t k = 0; k < npos; k++)
            if (strcmp(pos_file[k], in->path) == 0)
                pos = pos_path[k];
        rc = open_input(in, pos, &keys, &sel);
        if (rc) {
            picked_close(in->picked);
            break;
        }
        m->n++;
        any_ns |= pr_nanosecond(in->r) || pr_format(in->r) == PR_FORMAT_PCAPNG;
        any_zstd |= pr_compressed(in->r);
        for (size_t k = 0; k < pr_iface_count(in->r); k++) {
            uint16_t lt = pr_iface(in->r, k)->linktype;
            if (i == 0 && k == 0)
                lt0 = lt;
            all_pcap &= lt == lt0;
        }
        all_pcap &= pr_format(in->r) == PR_FORMAT_PCAP;
    }
    uint64_t packets = 0, seen = 0;
    if (!rc) {
        struct po_options po_opt = {
            .format = oo.format >= 0 ? (enum pr_format)oo.format : all_pcap ? PR_FORMAT_PCAP : PR_FORMAT_PCAPNG,
            .nanosecond = oo.nano >= 0 ? oo.nano : any_ns,
            .iface_precision = oo.nano < 0,
            .zstd_level = oo.zstd_level >= 0 ? oo.zstd_level : any_zstd ? 3 : 0};
        char err[256];
        if (po_open(&m->po, out_path, &po_opt, err, sizeof err) < 0)
            rc = tool_fail(EXIT_FAIL, "merge", "%s", err);
    }
    for (size_t i = 0; m && !rc && i < m->n; i++) {
        int got = advance(&m->in[i]);
        if (got == -2)
            rc = EXIT_FAIL;
        else if (got < 0)
            rc = select_read_end(&sel, m->in[i].r, m->in[i].path);
        else if (got == 1)
            m->heap[m->hn++] = i;
    }
    for (size_t i = m && m->hn ? m->hn / 2 : 0; i-- > 0;)
        sift_down(m, i);
    struct progress pg;
    progress_init(&pg, "merge");
    while (m && !rc && m->hn) {
        size_t i = m->heap[0];
        struct input *in = &m->in[i];
        int oif = out_iface(m, in, in->pkt.iface);
        if (oif < 0) {
            rc = EXIT_FAIL;
            break;
        }
        seen++;
        int keep = select_match(&sel, in->r, &in->pkt);
        if (keep < 0) {
            rc = -keep;
            break;
        }
        if (keep && (in->pkt.has_ts ? po_write(m->po, (uint32_t)oif, in->key, in->pkt.data, in->pkt.caplen,
                                               in->pkt.origlen)
                                    : po_write_untimed(m->po, (uint32_t)oif, in->pkt.data, in->pkt.caplen,
                                                       in->pkt.origlen)) < 0) {
            rc = tool_fail(EXIT_FAIL, "merge", "%s", po_error(m->po));
            break;
        }
        packets += (uint64_t)keep;
        progress_update(&pg, in->r, packets);
        int got = advance(in);
        if (got == -2) {
            rc = EXIT_FAIL;
            break;
        }
        if (got < 0 && (rc = select_read_end(&sel, in->r, in->path)) == 0)
            got = 0;
        if (rc) {
            break;
        } else if (got == 0) {
            m->heap[0] = m->heap[--m->hn];
            sift_down(m, 0);
        } else {
            sift_down(m, 0);
        }
    }
    progress_done(&pg);
    (void)sift_up;
    if (m && m->po) {
        /* An input with no packets still describes its interfaces. */
        for (size_t i = 0; i < m->n && !rc; i++)
            for (size_t k = 0; k < pr_iface_count(m->in[i].r) && !rc; k++)
                if (out_iface(m, &m->in[i], k) < 0)
                    rc = EXIT_FAIL;
        char err[256];
        if (rc) {
            po_abort(m->po);
        } else if (po_commit(m->po, err, sizeof err) < 0) {
            rc = tool_fail(EXIT_FAIL, "merge", "%s", err);
        } else {
            select_output_done(out_path);
            char text[96], js[96];
            snprintf(text, sizeof text, "%zu inputs, %zu interfaces", m->n, m->nifs);
            snprintf(js, sizeof js, "\"inputs\": %zu, \"interfaces\": %zu", m->n, m->nifs);
            print_summary(as_json, "merge", seen, packets, 0, text, js);
        }
    }
    for (size_t i = 0; m && i < m->n; i++) {
        pr_close(m->in[i].r);
        picked_close(m->in[i].picked);
        free(m->in[i].map);
    }
    if (m) {
        free(m->in);
        free(m->heap);
        free(m);
    }
    for (size_t k = 0; k < noff; k++)
        free(off_file[k]);
    for (size_t k = 0; k < npos; k++) {
        free(pos_file[k]);
        free(pos_path[k]);
    }
    select_free(&sel);
    return rc;
}
