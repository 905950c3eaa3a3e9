/* sluice-capture: capture an interface (or replay a file) into rotated pcapng/pcap files.
 *
 * The path of a packet, in order (each stage: its function, and why it is there):
 *
 *  1. NIC and kernel. The frame lands in an AF_PACKET TPACKET_V3 ring, one ring per worker in
 *     one PACKET_FANOUT group, after the classic BPF filter that libpcap compiled
 *     (filter_compile, in a child under a time limit) ran in the kernel. Why: the kernel
 *     fills whole 1 MiB blocks with no system call per packet, and a filtered-out packet
 *     costs no copy at all. Drops here (ring full) are the kernel's: `kernel_drops`.
 *  2. Source (source_afpacket.c afp_poll, behind source.h). A worker thread takes one
 *     retired ring block at a time, puts back the VLAN tag the kernel took out, and hands
 *     each packet to the worker's callback, in place (no copy). Why one block per call: the
 *     worker holds the assembler's lock for one block only, and a source never blocks once
 *     it has delivered (source.h).
 *  3. Per-packet stage (worker.c on_packet -> slice.h slice_keep, then with --anonymize or
 *     --key-dir worker.c add_anonymised -> src/common/anonframe.h, in place in the ring block
 *     where the source allows it). Decides how many bytes of the packet are kept (snaplen,
 *     --slice header, the payload policy's BPF filter) and rewrites every address with
 *     Crypto-PAn (a key per period from the key keeper with --key-dir or --key-socket:
 *     keyring.h). Why here: the only place that sees every packet before it is written, so no
 *     clear address reaches a staging block. Plain capture takes the inline common cases only
 *     and ends in a tail call to the assembler: stages 2-4 keep no stack canary per packet
 *     (native/README.md, "Old code against new").
 *  4. Block assembler (assembler.c assembler_add_locked). Encodes the record (pcapng EPB or
 *     pcap, nanosecond stamps, src/common/pcapenc.h) straight into a page-aligned staging
 *     block of the blockq, rotates files by size or wall-clock time and writes the ISB at
 *     each close. Why: every full block is one aligned O_DIRECT write, and when no block is
 *     free the packet is dropped and counted (`writer_drops`): a capture thread never waits
 *     for the disk.
 *  5. Block queue (blockq.c). The bounded pool of staging blocks (--buffer-mb, by default a
 *     share of RAM: memplan.h) and the FIFO to the disk writer. Why: it is what absorbs a
 *     burst the disk cannot take at once; the stats say how many seconds of line rate it
 *     holds (`burst_seconds`). It also carries the disk writer's one message back: a failed
 *     file.
 *  6. Disk writer (diskwriter.c writer_main). One thread: io_uring O_DIRECT writes at each
 *     block's file offset, fallocate ahead, the file under its `.part` name and an exclusive
 *     flock until it is truncated, synced and renamed. Why: O_DIRECT keeps the page cache out
 *     (the disk's own rate, flat memory); the lock keeps recovery away from a live file.
 *  7. Stats channel (stats.c). main emits one JSON line per --stats-interval on stdout,
 *     scheduled on the monotonic clock (clock.h); the disk writer emits a line per closed file.
 *
 * main owns start-up (options, the anonymisation key, recovery, memory, the sockets, then the
 * privilege drop (privdrop.h), threads pinned with --cpus/--writer-cpu, then the seccomp filter
 * (sandbox.h)), signals (blocked in every thread, taken here only), the stats period, and the
 * clean stop. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "assembler.h"
#include "blockq.h"
#include "clock.h"
#include "cryptopan.h"
#include "diskwriter.h"
#include "filter.h"
#include "keyring.h"
#include "log.h"
#include "naming.h"
#include "opts.h"
#include "privdrop.h"
#include "recover.h"
#include "sandbox.h"
#include "source.h"
#include "stats.h"
#include "worker.h"

/* The project's one version, pyproject.toml's, passed by the Makefile. */
#define VERSION SLUICE_VERSION
#define LOCK_WAIT_S 15 /* how long a writer waits for the one it replaces to close its file */

