/* sluice-capture: capture an interface (or replay a file) into rotated pcapng/pcap files.
 * main wires the parts together and owns signals and the stats period; see native/README.md. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "assembler.h"
#include "blockq.h"
#include "diskwriter.h"
#include "naming.h"
#include "opts.h"
#include "recover.h"
#include "source.h"
#include "stats.h"
#include "worker.h"

#define NS_PER_S 1000000000ull
#define VERSION "0.1"

static uint64_t wall_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * NS_PER_S + (uint64_t)t.tv_nsec;
}

static int die(int code, const char *msg)
{
    fprintf(stderr, "sluice-capture: %s\n", msg);
    return code;
}

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
    char label[64];
    char description[512];
    char userappl[320];
};

static void emit_stats(struct run *r, const char *type)
{
    struct source_counters sc;
    source_counters(r->src, &sc);
    stats_emit(&r->st, type, &sc, blockq_fill(r->q), sc.hw_stamps ? "hw" : "sw");
}

/* Signals arrive here only (blocked in every thread); returns 1 when it is time to stop. */
static int main_loop(struct run *r)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    uint64_t period = (uint64_t)(r->o->stats_interval * 1e9);
    uint64_t next_stats = wall_ns() + period;
    for (;;) {
        struct timespec wait = {0, 50 * 1000 * 1000};
        int sig = sigtimedwait(&set, NULL, &wait);
        uint64_t now = wall_ns();
        if (sig == SIGINT || sig == SIGTERM)
            return 0;
        if (sig == SIGHUP)
            assembler_rotate(r->asm_, now);
        assembler_tick(r->asm_, now);
        int all_done = 1, failed = 0;
        for (unsigned i = 0; i < r->src->workers; i++) {
            int f = atomic_load(&r->workers[i].finished);
            all_done &= f != 0;
            failed |= f == 2;
        }
        if (failed)
            return 1;
        if (all_done)
            return 0;
        if (now >= next_stats) {
            emit_stats(r, "stats");
            next_stats += period;
            if (next_stats < now)
                next_stats = now + period;
        }
    }
}

static int setup(struct run *r, char *err, size_t errlen)
{
    const struct capture_opts *o = r->o;
    r->src = (o->read_file || o->backend == BACKEND_PCAP) ? source_pcap_open(o, err, errlen)
                                                          : source_afpacket_open(o, err, errlen);
    if (r->src == NULL)
        return 2;
    struct naming nm = {o->dir, o->host, r->label, extension(o), o->date_dirs};
    if (!o->no_recover) {
        char prefix[320];
        if (naming_prefix(&nm, prefix, sizeof prefix) == 0)
            recover_dir(o->dir, prefix, r->st.iface, stdout);
    }
    size_t bs = o->buffer_bytes >= (32u << 20) ? (4u << 20) : (1u << 20);
    r->q = blockq_create(bs, (unsigned)(o->buffer_bytes / bs), err, errlen);
    if (r->q == NULL)
        return 1;
    uint64_t step = 64u << 20;
    if (o->rotate_size && o->rotate_size < step)
        step = (o->rotate_size + BLOCK_ALIGN * 2 - 1) / BLOCK_ALIGN * BLOCK_ALIGN;
    struct diskwriter_cfg dc = {o->io, o->compress_level, step};
    r->dw = diskwriter_start(&dc, r->q, &r->st, err, errlen);
    if (r->dw == NULL)
        return 1;
    snprintf(r->description, sizeof r->description, "host %s; snaplen %u%s%s", o->host,
             o->snaplen, o->slice_header ? "; slice header" : "", r->src->ts_note[0] ? "; " : "");
    strncat(r->description, r->src->ts_note, sizeof r->description - strlen(r->description) - 1);
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
        .capture_start_ns = wall_ns(),
    };
    r->asm_ = assembler_create(&ac, r->q, &r->st, r->src);
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
        w->src = r->src;
        w->asm_ = r->asm_;
        w->st = &r->st;
        w->slice = (struct slice_cfg){o->snaplen, o->slice_header, r->src->linktype};
        w->stop = &r->stop;
        if (worker_start(w) != 0) {
            snprintf(err, errlen, "cannot start a capture thread: %s", strerror(errno));
            return 1;
        }
    }
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
    if (parsed != 0)
        return die(2, err);
    if (o.recover_dir != NULL)
        return recover_dir(o.recover_dir, NULL, NULL, stdout) == 0 ? 0 : 1;

    /* Every thread inherits this mask: signals are taken by main_loop only. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    static struct run r;
    r.o = &o;
    iface_label(&o, r.label, sizeof r.label);
    stats_init(&r.st, o.iface ? o.iface : r.label, stdout);
    int rc = setup(&r, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "sluice-capture: %s\n", err);
        if (r.workers == NULL)
            return rc;
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
    source_close(r.src);
    blockq_destroy(r.q);
    free(r.workers);
    return rc;
}
