/* sluice-keyd: the key keeper of a box whose writers never are root (src/lib/keystore.h).
 *
 * systemd runs it as root for each connection to sluice-keyd.socket (Accept=yes, a
 * SOCK_SEQPACKET socket that only the capture group may open), the connection on standard
 * input; a writer started with --key-socket asks it for the current key period's key as its
 * key rotates. It checks the folder (root's, mode 0700), installs its seccomp filter and serves
 * until the writer goes. Errors: one line on stderr, exit 2 for bad input, 1 otherwise. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "keystore.h"

static const char usage[] =
    "usage: sluice-keyd --key-dir DIR [--no-seccomp]\n"
    "Serves the key requests of one sluice-capture --key-socket on standard input (a systemd\n"
    "socket with Accept=yes): the key of the current key period, made in DIR when missing.\n"
    "  --key-dir DIR   the keys' folder: a directory of this user's, mode 0700\n"
    "  --no-seccomp    no system-call allow-list (debugging only)\n"
    "Exit: 0 when the writer goes, 2 bad input, 1 a socket error.\n";

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"key-dir", required_argument, NULL, 'd'},
        {"no-seccomp", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL;
    int no_seccomp = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 's': no_seccomp = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        case 'V': printf("sluice-keyd %s\n", SLUICE_VERSION); return 0;
        default:
            fprintf(stderr, "sluice-keyd: error: %s: unknown option or missing value (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (dir == NULL || optind != argc) {
        fprintf(stderr, "sluice-keyd: error: %s\n", dir == NULL ? "--key-dir DIR is required" : "unexpected argument");
        return 2;
    }
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(STDIN_FILENO, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_SEQPACKET) {
        fprintf(stderr, "sluice-keyd: error: standard input is not a SOCK_SEQPACKET connection "
                        "(run it from sluice-keyd.socket)\n");
        return 2;
    }
    char err[1024];
    struct keystore ks;
    if (keystore_open(&ks, dir, err, sizeof err) != 0) {
        fprintf(stderr, "sluice-keyd: error: %s\n", err);
        return 2;
    }
    if (!no_seccomp && keystore_sandbox(err, sizeof err) != 0) {
        fprintf(stderr, "sluice-keyd: error: %s\n", err);
        return 1;
    }
    int rc = keystore_serve(STDIN_FILENO, &ks);
    keystore_close(&ks);
    return rc == 0 ? 0 : 1;
}
