/* assembler: packets -> file byte stream -> blocks (see assembler.h). */
#include "assembler.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "pcapenc.h"

#define MAX_RECORD (262144u + 4096u) /* the largest packet record or ISB */

struct assembler {
    pthread_mutex_t mu;
    struct assembler_cfg cfg;
    struct blockq *q;
    const _Atomic uint32_t *failed_seq; /* the writer's report (blockq.h) */
    struct capture_stats *st;

    struct file_job *file; /* NULL: finished, or dropping until retry_at after a disk error */
    struct block *cur;
    uint64_t pos;      /* stream length of the current file */
    uint64_t next_off; /* file offset of the next block (aligned) */
    uint8_t tail[BLOCK_ALIGN];
    size_t tail_len;   /* the unaligned end of a flushed block, repeated in the next block */
    uint64_t last_ns;
    uint32_t seq;
    uint64_t next_rotate_ns;
    uint64_t cur_since_ns; /* monotonic clock when cur got its first record */
    uint64_t retry_at_ns;  /* monotonic */
    int finished;
    int need_first; /* the writer has not been told to open the file yet */
    char machine[65]; /* SHB shb_hardware */
    char os[200];     /* SHB shb_os */
    uint8_t *scratch;
};

/* SHB+IDB or the pcap global header. */
static size_t encode_header(struct assembler *a, uint8_t *buf, size_t cap)
{
    if (a->cfg.format == FORMAT_PCAP)
        return pcapenc_pcap_header(buf, cap, PCAP_MAGIC_NS, (uint32_t)a->cfg.linktype,
                                   a->cfg.snaplen);
    struct pcapenc_shb shb = {a->machine, a->os, a->cfg.userappl, a->cfg.shb_comment, a->cfg.key_id};
    size_t n = pcapenc_shb(buf, cap, &shb);
    if (n > cap)
        return n;
    struct pcapenc_idb idb = {(uint16_t)a->cfg.linktype, a->cfg.snaplen, a->cfg.naming.iface,
                              a->cfg.description, a->cfg.filter, PCAPENC_TSRESOL_NS};
    return n + pcapenc_idb(buf + n, cap - n, &idb);
}

static struct block *new_block(struct assembler *a)
{
    struct block *b = blockq_get_free(a->q, a->cfg.wait_for_blocks);
    if (b == NULL)
        return NULL;
    b->file = a->file;
    b->file_off = a->next_off;
    if (a->tail_len > 0) {
        memcpy(b->data, a->tail, a->tail_len);
        b->len = a->tail_len;
        a->tail_len = 0;
    }
    if (a->need_first) {
        b->flags |= BLOCK_FIRST;
        a->need_first = 0;
    }
    if (a->pos == 0) {
        b->len = encode_header(a, b->data, b->cap);
        a->pos = b->len;
    }
    b->whole_end = a->pos;
    b->last_ns = a->last_ns;
    a->cur_since_ns = 0;
    return b;
}

/* Hand a block to the writer. Unaligned ends are kept to start the next block with. */
static void seal(struct assembler *a, struct block *b)
{
    if (!a->cfg.compress) {
        size_t aligned = b->len & ~(size_t)(BLOCK_ALIGN - 1);
        a->tail_len = b->len - aligned;
        memcpy(a->tail, b->data + aligned, a->tail_len);
        a->next_off = b->file_off + aligned;
        if (a->tail_len > 0)
            b->flags |= BLOCK_PARTIAL;
    }
    b->whole_end = a->pos;
    b->last_ns = a->last_ns;
    blockq_push(a->q, b);
}

/* Appends len bytes (one whole record) from src. 0, or -1 when no block is free. */
static int append_bytes(struct assembler *a, const uint8_t *src, size_t len)
{
    if (a->cur == NULL && (a->cur = new_block(a)) == NULL)
        return -1;
    struct block *b = a->cur;
    size_t space = b->cap - b->len;
    if (len <= space) {
        memcpy(b->data + b->len, src, len);
        b->len += len;
    } else if (a->cfg.compress) {
        /* a zstd frame holds whole records: start the next block */
        seal(a, b);
        a->cur = NULL;
        if ((a->cur = new_block(a)) == NULL)
            return -1;
        memcpy(a->cur->data + a->cur->len, src, len);
        a->cur->len += len;
    } else {
        a->next_off = b->file_off + b->cap;
        struct block *nb = new_block(a);
        if (nb == NULL)
            return -1;
        memcpy(b->data + b->len, src, space);
        b->len = b->cap;
        seal(a, b);
        memcpy(nb->data, src + space, len - space);
        nb->len = len - space;
        a->cur = nb;
    }
    a->pos += len;
    return 0;
}