/* File names carry the interface; for a replay, the file's base name up to its first dot. */
static void iface_label(const struct capture_opts *o, char *out, size_t len)
{
    const char *s = o->iface;
    if (s == NULL) {
        s = strrchr(o->read_file, '/');
        s = s ? s + 1 : o->read_file;
    }
    size_t i = 0;
    for (; s[i] && s[i] != '.' && i + 1 < len; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        out[i] = ok ? c : '-';
    }
    out[i] = '\0';
    if (i == 0)
        snprintf(out, len, "file");
}

static const char *extension(const struct capture_opts *o)
{
    if (o->compress_level)
        return ".pcapng.zst";
    return o->format == FORMAT_PCAP ? ".pcap" : ".pcapng";
}

struct run {
    struct capture_opts *o;
    struct source *src;
    struct blockq *q;
    struct diskwriter *dw;
    struct assembler *asm_;
    struct worker *workers;
    struct capture_stats st;
    atomic_int stop;
    int lock_fd, lock_held;
    char lock_path[PATH_MAX];
    char label[64];
    char description[512];
    char userappl[320];
    struct privdrop priv;
    int anonymize;              /* --anonymize or --key-dir: key read, workers each get a cipher */
    uint8_t key[CP_KEY_LEN];    /* wiped once every worker has its cipher */
    char key_id[24];
    char shb_comment[160];
    struct keyring keys;        /* --key-dir, --key-socket (keys.fd -1: not used) */
    char key_name[KEYRING_NAME_LEN];
    uint64_t key_next_ns;       /* the next key period's start (wall clock) */
    struct bpf_program payload_prog; /* --keep-payload / --drop-payload */
};

/* The SHB comment and the IDB description: what was kept and which key anonymised it. Called
 * at start and, under the assembler's lock, at each key rotation. */
static void describe(struct run *r)
{
    const struct capture_opts *o = r->o;
    char anon_note[160] = "", key_file[64] = "", payload[300] = "";
    if (r->keys.fd >= 0)
        snprintf(key_file, sizeof key_file, ", key file %s", r->key_name);
    if (r->anonymize) {
        snprintf(anon_note, sizeof anon_note, "; addresses anonymised (Crypto-PAn, key id %s%s)", r->key_id,
                 key_file);
        snprintf(r->shb_comment, sizeof r->shb_comment,
                 "anonymised at capture by sluice-capture (Crypto-PAn, key id %s%s)", r->key_id, key_file);
    }
    if (o->payload_filter != NULL && o->payload_filter_keeps)
        snprintf(payload, sizeof payload, "; slice header except '%.200s' (whole frames)", o->payload_filter);
    else if (o->payload_filter != NULL)
        snprintf(payload, sizeof payload, "; whole frames except '%.200s' (slice header)", o->payload_filter);
    else if (o->slice_header)
        snprintf(payload, sizeof payload, "; slice header");
    snprintf(r->description, sizeof r->description, "host %s; snaplen %u%s%s%s", o->host, o->snaplen, payload,
             anon_note, r->src->ts_note[0] ? "; " : "");
    strncat(r->description, r->src->ts_note, sizeof r->description - strlen(r->description) - 1);
}

/* A new key period (--key-dir, --key-socket): each worker's next cipher is made outside the
 * locks; then, holding every worker's cipher lock (each is between two batches) and the
 * assembler's, the ciphers are swapped and the file is closed, the next one naming the new key. A key that cannot be had: one error, and the key
 * of the period before stays until the next period (never a clear address on disk). */
