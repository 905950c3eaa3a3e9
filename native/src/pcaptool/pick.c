/* pick: the records of a file that hold given addresses or (protocol, port) pairs, read at their offsets from the file's
 * positions (written by `sluice-pcap index --positions`), instead of reading the whole file.
 *
 * The output is the file's own bytes: its header (up to the first packet: section and interface
 * blocks, or the pcap global header) and then each chosen record or block verbatim, in file
 * order. So it is a valid capture that every reader parses exactly as it parses those records in
 * the original, and `merge --filter` over it selects what it selects over the whole file: the
 * addresses' records are a superset of what `host ADDR` matches (index.c).
 *
 * --from/--to (as merge's) keep the records of that window only. The reading is picked.h's, which
 * `merge --positions` shares.
 *
 * Refused (exit 2) when the positions do not describe the file (another size) or are not a
 * positions file; exit 1 when a record at a listed offset is not whole.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "picked.h"
#include "select.h"

static int write_all(int fd, const uint8_t *b, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int cmd_pick(int argc, char **argv)
{
    enum { OPT_POS = 1500, OPT_ADDR, OPT_PORT, OPT_FROM, OPT_TO };
    static const struct option opts[] = {{"positions", required_argument, 0, OPT_POS},
                                         {"addr", required_argument, 0, OPT_ADDR},
                                         {"port", required_argument, 0, OPT_PORT},
                                         {"from", required_argument, 0, OPT_FROM},
                                         {"to", required_argument, 0, OPT_TO},
                                         {"output", required_argument, 0, 'o'},
                                         {0, 0, 0, 0}};
    static const char *use = "usage: sluice-pcap pick --positions POS (--addr ADDR | --port PROTO/N)... [--from T] [--to T] "
                             "-o OUT|- FILE";
    const char *pos_path = NULL, *out_path = NULL;
    struct picked_keys keys = {.n = 0};
    bool has_from = false, has_to = false;
    uint64_t from_ns = 0, to_ns = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
        if (c == OPT_POS)
            pos_path = optarg;
        else if (c == 'o')
            out_path = optarg;
        else if ((c == OPT_ADDR || c == OPT_PORT) && picked_add_key(&keys, optarg, c == OPT_PORT) == 0)
            continue;
        else if ((c == OPT_FROM || c == OPT_TO) && select_parse_time(optarg, c == OPT_FROM ? &from_ns : &to_ns) == 0)
            *(c == OPT_FROM ? &has_from : &has_to) = true;
        else if (c == OPT_FROM || c == OPT_TO)
            return tool_fail(EXIT_USAGE, "pick", "--%s '%s' is not a time", c == OPT_FROM ? "from" : "to", optarg);
        else if (c == OPT_PORT)
            return tool_fail(EXIT_USAGE, "pick", "--port '%s' is not tcp/N, udp/N or sctp/N (at most %d keys)", optarg,
                             PICKED_MAX_KEYS);
        else if (c == OPT_ADDR)
            return tool_fail(EXIT_USAGE, "pick", "--addr '%s' is not an IPv4 or IPv6 address (at most %d)", optarg,
                             PICKED_MAX_KEYS);
        else
            return tool_fail(EXIT_USAGE, "pick", "%s", use);
    }
    if (!pos_path || !out_path || !keys.n || argc - optind != 1)
        return tool_fail(EXIT_USAGE, "pick", "%s", use);
    const char *in_path = argv[optind];
    if (tool_check_output("pick", out_path, argv + optind, 1))
        return EXIT_USAGE;
    char err[512];
    struct picked *p = NULL;
    int rc = picked_open(&p, in_path, pos_path, &keys, has_from, from_ns, has_to, to_ns, err, sizeof err);
    if (rc)
        return tool_fail(rc == 2 ? EXIT_USAGE : EXIT_FAIL, "pick", "%s", err);
    uint8_t *buf = malloc(1u << 20);
    struct outfile of = {.fd = -1};
    if (!buf)
        rc = tool_fail(EXIT_FAIL, "pick", "out of memory");
    else if (of_open(&of, out_path, err, sizeof err) < 0) /* outfile.h: "-" and FIFOs in place, files through a temporary */
        rc = tool_fail(EXIT_FAIL, "pick", "%s", err);
    for (long got = 1; !rc && got > 0;) {
        got = picked_read(p, buf, 1u << 20);
        if (got < 0)
            rc = tool_fail(EXIT_FAIL, "pick", "%s: %s", in_path, picked_error(p));
        else if (got > 0 && write_all(of.fd, buf, (size_t)got) < 0)
            rc = tool_fail(EXIT_FAIL, "pick", "%s: write: %s", out_path, strerror(errno));
    }
    if (of.path) {
        if (rc)
            of_abort(&of);
        else if (of_commit(&of, err, sizeof err) < 0)
            rc = tool_fail(EXIT_FAIL, "pick", "%s", err);
    }
    if (!rc)
        fprintf(tool_report(), "pick: records %llu of %llu addresses' positions\n",
                (unsigned long long)picked_records(p), (unsigned long long)picked_listed(p));
    free(buf);
    picked_close(p);
    return rc;
}
