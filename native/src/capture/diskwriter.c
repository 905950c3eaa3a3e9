/* diskwriter: blocks -> files, O_DIRECT via io_uring or pwrite (see diskwriter.h). */
#include "diskwriter.h"
#include "log.h"
#include "thread.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define QD_MAX 16u

struct inflight {
    struct block *b;
    size_t wlen; /* bytes submitted (aligned) */
    int done;
    int err;
};

struct diskwriter {
    pthread_t thread;
    struct diskwriter_cfg cfg;
    struct blockq *q;
    struct capture_stats *st;

    struct io_uring ring;
    int use_uring;
    unsigned qd;
    struct inflight fifo[QD_MAX]; /* in submission order: retired in order */
    unsigned head, count;

    struct file_job *job;
    int fd;
    int direct;
    int failed;        /* the current job was given up (its blocks are discarded) */
    int pending_err;   /* an error seen while retiring, acted on by fail_file */
    int prealloc_off;
    uint64_t alloc_end;
    uint64_t committed_end; /* file offset up to which whole records are on disk */
    uint64_t committed_packets;
    uint64_t committed_first_ns, committed_last_ns;
    uint64_t written_end;
    int logged_buffered;
    int force_buffered; /* O_DIRECT writes were refused with EINVAL: page cache from now on */

    ZSTD_CCtx *zc;
    uint8_t *zbuf;
    size_t zcap;
    uint64_t zoff;
};

static void io_mode_name(struct diskwriter *dw)
{
    if (dw->cfg.compress_level)
        dw->st->io_mode = "zstd+buffered";
    else if (dw->use_uring)
        dw->st->io_mode = dw->direct ? "uring+direct" : "uring+buffered";
    else
        dw->st->io_mode = dw->direct ? "pwrite+direct" : "pwrite+buffered";
}

static void drop_block(struct diskwriter *dw, struct block *b)
{
    atomic_fetch_add(&dw->st->writer_drops, b->npackets);
    blockq_put_free(dw->q, b);
}

static void commit(struct diskwriter *dw, const struct block *b, uint64_t end)
{
    dw->committed_end = end;
    if (dw->committed_end > 0)
        atomic_store(&dw->st->disk_errno, 0); /* writing works (again) */
    if (b->npackets > 0) {
        if (dw->committed_packets == 0)
            dw->committed_first_ns = b->first_ns;
        dw->committed_last_ns = b->last_ns;
        dw->committed_packets += b->npackets;
    }
}

/* In-order retirement: a block counts as on disk only when every block before it is too. */
static void retire(struct diskwriter *dw)
{
    while (dw->count > 0 && dw->fifo[dw->head].done) {
        struct inflight *e = &dw->fifo[dw->head];
        struct block *b = e->b;
        if (e->err != 0 && dw->pending_err == 0)
            dw->pending_err = e->err;
        if (dw->pending_err == 0) {
            commit(dw, b, b->whole_end);
            uint64_t end = b->file_off + b->len;
            if (end > dw->written_end) {
                atomic_fetch_add(&dw->st->bytes_written, end - dw->written_end);
                dw->written_end = end;
            }
            blockq_put_free(dw->q, b);
        } else {
            drop_block(dw, b);
        }
        dw->head = (dw->head + 1) % QD_MAX;
        dw->count--;
    }
}