/* Counts one record as written into the current block. */
static void account_record(struct assembler *a, uint64_t ts_ns)
{
    struct block *b = a->cur;
    if (b->npackets++ == 0)
        b->first_ns = ts_ns;
    b->whole_end = a->pos;
    b->last_ns = ts_ns;
    a->last_ns = ts_ns;
    if (a->file->packets++ == 0)
        a->file->first_ns = ts_ns;
    a->file->last_ns = ts_ns;
    if (a->cur_since_ns == 0)
        a->cur_since_ns = mono_ns();
    if (b->len == b->cap) {
        seal(a, b);
        a->cur = NULL;
    }
}

static size_t record_len(const struct assembler *a, uint32_t keep)
{
    return a->cfg.format == FORMAT_PCAPNG ? pcapenc_epb_len(keep) : PCAP_RECORD_HDR_LEN + keep;
}

static void encode_record(const struct assembler *a, uint8_t *dst, const struct packet *p,
                          uint32_t keep)
{
    if (a->cfg.format == FORMAT_PCAPNG) {
        pcapenc_epb_header(dst, 0, p->ts_ns, keep, p->origlen);
        memcpy(dst + PCAPNG_EPB_HDR_LEN, p->data, keep);
        pcapenc_epb_trailer(dst, keep);
    } else {
        pcapenc_pcap_record_header(dst, (uint32_t)(p->ts_ns / NS_PER_S),
                                   (uint32_t)(p->ts_ns % NS_PER_S), keep, p->origlen);
        memcpy(dst + PCAP_RECORD_HDR_LEN, p->data, keep);
    }
}

static void open_file(struct assembler *a, uint64_t start_ns)
{
    struct file_job *job = calloc(1, sizeof *job);
    if (job == NULL)
        return;
    job->seq = ++a->seq;
    if (naming_make(&a->cfg.naming, start_ns, job->seq, job->dir, sizeof job->dir,
                    job->final_path, sizeof job->final_path) != 0) {
        log_error("output path too long in %s", a->cfg.naming.dir);
        free(job);
        return;
    }
    snprintf(job->part_path, sizeof job->part_path, "%s%s", job->final_path, PART_SUFFIX);
    a->file = job;
    a->pos = 0;
    a->next_off = 0;
    a->tail_len = 0;
    /* The writer creates the .part now, so that a file exists from its start on. */
    struct block *open_msg = calloc(1, sizeof *open_msg);
    if (open_msg != NULL) {
        open_msg->flags = BLOCK_FIRST | BLOCK_CONTROL;
        open_msg->file = job;
        blockq_push(a->q, open_msg);
    } else {
        a->need_first = 1;
    }
    a->cur = new_block(a); /* NULL is fine: the header goes into the first block we get */
    if (a->cfg.rotate_ns)
        a->next_rotate_ns = (start_ns / a->cfg.rotate_ns + 1) * a->cfg.rotate_ns;
}

static void append_isb(struct assembler *a)
{
    struct isb_counters sc = {0, 0};
    if (a->cfg.counters != NULL)
        a->cfg.counters(a->cfg.counters_ctx, &sc);
    uint64_t now = wall_ns();
    uint64_t drops = atomic_load(&a->st->writer_drops);
    char comment[160];
    snprintf(comment, sizeof comment,
             "sluice: kernel_drops=%llu writer_drops=%llu (isb_osdrop: buffers full or disk error)",
             (unsigned long long)sc.kernel_drops, (unsigned long long)drops);
    struct pcapenc_isb isb = {0, now, a->cfg.capture_start_ns, now,
                              sc.kernel_packets ? sc.kernel_packets : atomic_load(&a->st->packets),
                              sc.kernel_drops, drops, 1, comment};
    size_t n = pcapenc_isb(a->scratch, MAX_RECORD, &isb);
    if (n <= MAX_RECORD)
        append_bytes(a, a->scratch, n);
}

/* Ends the current file: ISB (pcapng, unless the disk failed), then the LAST block. */
static void close_file(struct assembler *a, int with_isb)
{
    struct file_job *job = a->file;
    if (job == NULL)
        return;
    if (a->cur == NULL && a->pos == 0)
        a->cur = new_block(a); /* an empty file still gets its header */
    if (a->need_first) {
        free(job); /* the writer never heard of it */
        a->file = NULL;
        return;
    }
    if (with_isb && a->cfg.format == FORMAT_PCAPNG && a->pos > 0)
        append_isb(a);
    job->length = a->pos;
    if (a->cur != NULL) {
        a->cur->flags |= BLOCK_LAST;
        seal(a, a->cur);
        a->cur = NULL;
    } else {
        struct block *b = calloc(1, sizeof *b);
        if (b != NULL) {
            b->flags = BLOCK_LAST | BLOCK_CONTROL;
            b->file = job;
            b->file_off = a->next_off;
            b->whole_end = a->pos;
            b->last_ns = a->last_ns;
            blockq_push(a->q, b);
        }
    }
    a->file = NULL;
    a->pos = 0;
    a->next_off = 0;
    a->tail_len = 0;
    a->cur_since_ns = 0;
}

