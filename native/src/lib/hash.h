/* hash: a fast 64-bit non-cryptographic hash of a byte string (8 bytes per step), seedable.
 * Used for hash tables (flows, dedup window); equality is always confirmed on the bytes. */
#ifndef SLUICE_HASH_H
#define SLUICE_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t hash_mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static inline uint64_t hash_bytes(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL);
    while (len >= 8) {
        uint64_t k;
        memcpy(&k, p, 8);
        k *= 0x87c37b91114253d5ULL;
        k = (k << 31) | (k >> 33);
        h ^= k * 0x4cf5ad432745937fULL;
        h = ((h << 27) | (h >> 37)) * 5 + 0x52dce729;
        p += 8;
        len -= 8;
    }
    uint64_t t = 0;
    memcpy(&t, p, len);
    h ^= t * 0x87c37b91114253d5ULL;
    return hash_mix64(h);
}

#endif
