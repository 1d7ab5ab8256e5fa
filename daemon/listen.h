/* The daemon's listening socket: handed over by systemd (socket activation: LISTEN_FDS and
 * LISTEN_PID) or bound at a path under the socket-file rules (mode 0600 from the first instant,
 * then --socket-group / --socket-mode; PATH.lock held with flock() before a stale socket is
 * replaced, so that of two daemons racing on one path exactly one wins; a live socket, a symlink
 * or a non-socket refused). */
#ifndef VKR_DAEMON_LISTEN_H
#define VKR_DAEMON_LISTEN_H

#include <stdbool.h>
#include <sys/types.h>

#define VKR__LISTEN_BACKLOG 128          /* listen(2) backlog of a socket the daemon binds */
#define VKR__LISTEN_FDS_START 3          /* systemd passes sockets from fd 3 (sd_listen_fds) */
#define VKR__SOCKET_PATH_MAX 108         /* sizeof sockaddr_un.sun_path, NUL included */
#define VKR__LOCK_SUFFIX ".lock"         /* the lock file is the socket path plus this */
#define VKR_DEFAULT_SOCKET_MODE 0600     /* --socket-mode: owner read and write only */

/* How to create the socket file (unused under socket activation). */
typedef struct {
    const char *path;
    unsigned mode;                       /* permission bits, 0600..0777 (owner rw always set) */
    bool set_group;                      /* chown the socket to group (--socket-group) */
    gid_t group;
} vkr__listen_config_t;

typedef struct {
    int fd;                              /* non-blocking, close-on-exec, listening */
    bool activated;                      /* systemd's socket: the daemon neither binds nor unlinks it */
    char path[VKR__SOCKET_PATH_MAX];     /* the path it listens on ("" if unnamed) */
    int lock_fd;                         /* PATH.lock, flock()ed for the daemon's life; -1 if none */
    char lock_path[VKR__SOCKET_PATH_MAX + sizeof VKR__LOCK_SUFFIX];
} vkr__listener_t;

/* Take systemd's socket when LISTEN_PID is this process and LISTEN_FDS is 1 (the variables are
 * then removed from the environment), else lock cfg->path + ".lock" and bind cfg->path (umask
 * 0177 around bind(), then the group and mode asked for).  Returns 0, or -1 with the reason
 * logged (an activated fd that is not a listening Unix stream socket, LISTEN_FDS other than 1,
 * the lock held by another daemon, a path that breaks the rules, a group the daemon cannot give
 * the socket). */
int vkr__listen_open(const vkr__listen_config_t *cfg, vkr__listener_t *l);

/* Close the socket and, if the daemon bound it, unlink its path, then its lock file (while the
 * lock is still held) and release the lock.  Idempotent. */
void vkr__listen_close(vkr__listener_t *l);

#endif
