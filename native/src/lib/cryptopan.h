/* cryptopan: prefix-preserving address anonymisation (Crypto-PAn; Xu, Fan, Ammar, Moon 2002).
 *
 * Key: 32 bytes; the first 16 are the AES-128 key, the last 16 are encrypted into the pad.
 * Bit i of the result is the original bit i XOR the top bit of AES(first i bits of the address,
 * then the pad's bits); IPv6 uses the same construction over 128 bits. All blocks of one address
 * go to OpenSSL in one ECB call (they are independent), and a direct-mapped cache remembers
 * recent addresses, so a capture with repeated addresses costs little more than a copy.
 * Two addresses sharing a k-bit prefix map to results sharing a k-bit prefix.
 */
#ifndef SLUICE_CRYPTOPAN_H
#define SLUICE_CRYPTOPAN_H

#include <stddef.h>
#include <stdint.h>

#define CP_KEY_LEN 32

typedef struct cryptopan cryptopan;

/* Returns NULL with a message in err on failure (OpenSSL). */
cryptopan *cp_new(const uint8_t key[CP_KEY_LEN], char *err, size_t errlen);
void cp_free(cryptopan *cp);
/* IPv4 address in host byte order -> anonymised, host byte order. */
uint32_t cp_ipv4(cryptopan *cp, uint32_t addr);
/* IPv6 address (network order bytes) -> anonymised into out (may equal in). */
void cp_ipv6(cryptopan *cp, const uint8_t in[16], uint8_t out[16]);
/* A key id that names the key without revealing it: "sha256:" + 16 hex digits of SHA-256(key). */
void cp_key_id(const uint8_t key[CP_KEY_LEN], char out[24]);

/* Read a key file: 32 raw bytes or 64 hex characters (whitespace around allowed). A file that
 * group or others may read, or a shorter/longer key, is refused. 0, or -1 with err. */
int cp_read_key_file(const char *path, uint8_t key[CP_KEY_LEN], char *err, size_t errlen);
/* The same on an open file (closed here, in every case); path names it in messages. */
int cp_read_key_fd(int fd, const char *path, uint8_t key[CP_KEY_LEN], char *err, size_t errlen);

#endif
