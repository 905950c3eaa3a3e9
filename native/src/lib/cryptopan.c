#include "cryptopan.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"

#define V4_CACHE (1u << 18)
#define V6_CACHE (1u << 16)

struct v4_entry {
    uint32_t addr, anon;
    bool used;
};

struct v6_entry {
    uint8_t addr[16], anon[16];
    bool used;
};

struct cryptopan {
    EVP_CIPHER_CTX *ctx;
    uint8_t pad[16];
    struct v4_entry *v4;
    struct v6_entry *v6;
};

static int aes(cryptopan *cp, const uint8_t *in, uint8_t *out, int len)
{
    int n = 0;
    return EVP_EncryptUpdate(cp->ctx, out, &n, in, len) == 1 && n == len ? 0 : -1;
}

cryptopan *cp_new(const uint8_t key[CP_KEY_LEN], char *err, size_t errlen)
{
    cryptopan *cp = calloc(1, sizeof *cp);
    if (!cp) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cp->v4 = calloc(V4_CACHE, sizeof *cp->v4);
    cp->v6 = calloc(V6_CACHE, sizeof *cp->v6);
    cp->ctx = EVP_CIPHER_CTX_new();
    if (!cp->v4 || !cp->v6 || !cp->ctx ||
        EVP_EncryptInit_ex(cp->ctx, EVP_aes_128_ecb(), NULL, key, NULL) != 1 ||
        EVP_CIPHER_CTX_set_padding(cp->ctx, 0) != 1 || aes(cp, key + 16, cp->pad, 16) < 0) {
        snprintf(err, errlen, "cannot set up AES-128 (OpenSSL)");
        cp_free(cp);
        return NULL;
    }
    return cp;
}

void cp_free(cryptopan *cp)
{
    if (!cp)
        return;
    EVP_CIPHER_CTX_free(cp->ctx);
    free(cp->v4);
    free(cp->v6);
    free(cp);
}

/* The one construction for any address length (bytes = 4 or 16). */
static void anonymise(cryptopan *cp, const uint8_t *addr, size_t bytes, uint8_t *out)
{
    const size_t bits = bytes * 8;
    uint8_t in[128 * 16], enc[128 * 16];
    for (size_t pos = 0; pos < bits; pos++) {
        uint8_t *b = in + pos * 16;
        memcpy(b, cp->pad, 16);
        for (size_t i = 0; i < bytes; i++) {
            size_t lo = i * 8;
            if (lo + 8 <= pos)
                b[i] = addr[i];
            else if (lo < pos) {
                uint8_t mask = (uint8_t)(0xff << (8 - (pos - lo)));
                b[i] = (uint8_t)((addr[i] & mask) | (cp->pad[i] & ~mask));
            }
        }
    }
    if (aes(cp, in, enc, (int)(bits * 16)) < 0)
        memset(enc, 0, bits * 16); /* cannot happen with a set-up context */
    memset(out, 0, bytes);
    for (size_t pos = 0; pos < bits; pos++)
        out[pos / 8] |= (uint8_t)((enc[pos * 16] >> 7) << (7 - pos % 8));
    for (size_t i = 0; i < bytes; i++)
        out[i] ^= addr[i];
}

uint32_t cp_ipv4(cryptopan *cp, uint32_t addr)
{
    struct v4_entry *e = &cp->v4[hash_mix64(addr) & (V4_CACHE - 1)];
    if (e->used && e->addr == addr)
        return e->anon;
    uint8_t a[4] = {(uint8_t)(addr >> 24), (uint8_t)(addr >> 16), (uint8_t)(addr >> 8), (uint8_t)addr};
    uint8_t o[4];
    anonymise(cp, a, 4, o);
    uint32_t anon = (uint32_t)o[0] << 24 | (uint32_t)o[1] << 16 | (uint32_t)o[2] << 8 | o[3];
    *e = (struct v4_entry){addr, anon, true};
    return anon;
}

void cp_ipv6(cryptopan *cp, const uint8_t in[16], uint8_t out[16])
{
    struct v6_entry *e = &cp->v6[hash_bytes(in, 16, 6) & (V6_CACHE - 1)];
    if (e->used && memcmp(e->addr, in, 16) == 0) {
        memcpy(out, e->anon, 16);
        return;
    }
    uint8_t a[16], o[16];
    memcpy(a, in, 16);
    anonymise(cp, a, 16, o);
    memcpy(e->addr, a, 16);
    memcpy(e->anon, o, 16);
    e->used = true;
    memcpy(out, o, 16);
}

void cp_key_id(const uint8_t key[CP_KEY_LEN], char out[24])
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_Digest(key, CP_KEY_LEN, md, &n, EVP_sha256(), NULL);
    int k = snprintf(out, 24, "sha256:");
    for (int i = 0; i < 8; i++)
        k += snprintf(out + k, (size_t)(24 - k), "%02x", md[i]);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int cp_read_key_file(const char *path, uint8_t key[CP_KEY_LEN], char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
        return -1;
    }
    return cp_read_key_fd(fd, path, key, err, errlen);
}

int cp_read_key_fd(int fd, const char *path, uint8_t key[CP_KEY_LEN], char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "key file %s is not a regular file", path);
        close(fd);
        return -1;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen, "key file %s may be read by group or others (mode %04o): chmod 600 it",
                 path, (unsigned)(st.st_mode & 07777));
        close(fd);
        return -1;
    }
    uint8_t buf[256];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "key file %s: %s", path, strerror(errno));
        return -1;
    }
    if (n == CP_KEY_LEN) {
        memcpy(key, buf, CP_KEY_LEN);
        return 0;
    }
    /* 64 hex digits, whitespace around them allowed. */
    size_t s = 0, e = (size_t)n;
    while (s < e && isspace(buf[s]))
        s++;
    while (e > s && isspace(buf[e - 1]))
        e--;
    if (e - s == 2 * CP_KEY_LEN) {
        bool ok = true;
        for (size_t i = 0; i < CP_KEY_LEN && ok; i++) {
            int hi = hexval(buf[s + 2 * i]), lo = hexval(buf[s + 2 * i + 1]);
            ok = hi >= 0 && lo >= 0;
            key[i] = (uint8_t)(hi << 4 | lo);
        }
        if (ok)
            return 0;
    }
    snprintf(err, errlen, "key file %s must hold 32 raw bytes or 64 hex characters, it holds %zd bytes",
             path, n);
    return -1;
}
