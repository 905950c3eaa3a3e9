/* keystore: the folder of period keys and the key keeper's loop (see keystore.h). */
#include "keystore.h"

#include "sanitizer.h"

#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_SEC 1000000000ull

int keystore_open(struct keystore *ks, const char *dir, char *err, size_t errlen)
{
    ks->dir = dir;
    ks->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ks->dirfd < 0) {
        snprintf(err, errlen, "--key-dir %s: %s", dir, strerror(errno));
        return -1;
    }
    struct stat st;
    const char *why = NULL;
    if (fstat(ks->dirfd, &st) != 0)
        why = strerror(errno);
    else if (st.st_uid != geteuid())
        why = "not owned by the user the key keeper runs as (the one the writer starts as)";
    else if (st.st_mode & 077)
        why = "group or others have access (chmod 700 it)";
    if (why != NULL) {
        snprintf(err, errlen, "--key-dir %s: %s", dir, why);
        keystore_close(ks);
        return -1;
    }
    return 0;
}

void keystore_close(struct keystore *ks)
{
    if (ks->dirfd >= 0)
        close(ks->dirfd);
    ks->dirfd = -1;
}

/* A new key under a temporary name, then renamed to name unless that exists already. */
static int make_key(struct keystore *ks, const char *name, char *err, size_t errlen)
{
    uint8_t raw[CP_KEY_LEN];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        snprintf(err, errlen, "--key-dir: no random bytes for a new key: %s", strerror(errno));
        return -1;
    }
    char hex[2 * CP_KEY_LEN + 2];
    for (size_t i = 0; i < CP_KEY_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    hex[2 * CP_KEY_LEN] = '\n';
    memset(raw, 0, sizeof raw);
    char tmp[64];
    snprintf(tmp, sizeof tmp, ".%s.%ld.tmp", name, (long)getpid());
    int fd = openat(ks->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "--key-dir %s: cannot create %s: %s", ks->dir, tmp, strerror(errno));
        memset(hex, 0, sizeof hex);
        return -1;
    }
    ssize_t w = write(fd, hex, 2 * CP_KEY_LEN + 1);
    int e = errno;
    memset(hex, 0, sizeof hex);
    int synced = w == 2 * CP_KEY_LEN + 1 && fdatasync(fd) == 0;
    close(fd);
    if (!synced) {
        snprintf(err, errlen, "--key-dir %s: cannot write %s: %s", ks->dir, tmp, strerror(w < 0 ? e : errno));
        unlinkat(ks->dirfd, tmp, 0);
        return -1;
    }
    int rc = renameat2(ks->dirfd, tmp, ks->dirfd, name, RENAME_NOREPLACE);
    if (rc != 0 && errno != EEXIST) {
        snprintf(err, errlen, "--key-dir %s: cannot rename %s to %s: %s", ks->dir, tmp, name, strerror(errno));
        unlinkat(ks->dirfd, tmp, 0);
        return -1;
    }
    if (rc != 0) /* another writer made this period's key first: its key is the one */
        unlinkat(ks->dirfd, tmp, 0);
    fsync(ks->dirfd);
    return 0;
}

int keystore_key_at(struct keystore *ks, uint64_t period_s, uint64_t now_ns, uint8_t key[CP_KEY_LEN],
                    char name[KEYSTORE_NAME_LEN], uint64_t *start_ns, char *err, size_t errlen)
{
    uint64_t period_ns = period_s * NS_PER_SEC;
    *start_ns = now_ns - now_ns % period_ns;
    time_t start = (time_t)(*start_ns / NS_PER_SEC);
    struct tm tm;
    gmtime_r(&start, &tm);
    strftime(name, KEYSTORE_NAME_LEN, "%Y%m%dT%H%M%SZ.key", &tm);
    int fd = openat(ks->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (make_key(ks, name, err, errlen) != 0)
            return -1;
        fd = openat(ks->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    }
    char path[4096 + KEYSTORE_NAME_LEN];
    snprintf(path, sizeof path, "%s/%s", ks->dir, name);
    if (fd < 0) {
        snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
        return -1;
    }
    return cp_read_key_fd(fd, path, key, err, errlen);
}

int keystore_serve(int fd, struct keystore *ks)
{
    for (;;) {
        struct key_request req;
        ssize_t n = recv(fd, &req, sizeof req, 0);
        if (n == 0)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        struct key_reply rep;
        memset(&rep, 0, sizeof rep);
        rep.magic = KEYSTORE_MAGIC;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts); /* the keeper's clock, never the asker's */
        uint64_t now = (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
        if (n != (ssize_t)sizeof req || req.magic != KEYSTORE_MAGIC || req.period_s < 1 ||
            req.period_s > 366ull * 86400) {
            rep.status = -1;
            snprintf(rep.err, sizeof rep.err, "the key keeper got a request it does not understand");
        } else {
            rep.status = keystore_key_at(ks, req.period_s, now, rep.key, rep.name, &rep.start_ns, rep.err,
                                         sizeof rep.err);
        }
        ssize_t w = send(fd, &rep, sizeof rep, MSG_NOSIGNAL);
        memset(&rep, 0, sizeof rep);
        if (w != (ssize_t)sizeof rep)
            return -1;
    }
}

int keystore_sandbox(char *err, size_t errlen)
{
    tzset(); /* gmtime_r reads the zone files once: now, not under the filter */
    /* no capability either: the keeper's user owns the folder, which is all it needs */
    cap_t none = cap_init(), now = cap_get_proc();
    /* none held already (sluice-keyd@.service bounds them all away and forbids capset): no call */
    int dropped = none != NULL && now != NULL && (cap_compare(none, now) == 0 || cap_set_proc(none) == 0);
    cap_free(none);
    cap_free(now);
    if (!dropped || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        snprintf(err, errlen, "the key keeper cannot drop its capabilities: %s", strerror(errno));
        return -1;
    }
#ifdef SLUICE_UNDER_ADDRESS_SANITIZER
    return 0;
#endif
    static const int allowed[] = {
        /* the socket */
        SCMP_SYS(recvfrom), SCMP_SYS(sendto), SCMP_SYS(read), SCMP_SYS(write),
        /* the folder: read, make (temporary name, sync, rename without replacing) */
        SCMP_SYS(openat), SCMP_SYS(close), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(getrandom),
        SCMP_SYS(fdatasync), SCMP_SYS(fsync), SCMP_SYS(renameat2), SCMP_SYS(unlinkat), SCMP_SYS(getpid),
        /* the clock, memory, the end */
        SCMP_SYS(clock_gettime), SCMP_SYS(brk), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(rt_sigreturn),
        SCMP_SYS(exit), SCMP_SYS(exit_group),
    };
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    int rc = ctx ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < sizeof allowed / sizeof allowed[0]; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
    if (rc == 0)
        rc = seccomp_load(ctx);
    if (rc != 0)
        snprintf(err, errlen, "cannot install the key keeper's seccomp filter: %s", strerror(-rc));
    seccomp_release(ctx);
    return rc == 0 ? 0 : -1;
}
