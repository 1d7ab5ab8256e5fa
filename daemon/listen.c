/* The daemon's listening socket.  Socket activation follows sd_listen_fds(3): the variables are
 * trusted only when LISTEN_PID is this process, and the fd only when it really is a listening
 * AF_UNIX SOCK_STREAM socket.  Otherwise the path rules apply: the umask is set around bind() so
 * the socket is 0600 from its first instant, and an existing file at the path is replaced only if
 * it is a socket nobody answers on. */
#include "listen.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int vkr__listen_open(const char *socket_path, vkr__listener_t *l)
{
    struct sockaddr_un sa;
    size_t len = strlen(socket_path);
    mode_t old_umask;
    int rc, fd = -1;

    memset(l, 0, sizeof *l);
    l->fd = -1;
    rc = take_activated(l);
    if (rc != 0)
        return rc > 0 ? 0 : -1;
    if (len == 0 || len >= sizeof sa.sun_path) {
        vkr__log(VKR_LOG_ERROR, "socket path '%s' is %zu bytes: it must be 1..%zu", socket_path, len, sizeof sa.sun_path - 1);
        return -1;
    }
    if (prepare_socket_path(socket_path) < 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        vkr__log(VKR_LOG_ERROR, "socket: %s", strerror(errno));
        goto fail;
    }
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, socket_path, len + 1);
    old_umask = umask(0177);              /* the socket is 0600 from the first instant */
    rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old_umask);
    if (rc != 0) {
        vkr__log(VKR_LOG_ERROR, "bind %s: %s", socket_path, strerror(errno));
        goto fail;
    }
    memcpy(l->path, socket_path, len + 1);
    if (listen(fd, VKR__LISTEN_BACKLOG) != 0) {
        vkr__log(VKR_LOG_ERROR, "listen %s: %s", l->path, strerror(errno));
        unlink(l->path);
        goto fail;
    }
    l->fd = fd;
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    l->path[0] = '\0';
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
}
