/* sandbox: the seccomp allow-list of sluice-capture's steady state (see sandbox.h). */
#include "sandbox.h"

#include "log.h"
#include "sanitizer.h"

#include <errno.h>
#include <linux/sockios.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>

/* Each with why the steady state makes it. */
static const int allowed[] = {
    /* capture files: create (.part, date folders), write, preallocate, lock, sync, close,
     * rename on close; recovery of a previous writer's files happens before the filter */
    SCMP_SYS(openat), SCMP_SYS(open), SCMP_SYS(close), SCMP_SYS(mkdir), SCMP_SYS(mkdirat),
    SCMP_SYS(write), SCMP_SYS(writev), SCMP_SYS(pwrite64), SCMP_SYS(pwritev), SCMP_SYS(read),
    SCMP_SYS(pread64), SCMP_SYS(lseek), SCMP_SYS(fallocate), SCMP_SYS(ftruncate), SCMP_SYS(flock),
    SCMP_SYS(fsync), SCMP_SYS(fdatasync), SCMP_SYS(rename), SCMP_SYS(renameat), SCMP_SYS(renameat2),
    SCMP_SYS(unlink), SCMP_SYS(unlinkat), SCMP_SYS(fchown), SCMP_SYS(chown), SCMP_SYS(fchownat), SCMP_SYS(fchmod), SCMP_SYS(fstat),
    SCMP_SYS(newfstatat), SCMP_SYS(statx), SCMP_SYS(stat), SCMP_SYS(lstat), SCMP_SYS(fcntl),
    /* io_uring: the disk writer submits and reaps (the ring itself is set up before) */
    SCMP_SYS(io_uring_enter), SCMP_SYS(io_uring_register),
    /* the rings: wait for a block, read the counters, fall back from hardware stamps */
    SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(getsockopt), SCMP_SYS(setsockopt),
    SCMP_SYS(recvfrom), SCMP_SYS(recvmsg), /* --backend pcap and -r read through libpcap */
    /* clocks, signals (sigtimedwait in main, SIGHUP rotates), the stats period */
    SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep), SCMP_SYS(gettimeofday),
    SCMP_SYS(rt_sigtimedwait), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigaction),
    SCMP_SYS(restart_syscall),
    /* memory and threads: malloc arenas, staging blocks, futexes, a thread's own start (its
     * rseq and robust list: it may run after the filter), the clean stop */
    SCMP_SYS(brk), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(mprotect),
    SCMP_SYS(madvise), SCMP_SYS(futex), SCMP_SYS(sched_yield), SCMP_SYS(getpid), SCMP_SYS(gettid),
    SCMP_SYS(getppid), SCMP_SYS(tgkill), SCMP_SYS(getrandom), SCMP_SYS(rseq), SCMP_SYS(set_robust_list),
    SCMP_SYS(exit), SCMP_SYS(exit_group),
};

int sandbox_install(char *err, size_t errlen)
{
#ifdef SLUICE_UNDER_ADDRESS_SANITIZER
    (void)err;
    (void)errlen;
    (void)allowed;
    log_info("a sanitizer build: no seccomp filter");
    return 0;
#endif
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
    int rc = ctx ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < sizeof allowed / sizeof allowed[0]; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0);
    /* if_nametoindex (is the interface still there after a link error?) and isatty on stdout:
     * a datagram socket of the local or IPv4 family and two read-only ioctls. No other socket. */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2, SCMP_A0(SCMP_CMP_EQ, AF_UNIX),
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_DGRAM));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2, SCMP_A0(SCMP_CMP_EQ, AF_INET),
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_DGRAM));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, SIOCGIFINDEX));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, TCGETS));
    /* a thread just started may still be naming itself (pthread_setname_np) */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
    if (rc == 0)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc == 0)
        rc = seccomp_load(ctx);
    if (rc != 0)
        snprintf(err, errlen, "cannot install the seccomp filter: %s", strerror(-rc));
    seccomp_release(ctx);
    return rc == 0 ? 0 : -1;
}
