/* The daemon's logger for in-process backend tests (see log_capture.h): formats each line, counts
 * the validation layer's messages and gives the line to the test's log_capture_line. */
#include "log_capture.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

int vkr__log_level = VKR_LOG_DEBUG;
static atomic_uint validation_messages;

void vkr__log(int level, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;

    if (level > vkr__log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (strncmp(buf, "vulkan validation:", 18) == 0)
        atomic_fetch_add(&validation_messages, 1u);
    log_capture_line(level, buf);
}

void log_capture_print(int level, const char *line)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};

    printf("# %s: ", names[level < 0 ? 0 : level > 3 ? 3 : level]);
    for (const char *p = line; *p; p++)
        putchar(*p == '\n' ? ' ' : *p);
    putchar('\n');
    fflush(stdout);
}

unsigned log_capture_validation_messages(void)
{
    return atomic_load(&validation_messages);
}
