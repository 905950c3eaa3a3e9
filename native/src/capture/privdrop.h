/* privdrop: the writer gives up what it needed only to start.
 *
 * Promise: privdrop_resolve looks the --user and --group names up before anything is opened
 * (an unknown name is bad input). privdrop_apply, called once the sockets are bound, the rings
 * mapped and the lock taken, and before any thread is started (capabilities are per thread),
 * switches to the user (its own group, plus the readers' group as the only supplementary group)
 * when asked and allowed, then empties every capability set (effective, permitted, inheritable,
 * ambient) and sets no_new_privs, so that nothing later (an execve included) gets one back.
 * The steady state needs none: the ring is read, the socket's counters are read, the files are
 * created in a folder the user may write. Errors: -1 with one line in err. */
#ifndef SLUICE_CAPTURE_PRIVDROP_H
#define SLUICE_CAPTURE_PRIVDROP_H

#include <stddef.h>
#include <sys/types.h>

struct privdrop {
    int switch_user;  /* --user given and not already this user */
    uid_t uid;
    gid_t gid;        /* the user's own group */
    int has_group;    /* --group given */
    gid_t readers;    /* --group */
};

/* 0, or -1 with err ("--user NAME: no such user", ...). Either name may be NULL. */
int privdrop_resolve(const char *user, const char *group, struct privdrop *out, char *err, size_t errlen);

/* 0, or -1 with err. dir is checked writable by the user the process becomes. */
int privdrop_apply(const struct privdrop *pd, const char *user, const char *dir, char *err, size_t errlen);

#endif
