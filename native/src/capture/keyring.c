/* keyring: the writer's end of the key keeper (see keyring.h). */
#include "keyring.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"

#define KEEPER_WAIT_MS 10000

static void keyring_init(struct keyring *k, const char *where, uint64_t period_s)
{
    k->fd = -1;
    k->where = where;
    k->period_s = period_s;
    k->period_ns = period_s * NS_PER_S;
}

/* The keeper: nothing of the writer's but its socket and the folder, then serve. */
static void keeper_main(int fd, struct keystore *ks, int no_seccomp)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    prctl(PR_SET_NAME, "sluice-keeper");
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) { /* the supervisor reads the writer's stdout to its end */
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        close(null);
    }
    char err[256];
    if (!no_seccomp && keystore_sandbox(err, sizeof err) != 0) {
        fprintf(stderr, "sluice-capture: error: %s\n", err);
        _exit(1);
    }
    _exit(keystore_serve(fd, ks) == 0 ? 0 : 1);
}

int keyring_start_keeper(struct keyring *k, const char *dir, uint64_t period_s, int no_seccomp, char *err,
                         size_t errlen)
{
    keyring_init(k, dir, period_s);
    struct keystore ks;
    if (keystore_open(&ks, dir, err, errlen) != 0)
        return -1;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(err, errlen, "--key-dir: no socket for the key keeper: %s", strerror(errno));
        keystore_close(&ks);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        keeper_main(sv[1], &ks, no_seccomp);
    }
    int e = errno;
    close(sv[1]);
    keystore_close(&ks); /* the writer never holds the folder */
    if (pid < 0) {
        close(sv[0]);
        snprintf(err, errlen, "--key-dir: cannot start the key keeper: %s", strerror(e));
        return -1;
    }
    k->fd = sv[0];
    return 0;
}

int keyring_connect(struct keyring *k, const char *path, uint64_t period_s, char *err, size_t errlen)
{
    keyring_init(k, path, period_s);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "--key-socket %s: the path is too long for a socket", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    k->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (k->fd < 0 || connect(k->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(err, errlen, "--key-socket %s: %s", path, strerror(errno));
        keyring_close(k);
        return -1;
    }
    return 0;
}

void keyring_close(struct keyring *k)
{
    /* the keeper sees the end and exits; not waited for (no wait4 under the writer's filter):
     * the writer's own exit follows, and its parent's reaper takes the keeper */
    if (k->fd >= 0)
        close(k->fd);
    k->fd = -1;
}

static int wait_for(int fd, short events, const char *where, char *err, size_t errlen)
{
    struct pollfd p = {.fd = fd, .events = events};
    int n;
    do
        n = poll(&p, 1, KEEPER_WAIT_MS);
    while (n < 0 && errno == EINTR);
    if (n == 1 && !(p.revents & (POLLERR | POLLNVAL)) && (p.revents & (events | POLLHUP)))
        return 0;
    snprintf(err, errlen, "key keeper %s: %s", where, n == 0 ? "no answer within 10 s" : "the connection failed");
    return -1;
}

int keyring_current(struct keyring *k, uint8_t key[CP_KEY_LEN], char name[KEYRING_NAME_LEN], uint64_t *start_ns,
                    char *err, size_t errlen)
{
    struct key_request req = {.magic = KEYSTORE_MAGIC, .period_s = k->period_s};
    if (wait_for(k->fd, POLLOUT, k->where, err, errlen) != 0)
        return -1;
    if (write(k->fd, &req, sizeof req) != (ssize_t)sizeof req) {
        snprintf(err, errlen, "key keeper %s: %s", k->where, strerror(errno));
        return -1;
    }
    struct key_reply rep;
    if (wait_for(k->fd, POLLIN, k->where, err, errlen) != 0)
        return -1;
    ssize_t n = read(k->fd, &rep, sizeof rep);
    int rc = -1;
    if (n != (ssize_t)sizeof rep || rep.magic != KEYSTORE_MAGIC)
        snprintf(err, errlen, "key keeper %s: %s", k->where, n < 0 ? strerror(errno) : n == 0 ? "it has gone"
                                                                                          : "an answer it cannot read");
    else if (rep.status != 0)
        snprintf(err, errlen, "%.*s", (int)sizeof rep.err, rep.err);
    else {
        memcpy(key, rep.key, CP_KEY_LEN);
        memcpy(name, rep.name, KEYRING_NAME_LEN);
        name[KEYRING_NAME_LEN - 1] = '\0';
        *start_ns = rep.start_ns;
        rc = 0;
    }
    memset(&rep, 0, sizeof rep);
    return rc;
}
