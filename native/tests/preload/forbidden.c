/* forbidden: an LD_PRELOAD library for tests that makes sluice-capture attempt a system call its
 * seccomp allow-list forbids, as code injected into a compromised writer would.
 *
 * SLUICE_TEST_FORBIDDEN_AFTER=SECONDS: once SECONDS (monotonic) have passed since the process
 * started, the next clock_gettime call first opens a TCP socket (a connection out), once. Only
 * in a process named sluice-capture: a supervisor started with the library loaded (so that its
 * writers inherit it) is left alone. Without the filter the socket is simply closed again. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime;
static double forbidden_after = -1;
static int done;
static struct timespec started;

__attribute__((constructor)) static void forbidden_init(void)
{
    real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    real_clock_gettime(CLOCK_MONOTONIC, &started);
    const char *spec = getenv("SLUICE_TEST_FORBIDDEN_AFTER");
    if (spec != NULL && strcmp(program_invocation_short_name, "sluice-capture") == 0)
        forbidden_after = strtod(spec, NULL);
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    if (forbidden_after >= 0 && !__atomic_load_n(&done, __ATOMIC_RELAXED)) {
        struct timespec now;
        real_clock_gettime(CLOCK_MONOTONIC, &now);
        double since = (double)(now.tv_sec - started.tv_sec) + (double)(now.tv_nsec - started.tv_nsec) / 1e9;
        if (since >= forbidden_after && !__atomic_exchange_n(&done, 1, __ATOMIC_RELAXED)) {
            int saved = errno;
            int fd = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
            if (fd >= 0)
                close(fd);
            errno = saved;
        }
    }
    return real_clock_gettime(id, ts);
}
