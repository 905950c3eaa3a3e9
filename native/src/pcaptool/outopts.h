/* outopts: the output options of the writing subcommands (--format, --precision, --compress, --json) and the option values they share (durations). */
#ifndef SLUICE_PCAPTOOL_OUTOPTS_H
#define SLUICE_PCAPTOOL_OUTOPTS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "pcapout.h"
#include "pcapread.h"

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


/* Parse a duration like "1ms", "0.5", "300s", "2m" into nanoseconds; -1 on error. */
int64_t parse_duration_ns(const char *s);

#endif
