/* The daemon's listening socket.  Socket activation follows sd_listen_fds(3): the variables are
 * trusted only when LISTEN_PID is this process, and the fd only when it really is a listening
 * AF_UNIX SOCK_STREAM socket.  Otherwise the path rules apply (Wayland's wl_socket_lock, OpenBSD
 * httpd's control.c): PATH.lock is opened (never through a symlink) and flock()ed first, so of
 * two daemons started on one path exactly one goes on; an existing file at the path is replaced
 * only if it is a socket nobody answers on; the umask is set around bind() so the socket is 0600
 * from its first instant, and only then given --socket-group and widened to --socket-mode. */
#include "listen.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

_Static_assert(sizeof(((struct sockaddr_un *)0)->sun_path) == VKR__SOCKET_PATH_MAX, "sun_path size");

/* Make path free to bind: refuse a live socket, a symlink or a non-socket; unlink a stale one. */
static int prepare_socket_path(const char *path)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd, live, connect_errno;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        vkr__log(VKR_LOG_ERROR, "socket %s: %s", path, strerror(errno));
        return -1;
    }
    if (S_ISLNK(st.st_mode)) {
        vkr__log(VKR_LOG_ERROR, "socket %s is a symbolic link: refusing to use it", path);
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        vkr__log(VKR_LOG_ERROR, "socket %s exists and is not a socket: refusing to replace it", path);
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        vkr__log(VKR_LOG_ERROR, "socket: %s", strerror(errno));
        return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    live = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    connect_errno = errno;
    close(fd);
    if (live) {
        vkr__log(VKR_LOG_ERROR, "socket %s is in use by a running daemon", path);
        return -1;
    }
    if (connect_errno != ECONNREFUSED) {
        vkr__log(VKR_LOG_ERROR, "socket %s: cannot tell whether it is in use: %s", path, strerror(connect_errno));
        return -1;
    }
    vkr__log(VKR_LOG_INFO, "replacing stale socket %s", path);
    if (unlink(path) < 0 && errno != ENOENT) {
        vkr__log(VKR_LOG_ERROR, "socket %s: unlink: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

#define LOCK_TRIES 8   /* a lock file unlinked under us by a daemon that was exiting: open it again */

/* Open and flock() path + ".lock".  The lock file's inode must still be the one at the path once
 * locked (a daemon that exits unlinks its lock file while it holds it; one that opened the old
 * file before that would otherwise lock a file nobody else sees).  Returns 0 or -1 (logged). */
static int take_lock(const char *path, vkr__listener_t *l)
{
    struct stat fst, pst;

    snprintf(l->lock_path, sizeof l->lock_path, "%s%s", path, VKR__LOCK_SUFFIX);
    for (int attempt = 0; attempt < LOCK_TRIES; attempt++) {
        int fd = open(l->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

        if (fd < 0) {
            vkr__log(VKR_LOG_ERROR, "lock file %s: %s%s", l->lock_path, strerror(errno),
                     errno == ELOOP ? " (a symbolic link: refusing to use it)" : "");
            return -1;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;

            close(fd);
            if (e == EWOULDBLOCK)
                vkr__log(VKR_LOG_ERROR, "socket %s is in use: another vkresampled holds its lock file %s", path, l->lock_path);
            else
                vkr__log(VKR_LOG_ERROR, "lock file %s: flock: %s", l->lock_path, strerror(e));
            return -1;
        }
        if (fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode)) {
            vkr__log(VKR_LOG_ERROR, "lock file %s is not a regular file", l->lock_path);
            close(fd);
            return -1;
        }
        if (lstat(l->lock_path, &pst) == 0 && pst.st_dev == fst.st_dev && pst.st_ino == fst.st_ino) {
            l->lock_fd = fd;
            return 0;
        }
        close(fd);   /* unlinked (or replaced) while we waited for it: take the new one */
    }
    vkr__log(VKR_LOG_ERROR, "lock file %s keeps changing under us", l->lock_path);
    return -1;
}

static void release_lock(vkr__listener_t *l)
{
    if (l->lock_fd < 0)
        return;
    if (unlink(l->lock_path) < 0 && errno != ENOENT)
        vkr__log(VKR_LOG_WARN, "unlink %s: %s", l->lock_path, strerror(errno));
    close(l->lock_fd);
    l->lock_fd = -1;
}

/* The systemd socket, if LISTEN_PID names this process: 1 taken, 0 none offered, -1 refused. */
static int take_activated(vkr__listener_t *l)
{
    const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
    struct sockaddr_un sa;
    socklen_t len = sizeof sa;
    int domain = 0, type = 0, listening = 0, flags, fd = VKR__LISTEN_FDS_START;
    socklen_t ilen = sizeof(int);
    char *end;
    long pid, n;

    if (pid_s == NULL || fds_s == NULL)
        return 0;
    errno = 0;
    pid = strtol(pid_s, &end, 10);
    if (errno != 0 || *end != '\0' || pid != (long)getpid()) {
        vkr__log(VKR_LOG_DEBUG, "LISTEN_PID=%s is not this process (%ld): no socket activation", pid_s, (long)getpid());
        return 0;
    }
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    n = strtol(fds_s, &end, 10);
    if (*end != '\0' || n != 1) {
        vkr__log(VKR_LOG_ERROR, "socket activation: LISTEN_FDS=%s: vkresampled takes exactly one socket", fds_s);
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &ilen) != 0 || domain != AF_UNIX ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ilen) != 0 || type != SOCK_STREAM ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen) != 0 || !listening) {
        vkr__log(VKR_LOG_ERROR, "socket activation: fd %d is not a listening Unix stream socket (domain %d, type %d, listening %d)", fd,
                 domain, type, listening);
        return -1;
    }
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        vkr__log(VKR_LOG_ERROR, "socket activation: fd %d: fcntl: %s", fd, strerror(errno));
        return -1;
    }
    l->fd = fd;
    l->activated = true;
    memset(&sa, 0, sizeof sa);
    if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0 && len > sizeof(sa_family_t) && sa.sun_path[0] != '\0')
        snprintf(l->path, sizeof l->path, "%.*s", (int)sizeof sa.sun_path, sa.sun_path);
    return 1;
}

