#include "zstdspec.h"

#include <stdlib.h>
#include <string.h>

int zstd_spec_parse(const char *arg, int *level)
{
    if (strncmp(arg, "zstd", 4) != 0 || (arg[4] != '\0' && arg[4] != ':'))
        return -1;
    if (arg[4] == '\0') {
        *level = ZSTD_LEVEL_DEFAULT;
        return 0;
    }
    char *end;
    long v = strtol(arg + 5, &end, 10);
    if (arg[5] == '\0' || *end || v < ZSTD_LEVEL_MIN || v > ZSTD_LEVEL_MAX)
        return -2;
    *level = (int)v;
    return 0;
}
