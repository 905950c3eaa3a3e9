/* naming: capture file names (see naming.h). */
#include "naming.h"

#include <stdio.h>
#include <time.h>

int naming_make(const struct naming *n, uint64_t start_ns, uint32_t seq, char *dir_out,
                size_t dir_len, char *final_out, size_t final_len)
{
    time_t secs = (time_t)(start_ns / 1000000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    int w;
    if (n->date_dirs)
        w = snprintf(dir_out, dir_len, "%s/%04d-%02d-%02d", n->dir, tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday);
    else
        w = snprintf(dir_out, dir_len, "%s", n->dir);
    if (w < 0 || (size_t)w >= dir_len)
        return -1;
    w = snprintf(final_out, final_len, "%s/%s_%s_%04d%02d%02dT%02d%02d%02d.%09uZ_%06u%s", dir_out,
                 n->host, n->iface, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (unsigned)(start_ns % 1000000000u), (unsigned)seq, n->ext);
    return (w < 0 || (size_t)w + sizeof PART_SUFFIX > final_len) ? -1 : 0;
}

int naming_prefix(const struct naming *n, char *out, size_t len)
{
    int w = snprintf(out, len, "%s_%s_", n->host, n->iface);
    return (w < 0 || (size_t)w >= len) ? -1 : 0;
}
