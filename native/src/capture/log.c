/* log: one line per message on stderr (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"error: ", "warning: ", ""};
    char line[2048];
    int n = snprintf(line, sizeof line, "sluice-capture: %s", names[level]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    /* one line: a message never carries its own newline (a file name could) */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t len = strlen(line);
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
