/* The daemon's replaceable allocator for everything on the job path (connections, frame bodies,
 * jobs, outputs, the uid accounts, the CPU backend's tables and scratch rows): one place where an
 * allocation can be made to fail on purpose, so that a test can prove every such failure ends in
 * a clean VKR_E_NOMEM or a closed connection (libuv's test-loop-oom.c idea).
 *
 * Test-only switch (documented here and in the README's testing section, not in --help):
 * VKRESAMPLE_FAIL_ALLOC_AT=N makes the N-th vkr__ allocation counted after vkr__alloc_arm() return
 * NULL, once; every other allocation succeeds.  Unset (the normal case) nothing is counted. */
#ifndef VKR_DAEMON_ALLOC_H
#define VKR_DAEMON_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VKR__FAIL_ALLOC_ENV "VKRESAMPLE_FAIL_ALLOC_AT"   /* test only: fail the N-th allocation */

/* malloc / calloc / realloc / free with the failure switch.  Safe from any thread.  free(NULL)
 * is a no-op, as for free(3).  Memory from these goes back through vkr__free (it is plain libc
 * memory, so free(3) works too, but keep them paired). */
void *vkr__malloc(size_t size);
void *vkr__calloc(size_t n, size_t size);
void *vkr__realloc(void *p, size_t size);
void vkr__free(void *p);

/* Start counting allocations (the server calls this once it listens, so "the N-th allocation"
 * means the N-th one after start-up).  Reads VKRESAMPLE_FAIL_ALLOC_AT; returns false, with a
 * message logged, when it is set but is not a positive integer. */
bool vkr__alloc_arm(void);

#endif
