/* Unit test of cryptopan: the reference vectors of the canonical key, prefix preservation for
 * IPv4 and IPv6, the cache giving the same answer, and key-file rules. */
#include "cryptopan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static const uint8_t KEY[32] = {0x15, 0x22, 0x17, 0x8d, 0x33, 0xa4, 0xcf, 0x80, 0x13, 0x0a, 0x5b,
                                0x16, 0x49, 0x90, 0x7d, 0x10, 0xd8, 0x98, 0x8f, 0x83, 0x79, 0x79,
                                0x65, 0x27, 0x62, 0x57, 0x4c, 0x2d, 0x2a, 0x84, 0x22, 0x02};

static uint32_t ip(unsigned a, unsigned b, unsigned c, unsigned d) { return a << 24 | b << 16 | c << 8 | d; }

static int common_prefix(uint32_t x, uint32_t y)
{
    uint32_t d = x ^ y;
    return d ? __builtin_clz(d) : 32;
}

static void write_file(const char *path, const void *data, size_t n, mode_t mode)
{
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
    chmod(path, mode);
}

int main(void)
{
    char err[256];
    cryptopan *cp = cp_new(KEY, err, sizeof err);
    CHECK(cp != NULL);
    CHECK(cp_ipv4(cp, ip(128, 11, 68, 132)) == ip(135, 242, 180, 132));
    CHECK(cp_ipv4(cp, ip(24, 5, 0, 80)) == ip(100, 9, 15, 210));
    CHECK(cp_ipv4(cp, ip(64, 14, 118, 196)) == ip(0, 255, 183, 58));
    /* cached answers are the same */
    CHECK(cp_ipv4(cp, ip(128, 11, 68, 132)) == ip(135, 242, 180, 132));
    /* prefix preservation */
    uint32_t seed = 12345;
    for (int i = 0; i < 2000; i++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t x = seed;
        seed = seed * 1103515245u + 12345u;
        uint32_t y = seed;
        CHECK(common_prefix(x, y) == common_prefix(cp_ipv4(cp, x), cp_ipv4(cp, y)));
    }
    uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    uint8_t b[16], oa[16], ob[16];
    memcpy(b, a, 16);
    b[15] = 2;
    cp_ipv6(cp, a, oa);
    cp_ipv6(cp, b, ob);
    CHECK(memcmp(oa, ob, 15) == 0 && (oa[15] & 0xfc) == (ob[15] & 0xfc) && oa[15] != ob[15]);
    CHECK(memcmp(oa, a, 16) != 0);
    b[0] = 0xa0; /* differs in the first bit: results differ in the first bit */
    cp_ipv6(cp, b, ob);
    CHECK((oa[0] & 0x80) != (ob[0] & 0x80));
    cp_free(cp);

    char dir[] = "/tmp/test_cryptopan.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    uint8_t key[32];
    snprintf(path, sizeof path, "%s/raw", dir);
    write_file(path, KEY, 32, 0600);
    CHECK(cp_read_key_file(path, key, err, sizeof err) == 0 && memcmp(key, KEY, 32) == 0);
    snprintf(path, sizeof path, "%s/hex", dir);
    const char *hex = "1522178d33a4cf80130a5b1649907d10d8988f837979652762574c2d2a842202\n";
    write_file(path, hex, strlen(hex), 0600);
    CHECK(cp_read_key_file(path, key, err, sizeof err) == 0 && memcmp(key, KEY, 32) == 0);
    write_file(path, hex, strlen(hex), 0644);
    CHECK(cp_read_key_file(path, key, err, sizeof err) < 0 && strstr(err, "group or others"));
    snprintf(path, sizeof path, "%s/short", dir);
    write_file(path, KEY, 16, 0600);
    CHECK(cp_read_key_file(path, key, err, sizeof err) < 0 && strstr(err, "32 raw bytes"));
    char id[24];
    cp_key_id(KEY, id);
    CHECK(strncmp(id, "sha256:", 7) == 0 && strlen(id) == 23);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    if (failures)
        return 1;
    printf("test_cryptopan: ok\n");
    return 0;
}
