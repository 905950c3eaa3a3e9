/* opts: command line parsing and validation (see opts.h). */
#include "opts.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    OPT_DATE_DIRS = 256,
    OPT_HOST,
    OPT_FORMAT,
    OPT_SNAPLEN,
    OPT_SLICE,
    OPT_FILTER,
    OPT_WORKERS,
    OPT_FANOUT,
    OPT_RING_MB,
    OPT_BUFFER_MB,
    OPT_ROTATE_SIZE,
    OPT_ROTATE_SECONDS,
    OPT_COMPRESS,
    OPT_STATS_INTERVAL,
    OPT_TIMESTAMPS,
    OPT_BACKEND,
    OPT_RECOVER,
    OPT_IO,
    OPT_NO_RECOVER,
    OPT_HELP,
};

const char opts_usage[] =
    "usage: sluice-capture -i IFACE -w DIR [options]   capture an interface\n"
    "       sluice-capture -r FILE  -w DIR [options]   replay a capture file\n"
    "       sluice-capture --recover DIR               close .part files a crash left\n"
    "options: --date-dirs --host NAME --format pcapng|pcap --snaplen N --slice header\n"
    "         --filter EXPR --workers N --fanout hash|lb|cpu|qm --ring-mb N --buffer-mb N\n"
    "         --rotate-size SIZE --rotate-seconds N --compress zstd[:LEVEL]\n"
    "         --stats-interval SECONDS --timestamps sw|hw --backend afpacket|pcap\n"
    "         --io auto|uring|pwrite --no-recover\n"
    "details: native/README.md\n";

