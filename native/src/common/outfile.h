/* outfile: where a sluice-pcap output goes, and how it gets there without destroying anything.
 *
 *  "-"                        standard output, written in place
 *  a FIFO or character device written in place (also through a symlink): never replaced
 *  a regular file, or nothing written to a hidden temporary ".NAME.PID.tmp" beside it and renamed
 *                             over it only when complete (through a symlink: beside the
 *                             symlink's target, so the symlink stays)
 *  anything else              refused (a directory, a socket, a block device, a dangling symlink)
 *
 * of_cleanup_on_signals() makes SIGINT, SIGTERM and SIGHUP remove every temporary still open
 * before the process dies of the signal, so an interrupted job leaves nothing behind.
 * Errors are returned with a message, never printed.
 */
#ifndef SLUICE_OUTFILE_H
#define SLUICE_OUTFILE_H

#include <stdbool.h>
#include <stddef.h>

struct outfile {
    int fd;
    char *path;    /* the name given */
    char *final;   /* what the temporary is renamed to (NULL when written in place) */
    char *tmp;     /* the temporary (NULL when written in place) */
};

/* 0 when path may be written (as above), -1 with the reason in err. Touches nothing. */
int of_check(const char *path, char *err, size_t errlen);
bool of_is_stdout(const char *path);
int of_open(struct outfile *of, const char *path, char *err, size_t errlen);
/* Close (unless the caller already did and set fd to -1) and rename into place. 0 or -1. */
int of_commit(struct outfile *of, char *err, size_t errlen);
/* Close and remove the temporary (an in-place output cannot be taken back). */
void of_abort(struct outfile *of);
void of_cleanup_on_signals(void);

#endif
