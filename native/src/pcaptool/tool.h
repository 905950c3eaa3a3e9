/* tool: what every sluice-pcap subcommand shares: the one error line, progress on a terminal,
 * the one-line / JSON summary, and the output options (--format, --precision, --compress).
 *
 * Exit codes (all subcommands): 0 done; 1 damaged input (check) or a failed job; 2 bad usage or
 * an input that cannot be read as a capture.
 */
#ifndef SLUICE_PCAPTOOL_TOOL_H
#define SLUICE_PCAPTOOL_TOOL_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "outfile.h"
#include "pcapout.h"
#include "pcapread.h"

#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2

int cmd_info(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_repair(int argc, char **argv);
int cmd_dedup(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_flows(int argc, char **argv);
int cmd_anonymize(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_index(int argc, char **argv);
int cmd_pick(int argc, char **argv);

/* "sluice-pcap CMD: message" on stderr, once. Returns code. */
int tool_fail(int code, const char *cmd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Progress on stderr, only when stderr is a terminal, at most 4 times a second. */
struct progress {
    bool on;
    const char *label;
    double last;
};
void progress_init(struct progress *pg, const char *label);
void progress_update(struct progress *pg, const pr_reader *r, uint64_t packets);
void progress_done(struct progress *pg);

/* Output options shared by the writing subcommands. */
enum { OPT_FORMAT = 1000, OPT_PRECISION, OPT_COMPRESS, OPT_JSON, OPT_BAD_VALUE };
struct out_opts {
    int format;     /* -1: as the input */
    int nano;       /* -1: as the input, 0 µs, 1 ns */
    int zstd_level; /* -1: as the input (3 when compressed), 0 none */
};
#define OUT_OPTS_INIT {-1, -1, -1}
#define OUT_LONG_OPTIONS                                         \
    {"format", required_argument, 0, OPT_FORMAT},                \
    {"precision", required_argument, 0, OPT_PRECISION},          \
    {"compress", required_argument, 0, OPT_COMPRESS},            \
    {"json", no_argument, 0, OPT_JSON}
/* getopt_long() for a writing subcommand (opts include OUT_LONG_OPTIONS): handles the output
 * options into *o and --json into *as_json itself and returns the next other option, -1 at the
 * end, or OPT_BAD_VALUE for a bad output option value (error printed: exit with EXIT_USAGE). */
int tool_getopt(int argc, char **argv, const char *shortopts, const struct option *opts,
                struct out_opts *o, bool *as_json, const char *cmd);
/* pcapout options for an output derived from input r. */
struct po_options out_resolve(const struct out_opts *o, const pr_reader *r);

/* Open an input for a job (PR_STRICT unless told); prints the error line. Returns 0 or the exit code. */
int tool_open(pr_reader **r, const char *path, enum pr_mode mode, const char *cmd);
/* Report a reader error after pr_next() returned -1; returns the exit code. */
int tool_read_error(const pr_reader *r, const char *path, const char *cmd);
/* The reporting subcommands (info, check): "CMD [--json] FILE...", one(path, as_json) for every
 * file. Returns the worst (highest) exit code. */
int tool_each_file(int argc, char **argv, const char *cmd, int (*one)(const char *path, bool as_json));
/* Describe every interface of r in po that is not described yet; map[i] = output index. */
int tool_sync_ifaces(pcapout *po, const pr_reader *r, int *map, size_t *mapped, size_t mapcap,
                     const char *cmd);

/* Minimal JSON object writer on stdout. */
struct json {
    FILE *f;
    int n;
};
void json_begin(struct json *j);
void json_str(struct json *j, const char *key, const char *val);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_f64(struct json *j, const char *key, double v);
void json_bool(struct json *j, const char *key, bool v);
void json_raw(struct json *j, const char *key, const char *raw);
void json_end(struct json *j);

/* Summary: "CMD: packets in N, out M, changed K[, extra]" or its JSON. */
void print_summary(bool as_json, const char *cmd, uint64_t in, uint64_t out, uint64_t changed,
                   const char *extra_text, const char *extra_json);

/* Parse a duration like "1ms", "0.5", "300s", "2m" into nanoseconds; -1 on error. */
int64_t parse_duration_ns(const char *s);

/* Before any input is read: refuse an output that outfile.h refuses (a directory, socket, ...)
 * or that is one of the inputs (inputs are never modified; same file, by inode); for "-" the
 * summary moves to stderr. Returns 0 or EXIT_USAGE with the error line printed. */
int tool_check_output(const char *cmd, const char *out, char *const *ins, int nin);
/* Where the summary goes: stdout, or stderr when the data goes to stdout. */
FILE *tool_report(void);

/* Decides, before a packet is written, what is written: returns 1 to write *pkt (which it may
 * point at a rewritten copy of the packet), 0 to leave the packet out, or minus an exit code
 * (error line printed) to stop. */
typedef int (*tool_filter)(void *ctx, struct pr_packet *pkt);
/* Copy every packet of r (through filter when not NULL) into a new file out_path (temp name +
 * rename). *n_in/n_out count packets. Returns 0 or the exit code (error line printed, no output
 * left behind). */
int tool_copy(const char *cmd, pr_reader *r, const char *in_path, const char *out_path,
              const struct po_options *po_opt, tool_filter filter, void *ctx, uint64_t *n_in,
              uint64_t *n_out);

/* The plain copying subcommands (convert, repair): "CMD [output options] [--json] IN OUT",
 * IN read in mode and copied to OUT as the output options say. On 0 the reader is left open in
 * job->r for the summary (the caller closes it); otherwise it is closed. */
struct copy_job {
    pr_reader *r;
    struct po_options po;
    uint64_t in, out;
    bool as_json;
};
int tool_copy_cmd(int argc, char **argv, const char *cmd, const char *use, enum pr_mode mode,
                  struct copy_job *job);
#endif
