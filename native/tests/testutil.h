/* testutil: the harness of the C unit tests (tests/test_*.c): CHECK(c) reports a failed check
 * with its place and counts it in failures; main() then exits 1 when failures is not 0. */
#ifndef SLUICE_TESTUTIL_H
#define SLUICE_TESTUTIL_H

#include <stdio.h>

static int failures;
#define CHECK(c)                                                                 \
    do {                                                                         \
        if (!(c)) {                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            failures++;                                                          \
        }                                                                        \
    } while (0)

#endif