static void rotate_key(struct run *r, uint64_t now)
{
    char err[1024], name[KEYRING_NAME_LEN];
    uint8_t key[CP_KEY_LEN];
    unsigned n = r->src->workers;
    uint64_t start = 0;
    r->key_next_ns = now - now % r->keys.period_ns + r->keys.period_ns; /* unless the keeper says */
    cryptopan **next = calloc(n, sizeof *next);
    int rc = next ? keyring_current(&r->keys, key, name, &start, err, sizeof err) : -1;
    if (next == NULL)
        snprintf(err, sizeof err, "out of memory");
    for (unsigned i = 0; rc == 0 && i < n; i++)
        rc = (next[i] = cp_new(key, err, sizeof err)) ? 0 : -1;
    if (rc != 0) {
        log_error("key rotation: %s; the key %s stays until the next period", err, r->key_id);
        for (unsigned i = 0; next && i < n; i++)
            cp_free(next[i]);
        free(next);
        memset(key, 0, sizeof key);
        return;
    }
    for (unsigned i = 0; i < n; i++) /* the order of the workers: cipher locks, then the assembler */
        pthread_mutex_lock(&r->workers[i].cipher_lock);
    assembler_lock(r->asm_);
    for (unsigned i = 0; i < n; i++) {
        cryptopan *old = r->workers[i].anon.cp;
        r->workers[i].anon.cp = next[i];
        next[i] = old;
    }
    cp_key_id(key, r->key_id);
    memcpy(r->key_name, name, sizeof r->key_name);
    r->key_next_ns = start + r->keys.period_ns;
    describe(r);
    assembler_rotate_locked(r->asm_, now);
    assembler_unlock(r->asm_);
    for (unsigned i = 0; i < n; i++)
        pthread_mutex_unlock(&r->workers[i].cipher_lock);
    memset(key, 0, sizeof key);
    for (unsigned i = 0; i < n; i++)
        cp_free(next[i]);
    free(next);
    log_info("key rotation: key id %s (%s, %s) from this file on", r->key_id, r->keys.where, r->key_name);
}

static void emit_stats(struct run *r, const char *type)
{
    struct source_counters sc;
    source_counters(r->src, &sc);
    stats_emit(&r->st, type, &sc, blockq_fill(r->q), sc.hw_stamps ? "hw" : "sw");
}

/* The assembler's view of the source: the ISB counters, nothing else. */
static void isb_counters_of(void *ctx, struct isb_counters *out)
{
    struct source_counters sc;
    source_counters(ctx, &sc);
    out->kernel_packets = sc.kernel_packets;
    out->kernel_drops = sc.kernel_drops;
}

/* Signals arrive here only (blocked in every thread); returns the exit code. */
static int main_loop(struct run *r)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    uint64_t period = (uint64_t)(r->o->stats_interval * 1e9);
    uint64_t next_stats = mono_ns() + period; /* a step of the real-time clock cannot move it */
    for (;;) {
        struct timespec wait = {0, 50 * 1000 * 1000};
        int sig = sigtimedwait(&set, NULL, &wait);
        uint64_t now = wall_ns(), mono = mono_ns();
        if (sig == SIGINT || sig == SIGTERM)
            return 0;
        if (r->keys.fd >= 0 && now >= r->key_next_ns)
            rotate_key(r, now);
        if (sig == SIGHUP)
            assembler_rotate(r->asm_, now);
        assembler_tick(r->asm_, now, mono);
        int all_done = 1;
        for (unsigned i = 0; i < r->src->workers; i++) {
            int f = atomic_load(&r->workers[i].finished);
            all_done &= f != 0;
            if (f == 2) {
                log_error("%s", r->src->error[0] ? r->src->error : "a capture thread failed");
                return 1;
            }
        }
        if (all_done)
            return 0;
        if (mono >= next_stats) {
            emit_stats(r, "stats");
            next_stats += period;
            if (next_stats < mono)
                next_stats = mono + period;
        }
    }
}

/* One writer per host and interface in a folder: a writer started while the one it replaces is
 * still closing its file (its supervisor died: --follow-parent) waits for it, so the two never
 * capture the same packets. The lock is a hidden file (retention and recovery skip it), removed
 * at exit; a waiter that got the lock of a file removed meanwhile tries again on the new one. */
