/* Byte streams with descriptors over AF_UNIX sockets (see fd_passing.h). */
#include "fd_passing.h"

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * VKR__FD_PASSING_MAX)];
} fd_control_t;

ssize_t vkr__send_with_fds(int sock, const struct iovec *iov, int iovcnt, const int *fds, unsigned n_fds)
{
    fd_control_t ctrl;
    struct msghdr msg;

    memset(&msg, 0, sizeof msg);
    msg.msg_iov = (struct iovec *)(uintptr_t)iov;
    msg.msg_iovlen = (size_t)iovcnt;
    if (n_fds > 0) {
        struct cmsghdr *cm;

        if (n_fds > VKR__FD_PASSING_MAX)
            n_fds = VKR__FD_PASSING_MAX;
        memset(&ctrl, 0, sizeof ctrl);
        msg.msg_control = ctrl.buf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
        cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
    }
    return sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

ssize_t vkr__recv_with_fds(int sock, void *buf, size_t len, int *fds, unsigned *n_fds, unsigned max_fds, bool *fds_lost)
{
    fd_control_t ctrl;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg;
    ssize_t n;

    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctrl.buf;
    msg.msg_controllen = sizeof ctrl.buf;
    n = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0)
        return n;
    if (msg.msg_flags & MSG_CTRUNC)
        *fds_lost = true;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
        size_t k;

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;

            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            if (*n_fds < max_fds) {
                fds[(*n_fds)++] = fd;
            } else {
                close(fd);
                *fds_lost = true;
            }
        }
    }
    return n;
}
