/* keyring: the writer's end of the key keeper (src/lib/keystore.h), for --key-dir and
 * --key-socket: one Crypto-PAn key per wall-clock key period, kept where the writer's own user
 * cannot read them.
 *
 * Promise: keyring_start_keeper (--key-dir, called before anything else is opened, while the
 * writer is still the user it started as and has no thread) checks the folder (keystore_open)
 * and forks the keeper: a process that stays that user (root on a lab box), keeps the folder's
 * descriptor (the writer does not), installs its own seccomp filter and serves the writer over
 * a socket pair until the writer's end closes (it also dies with the writer). keyring_connect
 * (--key-socket) reaches a keeper that systemd runs as root (sluice-keyd, a socket with
 * Accept=yes), for a writer that never is root. keyring_current asks the keeper for the key of
 * the period holding the keeper's clock: its file name, its start, the key; it only reads and
 * writes the socket (allowed under the writer's seccomp filter) and waits at most 10 s. Errors:
 * -1 with one line in err. The key leaves only through key[]; the caller wipes it. */
#ifndef SLUICE_CAPTURE_KEYRING_H
#define SLUICE_CAPTURE_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#include "cryptopan.h"
#include "keystore.h"

#define KEYRING_NAME_LEN KEYSTORE_NAME_LEN

struct keyring {
    int fd;           /* -1: no key keeper (no --key-dir, no --key-socket) */
    const char *where; /* the folder or the socket, for messages */
    uint64_t period_s;
    uint64_t period_ns;
};

/* 0, or -1 with err. no_seccomp: the keeper installs no filter either (--no-seccomp). */
int keyring_start_keeper(struct keyring *k, const char *dir, uint64_t period_s, int no_seccomp, char *err,
                         size_t errlen);
int keyring_connect(struct keyring *k, const char *path, uint64_t period_s, char *err, size_t errlen);
void keyring_close(struct keyring *k);

/* The key of the current period (the keeper's clock), its file name and its start. */
int keyring_current(struct keyring *k, uint8_t key[CP_KEY_LEN], char name[KEYRING_NAME_LEN], uint64_t *start_ns,
                    char *err, size_t errlen);

#endif
