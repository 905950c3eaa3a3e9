/* picked: the records of a capture file that hold given keys (addresses, or (protocol, port)
 * pairs), found through the file's positions (`sluice-pcap index --positions`) and read at their
 * offsets instead of reading the whole file; for `pick` (which writes them out) and `merge
 * --positions` (which reads them as an input, in the same process).
 *
 * Promises:
 *  - the bytes handed out are the file's own: its header (up to the first packet: section and
 *    interface blocks, or the pcap global header), then each chosen record verbatim, in file
 *    order. So they are a valid capture that every reader parses as it parses those records in
 *    the original, and a filter selects from them what it selects from the whole file (the
 *    records of an address are a superset of what `host ADDR` matches: index.c);
 *  - with a window, only the records of [from, to) are handed out: positions exist only for
 *    files in time order, so the window is one run of the offsets, found by a binary search on
 *    the records' own timestamps;
 *  - each record costs one pread in the common case (records up to PICKED_READ bytes), and
 *    memory stays bounded by the offsets of the keys and one record;
 *  - picked_open() refuses positions that do not describe the file (another size, not a
 *    positions file, missing) with 2, so the caller can read the file whole instead.
 * Errors are returned with a message, never printed.
 */
#ifndef SLUICE_PCAPTOOL_PICKED_H
#define SLUICE_PCAPTOOL_PICKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PICKED_MAX_KEYS 64

struct picked_keys {
    uint8_t key[PICKED_MAX_KEYS][16];
    size_t n;
};

/* Add "ADDR" (IPv4 or IPv6; port false) or "tcp/N", "udp/N", "sctp/N" (port true) to keys:
 * 0, or -1 when it is none of those or keys is full. */
int picked_add_key(struct picked_keys *keys, const char *arg, bool port);

struct picked;

/* Open path read through pos_path for keys; window bounds apply when has_from / has_to.
 * Returns 0; 2 when a file cannot be opened or the positions do not describe the file; 1 when a
 * read fails (message in err for both). */
int picked_open(struct picked **out, const char *path, const char *pos_path, const struct picked_keys *keys,
                bool has_from, uint64_t from_ns, bool has_to, uint64_t to_ns, char *err, size_t errlen);
/* The next bytes of the stream (bytesrc.h's bs_fill_fn): up to room at dst, 0 at the end, -1 on
 * an error (a listed record that is not whole: picked_error). */
long picked_read(void *picked, uint8_t *dst, size_t room);
const char *picked_error(void *picked);
/* Records handed out so far, and how many the keys list in the whole file. */
uint64_t picked_records(const struct picked *p);
uint64_t picked_listed(const struct picked *p);
void picked_close(struct picked *p);

#endif
