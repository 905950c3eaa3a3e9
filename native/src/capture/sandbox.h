/* sandbox: the writer's seccomp allow-list, installed once start-up is over.
 *
 * Promise: sandbox_install(), called after every thread has started, applies to all the
 * process's threads (TSYNC) a filter that allows only the system calls of the steady state:
 * reading the rings and the socket counters, creating, writing (io_uring or pwrite),
 * preallocating, locking, syncing and renaming capture files, the stats and log lines, the
 * clocks and signals, memory and thread synchronisation, and the clean stop. Any other call
 * kills the whole writer with SIGSYS (the supervisor reports it and starts a new one): a
 * writer that was made to run code of someone else's can neither exec, nor connect out, nor
 * open new capture sockets. Returns 0, or -1 with one line in err. A sanitizer build (make
 * asan) installs none and says so: the sanitizers' own system calls would be killed. */
#ifndef SLUICE_CAPTURE_SANDBOX_H
#define SLUICE_CAPTURE_SANDBOX_H

#include <stddef.h>

int sandbox_install(char *err, size_t errlen);

#endif
