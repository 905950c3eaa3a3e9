/* opts: sluice-capture's command line, parsed and checked into one plain struct.
 * Promise: opts_parse either fills every field with a valid value or returns -1 with one line of
 * explanation in err (the caller prints it and exits 2). It touches no global state. */
#ifndef SLUICE_CAPTURE_OPTS_H
#define SLUICE_CAPTURE_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "zstdspec.h" /* ZSTD_LEVEL_MIN, _MAX, _DEFAULT */

enum out_format { FORMAT_PCAPNG, FORMAT_PCAP };
enum backend { BACKEND_AFPACKET, BACKEND_PCAP };
enum io_mode { IO_AUTO, IO_URING, IO_PWRITE };
enum fanout_mode { FANOUT_HASH, FANOUT_LB, FANOUT_CPU, FANOUT_QM };

#define OPTS_MAX_WORKERS 64

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
    int ring_auto, buffer_auto; /* the sizes came from memplan.h (--ring-mb/--buffer-mb auto) */
    int follow_parent;         /* --follow-parent: stop cleanly when the parent process dies */
    double filter_timeout;     /* --filter-timeout: seconds the filter may take to compile */
    unsigned ncpus;            /* --cpus: worker i runs on cpus[i]; 0 = not pinned */
    int cpus[OPTS_MAX_WORKERS];
    int writer_cpu;            /* --writer-cpu, -1 = not pinned */
    char *filter_buf;          /* the filter joined from trailing arguments (owned) */
    const char *user;          /* --user: run as this user once the sockets are open (NULL: stay) */
    const char *group;         /* --group: files 0640 and folders 0750 of this group (NULL: none) */
    int no_seccomp;            /* --no-seccomp: no system-call allow-list after start-up */
    const char *anonymize_key; /* --anonymize KEYFILE: Crypto-PAn every address before the disk */
    const char *key_dir;       /* --key-dir DIR: as --anonymize, one key per period (keyring.h) */
    const char *key_socket;    /* --key-socket PATH: the same, the keys kept by sluice-keyd */
    uint64_t key_rotate_seconds; /* --key-rotate-seconds: the key period */
    int key_rotate_given;
    const char *payload_filter; /* --keep-payload / --drop-payload FILTER, NULL = none */
    int payload_filter_keeps;   /* 1: --keep-payload (whole frames), 0: --drop-payload (headers) */
};

/* 0: run; -1: bad input (err says why); OPTS_HELP, OPTS_VERSION, OPTS_CONTRACT: print that. */
#define OPTS_HELP 1
#define OPTS_VERSION 2
#define OPTS_CONTRACT 3
int opts_parse(int argc, char **argv, struct capture_opts *o, char *err, size_t errlen);

/* The usage text: every flag, its default and range (the same values as the contract). */
extern const char opts_usage[];

/* The flags' ranges and grammars, the stats fields and the file names as one JSON object
 * (--print-contract): appliance/config.py is checked against it (tests/capture/test_contract.py). */
void opts_print_contract(FILE *f);

/* "64", "64K", "1.5M", "2GiB" -> bytes (the grammar of SIZE_GRAMMAR); -1 on a malformed size. */
int opts_parse_size(const char *s, uint64_t *out);

/* Ranges shared by the parser, --help and --print-contract. */
#define SNAPLEN_MIN 64
#define SNAPLEN_MAX 262144
#define STATS_INTERVAL_MIN 0.05
#define STATS_INTERVAL_MAX 60.0
#define ROTATE_SIZE_MIN 4096ull
#define ROTATE_SIZE_MAX (1ull << 42) /* 4 TiB */
#define ROTATE_SECONDS_MAX (86400ull * 366)
#define RING_MB_MIN 4
#define BUFFER_MB_MIN 2
#define SIZE_MB_MAX 65536
#define HOST_MAX_LEN 63
#define FILTER_TIMEOUT_DEFAULT 5.0
#define KEY_ROTATE_SECONDS_MIN 1
#define KEY_ROTATE_SECONDS_MAX (86400 * 366)
#define KEY_ROTATE_SECONDS_DEFAULT 86400
#define SIZE_GRAMMAR "^\\s*(\\d+(?:\\.\\d+)?)\\s*([KMGT]?)(?:i?B)?\\s*$"
#define HOST_GRAMMAR "^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$"

#endif
