/* Test support for C tests: start a real vkresampled on a private socket in a fresh 0700
 * directory, wait for its readiness line (no sleeps), stop it with SIGTERM and report how it
 * exited.  Not part of any library. */
#ifndef VKR_TEST_DAEMON_PROC_H
#define VKR_TEST_DAEMON_PROC_H

#include <sys/types.h>

typedef struct {
    pid_t pid;
    char dir[256];         /* the private directory (socket and log live there) */
    char socket[300];      /* the socket path */
    char log[300];         /* the daemon's stderr */
} test_daemon_t;

/* Start binary --socket D/s.sock --ready-fd N plus extra[0..] (NULL-terminated) with stderr to
 * D/daemon.log, prefixed by the words of $VKR_DAEMON_WRAPPER if set, and wait for "ready\n".
 * Returns 0, or -1 with a message on stderr. */
int test_daemon_start(test_daemon_t *d, const char *binary, const char *const *extra);

/* SIGTERM, wait, and remove the directory after a clean stop (else its log is kept and named on
 * stderr).  Returns the exit status (0 for a clean stop), or -1 when it was killed by a signal. */
int test_daemon_stop(test_daemon_t *d);

#endif
