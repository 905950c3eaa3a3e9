/* recover: a minimal walk of pcap / pcapng / zstd structure to close .part files (recover.h). */
#include "recover.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "jsonout.h"
#include "log.h"
#include "naming.h"
#include "pcapenc.h"

#define MAX_CAPLEN 262144u

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* pcapng written by Sluice (host byte order): blocks whose two lengths agree. Zeros (space
 * preallocated but never written) end the walk. */
static uint64_t pcapng_valid(const uint8_t *b, uint64_t len)
{
    uint64_t off = 0;
    int have_idb = 0;
    while (off + 12 <= len) {
        uint32_t type = get32(b + off), blen = get32(b + off + 4);
        if (type == 0 || blen < 12 || blen % 4 != 0 || off + blen > len ||
            get32(b + off + blen - 4) != blen)
            break;
        if (off == 0 && (type != PCAPNG_BT_SHB || get32(b + 8) != PCAPNG_BYTE_ORDER_MAGIC))
            return 0;
        if (type == PCAPNG_BT_IDB)
            have_idb = 1;
        if (type == PCAPNG_BT_EPB && (blen < PCAPNG_EPB_OVERHEAD || !have_idb ||
                                      pcapenc_epb_len(get32(b + off + 20)) != blen))
            break;
        off += blen;
    }
    return have_idb ? off : 0;
}

static uint64_t pcap_valid(const uint8_t *b, uint64_t len)
{
    if (len < PCAP_GLOBAL_HDR_LEN)
        return 0;
    uint32_t magic = get32(b);
    if (magic != PCAP_MAGIC_NS && magic != PCAP_MAGIC_US)
        return 0;
    uint32_t frac_max = magic == PCAP_MAGIC_NS ? 1000000000u : 1000000u;
    uint64_t off = PCAP_GLOBAL_HDR_LEN;
    while (off + PCAP_RECORD_HDR_LEN <= len) {
        uint32_t sec = get32(b + off), frac = get32(b + off + 4);
        uint32_t caplen = get32(b + off + 8), origlen = get32(b + off + 12);
        if ((sec == 0 && caplen == 0 && origlen == 0) || frac >= frac_max || caplen > MAX_CAPLEN ||
            caplen > origlen || off + PCAP_RECORD_HDR_LEN + caplen > len)
            break;
        off += PCAP_RECORD_HDR_LEN + caplen;
    }
    return off;
}

/* Whole zstd frames; each of Sluice's frames holds whole records. */
static uint64_t zstd_valid(const uint8_t *b, uint64_t len)
{
    uint64_t off = 0;
    while (off < len) {
        size_t n = ZSTD_findFrameCompressedSize(b + off, len - off);
        if (ZSTD_isError(n) || n == 0)
            break;
        off += n;
    }
    return off;
}

uint64_t recover_valid_length(const uint8_t *buf, uint64_t len, int zstd)
{
    if (zstd)
        return zstd_valid(buf, len);
    if (len >= 4 && get32(buf) == PCAPNG_BT_SHB)
        return pcapng_valid(buf, len);
    return pcap_valid(buf, len);
}

/* Does it start like a file Sluice writes? Anything else is not ours to cut or remove. */
static int looks_like_capture(const uint8_t *b, uint64_t len, int zstd)
{
    if (len < 4)
        return 0;
    uint32_t magic = get32(b);
    if (zstd)
        return magic == 0xFD2FB528u;
    return magic == PCAPNG_BT_SHB || magic == PCAP_MAGIC_NS || magic == PCAP_MAGIC_US;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* One "recovered" line on the stats channel; names are escaped, whatever bytes they hold. */
static void emit_recovered(FILE *out, const char *iface, const char *part, const char *final,
                           uint64_t kept, uint64_t cut)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    fprintf(out, "{\"type\":\"recovered\",\"v\":1,\"ts\":%lld.%06ld,\"interface\":",
            (long long)t.tv_sec, t.tv_nsec / 1000);
    json_put_string(out, iface);
    fputs(",\"part\":", out);
    json_put_string(out, part);
    fputs(",\"path\":", out);
    if (final != NULL)
        json_put_string(out, final);
    else
        fputs("null", out);
    fprintf(out, ",\"bytes\":%llu,\"cut_bytes\":%llu}\n", (unsigned long long)kept,
            (unsigned long long)cut);
}

static int recover_file(const char *path, const char *iface, FILE *out)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 && errno == ENOENT)
        return 0; /* renamed by its writer since the folder was read */
    if (fd < 0 || fstat(fd, &st) != 0) {
        log_error("recover %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* A writer holds an exclusive lock on the .part it writes: such a file is not a crash's. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) {
            log_info("recover %s: a running writer holds it, left alone", path);
            return 0;
        }
        log_error("recover %s: lock: %s", path, strerror(e));
        return -1;
    }
    uint64_t size = (uint64_t)st.st_size, valid = 0;
    int zstd = ends_with(path, ".zst" PART_SUFFIX);
    if (size > 0) {
        void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
            log_error("recover %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
        int ours = looks_like_capture(m, size, zstd);
        valid = recover_valid_length(m, size, zstd);
        munmap(m, size);
        if (!ours) {
            log_error("recover %s: not a capture file, left alone", path);
            close(fd);
            return -1;
        }
    }
    char final[PATH_MAX];
    snprintf(final, sizeof final, "%.*s", (int)(strlen(path) - strlen(PART_SUFFIX)), path);
    int rc = 0;
    /* the lock is held until the name has changed: no writer can take the file meanwhile */
    if (valid == 0) {
        rc = unlink(path);
    } else {
        rc = ftruncate(fd, (off_t)valid);
        if (rc == 0)
            rc = fsync(fd);
        if (rc == 0)
            rc = rename(path, final);
    }
    int e = errno;
    close(fd);
    errno = e;
    emit_recovered(out, iface, path, valid ? final : NULL, valid, size - valid);
    fflush(out);
    if (rc != 0)
        log_error("recover %s: %s", path, strerror(errno));
    return rc;
}

static int walk(const char *dir, const char *prefix, const char *iface, FILE *out, int depth)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        log_error("recover %s: %s", dir, strerror(errno));
        return 1;
    }
    int failures = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth < 2)
            failures += walk(path, prefix, iface, out, depth + 1);
        else if (S_ISREG(st.st_mode) && ends_with(e->d_name, PART_SUFFIX) &&
                 (prefix == NULL || strncmp(e->d_name, prefix, strlen(prefix)) == 0))
            failures += recover_file(path, iface, out) != 0;
    }
    closedir(d);
    return failures;
}

int recover_dir(const char *dir, const char *prefix, const char *iface, FILE *out)
{
    return walk(dir, prefix, iface ? iface : "", out, 0);
}
