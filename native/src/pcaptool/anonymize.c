/* anonymize: `sluice-pcap anonymize`, a copy of a file through the frame walk of
 * src/common/anonframe.h (the same walk as sluice-capture --anonymize), with the key id in the
 * output's SHB. --payload drop keeps headers only; an unparsable packet is left out and counted
 * (--strict: an error). */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "anonframe.h"
#include "cryptopan.h"
#include "frame.h"
#include "tool.h"

enum { PAYLOAD_KEEP, PAYLOAD_DROP };

struct anon {
    struct anonframe walk; /* the shared walk (src/common/anonframe.h) */
    int payload;
    uint64_t changed; /* packets */
    uint8_t *buf;     /* the packet being rewritten */
    bool strict;      /* --strict: such a packet is an error */
    uint64_t unparsed; /* packets left out for it */
    uint64_t at_packet;
};


/* tool_filter: the packet, anonymised in a copy. */
static int anonymize_packet(void *ctx, struct pr_packet *pkt)
{
    struct anon *a = ctx;
    memcpy(a->buf, pkt->data, pkt->caplen);
    uint64_t before = a->walk.addresses;
    a->at_packet++;
    uint32_t n = anonframe_rewrite(&a->walk, pkt->linktype, a->buf, pkt->caplen);
    if (a->walk.bad) {
        /* It may hold an address the tool cannot see: never written, so the output is all
         * anonymised. */
        a->walk.addresses = before;
        if (a->strict)
            return -tool_fail(EXIT_FAIL, "anonymize", "packet %" PRIu64 " (link type %u, %s) cannot be "
                              "parsed to its addresses; without --strict it is left out", a->at_packet,
                              pkt->linktype, pr_linktype_name(pkt->linktype));
        a->unparsed++;
        return 0;
    }
    a->changed += a->walk.addresses != before || n != pkt->caplen;
    pkt->data = a->buf;
    pkt->caplen = n;
    return 1;
}

int cmd_anonymize(int argc, char **argv)
{
    enum { OPT_KEY_FILE = 1300, OPT_PAYLOAD, OPT_STRICT };
    static const struct option opts[] = {OUT_LONG_OPTIONS,
                                         {"key-file", required_argument, 0, OPT_KEY_FILE},
                                         {"payload", required_argument, 0, OPT_PAYLOAD},
                                         {"strict", no_argument, 0, OPT_STRICT},
                                         {0, 0, 0, 0}};
    static const char *use = "usage: sluice-pcap anonymize --key-file KEY [--payload keep|drop] [--strict] "
                             "[--format pcapng|pcap] [--json] IN OUT";
    struct out_opts oo = OUT_OPTS_INIT;
    bool as_json = false;
    const char *key_path = NULL;
    struct anon a = {.payload = PAYLOAD_KEEP};
    int c;
    optind = 1;
    while ((c = tool_getopt(argc, argv, "", opts, &oo, &as_json, "anonymize")) != -1) {
        if (c == OPT_BAD_VALUE)
            return EXIT_USAGE;
        if (c == OPT_KEY_FILE)
            key_path = optarg;
        else if (c == OPT_PAYLOAD && strcmp(optarg, "keep") == 0)
            a.payload = PAYLOAD_KEEP;
        else if (c == OPT_PAYLOAD && strcmp(optarg, "drop") == 0)
            a.payload = PAYLOAD_DROP;
        else if (c == OPT_STRICT)
            a.strict = true;
        else if (c == OPT_PAYLOAD)
            return tool_fail(EXIT_USAGE, "anonymize", "--payload must be keep or drop, not '%s'", optarg);
        else
            return tool_fail(EXIT_USAGE, "anonymize", "%s", use);
    }
    if (argc - optind != 2 || !key_path)
        return tool_fail(EXIT_USAGE, "anonymize", "%s", use);
    const char *in_path = argv[optind], *out_path = argv[optind + 1];
    if (tool_check_output("anonymize", out_path, argv + optind, 1))
        return EXIT_USAGE;
    a.walk.drop_payload = a.payload == PAYLOAD_DROP;
    uint8_t key[CP_KEY_LEN];
    char err[256];
    if (cp_read_key_file(key_path, key, err, sizeof err) < 0)
        return tool_fail(EXIT_USAGE, "anonymize", "%s", err);
    char key_id[24];
    cp_key_id(key, key_id);
    a.walk.cp = cp_new(key, err, sizeof err);
    memset(key, 0, sizeof key);
    if (!a.walk.cp)
        return tool_fail(EXIT_FAIL, "anonymize", "%s", err);
    pr_reader *r;
    int rc = tool_open(&r, in_path, PR_STRICT, "anonymize");
    if (rc) {
        cp_free(a.walk.cp);
        return rc;
    }
    /* pcapng by default: its SHB records which key anonymised the file. */
    struct po_options po_opt = out_resolve(&oo, r);
    if (oo.format < 0)
        po_opt.format = PR_FORMAT_PCAPNG;
    po_opt.key_id = key_id;
    char comment[96];
    snprintf(comment, sizeof comment, "anonymised by sluice-pcap (Crypto-PAn, key id %s%s)", key_id,
             a.payload == PAYLOAD_DROP ? ", payload dropped" : "");
    po_opt.comment = comment;
    a.buf = malloc(PR_MAX_BLOCK);
    uint64_t in, out;
    if (!a.buf)
        rc = tool_fail(EXIT_FAIL, "anonymize", "out of memory");
    else
        rc = tool_copy("anonymize", r, in_path, out_path, &po_opt, anonymize_packet, &a, &in, &out);
    if (rc == 0) {
        char text[256], js[256];
        snprintf(text, sizeof text, "%" PRIu64 " addresses anonymised, key id %s%s", a.walk.addresses, key_id,
                 a.unparsed ? "" : "");
        if (a.unparsed)
            snprintf(text + strlen(text), sizeof text - strlen(text),
                     ", %" PRIu64 " packets left out: they cannot be parsed to their addresses", a.unparsed);
        snprintf(js, sizeof js, "\"addresses\": %" PRIu64 ", \"key_id\": \"%s\", \"payload\": \"%s\", "
                 "\"unparsed_left_out\": %" PRIu64, a.walk.addresses, key_id, a.payload == PAYLOAD_DROP ? "drop" : "keep",
                 a.unparsed);
        print_summary(as_json, "anonymize", in, out, a.changed, text, js);
    }
    free(a.buf);
    pr_close(r);
    cp_free(a.walk.cp);
    return rc;
}