static int take_writer_lock(struct run *r, char *err, size_t errlen)
{
    snprintf(r->lock_path, sizeof r->lock_path, "%s/.%s_%s.lock", r->o->dir, r->o->host, r->label);
    uint64_t deadline = mono_ns() + LOCK_WAIT_S * NS_PER_S;
    int logged = 0;
    for (;;) {
        if (r->lock_fd < 0)
            r->lock_fd = open(r->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
        if (r->lock_fd < 0) {
            snprintf(err, errlen, "%.900s: %s", r->lock_path, strerror(errno));
            return 1;
        }
        if (flock(r->lock_fd, LOCK_EX | LOCK_NB) == 0) {
            struct stat held, now;
            if (fstat(r->lock_fd, &held) == 0 && stat(r->lock_path, &now) == 0 && held.st_ino == now.st_ino &&
                held.st_dev == now.st_dev)
                break;
            close(r->lock_fd); /* removed by the writer we waited for: lock the new one */
            r->lock_fd = -1;
            continue;
        }
        if (errno != EWOULDBLOCK) {
            snprintf(err, errlen, "lock %.900s: %s", r->lock_path, strerror(errno));
            return 1;
        }
        if (stop_pending())
            return 1;
        if (mono_ns() >= deadline) {
            snprintf(err, errlen, "another sluice-capture still writes %s_%s files in %s after %d s",
                     r->o->host, r->label, r->o->dir, LOCK_WAIT_S);
            return 1;
        }
        if (!logged++)
            log_info("waiting for the previous writer of %s_%s in %s to close its file", r->o->host,
                     r->label, r->o->dir);
        usleep(20000);
    }
    r->lock_held = 1;
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(r->lock_fd, 0) != 0 || pwrite(r->lock_fd, pid, (size_t)n, 0) != n)
        log_warning("cannot write the pid into %s", r->lock_path);
    return 0;
}

/* Removed while still held, so no writer can take it in between and find it gone. */
static void release_writer_lock(struct run *r)
{
    if (r->lock_held)
        unlink(r->lock_path);
    if (r->lock_fd >= 0)
        close(r->lock_fd);
}

/* The order matters: the socket is bound (and the kernel starts filling the ring) only once
 * everything slow is done (recovery, prefaulting the staging buffers), so that the capture
 * threads start draining the ring moments after it starts to fill. Privileges go right after
 * the socket (privdrop.h), the system calls once every thread runs (sandbox.h). */
