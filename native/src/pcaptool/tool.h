/* tool: the registry of sluice-pcap's subcommands and what every one of them shares: the one
 * error line, opening inputs, checking outputs. The shared jobs have their own files:
 * progress.h, outopts.h (output options), json.h (summaries), copy.h (the copy loop).
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

/* Before any input is read: refuse an output that outfile.h refuses (a directory, socket, ...)
 * or that is one of the inputs (inputs are never modified; same file, by inode); for "-" the
 * summary moves to stderr. Returns 0 or EXIT_USAGE with the error line printed. */
int tool_check_output(const char *cmd, const char *out, char *const *ins, int nin);
/* Where the summary goes: stdout, or stderr when the data goes to stdout. */
FILE *tool_report(void);

#include "copy.h"
#include "json.h"
#include "outopts.h"
#include "progress.h"

#endif
