/* The daemon's replaceable allocator: libc's, plus a test-only failure switch.  Counting is one
 * relaxed atomic increment per allocation and happens only while VKRESAMPLE_FAIL_ALLOC_AT is set;
 * the CPU backend allocates from OpenMP threads and the worker threads, so the counter is shared
 * by every thread and the N-th allocation is the N-th in whichever order the threads got there. */
#include "alloc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "log.h"

static atomic_ullong fail_at;      /* 0: off */
static atomic_ullong counted;

/* True if this allocation is the one to fail. */
static bool should_fail(size_t size)
{
    unsigned long long at = atomic_load_explicit(&fail_at, memory_order_relaxed), n;

    if (at == 0)
        return false;
    n = atomic_fetch_add_explicit(&counted, 1, memory_order_relaxed) + 1;
    if (n != at)
        return false;
    vkr__log(VKR_LOG_WARN, "%s=%llu: failing allocation %llu (%zu bytes) on purpose", VKR__FAIL_ALLOC_ENV, at, n, size);
    return true;
}

void *vkr__malloc(size_t size)
{
    if (should_fail(size)) {
        errno = ENOMEM;
        return NULL;
    }
    return malloc(size);
}

void *vkr__calloc(size_t n, size_t size)
{
    if (should_fail(n * size)) {
        errno = ENOMEM;
        return NULL;
    }
    return calloc(n, size);
}

void *vkr__realloc(void *p, size_t size)
{
    if (should_fail(size)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, size);
}

void vkr__free(void *p)
{
    free(p);
}

bool vkr__alloc_arm(void)
{
    const char *s = getenv(VKR__FAIL_ALLOC_ENV);
    unsigned long long v;
    char *end;

    if (s == NULL || s[0] == '\0')
        return true;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || s[0] == '-' || v == 0) {
        vkr__log(VKR_LOG_ERROR, "%s='%s': expected a positive allocation number", VKR__FAIL_ALLOC_ENV, s);
        return false;
    }
    atomic_store(&counted, 0);
    atomic_store(&fail_at, v);
    vkr__log(VKR_LOG_WARN, "%s=%llu: test mode, allocation %llu after start-up will fail", VKR__FAIL_ALLOC_ENV, v, v);
    return true;
}
