/* check: is a capture valid? 0 valid, 1 damaged (what, where, which kind), 2 not a capture. */
#include <inttypes.h>

#include "tool.h"

static int check_one(const char *path, bool as_json)
{
    char err[256];
    pr_reader *r;
    int rc = pr_open(&r, path, PR_STRICT, err, sizeof err);
    if (rc) {
        const char *status = rc == 1 ? "damaged" : "unreadable";
        if (as_json) {
            struct json j;
            json_begin(&j);
            json_str(&j, "file", path);
            json_str(&j, "status", status);
            json_u64(&j, "packets", 0);
            json_str(&j, "error", err);
            if (rc == 1)
                json_raw(&j, "damage", "{\"kind\": \"bad-header\", \"offset\": 0, \"record\": 0}");
            json_end(&j);
        }
        return tool_fail(rc == 1 ? EXIT_FAIL : EXIT_USAGE, "check", "%s: %s: %s", path, status, err);
    }
    struct pr_packet pkt;
    uint64_t packets = 0;
    struct progress pg;
    progress_init(&pg, "check");
    int got;
    while ((got = pr_next(r, &pkt)) == 1)
        progress_update(&pg, r, ++packets);
    progress_done(&pg);
    const struct pr_damage *d = pr_damage(r);
    if (as_json) {
        struct json j;
        json_begin(&j);
        json_str(&j, "file", path);
        json_str(&j, "status", got < 0 ? (d->kind == PR_DAMAGE_IO && packets == 0 ? "unreadable" : "damaged")
                                        : "valid");
        json_u64(&j, "packets", packets);
        if (got < 0) {
            char buf[512];
            snprintf(buf, sizeof buf, "{\"kind\": \"%s\", \"offset\": %" PRIu64 ", \"record\": %" PRIu64 "}",
                     pr_damage_name(d->kind), d->offset, d->record);
            json_raw(&j, "damage", buf);
            json_str(&j, "error", d->what);
        }
        json_end(&j);
    }
    if (got < 0) {
        /* An input that breaks after valid packets (e.g. corrupt zstd data) is damaged. */
        rc = d->kind == PR_DAMAGE_IO && packets == 0
                 ? tool_fail(EXIT_USAGE, "check", "%s: unreadable: %s", path, d->what)
                 : tool_fail(EXIT_FAIL, "check", "%s: damaged at offset %" PRIu64 ", record %" PRIu64
                             ": %s: %s (%" PRIu64 " valid packets before it)", path, d->offset,
                             d->record, pr_damage_name(d->kind), d->what, packets);
    } else if (!as_json) {
        printf("%s: valid, %" PRIu64 " packets\n", path, packets);
    }
    pr_close(r);
    return got < 0 ? rc : EXIT_OK;
}

int cmd_check(int argc, char **argv)
{
    return tool_each_file(argc, argv, "check", check_one);
}