static int setup(struct run *r, char *err, size_t errlen)
{
    const struct capture_opts *o = r->o;
    if (take_writer_lock(r, err, errlen) != 0)
        return 1;
    struct naming nm = {o->dir, o->host, r->label, extension(o), o->date_dirs};
    if (!o->no_recover && !stop_pending()) {
        char prefix[320];
        if (naming_prefix(&nm, prefix, sizeof prefix) == 0)
            recover_dir(o->dir, prefix, r->st.iface, stdout);
    }
    if (stop_pending())
        return 1;
    size_t bs = o->buffer_bytes >= (32u << 20) ? (4u << 20) : (1u << 20);
    r->q = blockq_create(bs, (unsigned)(o->buffer_bytes / bs), stop_pending, err, errlen);
    if (r->q == NULL)
        return 1;
    r->st.buffer_bytes = o->buffer_bytes;
    if (o->iface != NULL && o->backend == BACKEND_AFPACKET) {
        r->st.ring_bytes = (uint64_t)o->ring_bytes * o->workers;
        r->st.link_bps = source_link_bps(o->iface);
    }
    if (stop_pending())
        return 1;
    r->src = (o->read_file || o->backend == BACKEND_PCAP) ? source_pcap_open(o, err, errlen)
                                                          : source_afpacket_open(o, err, errlen);
    if (r->src == NULL)
        return 2;
    /* The payload policy's filter runs in user space on the frame as delivered (tags put back),
     * so it is compiled as for a file, not for the kernel. */
    if (o->payload_filter != NULL) {
        const char *flag = o->payload_filter_keeps ? "--keep-payload: " : "--drop-payload: ";
        size_t n = strlen(flag) < errlen ? strlen(flag) : 0;
        memcpy(err, flag, n); /* the message goes after the flag's name */
        if (filter_compile(o->payload_filter, NULL, r->src->linktype, o->snaplen, o->filter_timeout,
                           &r->payload_prog, err + n, errlen - n) != 0)
            return 2;
    }
    /* Everything that needed root is open: from here on no capability (and --user), before
     * any thread starts, since capabilities belong to each thread. */
    if (privdrop_apply(&r->priv, o->user, o->dir, err, errlen) != 0)
        return 2;
    /* The first period's key, from the keeper (keyring.h); no thread runs yet. */
    if (r->keys.fd >= 0) {
        uint64_t start;
        if (keyring_current(&r->keys, r->key, r->key_name, &start, err, errlen) != 0)
            return 2;
        r->key_next_ns = start + r->keys.period_ns;
        cp_key_id(r->key, r->key_id);
    }
    uint64_t step = 64u << 20;
    if (o->rotate_size && o->rotate_size < step)
        step = (o->rotate_size + BLOCK_ALIGN * 2 - 1) / BLOCK_ALIGN * BLOCK_ALIGN;
    struct diskwriter_cfg dc = {o->io, o->compress_level, step, o->writer_cpu,
                                r->priv.has_group ? (int)r->priv.readers : -1};
    r->dw = diskwriter_start(&dc, r->q, &r->st, err, errlen);
    if (r->dw == NULL)
        return o->writer_cpu >= 0 ? 2 : 1;
    describe(r);
    snprintf(r->userappl, sizeof r->userappl, "sluice-capture %s (host %s)", VERSION, o->host);
    struct assembler_cfg ac = {
        .format = o->format,
        .compress = o->compress_level != 0,
        .linktype = r->src->linktype,
        .snaplen = o->snaplen,
        .rotate_size = o->rotate_size,
        .rotate_ns = o->rotate_seconds * NS_PER_S,
        .wait_for_blocks = r->src->is_file,
        .naming = nm,
        .filter = o->filter,
        .description = r->description,
        .userappl = r->userappl,
        .shb_comment = r->anonymize ? r->shb_comment : NULL,
        .key_id = r->anonymize ? r->key_id : NULL,
        .capture_start_ns = wall_ns(),
        .counters = isb_counters_of,
        .counters_ctx = r->src,
    };
    r->asm_ = assembler_create(&ac, r->q, &r->st);
    if (r->asm_ == NULL) {
        snprintf(err, errlen, "out of memory");
        return 1;
    }
    r->workers = calloc(r->src->workers, sizeof *r->workers);
    if (r->workers == NULL) {
        snprintf(err, errlen, "out of memory");
        return 1;
    }
    for (unsigned i = 0; i < r->src->workers; i++) {
        struct worker *w = &r->workers[i];
        w->index = i;
        w->cpu = o->ncpus ? o->cpus[i] : -1;
        w->src = r->src;
        w->asm_ = r->asm_;
        w->st = &r->st;
        w->slice = (struct slice_cfg){o->snaplen, o->slice_header, r->src->linktype,
                                      o->payload_filter ? r->payload_prog.bf_insns : NULL};
        w->linktype = (uint16_t)r->src->linktype;
        pthread_mutex_init(&w->cipher_lock, NULL);
        w->threads = r->src->workers;
        if (r->anonymize) {
            w->anonymize = 1;
            w->anon_buf = malloc(SNAPLEN_MAX + 64); /* the largest frame a source delivers */
            w->anon.cp = w->anon_buf ? cp_new(r->key, err, errlen) : NULL;
            if (w->anon.cp == NULL) {
                if (w->anon_buf == NULL)
                    snprintf(err, errlen, "out of memory");
                return 1; /* no capture thread started without its cipher */
            }
        }
        w->stop = &r->stop;
        int rc = worker_start(w);
        if (rc != 0) {
            if (w->cpu >= 0)
                snprintf(err, errlen, "--cpus: cannot run a capture thread on CPU %d: %s", w->cpu,
                         strerror(rc));
            else
                snprintf(err, errlen, "cannot start a capture thread: %s", strerror(rc));
            return w->cpu >= 0 ? 2 : 1;
        }
    }
    memset(r->key, 0, sizeof r->key); /* every worker has its cipher: the key itself goes */
    /* Every thread runs: from here on only the system calls of the steady state. */
    if (!o->no_seccomp && sandbox_install(err, errlen) != 0)
        return 1;
    return 0;
}

/* --follow-parent: the writer stops (cleanly, as on SIGTERM) when the process that started it
 * dies, e.g. a supervisor killed with SIGKILL; a new supervisor then starts a fresh writer. */
static int follow_parent(void)
{
    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
        return -1;
    if (getppid() != parent) /* the parent died before the request took effect */
        raise(SIGTERM);
    return 0;
}

