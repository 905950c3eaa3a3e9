/* json: see json.h. */
#include "tool.h"

#include <math.h>

#include "jsonout.h"

static void json_key(struct json *j, const char *key)
{
    fputs(j->n++ ? ", " : "", j->f);
    json_put_string(j->f, key);
    fputs(": ", j->f);
}

void json_begin(struct json *j)
{
    j->f = tool_report();
    j->n = 0;
    fputc('{', j->f);
}

void json_str(struct json *j, const char *key, const char *val)
{
    json_key(j, key);
    if (!val) {
        fputs("null", j->f);
        return;
    }
    json_put_string(j->f, val);
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
    json_key(j, key);
    fprintf(j->f, "%llu", (unsigned long long)v);
}

void json_f64(struct json *j, const char *key, double v)
{
    json_key(j, key);
    if (isfinite(v))
        fprintf(j->f, "%.9f", v);
    else
        fputs("null", j->f);
}

void json_bool(struct json *j, const char *key, bool v)
{
    json_key(j, key);
    fputs(v ? "true" : "false", j->f);
}

void json_raw(struct json *j, const char *key, const char *raw)
{
    json_key(j, key);
    fputs(raw, j->f);
}

void json_end(struct json *j)
{
    fputs("}\n", j->f);
    fflush(j->f);
}

void print_summary(bool as_json, const char *cmd, uint64_t in, uint64_t out, uint64_t changed,
                   const char *extra_text, const char *extra_json)
{
    if (as_json) {
        struct json j;
        json_begin(&j);
        json_str(&j, "command", cmd);
        json_u64(&j, "packets_in", in);
        json_u64(&j, "packets_out", out);
        json_u64(&j, "changed", changed);
        if (extra_json && *extra_json)
            fprintf(j.f, ", %s", extra_json);
        json_end(&j);
        return;
    }
    fprintf(tool_report(), "%s: packets in %llu, out %llu, changed %llu%s%s\n", cmd, (unsigned long long)in,
           (unsigned long long)out, (unsigned long long)changed, extra_text && *extra_text ? ", " : "",
           extra_text ? extra_text : "");
    fflush(tool_report());
}
