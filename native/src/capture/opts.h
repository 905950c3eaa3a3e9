/* opts: sluice-capture's command line, parsed and checked into one plain struct.
 * Promise: opts_parse either fills every field with a valid value or returns -1 with one line of
 * explanation in err (the caller prints it and exits 2). It touches no global state. */
#ifndef SLUICE_CAPTURE_OPTS_H
#define SLUICE_CAPTURE_OPTS_H

#include <stddef.h>
#include <stdint.h>

enum out_format { FORMAT_PCAPNG, FORMAT_PCAP };
enum backend { BACKEND_AFPACKET, BACKEND_PCAP };
enum io_mode { IO_AUTO, IO_URING, IO_PWRITE };
enum fanout_mode { FANOUT_HASH, FANOUT_LB, FANOUT_CPU, FANOUT_QM };

struct capture_opts {
    const char *iface;       /* -i */
    const char *read_file;   /* -r */
    const char *dir;         /* -w */
    const char *recover_dir; /* --recover */
    const char *host;        /* --host, default: the hostname */
    const char *filter;      /* --filter, NULL = none */
    char host_buf[256];
    int date_dirs;
    enum out_format format;
    uint32_t snaplen;
    int slice_header;
    unsigned workers;
    enum fanout_mode fanout;
    size_t ring_bytes;
    size_t buffer_bytes;
    uint64_t rotate_size;      /* 0 = never */
    uint64_t rotate_seconds;   /* 0 = never */
    int compress_level;        /* 0 = no compression */
    double stats_interval;
    int hw_timestamps;
    enum backend backend;
    enum io_mode io;
    int no_recover;            /* --no-recover: skip the automatic recovery at start */
};

/* 0: run; -1: bad input (err says why); OPTS_HELP: -h/--help was given. */
#define OPTS_HELP 1
int opts_parse(int argc, char **argv, struct capture_opts *o, char *err, size_t errlen);

/* The usage text (flags are documented in native/README.md). */
extern const char opts_usage[];

/* "64", "64K", "1M", "2G" -> bytes; -1 on a malformed size. */
int opts_parse_size(const char *s, uint64_t *out);

#endif
