/* copy: see copy.h. */
#include "tool.h"

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
