/* opts: command line parsing and validation (see opts.h). */
#include "opts.h"

#include <sched.h>

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsonout.h"
#include "memplan.h"
#include "naming.h"
#include "stats.h"
#include "zstdspec.h"

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
    OPT_FOLLOW_PARENT,
    OPT_FILTER_TIMEOUT,
    OPT_CPUS,
    OPT_WRITER_CPU,
    OPT_USER,
    OPT_GROUP,
    OPT_NO_SECCOMP,
    OPT_ANONYMIZE,
    OPT_KEY_DIR,
    OPT_KEY_SOCKET,
    OPT_KEY_ROTATE_SECONDS,
    OPT_KEEP_PAYLOAD,
    OPT_DROP_PAYLOAD,
    OPT_VERSION,
    OPT_PRINT_CONTRACT,
    OPT_HELP,
};

const char opts_usage[] =
    "usage: sluice-capture -i IFACE -w DIR [options] [FILTER...]   capture an interface\n"
    "       sluice-capture -r FILE  -w DIR [options] [FILTER...]   replay a capture file\n"
    "       sluice-capture --recover DIR         close the .part files a crash left (recursively)\n"
    "       sluice-capture --print-contract      flags' ranges, stats fields, file names as JSON\n"
    "       sluice-capture --version | --help\n"
    "\n"
    "  -i IFACE                 interface to capture (AF_PACKET TPACKET_V3)\n"
    "  -r FILE                  replay a pcap/pcapng file instead (never drops; ends at EOF)\n"
    "  -w DIR                   output directory (must exist and be writable)\n"
    "  --date-dirs              files in DIR/YYYY-MM-DD/ (UTC date of the file's start)\n"
    "  --host NAME              host in file names and pcapng blocks (default: hostname;\n"
    "                           letters, digits, '-', '.', not starting with '.' or '-', <= 63)\n"
    "  --format pcapng|pcap     file format, both with ns timestamps (default pcapng)\n"
    "  -s, --snaplen N          bytes kept per packet, 64..262144 (default 262144; 0 = 262144)\n"
    "  --slice header           keep L2-L4 headers only (orig_len kept)\n"
    "  --keep-payload FILTER    with --slice header: whole frames for the packets FILTER matches\n"
    "  --drop-payload FILTER    L2-L4 headers only for the packets FILTER matches, the rest whole\n"
    "  --filter EXPR            tcpdump filter (or give it as trailing arguments, as tcpdump)\n"
    "  --filter-timeout SECONDS refuse a filter that takes longer to compile (default 5)\n"
    "  --workers N              capture threads in one fanout group, 1..64 (default 1)\n"
    "  --fanout hash|lb|cpu|qm  fanout mode (default hash)\n"
    "  --cpus LIST              pin worker i to the i-th CPU of LIST (e.g. 2,3 or 2-5)\n"
    "  --writer-cpu N           pin the disk writer thread to CPU N\n"
    "  --ring-mb N|auto         kernel ring per worker, MiB, 4..65536 (default auto:\n"
    "                           RAM/64 over the workers, 64..256 MiB each)\n"
    "  --buffer-mb N|auto       staging buffers, MiB, 2..65536 (default auto: RAM/16,\n"
    "                           64..4096 MiB); rings + buffers must fit in half the RAM\n"
    "  --rotate-size SIZE       rotate at SIZE (4K..4T, K/M/G/T, fractions allowed; 0 = off;\n"
    "                           default 1G)\n"
    "  --rotate-seconds N       also rotate at wall-clock multiples of N s (default 0 = off)\n"
    "  --compress zstd[:LEVEL]  write .pcapng.zst in independent frames (LEVEL 1..19, default 3)\n"
    "  --stats-interval SECONDS stats line period, 0.05..60 (default 1)\n"
    "  --timestamps sw|hw       kernel or NIC hardware timestamps (default sw)\n"
    "  --backend afpacket|pcap  packet source (default afpacket)\n"
    "  --io auto|uring|pwrite   how files are written (default auto)\n"
    "  --no-recover             skip recovering this writer's own .part files at start\n"
    "  --follow-parent          stop cleanly (close the file, exit 0) when the parent dies\n"
    "  --user NAME              once sockets and rings are open, run as NAME (from root)\n"
    "  --group NAME             files 0640 and folders 0750 owned by group NAME (readers)\n"
    "  --no-seccomp             no system-call allow-list after start-up (debugging only)\n"
    "  --anonymize KEYFILE      Crypto-PAn every IPv4/IPv6 address before it reaches the disk,\n"
    "                           as sluice-pcap anonymize (32-byte key, readable by its owner only)\n"
    "                           (every capability is dropped after start-up in any case)\n"
    "  --key-dir DIR            as --anonymize, with one key per period kept in DIR (mode 0700,\n"
    "                           owned by the user the writer starts as: a forked key keeper stays\n"
    "                           that user, makes and reads the keys, and hands over the current one)\n"
    "  --key-socket PATH        as --key-dir, the keys kept by sluice-keyd (root) behind PATH\n"
    "  --key-rotate-seconds N   key period: wall-clock multiples of N s, 1..31622400 (default\n"
    "                           86400); a new period closes the file, the next has the new key\n"
    "\n"
    "Stats: one JSON line per --stats-interval on stdout; logs on stderr. Exit: 0 clean stop,\n"
    "2 bad input, 1 runtime error. SIGHUP rotates; SIGINT/SIGTERM stop. Details: native/README.md\n";

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
    {"follow-parent", no_argument, NULL, OPT_FOLLOW_PARENT},
    {"filter-timeout", required_argument, NULL, OPT_FILTER_TIMEOUT},
    {"cpus", required_argument, NULL, OPT_CPUS},
    {"writer-cpu", required_argument, NULL, OPT_WRITER_CPU},
    {"user", required_argument, NULL, OPT_USER},
    {"group", required_argument, NULL, OPT_GROUP},
    {"no-seccomp", no_argument, NULL, OPT_NO_SECCOMP},
    {"anonymize", required_argument, NULL, OPT_ANONYMIZE},
    {"key-dir", required_argument, NULL, OPT_KEY_DIR},
    {"key-socket", required_argument, NULL, OPT_KEY_SOCKET},
    {"key-rotate-seconds", required_argument, NULL, OPT_KEY_ROTATE_SECONDS},
    {"keep-payload", required_argument, NULL, OPT_KEEP_PAYLOAD},
    {"drop-payload", required_argument, NULL, OPT_DROP_PAYLOAD},
    {"version", no_argument, NULL, OPT_VERSION},
    {"print-contract", no_argument, NULL, OPT_PRINT_CONTRACT},
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
    /* The grammar of SIZE_GRAMMAR (case-insensitive), as appliance/config.py parses sizes. */
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s < '0' || *s > '9')
        return -1;
    const char *p = s;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '.') {
        if (p[1] < '0' || p[1] > '9')
            return -1;
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    }
    char num[64];
    if ((size_t)(p - s) >= sizeof num)
        return -1;
    memcpy(num, s, (size_t)(p - s));
    num[p - s] = '\0';
    while (*p == ' ' || *p == '\t')
        p++;
    double mult = 1;
    switch (*p) {
    case 'k': case 'K': mult = 0x1p10; p++; break;
    case 'm': case 'M': mult = 0x1p20; p++; break;
    case 'g': case 'G': mult = 0x1p30; p++; break;
    case 't': case 'T': mult = 0x1p40; p++; break;
    default: break;
    }
    if (*p == 'i' || *p == 'I')
        p++;
    if (*p == 'b' || *p == 'B')
        p++;
    else if (p[-1] == 'i' || p[-1] == 'I')
        return -1;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '\0')
        return -1;
    double v = strtod(num, NULL) * mult;
    if (!isfinite(v) || v >= 0x1p64)
        return -1;
    *out = (uint64_t)v;
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
    o->ring_auto = 1;
    o->buffer_auto = 1;
    o->writer_cpu = -1;
    o->filter_timeout = FILTER_TIMEOUT_DEFAULT;
    o->rotate_size = 1ull << 30;
    o->stats_interval = 1.0;
    o->backend = BACKEND_AFPACKET;
    o->io = IO_AUTO;
    o->key_rotate_seconds = KEY_ROTATE_SECONDS_DEFAULT;
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

