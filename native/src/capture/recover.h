/* recover: closes the `.part` files a crash left behind.
 *
 * Promise: each `X.part` (pcapng, pcap, or zstd-compressed pcapng) is truncated to its last
 * whole record/block (zstd: last whole frame) and renamed to `X`; a `.part` without even a
 * whole file header holds no packets and is removed. Files not ending in `.part`, and `.part`
 * files that do not start like a capture file, are never touched, nor is a `.part` that a live
 * writer holds (it takes an exclusive flock on every `.part` while it writes it: see
 * diskwriter.h), so recovery run beside a writer that is still closing its file is harmless.
 * One JSON line per file on `out` ({"type":"recovered",...}, names escaped by jsonout.h);
 * problems go to stderr. */
#ifndef SLUICE_CAPTURE_RECOVER_H
#define SLUICE_CAPTURE_RECOVER_H

#include <stdint.h>
#include <stdio.h>

/* Bytes of buf[0..len) that form whole records of a capture file (0 = not even a header). */
uint64_t recover_valid_length(const uint8_t *buf, uint64_t len, int zstd);

/* Recovers every .part under dir (and its date subfolders) whose name starts with prefix
 * (NULL = all); iface goes into the JSON lines (NULL = ""). Returns the number of files that
 * could not be handled (0 = all fine). */
int recover_dir(const char *dir, const char *prefix, const char *iface, FILE *out);

#endif
