/* privdrop: switch user and drop every capability (see privdrop.h for what and why). */
#include "privdrop.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <unistd.h>

int privdrop_resolve(const char *user, const char *group, struct privdrop *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (user != NULL) {
        errno = 0;
        struct passwd *pw = getpwnam(user);
        if (pw == NULL) {
            snprintf(err, errlen, "--user %s: no such user%s%s", user, errno ? ": " : "",
                     errno ? strerror(errno) : "");
            return -1;
        }
        out->uid = pw->pw_uid;
        out->gid = pw->pw_gid;
        out->switch_user = pw->pw_uid != geteuid() || pw->pw_uid != getuid();
    }
    if (group != NULL) {
        errno = 0;
        struct group *gr = getgrnam(group);
        if (gr == NULL) {
            snprintf(err, errlen, "--group %s: no such group%s%s", group, errno ? ": " : "",
                     errno ? strerror(errno) : "");
            return -1;
        }
        out->has_group = 1;
        out->readers = gr->gr_gid;
    }
    return 0;
}

static int switch_user(const struct privdrop *pd, const char *user, char *err, size_t errlen)
{
    gid_t groups[1] = {pd->readers};
    if (setgroups(pd->has_group ? 1 : 0, groups) != 0 || setresgid(pd->gid, pd->gid, pd->gid) != 0 ||
        setresuid(pd->uid, pd->uid, pd->uid) != 0) {
        snprintf(err, errlen, "--user %s: cannot switch to it (%s): start as root or drop --user", user,
                 strerror(errno));
        return -1;
    }
    if (setuid(0) == 0) { /* must never succeed again */
        snprintf(err, errlen, "--user %s: could switch back to root: refusing to run", user);
        return -1;
    }
    return 0;
}

int privdrop_apply(const struct privdrop *pd, const char *user, const char *dir, char *err, size_t errlen)
{
    if (pd->switch_user && switch_user(pd, user, err, errlen) != 0)
        return -1;
    /* Still root (no --user): make uid 0 mean nothing on its own, so that even an execve
     * would not give the capabilities back (needs CAP_SETPCAP, which root has here). */
    if (geteuid() == 0 &&
        prctl(PR_SET_SECUREBITS, SECBIT_NOROOT | SECBIT_NOROOT_LOCKED, 0, 0, 0) != 0) {
        snprintf(err, errlen, "cannot set the securebits of root: %s", strerror(errno));
        return -1;
    }
    cap_t none = cap_init(); /* every set empty */
    int rc = none ? cap_set_proc(none) : -1;
    int e = errno;
    cap_free(none);
    if (rc != 0 || cap_reset_ambient() != 0) {
        snprintf(err, errlen, "cannot drop the capabilities: %s", strerror(rc ? e : errno));
        return -1;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        snprintf(err, errlen, "cannot set no_new_privs: %s", strerror(errno));
        return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "%.900s: not writable by the capture user%s%s (%s)", dir, user ? " " : "",
                 user ? user : "", strerror(errno));
        return -1;
    }
    return 0;
}