/* A host name goes into file names: keep it to characters that need no quoting, and never let it
 * start like a hidden file or a path ("..", ".x": retention and recovery skip dot files). */
static int valid_label(const char *s)
{
    if (s[0] == '\0' || s[0] == '.' || s[0] == '-' || strlen(s) > HOST_MAX_LEN)
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.'))
            return 0;
    return 1;
}

/* "2,3" or "2-5,7": the CPUs in the order given, each once. */
static int parse_cpus(const char *arg, struct capture_opts *o, char *err, size_t errlen)
{
    o->ncpus = 0;
    const char *p = arg;
    for (;;) {
        char *end;
        if (*p < '0' || *p > '9')
            goto bad;
        unsigned long lo = strtoul(p, &end, 10), hi = lo;
        if (*end == '-') {
            if (end[1] < '0' || end[1] > '9')
                goto bad;
            hi = strtoul(end + 1, &end, 10);
        }
        if (hi < lo || hi >= CPU_SETSIZE)
            goto bad;
        for (unsigned long c = lo; c <= hi; c++) {
            for (unsigned i = 0; i < o->ncpus; i++)
                if (o->cpus[i] == (int)c)
                    return fail(err, errlen, "--cpus %s: CPU %lu is listed twice", arg, c);
            if (o->ncpus == OPTS_MAX_WORKERS)
                return fail(err, errlen, "--cpus %s: more than %d CPUs", arg, OPTS_MAX_WORKERS);
            o->cpus[o->ncpus++] = (int)c;
        }
        if (*end == '\0')
            return 0;
        if (*end != ',')
            goto bad;
        p = end + 1;
    }
bad:
    return fail(err, errlen, "--cpus %s: expected CPU numbers such as 2,3 or 2-5", arg);
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
            return fail(err, errlen, "--host %s: use letters, digits, '-' and '.' only, not first, "
                                     "at most %d characters", arg, HOST_MAX_LEN);
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
    case 's':
    case OPT_SNAPLEN:
        if (strcmp(arg, "0") == 0) { /* tcpdump's -s 0: the whole packet */
            o->snaplen = SNAPLEN_MAX;
            return 0;
        }
        if (parse_uint(arg, SNAPLEN_MIN, SNAPLEN_MAX, &v) != 0)
            return fail(err, errlen, "--snaplen %s: expected a number from %d to %d (0 = %d)", arg,
                        SNAPLEN_MIN, SNAPLEN_MAX, SNAPLEN_MAX);
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
        o->ring_auto = strcmp(arg, "auto") == 0;
        if (o->ring_auto)
            return 0;
        if (parse_uint(arg, RING_MB_MIN, SIZE_MB_MAX, &v) != 0)
            return fail(err, errlen, "--ring-mb %s: expected auto or a number of MiB from %d to %d", arg,
                        RING_MB_MIN, SIZE_MB_MAX);
        o->ring_bytes = (size_t)v << 20;
        return 0;
    case OPT_BUFFER_MB:
        o->buffer_auto = strcmp(arg, "auto") == 0;
        if (o->buffer_auto)
            return 0;
        if (parse_uint(arg, BUFFER_MB_MIN, SIZE_MB_MAX, &v) != 0)
            return fail(err, errlen, "--buffer-mb %s: expected auto or a number of MiB from %d to %d", arg,
                        BUFFER_MB_MIN, SIZE_MB_MAX);
        o->buffer_bytes = (size_t)v << 20;
        return 0;
    case OPT_ROTATE_SIZE:
        if (opts_parse_size(arg, &v) != 0 || (v != 0 && (v < ROTATE_SIZE_MIN || v > ROTATE_SIZE_MAX)))
            return fail(err, errlen, "--rotate-size %s: expected a size such as 512M or 1G (4K to 4T, 0 = off)",
                        arg);
        o->rotate_size = v;
        return 0;
    case OPT_ROTATE_SECONDS:
        if (parse_uint(arg, 0, ROTATE_SECONDS_MAX, &v) != 0)
            return fail(err, errlen, "--rotate-seconds %s: expected a whole number of seconds", arg);
        o->rotate_seconds = v;
        return 0;
    case OPT_COMPRESS: {
        int rc = zstd_spec_parse(arg, &o->compress_level);
        if (rc == -1)
            return fail(err, errlen, "--compress %s: expected zstd or zstd:LEVEL", arg);
        if (rc == -2)
            return fail(err, errlen, "--compress %s: LEVEL must be 1 to 19", arg);
        return 0;
    }
    case OPT_STATS_INTERVAL: {
        char *end;
        double d = strtod(arg, &end);
        if (end == arg || *end != '\0' || !isfinite(d) || d < STATS_INTERVAL_MIN || d > STATS_INTERVAL_MAX)
            return fail(err, errlen, "--stats-interval %s: expected seconds from %g to %g", arg,
                        STATS_INTERVAL_MIN, STATS_INTERVAL_MAX);
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
    case OPT_FOLLOW_PARENT: o->follow_parent = 1; return 0;
    case OPT_USER:
        if (*arg == '\0')
            return fail(err, errlen, "--user: expected a user name");
        o->user = arg;
        return 0;
    case OPT_GROUP:
        if (*arg == '\0')
            return fail(err, errlen, "--group: expected a group name");
        o->group = arg;
        return 0;
    case OPT_NO_SECCOMP: o->no_seccomp = 1; return 0;
    case OPT_ANONYMIZE: o->anonymize_key = arg; return 0;
    case OPT_KEY_DIR: o->key_dir = arg; return 0;
    case OPT_KEY_SOCKET: o->key_socket = arg; return 0;
    case OPT_KEY_ROTATE_SECONDS:
        if (parse_uint(arg, KEY_ROTATE_SECONDS_MIN, KEY_ROTATE_SECONDS_MAX, &v) != 0)
            return fail(err, errlen, "--key-rotate-seconds %s: expected a whole number of seconds from %d to %d",
                        arg, KEY_ROTATE_SECONDS_MIN, KEY_ROTATE_SECONDS_MAX);
        o->key_rotate_seconds = v;
        o->key_rotate_given = 1;
        return 0;
    case OPT_KEEP_PAYLOAD:
    case OPT_DROP_PAYLOAD:
        if (*arg == '\0')
            return fail(err, errlen, "--%s: expected a filter", c == OPT_KEEP_PAYLOAD ? "keep-payload" : "drop-payload");
        if (o->payload_filter != NULL)
            return fail(err, errlen, "give one of --keep-payload or --drop-payload, once");
        o->payload_filter = arg;
        o->payload_filter_keeps = c == OPT_KEEP_PAYLOAD;
        return 0;
    case OPT_FILTER_TIMEOUT: {
        char *end;
        double d = strtod(arg, &end);
        if (end == arg || *end != '\0' || !isfinite(d) || d < 0.1 || d > 600)
            return fail(err, errlen, "--filter-timeout %s: expected seconds from 0.1 to 600", arg);
        o->filter_timeout = d;
        return 0;
    }
    case OPT_CPUS: return parse_cpus(arg, o, err, errlen);
    case OPT_WRITER_CPU:
        if (parse_uint(arg, 0, CPU_SETSIZE - 1, &v) != 0)
            return fail(err, errlen, "--writer-cpu %s: expected a CPU number", arg);
        o->writer_cpu = (int)v;
        return 0;
    default:
        return fail(err, errlen, "unknown option (see --help)");
    }
}

