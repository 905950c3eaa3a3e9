/* bytesrc: a forward-only byte stream over a file, standard input or memory, with transparent
 * zstd decompression chosen by content (the zstd frame magic), not by file name.
 *
 * Promises: bs_peek() hands out a pointer to at least n contiguous bytes (fewer only at the end
 * of the stream) that stays valid until the next bs_peek/bs_skip; memory held is bounded by the
 * largest n asked for plus one read chunk. Errors are returned, never printed.
 */
#ifndef SLUICE_BYTESRC_H
#define SLUICE_BYTESRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bytesrc bytesrc;

/* Open path ("-" is standard input). Returns 0, or -1 with a message in err. */
int bs_open_file(bytesrc **out, const char *path, char *err, size_t errlen);
/* A stream over caller-owned memory (which must outlive the stream). */
int bs_open_mem(bytesrc **out, const uint8_t *data, size_t len, char *err, size_t errlen);
/* A stream whose bytes come from fill(ctx, dst, room): it writes up to room bytes at dst and
 * returns how many (at least 1 while bytes remain: room is never 0), 0 at the end, -1 on an
 * error (message from errmsg(ctx)). Never compressed. ctx must outlive the stream. */
typedef long (*bs_fill_fn)(void *ctx, uint8_t *dst, size_t room);
int bs_open_fn(bytesrc **out, bs_fill_fn fill, const char *(*errmsg)(void *ctx), void *ctx, char *err,
               size_t errlen);
void bs_close(bytesrc *bs);

/* Make up to n bytes available at *p. Returns how many are available (< n only at the end of
 * the stream), or -1 on a read or decompression error (message in bs_error()). */
long bs_peek(bytesrc *bs, size_t n, const uint8_t **p);
/* Consume n bytes (may be more than are buffered). Returns 0, or -1 on error. */
int bs_skip(bytesrc *bs, uint64_t n);
/* Offset in the (decompressed) stream of the next unconsumed byte. */
uint64_t bs_offset(const bytesrc *bs);
bool bs_compressed(const bytesrc *bs);
/* Total size of an uncompressed regular file, or 0 when unknown (for progress). */
uint64_t bs_size_hint(const bytesrc *bs);
/* Bytes read from the underlying file so far (compressed bytes for zstd), for progress. */
uint64_t bs_raw_offset(const bytesrc *bs);
const char *bs_error(const bytesrc *bs);
/* Lenient mode (for repair): a read or decompression error ends the stream after the bytes
 * decoded so far instead of failing; bs_failed() then says so and bs_error() why. */
void bs_set_lenient(bytesrc *bs);
bool bs_failed(const bytesrc *bs);
/* Lenient: how many damaged zstd frames were skipped (decoding resumed at the next frame). */
uint64_t bs_gaps(const bytesrc *bs);
/* Lenient: the first stream offset >= from at which skipped data left a hole (bytes before and
 * after it are not contiguous), or UINT64_MAX. Only holes within the buffered data are known. */
uint64_t bs_next_gap(bytesrc *bs, uint64_t from);

#endif