/* Writes whatever a short write left, synchronously. */
static int finish_short(struct diskwriter *dw, struct inflight *e, size_t done)
{
    while (done < e->wlen) {
        ssize_t n = pwrite(dw->fd, e->b->data + done, e->wlen - done, (off_t)(e->b->file_off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : ENOSPC;
        done += (size_t)n;
    }
    return 0;
}

static void reap_one(struct diskwriter *dw)
{
    struct io_uring_cqe *cqe;
    int rc;
    do
        rc = io_uring_wait_cqe(&dw->ring, &cqe);
    while (rc == -EINTR);
    if (rc < 0) { /* the ring itself failed: treat every in-flight write as failed */
        for (unsigned i = 0; i < dw->count; i++) {
            dw->fifo[(dw->head + i) % QD_MAX].done = 1;
            dw->fifo[(dw->head + i) % QD_MAX].err = -rc;
        }
        retire(dw);
        return;
    }
    struct inflight *e = &dw->fifo[cqe->user_data];
    int res = cqe->res;
    io_uring_cqe_seen(&dw->ring, cqe);
    e->done = 1;
    if (res < 0)
        e->err = -res;
    else if ((size_t)res < e->wlen)
        e->err = finish_short(dw, e, (size_t)res);
    retire(dw);
}

static void drain(struct diskwriter *dw)
{
    while (dw->count > 0)
        reap_one(dw);
}

/* Preallocate ahead so that the filesystem lays the file out in large extents. */
static void prealloc(struct diskwriter *dw, uint64_t need_end)
{
    if (dw->prealloc_off || need_end <= dw->alloc_end)
        return;
    uint64_t step = dw->cfg.prealloc_step;
    uint64_t new_end = (need_end + step - 1) / step * step;
    if (fallocate(dw->fd, 0, (off_t)dw->alloc_end, (off_t)(new_end - dw->alloc_end)) != 0)
        dw->prealloc_off = 1; /* unsupported or no space: the writes will tell */
    else
        dw->alloc_end = new_end;
}

/* Truncate to length, then rename (keep) or remove, then close. The stats come from what the
 * writer itself committed, so they are right also for a file cut short by a disk error. The fd
 * (and with it the .part's lock) is closed only after the name changed, so recovery never finds
 * an unlocked .part of a live writer. */
static void close_job_file(struct diskwriter *dw, uint64_t length, int keep)
{
    struct file_job *job = dw->job;
    if (dw->fd < 0)
        return;
    if (ftruncate(dw->fd, (off_t)length) != 0)
        atomic_fetch_add(&dw->st->errors, 1);
    fdatasync(dw->fd);
    stats_set_current_file(dw->st, NULL);
    int renamed = keep ? rename(job->part_path, job->final_path) : unlink(job->part_path);
    int e = errno;
    close(dw->fd);
    dw->fd = -1;
    if (!keep)
        return;
    if (renamed != 0) {
        log_error("cannot rename %s: %s", job->part_path, strerror(e));
        atomic_fetch_add(&dw->st->errors, 1);
        return;
    }
    int dfd = open(job->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { /* the rename itself survives a power cut */
        fsync(dfd);
        close(dfd);
    }
    atomic_fetch_add(&dw->st->files_closed, 1);
    stats_emit_file(dw->st, job->final_path, dw->committed_packets, length,
                    dw->committed_packets > 0, dw->committed_first_ns, dw->committed_last_ns);
}

/* Give up on the current file: keep what is whole on disk, tell the assembler. */
static void fail_file(struct diskwriter *dw, int err)
{
    if (dw->failed)
        return;
    if (dw->pending_err == 0)
        dw->pending_err = err;
    if (dw->pending_err == EINVAL && dw->direct && !dw->force_buffered) {
        /* the filesystem opened with O_DIRECT but refuses such writes: the next file (a second
         * from now) goes through the page cache */
        dw->force_buffered = 1;
        log_warning("the filesystem of %s refuses O_DIRECT writes: writing through the page cache",
                    dw->job->dir);
    }
    drain(dw);
    dw->failed = 1;
    int keep = dw->committed_end > 0 && dw->committed_packets > 0;
    if (dw->fd >= 0 && dw->direct) {
        int fl = fcntl(dw->fd, F_GETFL);
        fcntl(dw->fd, F_SETFL, fl & ~O_DIRECT);
    }
    /* the packets of this file that are not on disk count as writer drops */
    close_job_file(dw, dw->committed_end, keep);
    err = dw->pending_err; /* the first error is the cause */
    int was = atomic_exchange(&dw->st->disk_errno, err);
    atomic_fetch_add(&dw->st->errors, 1);
    blockq_report_failed(dw->q, dw->job->seq);
    if (was == 0)
        log_error("writing %s failed: %s: closed it at its last whole record, retrying every 0.1 s",
                  dw->job->part_path, strerror(err));
}

static void open_job(struct diskwriter *dw, struct file_job *job)
{
    dw->job = job;
    dw->failed = 0;
    dw->pending_err = 0;
    dw->prealloc_off = 0;
    dw->alloc_end = 0;
    dw->committed_end = 0;
    dw->committed_packets = 0;
    dw->committed_first_ns = dw->committed_last_ns = 0;
    dw->written_end = 0;
    dw->zoff = 0;
    /* 0750 and 0640: the capture user writes, the readers' group (--group) reads, nobody else */
    if (mkdir(job->dir, 0750) == 0) {
        if (dw->cfg.readers_gid >= 0 && chown(job->dir, (uid_t)-1, (gid_t)dw->cfg.readers_gid) != 0)
            log_warning("cannot give %s to the readers' group: %s", job->dir, strerror(errno));
    } else if (errno != EEXIST) {
        fail_file(dw, errno);
        return;
    }
    int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
    dw->direct = !dw->cfg.compress_level && !dw->force_buffered;
    dw->fd = open(job->part_path, flags | (dw->direct ? O_DIRECT : 0), 0640);
    if (dw->fd < 0 && dw->direct && errno == EINVAL) {
        dw->direct = 0;
        if (!dw->logged_buffered)
            log_warning("the filesystem of %s refuses O_DIRECT: writing through the page cache",
                        job->dir);
        dw->logged_buffered = 1;
        /* Some filesystems (ramfs) create the file before they refuse O_DIRECT. O_EXCL made
         * sure no earlier file had that name, so the empty one found now is our own. */
        dw->fd = open(job->part_path, (flags & ~O_EXCL) | O_TRUNC, 0640);
    }
    if (dw->fd < 0) {
        fail_file(dw, errno);
        return;
    }
    if (dw->cfg.readers_gid >= 0 && fchown(dw->fd, (uid_t)-1, (gid_t)dw->cfg.readers_gid) != 0) {
        fail_file(dw, errno); /* a file its readers cannot open is no capture for them */
        return;
    }
    /* held while the file is written: recovery (recover.h) leaves a locked .part alone */
    if (flock(dw->fd, LOCK_EX | LOCK_NB) != 0)
        log_warning("cannot lock %s: %s", job->part_path, strerror(errno));
    io_mode_name(dw);
    stats_set_current_file(dw->st, job->part_path);
}

static void submit(struct diskwriter *dw, struct block *b)
{
    size_t wlen = (b->len + BLOCK_ALIGN - 1) & ~(size_t)(BLOCK_ALIGN - 1);
    /* the padding is on disk until the next block or the truncate: never stale packets */
    memset(b->data + b->len, 0, wlen - b->len);
    prealloc(dw, b->file_off + wlen);
    while (dw->count >= dw->qd)
        reap_one(dw);
    unsigned slot = (dw->head + dw->count) % QD_MAX;
    struct inflight *e = &dw->fifo[slot];
    e->b = b;
    e->wlen = wlen;
    e->done = 0;
    e->err = 0;
    dw->count++;
    struct io_uring_sqe *sqe = dw->use_uring ? io_uring_get_sqe(&dw->ring) : NULL;
    if (sqe != NULL) {
        io_uring_prep_write(sqe, dw->fd, b->data, (unsigned)wlen, b->file_off);
        io_uring_sqe_set_data64(sqe, slot);
        int rc = io_uring_submit(&dw->ring);
        if (rc >= 0)
            goto submitted;
        e->err = -rc;
        e->done = 1;
        retire(dw);
        return;
    }
    e->err = finish_short(dw, e, 0);
    e->done = 1;
    retire(dw);
    return;
submitted:
    /* the next block rewrites this one's tail page: keep the two in order */
    if (b->flags & BLOCK_PARTIAL)
        drain(dw);
}

static void write_compressed(struct diskwriter *dw, struct block *b)
{
    size_t n = ZSTD_compressCCtx(dw->zc, dw->zbuf, dw->zcap, b->data, b->len, dw->cfg.compress_level);
    if (ZSTD_isError(n)) {
        fail_file(dw, EIO);
        drop_block(dw, b);
        return;
    }
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(dw->fd, dw->zbuf + done, n - done, (off_t)(dw->zoff + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fail_file(dw, w < 0 ? errno : ENOSPC);
            drop_block(dw, b);
            return;
        }
        done += (size_t)w;
    }
    dw->zoff += n;
    commit(dw, b, dw->zoff);
    atomic_fetch_add(&dw->st->bytes_written, n);
    blockq_put_free(dw->q, b);
}

static void finish_job(struct diskwriter *dw)
{
    struct file_job *job = dw->job;
    drain(dw);
    if (dw->pending_err)
        fail_file(dw, dw->pending_err);
    if (!dw->failed) {
        uint64_t len = dw->cfg.compress_level ? dw->zoff : job->length;
        close_job_file(dw, len, len > 0);
    }
    free(job);
    dw->job = NULL;
}

static void handle(struct diskwriter *dw, struct block *b)
{
    unsigned flags = b->flags;
    if (flags & BLOCK_FIRST)
        open_job(dw, b->file);
    if (dw->job != b->file || dw->failed) {
        /* a file already given up: its packets are writer drops */
        struct file_job *job = b->file;
        drop_block(dw, b);
        if ((flags & BLOCK_LAST) && job == dw->job) {
            free(job);
            dw->job = NULL;
        }
        return;
    }
    if (b->len > 0 && !(flags & BLOCK_CONTROL)) {
        if (dw->cfg.compress_level)
            write_compressed(dw, b);
        else
            submit(dw, b);
    } else {
        blockq_put_free(dw->q, b);
    }
    if (dw->pending_err && !dw->failed)
        fail_file(dw, dw->pending_err);
    if (flags & BLOCK_LAST) {
        if (dw->failed) {
            free(dw->job);
            dw->job = NULL;
        } else {
            finish_job(dw);
        }
    }
}

static void *writer_main(void *arg)
{
    pthread_setname_np(pthread_self(), "disk-writer");
    struct diskwriter *dw = arg;
    for (;;) {
        struct block *b = blockq_pop(dw->q, dw->count == 0);
        if (b == NULL) {
            if (dw->count == 0)
                break; /* closed and empty */
            reap_one(dw);
            continue;
        }
        handle(dw, b);
    }
    drain(dw);
    return NULL;
}

struct diskwriter *diskwriter_start(const struct diskwriter_cfg *cfg, struct blockq *q,
                                    struct capture_stats *st, char *err, size_t errlen)
{
    struct diskwriter *dw = calloc(1, sizeof *dw);
    if (dw == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    dw->cfg = *cfg;
    dw->q = q;
    dw->st = st;
    dw->fd = -1;
    dw->qd = QD_MAX;
    if (cfg->compress_level) {
        dw->zc = ZSTD_createCCtx();
        dw->zcap = ZSTD_compressBound(blockq_block_size(q));
        dw->zbuf = malloc(dw->zcap);
        if (dw->zc == NULL || dw->zbuf == NULL) {
            snprintf(err, errlen, "out of memory for zstd");
            ZSTD_freeCCtx(dw->zc);
            free(dw->zbuf);
            free(dw);
            return NULL;
        }
    } else if (cfg->io != IO_PWRITE) {
        int rc = io_uring_queue_init(QD_MAX, &dw->ring, 0);
        if (rc == 0)
            dw->use_uring = 1;
        else if (cfg->io == IO_URING) {
            snprintf(err, errlen, "--io uring: io_uring is not available: %s", strerror(-rc));
            free(dw);
            return NULL;
        } else
            log_warning("io_uring unavailable (%s): writing with pwrite", strerror(-rc));
    }
    dw->direct = !cfg->compress_level;
    io_mode_name(dw);
    int rc = thread_start_on(&dw->thread, cfg->cpu, writer_main, dw);
    if (rc != 0) {
        snprintf(err, errlen, "cannot start the writer thread: %s", strerror(rc));
        if (dw->use_uring)
            io_uring_queue_exit(&dw->ring);
        free(dw);
        return NULL;
    }
    return dw;
}

void diskwriter_join(struct diskwriter *dw)
{
    if (dw == NULL)
        return;
    pthread_join(dw->thread, NULL);
    if (dw->use_uring)
        io_uring_queue_exit(&dw->ring);
    ZSTD_freeCCtx(dw->zc);
    free(dw->zbuf);
    free(dw);
}