int main(int argc, char **argv)
{
    static struct capture_opts o;
    char err[1024];
    int parsed = opts_parse(argc, argv, &o, err, sizeof err);
    if (parsed == OPTS_HELP) {
        fputs(opts_usage, stdout);
        return 0;
    }
    if (parsed == OPTS_VERSION) {
        printf("sluice-capture %s\n", VERSION);
        return 0;
    }
    if (parsed == OPTS_CONTRACT) {
        opts_print_contract(stdout);
        return 0;
    }
    if (parsed != 0) {
        log_error("%s", err);
        return 2;
    }
    if (o.recover_dir != NULL)
        return recover_dir(o.recover_dir, NULL, NULL, stdout) == 0 ? 0 : 1;

    /* Every thread inherits this mask: signals are taken by main_loop only (and looked at
     * between the steps of start-up, so a SIGTERM then ends it at once). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (o.follow_parent && follow_parent() != 0) {
        log_error("--follow-parent: %s", strerror(errno));
        return 1;
    }

    static struct run r;
    r.o = &o;
    r.lock_fd = -1;
    r.keys.fd = -1;
    iface_label(&o, r.label, sizeof r.label);
    stats_init(&r.st, o.iface ? o.iface : r.label, stdout);
    err[0] = '\0';
    if (privdrop_resolve(o.user, o.group, &r.priv, err, sizeof err) != 0) {
        log_error("%s", err);
        free(o.filter_buf);
        return 2;
    }
    /* The key is read now, before anything is captured (a bad key: nothing in clear on disk)
     * and before the privileges go (it is readable by its owner only, root on a box). */
    if (o.anonymize_key != NULL) {
        if (cp_read_key_file(o.anonymize_key, r.key, err, sizeof err) != 0) {
            log_error("--anonymize: %s", err);
            free(o.filter_buf);
            return 2;
        }
        cp_key_id(r.key, r.key_id);
        r.anonymize = 1;
    }
    /* --key-dir: the key keeper is forked now, the user of the start, before anything is
     * opened and before any thread; --key-socket: sluice-keyd is reached now (keyring.h). */
    if (o.key_dir != NULL || o.key_socket != NULL) {
        if ((o.key_dir ? keyring_start_keeper(&r.keys, o.key_dir, o.key_rotate_seconds, o.no_seccomp, err, sizeof err)
                       : keyring_connect(&r.keys, o.key_socket, o.key_rotate_seconds, err, sizeof err)) != 0) {
            log_error("%s", err);
            free(o.filter_buf);
            return 2;
        }
        r.anonymize = 1;
    }
    int rc = setup(&r, err, sizeof err);
    if (rc != 0) {
        if (stop_pending()) /* SIGTERM during start-up: a clean stop, nothing to report */
            rc = 0;
        else
            log_error("%s", err);
        if (r.workers == NULL && r.asm_ == NULL) {
            if (r.q)
                blockq_close(r.q);
            diskwriter_join(r.dw);
            blockq_destroy(r.q);
            source_close(r.src);
            release_writer_lock(&r);
            free(o.filter_buf);
            return rc;
        }
        /* threads may be running: fall through to a clean stop */
    } else {
        rc = main_loop(&r);
    }
    atomic_store(&r.stop, 1);
    for (unsigned i = 0; r.workers && i < r.src->workers; i++)
        if (r.workers[i].thread)
            worker_join(&r.workers[i]);
    if (r.asm_)
        assembler_finish(r.asm_);
    if (r.q)
        blockq_close(r.q);
    diskwriter_join(r.dw);
    if (r.src)
        emit_stats(&r, "final");
    assembler_destroy(r.asm_);
    uint64_t left_out = 0;
    for (unsigned i = 0; r.workers && i < r.src->workers; i++) {
        left_out += r.workers[i].anon_left_out;
        cp_free(r.workers[i].anon.cp);
        free(r.workers[i].anon_buf);
    }
    if (left_out)
        log_warning("--anonymize: %llu packets left out: the walk could not parse them to their addresses",
                    (unsigned long long)left_out);
    source_close(r.src);
    blockq_destroy(r.q);
    free(r.workers);
    memset(r.key, 0, sizeof r.key);
    keyring_close(&r.keys);
    if (o.payload_filter != NULL)
        pcap_freecode(&r.payload_prog);
    release_writer_lock(&r);
    free(o.filter_buf);
    return rc;
}
