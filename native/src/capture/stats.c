/* stats: counters and the JSON-lines stats channel (see stats.h). */
#include "stats.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "jsonout.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void put_head(struct capture_stats *s, const char *type)
{
    fprintf(s->out, "{\"type\":\"%s\",\"v\":%d,\"ts\":%.6f,\"interface\":", type, STATS_SCHEMA_VERSION,
            now_s());
    json_put_string(s->out, s->iface);
}

void stats_init(struct capture_stats *s, const char *iface, FILE *out)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->iface = iface;
    s->out = out;
    s->io_mode = "none";
}

void stats_set_current_file(struct capture_stats *s, const char *path)
{
    pthread_mutex_lock(&s->mu);
    snprintf(s->current_file, sizeof s->current_file, "%s", path ? path : "");
    pthread_mutex_unlock(&s->mu);
}

static const char *errno_name(int e)
{
    switch (e) {
    case 0: return NULL;
    case ENOSPC: return "ENOSPC";
    case EIO: return "EIO";
    case EROFS: return "EROFS";
    case EDQUOT: return "EDQUOT";
    case EACCES: return "EACCES";
    default: return "EIO";
    }
}

void stats_emit(struct capture_stats *s, const char *type, const struct source_counters *src,
                double buffer_fill, const char *ts_source)
{
    pthread_mutex_lock(&s->mu);
    put_head(s, type);
    fprintf(s->out,
            ",\"packets\":%llu,\"bytes\":%llu,\"kernel_drops\":%llu,\"kernel_freezes\":%llu"
            ",\"writer_drops\":%llu,\"ring_fill\":%.4f,\"buffer_fill\":%.4f,\"bytes_written\":%llu"
            ",\"files_closed\":%llu,\"current_file\":",
            (unsigned long long)atomic_load(&s->packets), (unsigned long long)atomic_load(&s->bytes),
            (unsigned long long)src->kernel_drops, (unsigned long long)src->kernel_freezes,
            (unsigned long long)atomic_load(&s->writer_drops), src->ring_fill, buffer_fill,
            (unsigned long long)atomic_load(&s->bytes_written),
            (unsigned long long)atomic_load(&s->files_closed));
    if (s->current_file[0])
        json_put_string(s->out, s->current_file);
    else
        fputs("null", s->out);
    fprintf(s->out, ",\"ts_source\":\"%s\",\"disk_error\":", ts_source);
    const char *de = errno_name(atomic_load(&s->disk_errno));
    if (de)
        fprintf(s->out, "\"%s\"", de);
    else
        fputs("null", s->out);
    fprintf(s->out, ",\"errors\":%llu,\"kernel_packets\":%llu,\"io\":\"%s\",\"ring_bytes\":%llu"
                    ",\"buffer_bytes\":%llu,",
            (unsigned long long)atomic_load(&s->errors), (unsigned long long)src->kernel_packets,
            s->io_mode, (unsigned long long)s->ring_bytes, (unsigned long long)s->buffer_bytes);
    /* How long the rings and buffers hold a burst at line rate while the disk writes nothing. */
    if (s->link_bps)
        fprintf(s->out, "\"link_bps\":%llu,\"burst_seconds\":%.3f}\n", (unsigned long long)s->link_bps,
                (double)(s->ring_bytes + s->buffer_bytes) * 8.0 / (double)s->link_bps);
    else
        fputs("\"link_bps\":null,\"burst_seconds\":null}\n", s->out);
    fflush(s->out);
    pthread_mutex_unlock(&s->mu);
}

void stats_emit_file(struct capture_stats *s, const char *path, uint64_t packets, uint64_t bytes,
                     int has_packets, uint64_t first_ns, uint64_t last_ns)
{
    pthread_mutex_lock(&s->mu);
    put_head(s, "file");
    fputs(",\"path\":", s->out);
    json_put_string(s->out, path);
    fprintf(s->out, ",\"packets\":%llu,\"bytes\":%llu", (unsigned long long)packets,
            (unsigned long long)bytes);
    if (has_packets)
        fprintf(s->out, ",\"first_ns\":%llu,\"last_ns\":%llu}\n", (unsigned long long)first_ns,
                (unsigned long long)last_ns);
    else
        fputs(",\"first_ns\":null,\"last_ns\":null}\n", s->out);
    fflush(s->out);
    pthread_mutex_unlock(&s->mu);
}