/* How long after a disk error the next file is tried. Everything that arrives meanwhile is a
 * writer drop, and retention (which checks whenever a file closes) frees space within tens of
 * milliseconds, so a short wait loses less; a retry that fails again costs a create and an unlink. */
#define DISK_RETRY_NS (NS_PER_S / 10)

/* The writer gave up on the current file: stop feeding it, try a new file DISK_RETRY_NS later. */
static __attribute__((cold, noinline)) void give_up_file(struct assembler *a)
{
    close_file(a, 0);
    a->retry_at_ns = mono_ns() + DISK_RETRY_NS;
}

/* Asked before every record: a load and a compare, the rest out of line. */
static inline void check_disk_failure(struct assembler *a)
{
    if (a->file != NULL && atomic_load_explicit(a->failed_seq, memory_order_relaxed) == a->file->seq)
        give_up_file(a);
}

struct assembler *assembler_create(const struct assembler_cfg *cfg, struct blockq *q,
                                   struct capture_stats *stats)
{
    struct assembler *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->scratch = malloc(MAX_RECORD);
    if (a->scratch == NULL) {
        free(a);
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    a->cfg = *cfg;
    struct utsname u;
    if (uname(&u) == 0) {
        snprintf(a->machine, sizeof a->machine, "%s", u.machine);
        snprintf(a->os, sizeof a->os, "%s %s", u.sysname, u.release);
    }
    a->q = q;
    a->failed_seq = blockq_failed_seq(q);
    a->st = stats;
    open_file(a, wall_ns());
    return a;
}

void assembler_destroy(struct assembler *a)
{
    if (a == NULL)
        return;
    pthread_mutex_destroy(&a->mu);
    free(a->scratch);
    free(a);
}

void assembler_lock(struct assembler *a) { pthread_mutex_lock(&a->mu); }
void assembler_unlock(struct assembler *a) { pthread_mutex_unlock(&a->mu); }

void assembler_add_locked(struct assembler *a, const struct packet *pkt, uint32_t keep)
{
    check_disk_failure(a);
    if (a->file == NULL)
        goto drop;
    size_t rl = record_len(a, keep);
    if (a->cfg.rotate_size && a->file->packets > 0 && a->pos + rl > a->cfg.rotate_size) {
        close_file(a, 1);
        open_file(a, wall_ns());
        if (a->file == NULL)
            goto drop;
    }
    if (a->cur == NULL && (a->cur = new_block(a)) == NULL)
        goto drop;
    if (rl <= a->cur->cap - a->cur->len) {
        /* the hot path: encode straight into the block */
        encode_record(a, a->cur->data + a->cur->len, pkt, keep);
        a->cur->len += rl;
        a->pos += rl;
    } else {
        encode_record(a, a->scratch, pkt, keep);
        if (append_bytes(a, a->scratch, rl) != 0)
            goto drop;
    }
    account_record(a, pkt->ts_ns);
    return;
drop:
    atomic_fetch_add_explicit(&a->st->writer_drops, 1, memory_order_relaxed);
}

void assembler_tick(struct assembler *a, uint64_t now_ns, uint64_t mono)
{
    pthread_mutex_lock(&a->mu);
    if (!a->finished) {
        check_disk_failure(a);
        if (a->file == NULL && a->retry_at_ns != 0 && mono >= a->retry_at_ns) {
            a->retry_at_ns = 0;
            open_file(a, now_ns);
        }
        if (a->file != NULL && a->cfg.rotate_ns && now_ns >= a->next_rotate_ns) {
            close_file(a, 1);
            open_file(a, now_ns - now_ns % a->cfg.rotate_ns);
        }
        /* Data older than a second goes to the disk even on a quiet link. */
        if (!a->cfg.wait_for_blocks && a->cur != NULL && a->cur_since_ns != 0 &&
            mono - a->cur_since_ns >= NS_PER_S) {
            seal(a, a->cur);
            a->cur = NULL;
            a->cur_since_ns = 0;
        }
    }
    pthread_mutex_unlock(&a->mu);
}

void assembler_rotate_locked(struct assembler *a, uint64_t now_ns)
{
    if (!a->finished && a->file != NULL) {
        close_file(a, 1);
        open_file(a, now_ns);
    }
}

void assembler_rotate(struct assembler *a, uint64_t now_ns)
{
    pthread_mutex_lock(&a->mu);
    assembler_rotate_locked(a, now_ns);
    pthread_mutex_unlock(&a->mu);
}

void assembler_finish(struct assembler *a)
{
    pthread_mutex_lock(&a->mu);
    close_file(a, 1);
    a->finished = 1;
    pthread_mutex_unlock(&a->mu);
}