int opts_parse(int argc, char **argv, struct capture_opts *o, char *err, size_t errlen)
{
    set_defaults(o);
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":i:r:w:s:h", long_opts, NULL)) != -1) {
        if (c == '?') {
            if (optopt != 0)
                return fail(err, errlen, "unknown option -%c", optopt);
            return fail(err, errlen, "unknown option %s", argv[optind - 1]);
        }
        if (c == ':')
            return fail(err, errlen, "option %s needs a value", argv[optind - 1]);
        if (c == 'h' || c == OPT_HELP)
            return OPTS_HELP;
        if (c == OPT_VERSION)
            return OPTS_VERSION;
        if (c == OPT_PRINT_CONTRACT)
            return OPTS_CONTRACT;
        if (parse_one(c, optarg, o, err, errlen) != 0)
            return -1;
    }
    if (optind < argc) { /* tcpdump's habit: the filter as the trailing arguments */
        if (o->filter != NULL)
            return fail(err, errlen, "a filter is given twice (--filter and the trailing arguments %s...)",
                        argv[optind]);
        size_t len = 1;
        for (int i = optind; i < argc; i++)
            len += strlen(argv[i]) + 1;
        o->filter_buf = calloc(1, len);
        if (o->filter_buf == NULL)
            return fail(err, errlen, "out of memory");
        for (int i = optind; i < argc; i++) {
            if (i > optind)
                strcat(o->filter_buf, " ");
            strcat(o->filter_buf, argv[i]);
        }
        o->filter = o->filter_buf;
    }
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
    if (o->anonymize_key && o->format != FORMAT_PCAPNG)
        return fail(err, errlen, "--anonymize needs --format pcapng (its section header names the key)");
    if (!!o->anonymize_key + !!o->key_dir + !!o->key_socket > 1)
        return fail(err, errlen, "give one of --anonymize KEYFILE, --key-dir DIR or --key-socket PATH");
    if ((o->key_dir || o->key_socket) && o->format != FORMAT_PCAPNG)
        return fail(err, errlen, "%s needs --format pcapng (its section header names the key)",
                    o->key_dir ? "--key-dir" : "--key-socket");
    if (o->key_rotate_given && !o->key_dir && !o->key_socket)
        return fail(err, errlen, "--key-rotate-seconds needs --key-dir or --key-socket");
    if (o->payload_filter && o->payload_filter_keeps && !o->slice_header)
        return fail(err, errlen, "--keep-payload needs --slice header (it names the exceptions to it)");
    if (o->payload_filter && !o->payload_filter_keeps && o->slice_header)
        return fail(err, errlen, "--drop-payload and --slice header: give --keep-payload for the exceptions");
    if (o->ncpus != 0 && o->ncpus != o->workers)
        return fail(err, errlen, "--cpus lists %u CPUs for %u workers: give one CPU per worker", o->ncpus,
                    o->workers);
    uint64_t ram = memplan_ram_bytes();
    if (o->ring_auto)
        o->ring_bytes = (size_t)memplan_auto_ring_mb(ram, o->workers) << 20;
    if (o->buffer_auto)
        o->buffer_bytes = (size_t)memplan_auto_buffer_mb(ram) << 20;
    if (memplan_check(o->ring_bytes, o->workers, o->buffer_bytes, ram, err, errlen) != 0)
        return -1;
    return is_writable_dir(o->dir, err, errlen);
}

