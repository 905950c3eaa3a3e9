/* naming: capture file names, `<host>_<iface>_<UTC start, ns>_<seq>.pcapng[.zst]`, and the
 * `.part` suffix used while a file is written. Pure string functions. */
#ifndef SLUICE_CAPTURE_NAMING_H
#define SLUICE_CAPTURE_NAMING_H

#include <stddef.h>
#include <stdint.h>

#define PART_SUFFIX ".part"

struct naming {
    const char *dir;
    const char *host;
    const char *iface;
    const char *ext; /* ".pcapng", ".pcap", ".pcapng.zst" */
    int date_dirs;
};

/* Fills dir_out (the folder: DIR or DIR/YYYY-MM-DD) and final_out; -1 if a path is too long. */
int naming_make(const struct naming *n, uint64_t start_ns, uint32_t seq, char *dir_out,
                size_t dir_len, char *final_out, size_t final_len);

/* "host_iface_" : the prefix of every file of one writer, used to recover only our own. */
int naming_prefix(const struct naming *n, char *out, size_t len);

#endif
