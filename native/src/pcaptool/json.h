/* json: the one-object JSON writer of the summaries (on tool_report()), and the summary line itself. */
#ifndef SLUICE_PCAPTOOL_JSON_H
#define SLUICE_PCAPTOOL_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Minimal JSON object writer on stdout. */
struct json {
    FILE *f;
    int n;
};
void json_begin(struct json *j);
void json_str(struct json *j, const char *key, const char *val);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_f64(struct json *j, const char *key, double v);
void json_bool(struct json *j, const char *key, bool v);
void json_raw(struct json *j, const char *key, const char *raw);
void json_end(struct json *j);

/* Summary: "CMD: packets in N, out M, changed K[, extra]" or its JSON. */
void print_summary(bool as_json, const char *cmd, uint64_t in, uint64_t out, uint64_t changed,
                   const char *extra_text, const char *extra_json);

#endif