/* Every value here is the one the parser above uses (the same macros). */
void opts_print_contract(FILE *f)
{
    uint64_t ram = memplan_ram_bytes();
    fprintf(f, "{\"program\":\"sluice-capture\",\"stats_schema\":%d,\"flags\":{", STATS_SCHEMA_VERSION);
    fprintf(f, "\"snaplen\":{\"min\":%d,\"max\":%d,\"default\":%d,\"zero_means\":%d},", SNAPLEN_MIN,
            SNAPLEN_MAX, SNAPLEN_MAX, SNAPLEN_MAX);
    fprintf(f, "\"workers\":{\"min\":1,\"max\":%d,\"default\":1},", OPTS_MAX_WORKERS);
    fprintf(f, "\"ring_mb\":{\"min\":%d,\"max\":%d,\"default\":\"auto\",\"auto\":{\"ram_divisor\":%d,"
               "\"per_worker_min\":%d,\"per_worker_max\":%d,\"here_one_worker\":%llu}},",
            RING_MB_MIN, SIZE_MB_MAX, MEMPLAN_RING_DIVISOR, MEMPLAN_RING_MIN_MB, MEMPLAN_RING_MAX_MB,
            (unsigned long long)memplan_auto_ring_mb(ram, 1));
    fprintf(f, "\"buffer_mb\":{\"min\":%d,\"max\":%d,\"default\":\"auto\",\"auto\":{\"ram_divisor\":%d,"
               "\"min\":%d,\"max\":%d,\"here\":%llu}},",
            BUFFER_MB_MIN, SIZE_MB_MAX, MEMPLAN_BUFFER_DIVISOR, MEMPLAN_BUFFER_MIN_MB, MEMPLAN_BUFFER_MAX_MB,
            (unsigned long long)memplan_auto_buffer_mb(ram));
    fprintf(f, "\"memory\":{\"max_share_of_ram\":%g,\"ram_bytes\":%llu},", 1.0 / MEMPLAN_MAX_SHARE_DIVISOR,
            (unsigned long long)ram);
    fprintf(f, "\"rotate_size\":{\"min\":%llu,\"max\":%llu,\"zero_means\":\"off\",\"default\":%llu,"
               "\"grammar\":", ROTATE_SIZE_MIN, ROTATE_SIZE_MAX, 1ull << 30);
    json_put_string(f, SIZE_GRAMMAR);
    fprintf(f, ",\"grammar_flags\":\"ignorecase\",\"units\":{\"K\":1024,\"M\":1048576,\"G\":1073741824,"
               "\"T\":1099511627776}},");
    fprintf(f, "\"rotate_seconds\":{\"min\":0,\"max\":%llu,\"default\":0},", ROTATE_SECONDS_MAX);
    fprintf(f, "\"stats_interval\":{\"min\":%g,\"max\":%g,\"default\":1},", STATS_INTERVAL_MIN,
            STATS_INTERVAL_MAX);
    fprintf(f, "\"compress\":{\"values\":[\"zstd\"],\"level_min\":%d,\"level_max\":%d,\"level_default\":%d},",
            ZSTD_LEVEL_MIN, ZSTD_LEVEL_MAX, ZSTD_LEVEL_DEFAULT);
    fputs("\"host\":{\"grammar\":", f);
    json_put_string(f, HOST_GRAMMAR);
    fprintf(f, ",\"max_length\":%d},", HOST_MAX_LEN);
    fprintf(f, "\"key_rotate_seconds\":{\"min\":%d,\"max\":%d,\"default\":%d},", KEY_ROTATE_SECONDS_MIN,
            KEY_ROTATE_SECONDS_MAX, KEY_ROTATE_SECONDS_DEFAULT);
    fprintf(f, "\"filter_timeout\":{\"min\":0.1,\"max\":600,\"default\":%g},", FILTER_TIMEOUT_DEFAULT);
    fputs("\"format\":{\"values\":[\"pcapng\",\"pcap\"],\"default\":\"pcapng\"},"
          "\"fanout\":{\"values\":[\"hash\",\"lb\",\"cpu\",\"qm\"],\"default\":\"hash\"},"
          "\"timestamps\":{\"values\":[\"sw\",\"hw\"],\"default\":\"sw\"},"
          "\"backend\":{\"values\":[\"afpacket\",\"pcap\"],\"default\":\"afpacket\"},"
          "\"io\":{\"values\":[\"auto\",\"uring\",\"pwrite\"],\"default\":\"auto\"},"
          "\"slice\":{\"values\":[\"header\"]},"
          "\"cpus\":{\"grammar\":\"^\\\\d+(-\\\\d+)?(,\\\\d+(-\\\\d+)?)*$\",\"one_per_worker\":true}},", f);
    fputs("\"stats_fields\":{", f);
    fprintf(f, "\"stats\":%s,\"final\":%s,\"file\":%s,\"recovered\":%s},", STATS_FIELDS_STATS,
            STATS_FIELDS_STATS, STATS_FIELDS_FILE, STATS_FIELDS_RECOVERED);
    fprintf(f, "\"files\":{\"name\":\"{host}_{iface}_{YYYYMMDDTHHMMSS.nnnnnnnnnZ}_{seq:06d}{ext}\","
               "\"prefix\":\"{host}_{iface}_\",\"part_suffix\":\"%s\",\"extensions\":{\"pcapng\":\".pcapng\","
               "\"pcap\":\".pcap\",\"zstd\":\".pcapng.zst\"}},", PART_SUFFIX);
    fputs("\"exit_codes\":{\"clean_stop\":0,\"runtime_error\":1,\"bad_input\":2}}\n", f);
}
