/* filter: BPF compiled in a child process under a time limit (see filter.h). */
#include "filter.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"

int stop_pending(void)
{
    sigset_t set;
    return sigpending(&set) == 0 && (sigismember(&set, SIGTERM) || sigismember(&set, SIGINT));
}

/* In the child: compile and write [u32 n][n insns] or [u32 ~0][message] to fd. */
static void compile_child(int fd, const char *expr, const char *iface, int linktype, uint32_t snaplen)
{
    char ebuf[PCAP_ERRBUF_SIZE];
    struct bpf_program prog;
    char msg[1024] = "";
    int rc = -1;
    pcap_t *p = iface ? pcap_create(iface, ebuf) : NULL;
    if (p != NULL) {
        pcap_set_snaplen(p, (int)snaplen);
        pcap_set_buffer_size(p, 1 << 16);
        if (pcap_activate(p) < 0) {
            pcap_close(p);
            p = NULL;
        }
    }
    if (p == NULL)
        p = pcap_open_dead_with_tstamp_precision(linktype, (int)snaplen, PCAP_TSTAMP_PRECISION_NANO);
    if (p == NULL)
        snprintf(msg, sizeof msg, "cannot compile the filter: libpcap failed");
    else if ((rc = pcap_compile(p, &prog, expr, 1, PCAP_NETMASK_UNKNOWN)) != 0)
        snprintf(msg, sizeof msg, "bad filter '%.200s': %s", expr, pcap_geterr(p));
    uint32_t n = rc == 0 ? prog.bf_len : UINT32_MAX;
    const void *body = rc == 0 ? (const void *)prog.bf_insns : (const void *)msg;
    size_t len = rc == 0 ? n * sizeof *prog.bf_insns : strlen(msg);
    if (write(fd, &n, sizeof n) != sizeof n)
        _exit(1);
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, (const char *)body + off, len - off);
        if (w <= 0)
            _exit(1);
        off += (size_t)w;
    }
    _exit(0);
}

/* Reads what the child sent; 0, or -1 with err set. */
static int read_result(int fd, struct bpf_program *prog, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (nb == NULL) {
                free(buf);
                snprintf(err, errlen, "out of memory");
                return -1;
            }
            buf = nb;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    uint32_t n = 0;
    if (len >= sizeof n)
        memcpy(&n, buf, sizeof n);
    if (len < sizeof n || (n != UINT32_MAX && len != sizeof n + n * sizeof(struct bpf_insn))) {
        snprintf(err, errlen, "cannot compile the filter: the compiler ended early");
        free(buf);
        return -1;
    }
    if (n == UINT32_MAX) {
        snprintf(err, errlen, "%.*s", (int)(len - sizeof n), buf + sizeof n);
        free(buf);
        return -1;
    }
    memmove(buf, buf + sizeof n, len - sizeof n);
    prog->bf_len = n;
    prog->bf_insns = (struct bpf_insn *)buf; /* pcap_freecode frees it */
    return 0;
}

int filter_compile(const char *expr, const char *iface, int linktype, uint32_t snaplen, double timeout,
                   struct bpf_program *prog, char *err, size_t errlen)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "cannot compile the filter: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "cannot compile the filter: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        compile_child(fds[1], expr, iface, linktype, snaplen);
    }
    close(fds[1]);
    uint64_t deadline = mono_ns() + (uint64_t)(timeout * 1e9);
    int rc = 0;
    for (;;) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        if (poll(&pfd, 1, 50) > 0)
            break; /* data or EOF: the child is done (or died) */
        if (stop_pending()) {
            rc = FILTER_INTERRUPTED;
            break;
        }
        if (mono_ns() >= deadline) {
            snprintf(err, errlen,
                     "filter takes more than %g s to compile (--filter-timeout): refused; a filter "
                     "this large would also cost every packet its time",
                     timeout);
            rc = -1;
            break;
        }
    }
    if (rc != 0)
        kill(pid, SIGKILL);
    else
        rc = read_result(fds[0], prog, err, errlen);
    close(fds[0]);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return rc;
}
