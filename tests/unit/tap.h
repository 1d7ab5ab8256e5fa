/* Minimal TAP producer for the C unit tests: one "ok N - ..." line per check, the plan at the
 * end, exit status 1 if any check failed.  Failing checks should print both values. */
#ifndef VKR_TEST_TAP_H
#define VKR_TEST_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int tap_count, tap_failures;

static __attribute__((format(printf, 2, 3), unused)) int tap_check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s %d - ", ok ? "ok" : "not ok", ++tap_count);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (!ok)
        tap_failures++;
    return ok;
}

static __attribute__((unused)) int tap_done(void)
{
    printf("1..%d\n", tap_count);
    return tap_failures ? 1 : 0;
}

#endif