int vkr__listen_open(const vkr__listen_config_t *cfg, vkr__listener_t *l)
{
    const char *socket_path = cfg->path;
    struct sockaddr_un sa;
    size_t len = strlen(socket_path);
    mode_t old_umask;
    int rc, fd = -1;

    memset(l, 0, sizeof *l);
    l->fd = -1;
    l->lock_fd = -1;
    rc = take_activated(l);
    if (rc != 0)
        return rc > 0 ? 0 : -1;
    if (len == 0 || len >= sizeof sa.sun_path) {
        vkr__log(VKR_LOG_ERROR, "socket path '%s' is %zu bytes: it must be 1..%zu", socket_path, len, sizeof sa.sun_path - 1);
        return -1;
    }
    if (take_lock(socket_path, l) < 0)
        return -1;
    if (prepare_socket_path(socket_path) < 0)
        goto fail;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        vkr__log(VKR_LOG_ERROR, "socket: %s", strerror(errno));
        goto fail;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, socket_path, len + 1);
    old_umask = umask(0177);              /* the socket is 0600 from the first instant */
    _Static_assert(VKR_DEFAULT_SOCKET_MODE == (0777 & ~0177), "umask and default mode agree");
    rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old_umask);
    if (rc != 0) {
        vkr__log(VKR_LOG_ERROR, "bind %s: %s", socket_path, strerror(errno));
        goto fail;
    }
    memcpy(l->path, socket_path, len + 1);
    /* the socket is ours and 0600: only now may others get in, by group and mode */
    if (cfg->set_group && lchown(l->path, (uid_t)-1, cfg->group) != 0) {
        vkr__log(VKR_LOG_ERROR, "socket %s: --socket-group %u: %s", l->path, (unsigned)cfg->group, strerror(errno));
        goto fail_unlink;
    }
    if (cfg->mode != VKR_DEFAULT_SOCKET_MODE && chmod(l->path, (mode_t)cfg->mode) != 0) {
        vkr__log(VKR_LOG_ERROR, "socket %s: --socket-mode %04o: %s", l->path, cfg->mode, strerror(errno));
        goto fail_unlink;
    }
    if (listen(fd, VKR__LISTEN_BACKLOG) != 0) {
        vkr__log(VKR_LOG_ERROR, "listen %s: %s", l->path, strerror(errno));
        goto fail_unlink;
    }
    l->fd = fd;
    return 0;

fail_unlink:
    unlink(l->path);
fail:
    if (fd >= 0)
        close(fd);
    l->path[0] = '\0';
    release_lock(l);
    return -1;
}

void vkr__listen_close(vkr__listener_t *l)
{
    if (l->fd < 0)
        return;
    close(l->fd);
    l->fd = -1;
    if (!l->activated && l->path[0] != '\0' && unlink(l->path) < 0 && errno != ENOENT)
        vkr__log(VKR_LOG_WARN, "unlink %s: %s", l->path, strerror(errno));
    release_lock(l);
}
