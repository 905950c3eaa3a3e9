/* sluice-pcap: one program, one subcommand per post-capture job. */
#include <stdio.h>
#include <string.h>

#include "tool.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "unknown"
#endif

#define OUTPUT_OPTIONS                                                                              \
    "  --format pcap|pcapng     output format (default: as the input)\n"                            \
    "  --precision us|ns        timestamp precision (default: as the input, never cutting a time)\n" \
    "  --compress none|zstd[:LEVEL]  zstd level 1..19, 3 by default (default: as the input)\n"       \
    "  --json                   the summary as one JSON object\n"
#define SELECTION                                                                                   \
    "  --from T, --to T         keep packets from T (inclusive) to T (exclusive): epoch seconds or\n" \
    "                           RFC 3339 (2026-01-02T03:04:05.5Z), to the nanosecond (editcap -A/-B)\n" \
    "  --filter EXPR            keep what the tcpdump filter EXPR matches\n"                        \
    "  --growing IN             input IN is still being written: end at its last whole record\n"
#define OUTPUT_PATHS                                                                                \
    "OUT may be '-' (stdout; the summary then goes to stderr), a FIFO or character device (written\n" \
    "in place), or a file (written beside it and renamed when complete). Inputs are never changed.\n"

/* The registry: every subcommand, its one-line usage and its complete --help. */
static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *usage;
    const char *help;
} COMMANDS[] = {
    {"info", cmd_info, "info [--json] FILE...              format, link types, packets, times",
     "Format, compression, precision, link types, packets (and those without a timestamp), bytes\n"
     "captured and on the wire, first and last time, snaplen of each FILE.\n"
     "  --json                   one JSON object per file\n"
     "Exit 0; 1 when a file is damaged (what was read is still reported); 2 when not a capture.\n"},
    {"check", cmd_check, "check [--json] FILE...             exit 0 valid, 1 damaged, 2 unreadable",
     "Reads each FILE strictly and reports the first damage: offset, record, kind (truncated,\n"
     "bad-length, garbage, bad-timestamp, length-mismatch, bad-interface, bad-header, io-error),\n"
     "or why the file is not read at all (an unsupported pcap or pcapng version).\n"
     "  --json                   one JSON object per file\n"
     "Exit 0 valid, 1 damaged, 2 not a capture or unreadable.\n"},
    {"repair", cmd_repair, "repair [opts] IN OUT               recover every packet that can be",
     "Reads IN in resync mode and writes every packet that can be recovered to OUT; never invents\n"
     "a byte. A file of zeros (or /dev/zero) is refused at once.\n" OUTPUT_OPTIONS OUTPUT_PATHS},
    {"dedup", cmd_dedup, "dedup [--window T|--window-packets N] [--ignore-vlan] IN OUT",
     "Drops the copies a SPAN port makes: a packet equal to another (IPv4 TTL and checksum, IPv6\n"
     "hop limit masked) within the window, before or after it in time.\n"
     "  --window TIME            time window (1ms; also 0.001, 500us, 2s)\n"
     "  --window-packets N       window of N packets instead, as editcap -D N\n"
     "  --ignore-vlan            copies may differ in their 802.1Q/802.1ad tags\n" OUTPUT_OPTIONS
         OUTPUT_PATHS},
    {"merge", cmd_merge, "merge [--offset FILE=SECONDS] [--positions FILE=POS --addr A] [SELECTION] -o|-w OUT IN...",
     "Merges the inputs by timestamp into OUT (equal times: the first input's packet first).\n"
     "  -o, -w, --output OUT     the merged file (-w as mergecap says it)\n"
     "  --offset FILE=SECONDS    shift input FILE by SECONDS (may be negative or fractional)\n"
     "  --positions FILE=POS     read input FILE only at the records of the keys below, at the offsets\n"
     "                           `index --positions` wrote to POS (as pick, in this process); positions\n"
     "                           that do not describe FILE: it is read whole (a line on stderr)\n"
     "  --addr A, --port PROTO/N the keys of --positions: addresses, tcp/N, udp/N, sctp/N (repeatable)\n"
         SELECTION OUTPUT_OPTIONS OUTPUT_PATHS},
    {"flows", cmd_flows,
     "flows [--format csv|ipfix] [--idle-timeout S] [--active-timeout S] -o OUT IN...",
     "Bidirectional flow records of the inputs (read as one stream).\n"
     "  --format csv|ipfix       CSV (default) or IPFIX messages (RFC 7011/5655)\n"
     "  --idle-timeout S         end a flow after S seconds without packets (300)\n"
     "  --active-timeout S       end a flow after S seconds in any case (1800)\n"
     "  -o, --output OUT         where the records go\n"
     "  --json                   the summary as one JSON object\n" OUTPUT_PATHS},
    {"anonymize", cmd_anonymize, "anonymize --key-file KEY [--payload keep|drop] [--strict] IN OUT",
     "Crypto-PAn on every IPv4/IPv6 address the tool can find, checksums kept right; packets it\n"
     "cannot parse to their addresses are left out and counted.\n"
     "  --key-file KEY           32 bytes raw or 64 hex characters, not readable by others\n"
     "  --payload keep|drop      drop: keep the headers only (keep)\n"
     "  --strict                 a packet that cannot be parsed is an error (exit 1, no output)\n"
         OUTPUT_OPTIONS OUTPUT_PATHS},
    {"convert", cmd_convert, "convert [--format F] [--precision us|ns] [--compress zstd|none] [SELECTION] IN OUT",
     "Changes only the container: pcap <-> pcapng, us <-> ns, zstd in or out.\n" SELECTION OUTPUT_OPTIONS
         OUTPUT_PATHS},
    {"index", cmd_index, "index [--positions OUT] FILE...    packets, times, drops, addresses, ports (JSON)",
     "Reads each FILE once and prints one JSON object: packets, bytes, first/last time, drops from\n"
     "the Interface Statistics Blocks, and the index of addresses, ports and protocols.\n"
     "  --positions OUT          also write the offsets of the records of each address (for pick)\n"
     "  --json                   (the output is JSON anyway)\n"},
    {"pick", cmd_pick,
     "pick --positions POS (--addr A | --port PROTO/N)... [--from T] [--to T] -o OUT FILE  records at their offsets",
     "Writes the records of FILE that hold the given addresses or ports, read at the offsets that\n"
     "`index --positions` recorded, with FILE's own header: a capture readers parse as the original.\n"
     "  --positions POS          the positions file of FILE\n"
     "  --addr A                 an IPv4 or IPv6 address (repeatable)\n"
     "  --port PROTO/N           tcp/443, udp/53, sctp/N (repeatable)\n"
     "  --from T, --to T         only records from T (inclusive) to T (exclusive), as merge's\n"
     "  -o, --output OUT         the output ('-' for stdout)\n"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: sluice-pcap COMMAND [options] ...\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  sluice-pcap %s\n", COMMANDS[i].usage);
    fprintf(f, "Output options of the writing commands: --format pcap|pcapng, --precision us|ns,\n"
               "--compress none|zstd[:LEVEL] (default: as the input), --json for the summary.\n"
               "OUT may be '-' for stdout. sluice-pcap COMMAND --help: everything about COMMAND;\n"
               "sluice-pcap --version.\n");
}

int main(int argc, char **argv)
{
    of_cleanup_on_signals();
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("sluice-pcap %s\n", SLUICE_VERSION);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        if (strcmp(argv[1], COMMANDS[i].name) != 0)
            continue;
        for (int k = 2; k < argc; k++)
            if (strcmp(argv[k], "-h") == 0 || strcmp(argv[k], "--help") == 0) {
                printf("usage: sluice-pcap %s\n%s", COMMANDS[i].usage, COMMANDS[i].help);
                return EXIT_OK;
            }
        return COMMANDS[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "sluice-pcap: unknown command '%s' (try --help)\n", argv[1]);
    return EXIT_USAGE;
}