static const struct option long_opts[] = {
    {"date-dirs", no_argument, NULL, OPT_DATE_DIRS},
    {"host", required_argument, NULL, OPT_HOST},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"snaplen", required_argument, NULL, OPT_SNAPLEN},
    {"slice", required_argument, NULL, OPT_SLICE},
    {"filter", required_argument, NULL, OPT_FILTER},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"fanout", required_argument, NULL, OPT_FANOUT},
    {"ring-mb", required_argument, NULL, OPT_RING_MB},
    {"buffer-mb", required_argument, NULL, OPT_BUFFER_MB},
    {"rotate-size", required_argument, NULL, OPT_ROTATE_SIZE},
    {"rotate-seconds", required_argument, NULL, OPT_ROTATE_SECONDS},
    {"compress", required_argument, NULL, OPT_COMPRESS},
    {"stats-interval", required_argument, NULL, OPT_STATS_INTERVAL},
    {"timestamps", required_argument, NULL, OPT_TIMESTAMPS},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"recover", required_argument, NULL, OPT_RECOVER},
    {"io", required_argument, NULL, OPT_IO},
    {"no-recover", no_argument, NULL, OPT_NO_RECOVER},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int opts_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno != 0 || s[0] == '-')
        return -1;
    uint64_t mult = 1;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': mult = 1ull << 10; end++; break;
    case 'm': case 'M': mult = 1ull << 20; end++; break;
    case 'g': case 'G': mult = 1ull << 30; end++; break;
    case 't': case 'T': mult = 1ull << 40; end++; break;
    default: return -1;
    }
    if (*end == 'i' || *end == 'B')
        end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
    if (*end != '\0' || v > UINT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

/* A whole decimal number in [lo, hi]. */
static int parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || s[0] == '-' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static void set_defaults(struct capture_opts *o)
{
    memset(o, 0, sizeof *o);
    o->format = FORMAT_PCAPNG;
    o->snaplen = 262144;
    o->workers = 1;
    o->fanout = FANOUT_HASH;
    o->ring_bytes = 64u << 20;
    o->buffer_bytes = 64u << 20;
    o->rotate_size = 1ull << 30;
    o->stats_interval = 1.0;
    o->backend = BACKEND_AFPACKET;
    o->io = IO_AUTO;
    if (gethostname(o->host_buf, sizeof o->host_buf - 1) != 0 || o->host_buf[0] == '\0')
        strcpy(o->host_buf, "localhost");
    o->host = o->host_buf;
}

static int is_writable_dir(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return fail(err, errlen, "output directory %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return fail(err, errlen, "output directory %s: not a directory", path);
    if (access(path, W_OK | X_OK) != 0)
        return fail(err, errlen, "output directory %s is not writable: %s", path, strerror(errno));
    return 0;
}

/* A host name goes into file names: keep it to characters that need no quoting. */
static int valid_label(const char *s)
{
    if (s[0] == '\0')
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.'))
            return 0;
    return 1;
}

static int parse_one(int c, const char *arg, struct capture_opts *o, char *err, size_t errlen)
{
    uint64_t v;
    switch (c) {
    case 'i': o->iface = arg; return 0;
    case 'r': o->read_file = arg; return 0;
    case 'w': o->dir = arg; return 0;
    case OPT_RECOVER: o->recover_dir = arg; return 0;
    case OPT_DATE_DIRS: o->date_dirs = 1; return 0;
    case OPT_NO_RECOVER: o->no_recover = 1; return 0;
    case OPT_HOST:
        if (!valid_label(arg))
            return fail(err, errlen, "--host %s: use letters, digits, '-' and '.' only", arg);
        o->host = arg;
        return 0;
    case OPT_FORMAT:
        if (strcmp(arg, "pcapng") == 0)
            o->format = FORMAT_PCAPNG;
        else if (strcmp(arg, "pcap") == 0)
            o->format = FORMAT_PCAP;
        else
            return fail(err, errlen, "--format %s: expected pcapng or pcap", arg);
        return 0;
    case OPT_SNAPLEN:
        if (parse_uint(arg, 1, 262144, &v) != 0)
            return fail(err, errlen, "--snaplen %s: expected a number from 1 to 262144", arg);
        o->snaplen = (uint32_t)v;
        return 0;
    case OPT_SLICE:
        if (strcmp(arg, "header") != 0)
            return fail(err, errlen, "--slice %s: expected header", arg);
        o->slice_header = 1;
        return 0;
    case OPT_FILTER: o->filter = arg; return 0;
    case OPT_WORKERS:
        if (parse_uint(arg, 1, 64, &v) != 0)
            return fail(err, errlen, "--workers %s: expected a number from 1 to 64", arg);
        o->workers = (unsigned)v;
        return 0;
    case OPT_FANOUT:
        if (strcmp(arg, "hash") == 0) o->fanout = FANOUT_HASH;
        else if (strcmp(arg, "lb") == 0) o->fanout = FANOUT_LB;
        else if (strcmp(arg, "cpu") == 0) o->fanout = FANOUT_CPU;
        else if (strcmp(arg, "qm") == 0) o->fanout = FANOUT_QM;
        else return fail(err, errlen, "--fanout %s: expected hash, lb, cpu or qm", arg);
        return 0;
    case OPT_RING_MB:
        if (parse_uint(arg, 1, 65536, &v) != 0)
            return fail(err, errlen, "--ring-mb %s: expected a number of MiB from 1 to 65536", arg);
        o->ring_bytes = (size_t)v << 20;
        return 0;
    case OPT_BUFFER_MB:
        if (parse_uint(arg, 2, 65536, &v) != 0)
            return fail(err, errlen, "--buffer-mb %s: expected a number of MiB from 2 to 65536", arg);
        o->buffer_bytes = (size_t)v << 20;
        return 0;
    case OPT_ROTATE_SIZE:
        if (opts_parse_size(arg, &v) != 0 || (v != 0 && v < 4096))
            return fail(err, errlen, "--rotate-size %s: expected a size such as 512M or 1G (at least 4K, 0 = off)", arg);
        o->rotate_size = v;
        return 0;
    case OPT_ROTATE_SECONDS:
        if (parse_uint(arg, 0, 86400 * 366, &v) != 0)
            return fail(err, errlen, "--rotate-seconds %s: expected a whole number of seconds", arg);
        o->rotate_seconds = v;
        return 0;
    case OPT_COMPRESS: {
        if (strncmp(arg, "zstd", 4) != 0 || (arg[4] != '\0' && arg[4] != ':'))
            return fail(err, errlen, "--compress %s: expected zstd or zstd:LEVEL", arg);
        o->compress_level = 3;
        if (arg[4] == ':' && parse_uint(arg + 5, 1, 19, &v) != 0)
            return fail(err, errlen, "--compress %s: LEVEL must be 1 to 19", arg);
        if (arg[4] == ':')
            o->compress_level = (int)v;
        return 0;
    }
    case OPT_STATS_INTERVAL: {
        char *end;
        double d = strtod(arg, &end);
        if (end == arg || *end != '\0' || !isfinite(d) || d < 0.01 || d > 3600)
            return fail(err, errlen, "--stats-interval %s: expected seconds from 0.01 to 3600", arg);
        o->stats_interval = d;
        return 0;
    }
    case OPT_TIMESTAMPS:
        if (strcmp(arg, "sw") == 0) o->hw_timestamps = 0;
        else if (strcmp(arg, "hw") == 0) o->hw_timestamps = 1;
        else return fail(err, errlen, "--timestamps %s: expected sw or hw", arg);
        return 0;
    case OPT_BACKEND:
        if (strcmp(arg, "afpacket") == 0) o->backend = BACKEND_AFPACKET;
        else if (strcmp(arg, "pcap") == 0) o->backend = BACKEND_PCAP;
        else return fail(err, errlen, "--backend %s: expected afpacket or pcap", arg);
        return 0;
    case OPT_IO:
        if (strcmp(arg, "auto") == 0) o->io = IO_AUTO;
        else if (strcmp(arg, "uring") == 0) o->io = IO_URING;
        else if (strcmp(arg, "pwrite") == 0) o->io = IO_PWRITE;
        else return fail(err, errlen, "--io %s: expected auto, uring or pwrite", arg);
        return 0;
    default:
        return fail(err, errlen, "unknown option (see native/README.md for the flags)");
    }
}

int opts_parse(int argc, char **argv, struct capture_opts *o, char *err, size_t errlen)
{
    set_defaults(o);
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":i:r:w:h", long_opts, NULL)) != -1) {
        if (c == '?') {
            if (optopt != 0)
                return fail(err, errlen, "unknown option -%c", optopt);
            return fail(err, errlen, "unknown option %s", argv[optind - 1]);
        }
        if (c == ':')
            return fail(err, errlen, "option %s needs a value", argv[optind - 1]);
        if (c == 'h' || c == OPT_HELP)
            return OPTS_HELP;
        if (parse_one(c, optarg, o, err, errlen) != 0)
            return -1;
    }
    if (optind < argc)
        return fail(err, errlen, "unexpected argument %s", argv[optind]);
    if (o->recover_dir != NULL) {
        if (o->iface || o->read_file || o->dir)
            return fail(err, errlen, "--recover DIR takes no -i, -r or -w");
        return is_writable_dir(o->recover_dir, err, errlen);
    }
    if ((o->iface == NULL) == (o->read_file == NULL))
        return fail(err, errlen, "give exactly one of -i IFACE or -r FILE");
    if (o->dir == NULL)
        return fail(err, errlen, "-w DIR is required");
    if (o->read_file != NULL && o->workers != 1)
        return fail(err, errlen, "-r FILE reads with one worker (drop --workers)");
    if (o->backend == BACKEND_PCAP && o->workers != 1)
        return fail(err, errlen, "--backend pcap has one worker (drop --workers)");
    if (o->compress_level && o->format != FORMAT_PCAPNG)
        return fail(err, errlen, "--compress zstd needs --format pcapng");
    if (o->ring_bytes < (4u << 20) && o->backend == BACKEND_AFPACKET && o->iface)
        return fail(err, errlen, "--ring-mb must be at least 4");
    return is_writable_dir(o->dir, err, errlen);
}
