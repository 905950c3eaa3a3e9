/* copy: the copy loop every rewriting subcommand runs (convert, repair, dedup, anonymize). */
#ifndef SLUICE_PCAPTOOL_COPY_H
#define SLUICE_PCAPTOOL_COPY_H

#include <stdbool.h>
#include <stdint.h>

#include "pcapout.h"
#include "pcapread.h"

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
