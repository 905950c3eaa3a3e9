/* thread: start a thread on one CPU (--cpus, --writer-cpu).
 * Promise: the thread is pinned before it runs its first instruction (the affinity is set in
 * its attributes), so no packet is ever handled on another CPU; a CPU that does not exist or is
 * not allowed to this process fails the start (EINVAL) instead of being ignored. */
#ifndef SLUICE_CAPTURE_THREAD_H
#define SLUICE_CAPTURE_THREAD_H

#include <pthread.h>

/* Starts fn(arg) in a thread pinned to cpu (-1 = anywhere); 0 or an errno. */
int thread_start_on(pthread_t *t, int cpu, void *(*fn)(void *), void *arg);

#endif
