/* Test support for C tests: a real vkresampled per test, on a private socket, started with
 * --ready-fd so that no test sleeps to wait for it, under $VKR_DAEMON_WRAPPER when it is set
 * (`meson test --setup=valgrind`), as tests/support/vkr_testlib.py does for the Python tests. */
#include "daemon_proc.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ARGS 64

int test_daemon_start(test_daemon_t *d, const char *binary, const char *const *extra)
{
    const char *argv[MAX_ARGS];
    const char *wrapper_env = getenv("VKR_DAEMON_WRAPPER");
    char ready_arg[16], line[16], wrapper[1024];
    int pipefd[2], n = 0, logfd;
    ssize_t got;

    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "/tmp/vkr-ctest-XXXXXX");
    if (mkdtemp(d->dir) == NULL || chmod(d->dir, 0700) != 0 || pipe(pipefd) != 0) {
        perror("test daemon: set-up");
        return -1;
    }
    snprintf(d->socket, sizeof d->socket, "%s/s.sock", d->dir);
    snprintf(d->log, sizeof d->log, "%s/daemon.log", d->dir);
    snprintf(ready_arg, sizeof ready_arg, "%d", pipefd[1]);
    if (wrapper_env != NULL && wrapper_env[0] != '\0') {
        snprintf(wrapper, sizeof wrapper, "%s", wrapper_env);
        for (char *tok = strtok(wrapper, " "); tok != NULL && n < MAX_ARGS / 2; tok = strtok(NULL, " "))
            argv[n++] = tok;
    }
    argv[n++] = binary;
    argv[n++] = "--socket";
    argv[n++] = d->socket;
    argv[n++] = "--ready-fd";
    argv[n++] = ready_arg;
    for (; extra != NULL && *extra != NULL && n < MAX_ARGS - 1; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    d->pid = fork();
    if (d->pid < 0) {
        perror("test daemon: fork");
        return -1;
    }
    if (d->pid == 0) {
        close(pipefd[0]);
        logfd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (logfd >= 0) {
            dup2(logfd, 2);
            close(logfd);
        }
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    got = read(pipefd[0], line, sizeof line - 1);
    close(pipefd[0]);
    if (got != 6 || memcmp(line, "ready\n", 6) != 0) {
        fprintf(stderr, "test daemon: %s did not become ready (see %s)\n", binary, d->log);
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        return -1;
    }
    return 0;
}

int test_daemon_stop(test_daemon_t *d)
{
    int status = 0, rc;

    kill(d->pid, SIGTERM);
    if (waitpid(d->pid, &status, 0) < 0)
        return -1;
    rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (rc != 0) {
        fprintf(stderr, "test daemon: exit status %d; its log is %s\n", rc, d->log);
        return rc;
    }
    unlink(d->socket);
    unlink(d->log);
    rmdir(d->dir);
    return 0;
}
