/* Byte streams with descriptors over AF_UNIX sockets: one non-blocking sendmsg / recvmsg that
 * carries SCM_RIGHTS descriptors, shared by the daemon's connections and the client library.
 * The framing above it (headers, bodies, which frame owns which descriptor) is the caller's. */
#ifndef VKR_TRANSPORT_FD_PASSING_H
#define VKR_TRANSPORT_FD_PASSING_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/uio.h>

#define VKR__FD_PASSING_MAX 3u   /* descriptors one call carries: VKR_MAX_FDS_PER_FRAME */

/* Send iov[0..iovcnt) on sock without blocking and without SIGPIPE; when n_fds > 0 (at most
 * VKR__FD_PASSING_MAX) the descriptors ride with the first byte sent.  Returns the bytes sent, or
 * -1 with errno (EAGAIN: nothing sent, the descriptors were not sent either). */
ssize_t vkr__send_with_fds(int sock, const struct iovec *iov, int iovcnt, const int *fds, unsigned n_fds);

/* Receive up to len bytes into buf without blocking; descriptors that arrive are opened
 * close-on-exec and appended to fds[*n_fds ..), at most max_fds in all.  Any beyond that, and
 * control data the kernel had to truncate, set *fds_lost (extra descriptors are closed, never
 * leaked).  Returns the bytes received (0: the peer closed), or -1 with errno. */
ssize_t vkr__recv_with_fds(int sock, void *buf, size_t len, int *fds, unsigned *n_fds, unsigned max_fds, bool *fds_lost);

#endif
