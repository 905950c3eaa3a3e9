/* keyring: the anonymisation keys of --key-dir, one per key period, kept in a folder only the
 * capture user can open.
 *
 * Promise: keyring_open (before the privileges go) opens the folder and refuses one that is not
 * a directory, is not owned by the user the writer runs as afterwards, or gives any bit to group
 * or others (one line in err). keyring_key_at then needs no privilege: the key of the period
 * that holds a time (periods are wall-clock multiples of period_s, UTC) is the file
 * PERIOD.key (PERIOD = YYYYMMDDTHHMMSSZ of the period's start) in that folder; a missing one is
 * made there from getrandom, 64 hex characters, mode 0600, written under a temporary name,
 * synced and renamed without replacing, so that two writers of one box (two interfaces) that
 * meet the same period both use the first one's key, and a writer restarted within a period
 * goes on with its key. A file is read with the checks of cp_read_key_file (0600, 32 bytes or
 * 64 hex). The key leaves only through key[]; the caller wipes it. */
#ifndef SLUICE_CAPTURE_KEYRING_H
#define SLUICE_CAPTURE_KEYRING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cryptopan.h"

#define KEYRING_NAME_LEN 24 /* "YYYYMMDDTHHMMSSZ.key" and its NUL */

struct keyring {
    int dirfd;
    const char *dir;
    uint64_t period_ns;
};

/* 0, or -1 with err. owner: the uid the writer runs as once started. */
int keyring_open(struct keyring *k, const char *dir, uint64_t period_s, uid_t owner, char *err, size_t errlen);
void keyring_close(struct keyring *k);

/* The start of the period that holds now_ns, and of the next one. */
uint64_t keyring_period_start(const struct keyring *k, uint64_t now_ns);

/* The key of the period that holds now_ns (made if missing) and its file name; 0 or -1 with err. */
int keyring_key_at(struct keyring *k, uint64_t now_ns, uint8_t key[CP_KEY_LEN], char name[KEYRING_NAME_LEN],
                   char *err, size_t errlen);

#endif
