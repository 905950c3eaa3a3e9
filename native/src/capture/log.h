/* log: sluice-capture's one way to say something on stderr.
 *
 * Promise: one line per call, "sluice-capture: LEVEL: message" for errors and warnings and
 * "sluice-capture: message" for information, written with one write so lines of different
 * threads never interleave. The supervisor maps the level to its own log level (appliance/
 * writer.py), so a warning stays a warning in the journal of systemd. stdout is never used:
 * it is the stats channel. */
#ifndef SLUICE_CAPTURE_LOG_H
#define SLUICE_CAPTURE_LOG_H

enum log_level { LOG_ERROR, LOG_WARNING, LOG_INFO };

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)

#endif
