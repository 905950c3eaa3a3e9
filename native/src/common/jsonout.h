/* jsonout: the one JSON string writer of sluice-capture (the stats channel) and sluice-pcap (its
 * summaries).
 *
 * Promise: json_put_string writes any byte string (a file name may hold quotes, newlines or
 * bytes that are not UTF-8) as one JSON string on one line: quotes, backslashes and control
 * characters escaped, valid UTF-8 kept, and each byte of an invalid sequence written as the
 * lone surrogate U+DC80+byte (Python's "surrogateescape": os.fsencode gives the name back). */
#ifndef SLUICE_JSONOUT_H
#define SLUICE_JSONOUT_H

#include <stdio.h>

void json_put_string(FILE *f, const char *s);

#endif
