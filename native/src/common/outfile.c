#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Temporaries open now, for the signal handler (a handful at most in one process). */
#define MAX_PENDING 8
static char pending[MAX_PENDING][PATH_MAX];
static volatile sig_atomic_t pending_used[MAX_PENDING];

static void pending_add(const char *tmp)
{
    for (int i = 0; i < MAX_PENDING; i++)
        if (!pending_used[i] && strlen(tmp) < PATH_MAX) {
            snprintf(pending[i], PATH_MAX, "%s", tmp);
            pending_used[i] = 1;
            return;
        }
}

static void pending_remove(const char *tmp)
{
    for (int i = 0; i < MAX_PENDING; i++)
        if (pending_used[i] && strcmp(pending[i], tmp) == 0)
            pending_used[i] = 0;
}

static void on_signal(int sig)
{
    for (int i = 0; i < MAX_PENDING; i++)
        if (pending_used[i])
            unlink(pending[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

void of_cleanup_on_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

bool of_is_stdout(const char *path) { return strcmp(path, "-") == 0; }

static const char *kind_of(mode_t m)
{
    return S_ISDIR(m) ? "a directory" : S_ISSOCK(m) ? "a socket" : S_ISBLK(m) ? "a block device"
                                                                              : "not a regular file";
}

/* 1: write in place, 0: temporary + rename, -1: refused (err). */
static int mode_for(const char *path, char *err, size_t errlen)
{
    if (of_is_stdout(path))
        return 1;
    struct stat l, t;
    if (lstat(path, &l) != 0)
        return 0;
    if (stat(path, &t) != 0) {
        snprintf(err, errlen, "%s: a symlink to nothing (%s); refusing to replace it", path, strerror(errno));
        return -1;
    }
    if (S_ISFIFO(t.st_mode) || S_ISCHR(t.st_mode))
        return 1;
    if (S_ISREG(t.st_mode))
        return 0;
    snprintf(err, errlen, "%s: %s; refusing to replace it (give a regular file, -, a FIFO or a character "
             "device)", path, kind_of(t.st_mode));
    return -1;
}

int of_check(const char *path, char *err, size_t errlen) { return mode_for(path, err, errlen) < 0 ? -1 : 0; }

int of_open(struct outfile *of, const char *path, char *err, size_t errlen)
{
    *of = (struct outfile){.fd = -1};
    int mode = mode_for(path, err, errlen);
    if (mode < 0)
        return -1;
    of->path = strdup(path);
    if (!of->path)
        goto oom;
    if (mode == 1) {
        of->fd = of_is_stdout(path) ? STDOUT_FILENO : open(path, O_WRONLY | O_CLOEXEC);
        if (of->fd < 0) {
            snprintf(err, errlen, "%s: cannot open output: %s", path, strerror(errno));
            of_abort(of);
            return -1;
        }
        return 0;
    }
    struct stat l;
    of->final = lstat(path, &l) == 0 && S_ISLNK(l.st_mode) ? realpath(path, NULL) : strdup(path);
    if (!of->final)
        goto oom;
    char *d = strdup(of->final), *b = strdup(of->final);
    size_t tl = strlen(of->final) + 64;
    of->tmp = d && b ? malloc(tl) : NULL;
    if (of->tmp)
        snprintf(of->tmp, tl, "%s/.%s.%ld.tmp", dirname(d), basename(b), (long)getpid());
    free(d);
    free(b);
    if (!of->tmp)
        goto oom;
    pending_add(of->tmp);
    of->fd = open(of->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640); /* as the captures it comes from: no bit for others */
    if (of->fd < 0) {
        snprintf(err, errlen, "%s: cannot create output: %s", path, strerror(errno));
        pending_remove(of->tmp);
        free(of->tmp);
        of->tmp = NULL;
        of_abort(of);
        return -1;
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    of_abort(of);
    return -1;
}

static void release(struct outfile *of)
{
    if (of->tmp)
        pending_remove(of->tmp);
    free(of->tmp);
    free(of->final);
    free(of->path);
    *of = (struct outfile){.fd = -1};
}

int of_commit(struct outfile *of, char *err, size_t errlen)
{
    if (of->fd >= 0 && of->fd != STDOUT_FILENO && close(of->fd) < 0) {
        snprintf(err, errlen, "%s: close: %s", of->path, strerror(errno));
        of->fd = -1;
        of_abort(of);
        return -1;
    }
    of->fd = -1;
    if (of->tmp && rename(of->tmp, of->final) < 0) {
        snprintf(err, errlen, "%s: rename: %s", of->path, strerror(errno));
        of_abort(of);
        return -1;
    }
    release(of);
    return 0;
}

void of_abort(struct outfile *of)
{
    if (of->fd >= 0 && of->fd != STDOUT_FILENO)
        close(of->fd);
    if (of->tmp)
        unlink(of->tmp);
    release(of);
}
