/* select: which packets a job keeps, for `sluice-pcap convert` and `merge` (--from, --to,
 * --filter, --growing): the hooks those commands call, so their own code stays as it was.
 *
 * Promises:
 *  - the window is editcap's: a packet is kept when from <= ts (editcap -A) and ts < to
 *    (editcap -B); bounds are epoch seconds with up to 9 fraction digits or RFC 3339
 *    (YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm)), kept to the nanosecond;
 *  - the filter has tcpdump's meaning: compiled by libpcap (optimised, netmask unknown) once
 *    per (link type, snaplen) of the inputs' interfaces, and run with pcap_offline_filter();
 *    a filter that does not compile is refused when the option is read (checked against
 *    Ethernet) or, for another link type, before the packet is written (exit 2);
 *  - a --growing input (a file still being written, such as the writer's current .part) ends
 *    at its first record that is not whole yet instead of failing the job.
 * Errors are printed once (tool_fail) and returned as exit codes.
 */
#ifndef SLUICE_PCAPTOOL_SELECT_H
#define SLUICE_PCAPTOOL_SELECT_H

#include <pcap/pcap.h>

#include "tool.h"

enum { OPT_SEL_FROM = 1300, OPT_SEL_TO, OPT_SEL_FILTER, OPT_SEL_GROWING };
#define SELECT_LONG_OPTIONS                                   \
    {"from", required_argument, 0, OPT_SEL_FROM},             \
    {"to", required_argument, 0, OPT_SEL_TO},                 \
    {"filter", required_argument, 0, OPT_SEL_FILTER},         \
    {"growing", required_argument, 0, OPT_SEL_GROWING}

#define SELECT_MAX_PROGS 32
#define SELECT_MAX_GROWING 256

struct select_prog {
    uint16_t linktype;
    uint32_t snaplen;
    struct bpf_program prog;
};

struct select {
    const char *cmd;
    bool has_from, has_to;
    uint64_t from_ns, to_ns;
    const char *expr;
    struct select_prog progs[SELECT_MAX_PROGS];
    size_t nprogs;
    const char *growing[SELECT_MAX_GROWING];
    size_t ngrowing;
    const pr_reader *reader; /* the reader select_keep() looks at (convert's single input) */
};

void select_init(struct select *s, const char *cmd);
/* One of SELECT_LONG_OPTIONS: 1 handled, 0 not one of them, -1 bad value (error printed). */
int select_option(struct select *s, int opt, const char *arg);
/* The filter's verdict on packet pkt of reader r: 1 keep, 0 leave out, minus an exit code. */
int select_filter(struct select *s, const pr_reader *r, const struct pr_packet *pkt);
/* Whether a job keeps packet pkt of reader r: 1 keep, 0 leave out, minus an exit code. Inline:
 * every packet of a merge passes here, and most jobs have no window and no filter. */
static inline int select_match(struct select *s, const pr_reader *r, const struct pr_packet *pkt)
{
    if ((s->has_from && pkt->ts_ns < s->from_ns) || (s->has_to && pkt->ts_ns >= s->to_ns))
        return 0;
    return s->expr ? select_filter(s, r, pkt) : 1;
}
/* tool_filter over s->reader, for tool_copy(). */
int select_keep(void *ctx, struct pr_packet *pkt);
/* A read error (pr_next() == -1) of input path: 0 when path is --growing (its end), else the
 * exit code (error line printed). */
int select_read_end(const struct select *s, const pr_reader *r, const char *path);
/* After the output "-" (stdout) is complete: what is printed later on stdout (the summary)
 * goes to stderr, so the packet stream stays a capture. */
void select_output_done(const char *out_path);
void select_free(struct select *s);

/* Parse a bound: epoch seconds "S[.F]" or RFC 3339; 0 with *ns set, -1 when not a time. */
int select_parse_time(const char *s, uint64_t *ns);

/* `sluice-pcap convert` with the selection options: like tool_copy_cmd() otherwise. */
int select_copy_cmd(int argc, char **argv, const char *cmd, const char *use, struct copy_job *job);

#endif
