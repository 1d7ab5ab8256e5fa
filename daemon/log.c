/* Daemon logging to stderr, one line per call, safe to call from worker threads. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>

int vkr__log_level = VKR_LOG_INFO;

void vkr__log(int level, const char *fmt, ...)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    if (level > vkr__log_level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "vkresampled: %s: %s\n", names[level < 0 ? 0 : level > 3 ? 3 : level], line);
}
