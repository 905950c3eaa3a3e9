/* keystore: the folder of anonymisation keys, one per key period, and the one process that
 * reads and makes them (the key keeper).
 *
 * Why a process of its own: the keys are kept where only the user that starts the capture
 * reads them (root on a lab box, root through sluice-keyd on an appliance), while the writer
 * that uses them runs unprivileged. The keeper hands a writer the key of the period that holds
 * the keeper's own clock, and no other: a writer (or whoever takes over its user) can never
 * ask for a past period's key, so deleting a period's key file makes that period's captures
 * irreversible, and no capture user reads the folder.
 *
 * Promise: keystore_open refuses a folder that is not a directory, is not owned by the
 * effective user of the calling process, or gives any bit to group or others (one line in err).
 * keystore_serve answers each key_request on a SOCK_SEQPACKET socket with one key_reply until
 * the other end closes it (0) or the socket fails (-1). The key of a period is the file
 * PERIOD.key (PERIOD = YYYYMMDDTHHMMSSZ of the period's start, UTC wall-clock multiples of the
 * requested period) in the folder; a missing one is made from getrandom: 64 hex characters,
 * mode 0600, written under a temporary name, synced and renamed without replacing, so two
 * writers of one box (two interfaces) that meet the same period get the first one's key and a
 * writer restarted within a period goes on with its key. A key file is read with the checks of
 * cp_read_key_fd (0600, 32 bytes or 64 hex). A key that cannot be had is a reply with status
 * -1 and one line in err. keystore_sandbox leaves the keeper no capability and installs its
 * seccomp allow-list. */
#ifndef SLUICE_LIB_KEYSTORE_H
#define SLUICE_LIB_KEYSTORE_H

#include <stddef.h>
#include <stdint.h>

#include "cryptopan.h"

#define KEYSTORE_NAME_LEN 24 /* "YYYYMMDDTHHMMSSZ.key" and its NUL */
#define KEYSTORE_MAGIC 0x31594b53u /* "SKY1": both ends come from one build */

struct key_request {
    uint32_t magic;
    uint32_t reserved;
    uint64_t period_s; /* 1..31622400 */
};

struct key_reply {
    uint32_t magic;
    int32_t status;    /* 0, or -1 with err */
    uint64_t start_ns; /* the start of the period whose key this is */
    char name[KEYSTORE_NAME_LEN];
    uint8_t key[CP_KEY_LEN];
    char err[512];
};

struct keystore {
    int dirfd;
    const char *dir;
};

/* 0, or -1 with err. */
int keystore_open(struct keystore *ks, const char *dir, char *err, size_t errlen);
void keystore_close(struct keystore *ks);

/* The key of the period (period_s long) that holds now_ns, made if missing. 0, or -1 with err. */
int keystore_key_at(struct keystore *ks, uint64_t period_s, uint64_t now_ns, uint8_t key[CP_KEY_LEN],
                    char name[KEYSTORE_NAME_LEN], uint64_t *start_ns, char *err, size_t errlen);

/* Serves requests on fd until it is closed: 0, or -1 if the socket failed. */
int keystore_serve(int fd, struct keystore *ks);

/* The keeper gives up every capability (no_new_privs) and installs its allow-list: its socket,
 * the folder, the clock, getrandom. 0, or -1 with err. */
int keystore_sandbox(char *err, size_t errlen);

#endif
