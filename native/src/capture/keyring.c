/* keyring: one Crypto-PAn key per period in a private folder (see keyring.h). */
#include "keyring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

int keyring_open(struct keyring *k, const char *dir, uint64_t period_s, uid_t owner, char *err, size_t errlen)
{
    k->dir = dir;
    k->period_ns = period_s * NS_PER_S;
    k->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (k->dirfd < 0) {
        snprintf(err, errlen, "--key-dir %s: %s", dir, strerror(errno));
        return -1;
    }
    struct stat st;
    const char *why = NULL;
    if (fstat(k->dirfd, &st) != 0)
        why = strerror(errno);
    else if (st.st_uid != owner)
        why = "not owned by the user the writer runs as";
    else if (st.st_mode & 077)
        why = "group or others have access (chmod 700 it)";
    if (why != NULL) {
        snprintf(err, errlen, "--key-dir %s: %s", dir, why);
        keyring_close(k);
        return -1;
    }
    return 0;
}

void keyring_close(struct keyring *k)
{
    if (k->dirfd >= 0)
        close(k->dirfd);
    k->dirfd = -1;
}

uint64_t keyring_period_start(const struct keyring *k, uint64_t now_ns)
{
    return now_ns - now_ns % k->period_ns;
}

/* A new key under a temporary name, then renamed to name unless that exists already. */
static int make_key(struct keyring *k, const char *name, char *err, size_t errlen)
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
    int fd = openat(k->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "--key-dir %s: cannot create %s: %s", k->dir, tmp, strerror(errno));
        memset(hex, 0, sizeof hex);
        return -1;
    }
    ssize_t w = write(fd, hex, 2 * CP_KEY_LEN + 1);
    int e = errno;
    memset(hex, 0, sizeof hex);
    int synced = w == 2 * CP_KEY_LEN + 1 && fdatasync(fd) == 0;
    close(fd);
    if (!synced) {
        snprintf(err, errlen, "--key-dir %s: cannot write %s: %s", k->dir, tmp, strerror(w < 0 ? e : errno));
        unlinkat(k->dirfd, tmp, 0);
        return -1;
    }
    int rc = renameat2(k->dirfd, tmp, k->dirfd, name, RENAME_NOREPLACE);
    if (rc != 0 && errno != EEXIST) {
        snprintf(err, errlen, "--key-dir %s: cannot rename %s to %s: %s", k->dir, tmp, name, strerror(errno));
        unlinkat(k->dirfd, tmp, 0);
        return -1;
    }
    if (rc != 0) /* another writer made this period's key first: its key is the one */
        unlinkat(k->dirfd, tmp, 0);
    fsync(k->dirfd);
    return 0;
}

int keyring_key_at(struct keyring *k, uint64_t now_ns, uint8_t key[CP_KEY_LEN], char name[KEYRING_NAME_LEN],
                   char *err, size_t errlen)
{
    time_t start = (time_t)(keyring_period_start(k, now_ns) / NS_PER_S);
    struct tm tm;
    gmtime_r(&start, &tm);
    strftime(name, KEYRING_NAME_LEN, "%Y%m%dT%H%M%SZ.key", &tm);
    int fd = openat(k->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        if (make_key(k, name, err, errlen) != 0)
            return -1;
        fd = openat(k->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    }
    char path[4096 + KEYRING_NAME_LEN];
    snprintf(path, sizeof path, "%s/%s", k->dir, name);
    if (fd < 0) {
        snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
        return -1;
    }
    return cp_read_key_fd(fd, path, key, err, errlen);
}
