/* sluice-pcap: one program, one subcommand per post-capture job. */
#include <stdio.h>
#include <string.h>

#include "tool.h"

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *usage;
} COMMANDS[] = {
    {"info", cmd_info, "info [--json] FILE...              format, link types, packets, times"},
    {"check", cmd_check, "check [--json] FILE...             exit 0 valid, 1 damaged, 2 unreadable"},
    {"repair", cmd_repair, "repair [opts] IN OUT               recover every packet that can be"},
    {"dedup", cmd_dedup, "dedup [--window T|--window-packets N] [--ignore-vlan] IN OUT"},
    {"merge", cmd_merge, "merge [--offset FILE=SECONDS] -o OUT IN...  by timestamp"},
    {"flows", cmd_flows, "flows [--idle-timeout S] [--active-timeout S] [--format csv|ipfix] -o OUT IN..."},
    {"anonymize", cmd_anonymize, "anonymize --key-file KEY [--payload keep|drop] IN OUT"},
    {"convert", cmd_convert, "convert [--format F] [--precision us|ns] [--compress zstd|none] IN OUT"},
    {"index", cmd_index, "index [--positions OUT] FILE...    packets, times, drops, addresses, ports (JSON)"},
    {"pick", cmd_pick, "pick --positions POS --addr A... -o OUT FILE  the records holding A, read at their offsets"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: sluice-pcap COMMAND [options] ...\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  sluice-pcap %s\n", COMMANDS[i].usage);
    fprintf(f, "Output options of the writing commands: --format pcap|pcapng, --precision us|ns,\n"
               "--compress none|zstd[:LEVEL] (default: as the input), --json for the summary.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        if (strcmp(argv[1], COMMANDS[i].name) != 0)
            continue;
        if (argc == 3 && (strcmp(argv[2], "-h") == 0 || strcmp(argv[2], "--help") == 0)) {
            printf("usage: sluice-pcap %s\n(see native/README.md, section sluice-pcap)\n", COMMANDS[i].usage);
            return EXIT_OK;
        }
        return COMMANDS[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "sluice-pcap: unknown command '%s' (try --help)\n", argv[1]);
    return EXIT_USAGE;
}
