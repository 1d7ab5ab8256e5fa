/* The daemon's listening socket: handed over by systemd (socket activation: LISTEN_FDS and
 * LISTEN_PID) or bound at a path under the socket-file rules (mode 0600 from the first instant,
 * a stale socket replaced, a live one, a symlink or a non-socket refused). */
#ifndef VKR_DAEMON_LISTEN_H
#define VKR_DAEMON_LISTEN_H

#include <stdbool.h>

#define VKR__LISTEN_BACKLOG 128          /* listen(2) backlog of a socket the daemon binds */
#define VKR__LISTEN_FDS_START 3          /* systemd passes sockets from fd 3 (sd_listen_fds) */
#define VKR__SOCKET_PATH_MAX 108         /* sizeof sockaddr_un.sun_path, NUL included */

typedef struct {
    int fd;                              /* non-blocking, close-on-exec, listening */
    bool activated;                      /* systemd's socket: the daemon neither binds nor unlinks it */
    char path[VKR__SOCKET_PATH_MAX];     /* the path it listens on ("" if unnamed) */
} vkr__listener_t;

/* Take systemd's socket when LISTEN_PID is this process and LISTEN_FDS is 1 (the variables are
 * then removed from the environment), else bind socket_path.  Returns 0, or -1 with the reason
 * logged (an activated fd that is not a listening Unix stream socket, LISTEN_FDS other than 1, a
 * path that breaks the rules). */
int vkr__listen_open(const char *socket_path, vkr__listener_t *l);

/* Close the socket and, if the daemon bound it, unlink its path.  Idempotent. */
void vkr__listen_close(vkr__listener_t *l);

#endif
