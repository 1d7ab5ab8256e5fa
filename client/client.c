/* libvkresample: the client side of protocol v1 over a blocking Unix stream socket.  Owns the
 * connection handle, request ids, full-write / full-read loops (EINTR-safe, MSG_NOSIGNAL), the
 * checks a reply must pass before the caller sees it (request id, type, size bounds, output
 * shape against the job's plan) and the error text of the last call.  All frame encoding and
 * decoding is proto/'s (vkr_proto.h): this file never lays out bytes itself. */
#include "vkresample.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "vkr_proto.h"

#define VKR_CLIENT_ERROR_MAX (VKR_ERROR_FIELD_MAX + VKR_ERROR_MESSAGE_MAX + 64u)

struct vkr_client {
    int fd;                              /* -1 once the connection failed (I/O or bad reply) */
    uint32_t next_request_id;            /* never 0 */
    char last_error[VKR_CLIENT_ERROR_MAX];
};

_Static_assert(VKR_TENSOR_MAX_RANK == VKR_MAX_RANK, "public and wire rank limits differ");
_Static_assert(VKR_INTERP_MAX_SPATIAL == VKR_MAX_SPATIAL, "public and wire spatial limits differ");
_Static_assert(VKR_SERVER_NAME_MAX == VKR_DEVICE_NAME_MAX, "public and wire name limits differ");

/* ---------------------------------------------------------------- errors */

__attribute__((format(printf, 3, 4)))
static int set_error(vkr_client_t *c, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->last_error, sizeof c->last_error, fmt, ap);
    va_end(ap);
    return code;
}

/* "field: message", or "message" when there is no field. */
static void format_error(char *buf, size_t len, const vkr_error_t *e)
{
    if (e->field[0] != '\0')
        snprintf(buf, len, "%s: %s", e->field, e->message);
    else
        snprintf(buf, len, "%s", e->message);
}

/* The connection is out of sync or dead: no later call may use it. */
static void drop_connection(vkr_client_t *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

VKR_EXPORT const char *vkr_strerror(int code)
{
    switch (code) {
    case VKR_OK: return "success";
    case VKR_E_IO: return "connection to the daemon failed";
    case VKR_E_PROTOCOL: return "malformed frame";
    case VKR_E_VERSION: return "unsupported protocol version";
    case VKR_E_TOO_LARGE: return "a length or tensor is over a limit";
    case VKR_E_VALUE: return "invalid argument";
    case VKR_E_NOT_IMPLEMENTED: return "mode and input rank combination not implemented by PyTorch";
    case VKR_E_SIZE: return "invalid input or output size";
    case VKR_E_DTYPE: return "dtype or layout not supported";
    case VKR_E_BACKEND_UNAVAILABLE: return "the requested backend is not available in the daemon";
    case VKR_E_BACKEND: return "the backend failed while running the job";
    case VKR_E_NOMEM: return "out of memory";
    case VKR_E_SHUTDOWN: return "the daemon is shutting down";
    case VKR_E_UNSUPPORTED: return "valid for PyTorch but not supported by vkresample";
    case VKR_E_INVALID_ARG: return "bad argument to a library call";
    case VKR_E_SERVER: return "unexpected reply from the daemon";
    default: return "unknown status code";
    }
}

VKR_EXPORT const char *vkr_code_name(int code)
{
    return vkr_proto_code_name(code);
}

VKR_EXPORT const char *vkr_last_error(const vkr_client_t *c)
{
    return c != NULL ? c->last_error : "";
}

VKR_EXPORT int vkr_mode_from_name(const char *name)
{
    int mode = name != NULL ? vkr_proto_mode_from_name(name) : 0;

    return mode > 0 ? mode : VKR_E_INVALID_ARG;
}

VKR_EXPORT const char *vkr_mode_name(int mode)
{
    return vkr_proto_mode_name(mode);
}

VKR_EXPORT int vkr_grid_mode_from_name(const char *name)
{
    int mode = name != NULL ? vkr_proto_grid_mode_from_name(name) : 0;

    return mode > 0 ? mode : VKR_E_INVALID_ARG;
}

VKR_EXPORT const char *vkr_grid_mode_name(int mode)
{
    return vkr_proto_grid_mode_name(mode);
}

VKR_EXPORT int vkr_padding_from_name(const char *name)
{
    int padding = name != NULL ? vkr_proto_padding_from_name(name) : 0;

    return padding > 0 ? padding : VKR_E_INVALID_ARG;
}

VKR_EXPORT const char *vkr_padding_name(int padding)
{
    return vkr_proto_padding_name(padding);
}

VKR_EXPORT int vkr_backend_from_name(const char *name)
{
    int backend = name != NULL ? vkr_proto_backend_from_name(name) : -1;

    return backend >= 0 ? backend : VKR_E_INVALID_ARG;
}

VKR_EXPORT const char *vkr_backend_name(int backend)
{
    return vkr_proto_backend_name(backend);
}

/* ---------------------------------------------------------------- connection */

VKR_EXPORT int vkr_default_socket_path(char *buf, size_t len)
{
    const char *env;
    int n;

    if (buf == NULL)
        return VKR_E_INVALID_ARG;
    env = getenv("VKRESAMPLE_SOCKET");
    if (env != NULL && env[0] != '\0') {
        n = snprintf(buf, len, "%s", env);
    } else {
        env = getenv("XDG_RUNTIME_DIR");
        if (env != NULL && env[0] != '\0')
            n = snprintf(buf, len, "%s/vkresample.sock", env);
        else
            n = snprintf(buf, len, "/tmp/vkresample-%lu.sock", (unsigned long)getuid());
    }
    if (n < 0 || (size_t)n >= len) {
        if (len > 0)
            buf[0] = '\0';
        return VKR_E_TOO_LARGE;
    }
    return VKR_OK;
}

/* Wait for an interrupted connect() to finish.  Returns 0, or -1 with errno set. */
static int wait_connected(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    socklen_t len = sizeof(int);
    int err = 0;

    while (poll(&pfd, 1, -1) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return -1;
    if (err != 0) {
        errno = err;
        return -1;
    }
    return 0;
}

VKR_EXPORT int vkr_connect(const char *socket_path, vkr_client_t **out)
{
    char path[VKR_SOCKET_PATH_MAX];
    struct sockaddr_un addr;
    vkr_client_t *c = NULL;
    size_t path_len;
    int rc, saved_errno;

    if (out == NULL)
        return VKR_E_INVALID_ARG;
    *out = NULL;
    if (socket_path == NULL) {
        rc = vkr_default_socket_path(path, sizeof path);
        if (rc != VKR_OK) {
            errno = ENAMETOOLONG;
            return VKR_E_INVALID_ARG;
        }
        socket_path = path;
    }
    path_len = strlen(socket_path);
    if (path_len == 0 || path_len >= sizeof addr.sun_path) {
        errno = path_len == 0 ? ENOENT : ENAMETOOLONG;
        return VKR_E_INVALID_ARG;
    }

    c = calloc(1, sizeof *c);
    if (c == NULL) {
        errno = ENOMEM;
        return VKR_E_NOMEM;
    }
    c->next_request_id = 1;
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        rc = VKR_E_IO;
        goto fail;
    }
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, socket_path, path_len + 1);
    if (connect(c->fd, (const struct sockaddr *)&addr, sizeof addr) != 0) {
        /* POSIX: an interrupted connect() goes on asynchronously; wait for its outcome. */
        if (errno != EINTR || wait_connected(c->fd) != 0) {
            rc = VKR_E_IO;
            goto fail;
        }
    }
    *out = c;
    return VKR_OK;

fail:
    saved_errno = errno;
    if (c->fd >= 0)
        close(c->fd);
    free(c);
    errno = saved_errno;
    return rc;
}

VKR_EXPORT void vkr_close(vkr_client_t *c)
{
    if (c == NULL)
        return;
    drop_connection(c);
    free(c);
}

/* ---------------------------------------------------------------- raw I/O */

/* Send every byte of iov[0..iovcnt) (the array is consumed).  Returns 0 or -errno. */
static int send_all(int fd, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        struct msghdr msg;
        ssize_t n;

        if (iov->iov_len == 0) {
            iov++;
            iovcnt--;
            continue;
        }
        memset(&msg, 0, sizeof msg);
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)iovcnt;
        n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        while (n > 0) {
            size_t step = (size_t)n < iov->iov_len ? (size_t)n : iov->iov_len;

            iov->iov_base = (uint8_t *)iov->iov_base + step;
            iov->iov_len -= step;
            n -= (ssize_t)step;
            if (iov->iov_len == 0) {
                iov++;
                iovcnt--;
            }
        }
    }
    return 0;
}

/* Read exactly len bytes.  Returns len, the bytes read before end of stream (< len), or -errno. */
static ssize_t recv_all(int fd, void *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        size_t want = len - got;
        ssize_t n;

        if (want > (size_t)SSIZE_MAX)
            want = (size_t)SSIZE_MAX;
        n = recv(fd, (uint8_t *)buf + got, want, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* ---------------------------------------------------------------- frames */

static uint32_t take_request_id(vkr_client_t *c)
{
    uint32_t id = c->next_request_id++;

    if (c->next_request_id == 0)
        c->next_request_id = 1;
    return id;
}

/* Send one frame: header, then the body in n_parts parts (fixed bytes, then tensor data).
 * Returns VKR_OK, or VKR_E_IO with last_error set and *send_errno the failure (EPIPE: the daemon
 * may have answered before closing). */
#define SEND_MAX_PARTS (1u + VKR_MAX_TENSORS)
static int send_frame(vkr_client_t *c, uint16_t type, uint32_t request_id,
                      const struct iovec *parts, unsigned n_parts, int *send_errno)
{
    uint8_t hdr_bytes[VKR_FRAME_HEADER_BYTES];
    vkr_frame_header_t hdr;
    struct iovec iov[1 + SEND_MAX_PARTS];
    unsigned i;
    int rc;

    memset(&hdr, 0, sizeof hdr);
    hdr.magic = VKR_PROTO_MAGIC;
    hdr.version = VKR_PROTO_VERSION;
    hdr.type = type;
    hdr.request_id = request_id;
    iov[0].iov_base = hdr_bytes;
    iov[0].iov_len = sizeof hdr_bytes;
    for (i = 0; i < n_parts && i < SEND_MAX_PARTS; i++) {
        iov[1 + i] = parts[i];
        hdr.body_len += (uint64_t)parts[i].iov_len;
    }
    vkr_header_encode(&hdr, hdr_bytes);
    rc = send_all(c->fd, iov, (int)(1 + i));
    *send_errno = -rc;
    if (rc != 0)
        return set_error(c, VKR_E_IO, "sending the request to the daemon failed: %s", strerror(-rc));
    return VKR_OK;
}

/* Read the reply to request_id.  expect_type is the success type; an ERROR frame is decoded
 * and its code returned with last_error "field: message".  max_result_body bounds a RESULT body
 * (every other type is bounded by VKR_MAX_CONTROL_BODY_BYTES in vkr_header_decode).  On VKR_OK,
 * *body_out is a malloc'd buffer of *body_len bytes owned by the caller.  Returns VKR_OK, a
 * daemon code, VKR_E_IO (stream failed), VKR_E_SERVER (bad or unexpected frame) or
 * VKR_E_NOMEM; the last three leave the connection dropped (a daemon code never does). */
static int recv_reply(vkr_client_t *c, uint32_t request_id, uint16_t expect_type,
                      uint64_t max_result_body, uint8_t **body_out, uint64_t *body_len)
{
    uint8_t hdr_bytes[VKR_FRAME_HEADER_BYTES];
    vkr_frame_header_t hdr;
    vkr_error_t derr, perr;
    uint8_t *body = NULL;
    ssize_t n;
    int rc;

    *body_out = NULL;
    *body_len = 0;
    n = recv_all(c->fd, hdr_bytes, sizeof hdr_bytes);
    if (n < 0) {
        rc = set_error(c, VKR_E_IO, "reading the daemon's reply failed: %s", strerror((int)-n));
        goto fail;
    }
    if (n == 0) {
        rc = set_error(c, VKR_E_IO, "the daemon closed the connection without replying");
        goto fail;
    }
    if ((size_t)n < sizeof hdr_bytes) {
        rc = set_error(c, VKR_E_IO, "the daemon closed the connection within a frame header "
                       "(%zd of %u bytes)", n, VKR_FRAME_HEADER_BYTES);
        goto fail;
    }
    memset(&perr, 0, sizeof perr);
    rc = vkr_header_decode(hdr_bytes, 0, max_result_body, &hdr, &perr);
    if (rc != VKR_OK) {
        char detail[VKR_CLIENT_ERROR_MAX];

        format_error(detail, sizeof detail, &perr);
        rc = set_error(c, VKR_E_SERVER, "bad frame header from the daemon (%s): %s",
                       vkr_proto_code_name(rc), detail);
        goto fail;
    }
    if (hdr.request_id != request_id) {
        rc = set_error(c, VKR_E_SERVER, "reply carries request_id %" PRIu32 ", expected %" PRIu32,
                       hdr.request_id, request_id);
        goto fail;
    }
    if (hdr.type != expect_type && hdr.type != VKR_MSG_ERROR) {
        rc = set_error(c, VKR_E_SERVER, "reply has message type %u, expected %u or ERROR (%u)",
                       (unsigned)hdr.type, (unsigned)expect_type, (unsigned)VKR_MSG_ERROR);
        goto fail;
    }
    if (hdr.body_len > (uint64_t)SIZE_MAX || hdr.body_len > (uint64_t)SSIZE_MAX) {
        rc = set_error(c, VKR_E_SERVER, "reply body_len %" PRIu64 " does not fit in memory",
                       hdr.body_len);
        goto fail;
    }
    body = malloc(hdr.body_len > 0 ? (size_t)hdr.body_len : 1);
    if (body == NULL) {
        rc = set_error(c, VKR_E_NOMEM, "cannot allocate %" PRIu64 " bytes for the reply",
                       hdr.body_len);
        goto fail;
    }
    n = recv_all(c->fd, body, (size_t)hdr.body_len);
    if (n < 0) {
        rc = set_error(c, VKR_E_IO, "reading the daemon's reply failed: %s", strerror((int)-n));
        goto fail;
    }
    if ((uint64_t)n < hdr.body_len) {
        rc = set_error(c, VKR_E_IO, "the daemon closed the connection within a reply body "
                       "(%zd of %" PRIu64 " bytes)", n, hdr.body_len);
        goto fail;
    }

    if (hdr.type == VKR_MSG_ERROR) {
        memset(&derr, 0, sizeof derr);
        memset(&perr, 0, sizeof perr);
        rc = vkr_error_decode(body, hdr.body_len, &derr, &perr);
        if (rc != VKR_OK) {
            char detail[VKR_CLIENT_ERROR_MAX];

            format_error(detail, sizeof detail, &perr);
            rc = set_error(c, VKR_E_SERVER, "malformed ERROR body from the daemon: %s", detail);
            goto fail;
        }
        free(body);
        if (derr.code >= 0) {
            /* An ERROR that claims success cannot be returned as success. */
            set_error(c, VKR_E_SERVER, "the daemon sent an ERROR with code %d: ", derr.code);
            format_error(c->last_error + strlen(c->last_error),
                         sizeof c->last_error - strlen(c->last_error), &derr);
            drop_connection(c);
            return VKR_E_SERVER;
        }
        format_error(c->last_error, sizeof c->last_error, &derr);
        return derr.code;
    }
    *body_out = body;
    *body_len = hdr.body_len;
    return VKR_OK;

fail:
    free(body);
    drop_connection(c);
    return rc;
}

static int check_usable(vkr_client_t *c)
{
    if (c->fd < 0)
        return set_error(c, VKR_E_IO, "the connection was closed after an earlier failure");
    c->last_error[0] = '\0';
    return VKR_OK;
}

/* ---------------------------------------------------------------- requests */

VKR_EXPORT int vkr_ping(vkr_client_t *c, vkr_server_info_t *info)
{
    vkr_error_t perr;
    vkr_pong_t pong;
    uint8_t *body = NULL;
    uint64_t body_len = 0;
    uint32_t id;
    int rc, send_errno;

    if (c == NULL)
        return VKR_E_INVALID_ARG;
    rc = check_usable(c);
    if (rc != VKR_OK)
        return rc;
    id = take_request_id(c);
    rc = send_frame(c, VKR_MSG_PING, id, NULL, 0, &send_errno);
    if (rc != VKR_OK) {
        drop_connection(c);
        goto out;
    }
    rc = recv_reply(c, id, VKR_MSG_PONG, 0, &body, &body_len);
    if (rc != VKR_OK)
        goto out;
    memset(&pong, 0, sizeof pong);
    memset(&perr, 0, sizeof perr);
    rc = vkr_pong_decode(body, body_len, &pong, &perr);
    if (rc != VKR_OK) {
        char detail[VKR_CLIENT_ERROR_MAX];

        format_error(detail, sizeof detail, &perr);
        rc = set_error(c, VKR_E_SERVER, "malformed PONG from the daemon: %s", detail);
        drop_connection(c);
        goto out;
    }
    if (info != NULL) {
        memset(info, 0, sizeof *info);
        memcpy(info->device_name, pong.device_name, sizeof info->device_name);
        info->device_name[sizeof info->device_name - 1] = '\0';
        info->backend_mask = pong.backend_mask;
        info->default_backend = (vkr_backend_id_t)pong.default_backend;
    }

out:
    free(body);
    return rc;
}

/* ---------------------------------------------------------------- jobs */

/* Check a caller's tensor (name: "input", "grid", "theta") and describe it in *desc (inline
 * storage, data view set).  Returns VKR_OK or VKR_E_INVALID_ARG / VKR_E_TOO_LARGE with
 * last_error naming the field. */
static int describe_tensor(vkr_client_t *c, const char *name, const vkr_tensor_t *t,
                           vkr_tensor_desc_t *desc)
{
    uint64_t elements;
    int i;

    if (t->rank < 1 || t->rank > VKR_TENSOR_MAX_RANK)
        return set_error(c, VKR_E_INVALID_ARG, "%s.rank: %d is outside 1..%d", name, t->rank,
                         VKR_TENSOR_MAX_RANK);
    for (i = 0; i < t->rank; i++) {
        if (t->shape[i] < 0)
            return set_error(c, VKR_E_INVALID_ARG, "%s.shape[%d]: %" PRId64 " is negative", name,
                             i, t->shape[i]);
    }
    if (!vkr_shape_elements(t->shape, (unsigned)t->rank, UINT64_MAX / sizeof(float), &elements)
        || elements > (uint64_t)SIZE_MAX / sizeof(float))
        return set_error(c, VKR_E_TOO_LARGE, "%s.shape: the element count overflows", name);
    if (elements > 0 && t->data == NULL)
        return set_error(c, VKR_E_INVALID_ARG, "%s.data: NULL for %" PRIu64 " elements", name,
                         elements);
    memset(desc, 0, sizeof *desc);
    desc->dtype = VKR_DTYPE_F32;
    desc->layout = VKR_LAYOUT_CONTIGUOUS;
    desc->rank = (uint8_t)t->rank;
    desc->storage = VKR_STORAGE_INLINE;
    for (i = 0; i < t->rank; i++)
        desc->shape[i] = t->shape[i];
    desc->data_bytes = elements * sizeof(float);
    desc->data = t->data;
    return VKR_OK;
}

/* Range checks shared by every op's arguments: an enum or count that cannot be put in its wire
 * field.  Returns VKR_OK or VKR_E_INVALID_ARG naming the field. */
static int check_range(vkr_client_t *c, const char *field, long value, long lo, long hi)
{
    if (value < lo || value > hi)
        return set_error(c, VKR_E_INVALID_ARG, "%s: %ld is outside %ld..%ld", field, value, lo, hi);
    return VKR_OK;
}

/* Fill job from F.interpolate's arguments.  Returns VKR_OK or VKR_E_INVALID_ARG /
 * VKR_E_TOO_LARGE with last_error naming the field. */
static int build_interpolate(vkr_client_t *c, const vkr_interpolate_args_t *args,
                             const vkr_tensor_t *in, vkr_job_t *job)
{
    int i, rc;

    memset(job, 0, sizeof *job);
    if ((rc = describe_tensor(c, "input", in, &job->input)) != VKR_OK
        || (rc = check_range(c, "n_size", args->n_size, 0, VKR_INTERP_MAX_SPATIAL)) != VKR_OK
        || (rc = check_range(c, "n_scale", args->n_scale, 0, VKR_INTERP_MAX_SPATIAL)) != VKR_OK
        || (rc = check_range(c, "mode", (long)args->mode, 0, UINT16_MAX)) != VKR_OK
        || (rc = check_range(c, "align_corners", (long)args->align_corners, 0, UINT8_MAX)) != VKR_OK
        || (rc = check_range(c, "recompute_scale_factor", (long)args->recompute_scale_factor, 0,
                             UINT8_MAX)) != VKR_OK
        || (rc = check_range(c, "antialias", args->antialias, 0, UINT8_MAX)) != VKR_OK
        || (rc = check_range(c, "backend", (long)args->backend, 0, UINT16_MAX)) != VKR_OK)
        return rc;
    job->op = VKR_OP_INTERPOLATE;
    job->backend = (uint16_t)args->backend;
    job->n_tensors = 1;
    job->interp.mode = (uint16_t)args->mode;
    job->interp.align_corners = (uint8_t)args->align_corners;
    job->interp.recompute_scale_factor = (uint8_t)args->recompute_scale_factor;
    job->interp.antialias = (uint8_t)args->antialias;
    job->interp.n_size = (uint8_t)args->n_size;
    job->interp.n_scale = (uint8_t)args->n_scale;
    for (i = 0; i < args->n_size; i++)
        job->interp.size[i] = args->size[i];
    for (i = 0; i < args->n_scale; i++)
        job->interp.scale_factor[i] = args->scale_factor[i];
    return VKR_OK;
}

/* The grid ops' common arguments: mode and padding (0 means PyTorch's default, bilinear and
 * zeros; affine_grid sends 0 for both), align_corners, backend, and the size list. */
static int build_grid_common(vkr_client_t *c, int op, int mode, int padding, int align_corners,
                             int backend, int n_size, const int64_t *size, int max_size,
                             vkr_job_t *job)
{
    int i, rc;

    if ((rc = check_range(c, "mode", mode, 0, UINT16_MAX)) != VKR_OK
        || (rc = check_range(c, "padding_mode", padding, 0, UINT16_MAX)) != VKR_OK
        || (rc = check_range(c, "align_corners", align_corners, 0, UINT8_MAX)) != VKR_OK
        || (rc = check_range(c, "backend", backend, 0, UINT16_MAX)) != VKR_OK
        || (rc = check_range(c, "n_size", n_size, 0, max_size)) != VKR_OK)
        return rc;
    job->op = (uint16_t)op;
    job->backend = (uint16_t)backend;
    job->n_tensors = (uint16_t)vkr_op_tensors(op);
    if (op != VKR_OP_AFFINE_GRID) {
        job->grid.mode = (uint16_t)(mode != 0 ? mode : VKR_GRID_BILINEAR);
        job->grid.padding_mode = (uint16_t)(padding != 0 ? padding : VKR_PADDING_ZEROS);
    }
    job->grid.align_corners = (uint8_t)align_corners;
    job->grid.n_size = (uint8_t)n_size;
    for (i = 0; i < n_size; i++)
        job->grid.size[i] = size[i];
    return VKR_OK;
}

/* Plan job locally, send it with its tensors' bytes, wait for the reply and check it against the
 * plan.  what names the op in messages.  On VKR_OK *output owns the result; on failure it is
 * left zeroed.  Returns the codes documented at vkr_interpolate. */
static int run_job(vkr_client_t *c, vkr_job_t *job, vkr_tensor_t *output)
{
    uint8_t fixed[VKR_SUBMIT_MAX_FIXED_BYTES];
    struct iovec parts[SEND_MAX_PARTS];
    const vkr_tensor_desc_t *tensors[VKR_MAX_TENSORS] = {&job->input, &job->aux};
    size_t fixed_len;
    vkr_plan_t plan;
    vkr_error_t plan_err, perr;
    vkr_result_t res;
    uint8_t *body = NULL;
    uint64_t body_len = 0, want_bytes = 0, max_result_body;
    float *data;
    uint32_t id;
    unsigned k, n_parts;
    int rc, plan_rc, send_errno = 0, i;

    (void)vkr_submit_encode_fixed(job, fixed, &fixed_len);
    parts[0].iov_base = fixed;
    parts[0].iov_len = fixed_len;
    n_parts = 1;
    for (k = 0; k < job->n_tensors && k < VKR_MAX_TENSORS; k++) {
        parts[n_parts].iov_base = (void *)(uintptr_t)tensors[k]->data;
        parts[n_parts].iov_len = (size_t)tensors[k]->data_bytes;
        n_parts++;
    }

    /* The output shape the daemon must return: the same planner, run here.  When it refuses
     * the job by PyTorch's rules the daemon refuses it too (with the message the user sees). */
    memset(&plan_err, 0, sizeof plan_err);
    plan_rc = vkr_plan_job(job, UINT64_MAX, &plan, &plan_err);
    if (plan_rc == VKR_OK) {
        if (plan.out_elements > (UINT64_MAX - VKR_RESULT_FIXED_BYTES) / sizeof(float)
            || plan.out_elements > (uint64_t)SIZE_MAX / sizeof(float)) {
            rc = set_error(c, VKR_E_TOO_LARGE, "size: the output element count %" PRIu64
                           " overflows", plan.out_elements);
            goto out;
        }
        want_bytes = plan.out_elements * sizeof(float);
        max_result_body = VKR_RESULT_FIXED_BYTES + want_bytes;
    } else {
        max_result_body = VKR_RESULT_FIXED_BYTES;
    }

    id = take_request_id(c);
    rc = send_frame(c, VKR_MSG_SUBMIT, id, parts, n_parts, &send_errno);
    if (rc != VKR_OK) {
        /* The daemon may have refused the job and closed before reading all of it: its
         * ERROR frame is then waiting in our receive queue. */
        if (send_errno == EPIPE || send_errno == ECONNRESET) {
            char send_msg[VKR_CLIENT_ERROR_MAX];

            memcpy(send_msg, c->last_error, sizeof send_msg);
            rc = recv_reply(c, id, VKR_MSG_RESULT, 0, &body, &body_len);
            if (rc < 0 && c->fd >= 0) {
                /* An ERROR frame (recv_reply keeps the connection only then): the daemon's own
                 * code and message. */
                drop_connection(c);
                goto out;
            }
            memcpy(c->last_error, send_msg, sizeof send_msg);
        }
        rc = VKR_E_IO;
        drop_connection(c);
        goto out;
    }

    rc = recv_reply(c, id, VKR_MSG_RESULT, max_result_body, &body, &body_len);
    if (rc != VKR_OK)
        goto out;
    memset(&res, 0, sizeof res);
    memset(&perr, 0, sizeof perr);
    rc = vkr_result_decode(body, body_len, &res, &perr);
    if (rc != VKR_OK) {
        char detail[VKR_CLIENT_ERROR_MAX];

        format_error(detail, sizeof detail, &perr);
        rc = set_error(c, VKR_E_SERVER, "malformed RESULT from the daemon: %s", detail);
        drop_connection(c);
        goto out;
    }
    if (plan_rc != VKR_OK) {
        char detail[VKR_CLIENT_ERROR_MAX];

        format_error(detail, sizeof detail, &plan_err);
        rc = set_error(c, VKR_E_SERVER, "the daemon returned a result for a job that PyTorch "
                       "refuses (%s)", detail);
        drop_connection(c);
        goto out;
    }
    if (res.output.rank != plan.out_rank || res.output.data_bytes != want_bytes
        || res.output.dtype != VKR_DTYPE_F32 || res.output.layout != VKR_LAYOUT_CONTIGUOUS) {
        rc = set_error(c, VKR_E_SERVER, "the daemon's result (rank %u, %" PRIu64 " bytes) does "
                       "not match the expected output (rank %u, %" PRIu64 " bytes)",
                       (unsigned)res.output.rank, res.output.data_bytes, plan.out_rank, want_bytes);
        drop_connection(c);
        goto out;
    }
    for (i = 0; i < (int)plan.out_rank; i++) {
        if (res.output.shape[i] != plan.out_shape[i]) {
            rc = set_error(c, VKR_E_SERVER, "the daemon's result has shape[%d] = %" PRId64
                           ", expected %" PRId64, i, res.output.shape[i], plan.out_shape[i]);
            drop_connection(c);
            goto out;
        }
    }

    /* Hand the caller a buffer that holds exactly the data (no second allocation). */
    memmove(body, res.output.data, (size_t)want_bytes);
    data = realloc(body, want_bytes > 0 ? (size_t)want_bytes : 1);
    if (data == NULL)
        data = (float *)(void *)body;   /* shrinking failed: keep the larger block */
    body = NULL;
    output->rank = (int)plan.out_rank;
    for (i = 0; i < (int)plan.out_rank; i++)
        output->shape[i] = plan.out_shape[i];
    output->data = data;
    rc = VKR_OK;

out:
    free(body);
    return rc;
}

/* The checks every job entry point starts with.  Returns VKR_OK, or the code to return. */
static int begin_job(vkr_client_t *c, const void *args, const vkr_tensor_t *t0,
                     const vkr_tensor_t *t1, const char *t1_name, vkr_tensor_t *output)
{
    if (output != NULL)
        memset(output, 0, sizeof *output);
    if (c == NULL)
        return VKR_E_INVALID_ARG;
    if (args == NULL || t0 == NULL || t1 == NULL || output == NULL)
        return set_error(c, VKR_E_INVALID_ARG, "%s: NULL",
                         args == NULL ? "args" : t0 == NULL ? "input" : t1 == NULL ? t1_name
                         : "output");
    return check_usable(c);
}

VKR_EXPORT int vkr_interpolate(vkr_client_t *c, const vkr_interpolate_args_t *args,
                               const vkr_tensor_t *input, vkr_tensor_t *output)
{
    vkr_job_t job;
    int rc;

    rc = begin_job(c, args, input, input, "input", output);
    if (rc == VKR_OK)
        rc = build_interpolate(c, args, input, &job);
    if (rc == VKR_OK)
        rc = run_job(c, &job, output);
    return rc;
}

VKR_EXPORT int vkr_grid_sample(vkr_client_t *c, const vkr_grid_sample_args_t *args,
                               const vkr_tensor_t *input, const vkr_tensor_t *grid,
                               vkr_tensor_t *output)
{
    vkr_job_t job;
    int rc;

    memset(&job, 0, sizeof job);
    rc = begin_job(c, args, input, grid, "grid", output);
    if (rc == VKR_OK)
        rc = describe_tensor(c, "input", input, &job.input);
    if (rc == VKR_OK)
        rc = describe_tensor(c, "grid", grid, &job.aux);
    if (rc == VKR_OK)
        rc = build_grid_common(c, VKR_OP_GRID_SAMPLE, (int)args->mode, (int)args->padding_mode,
                               (int)args->align_corners, (int)args->backend, 0, NULL, 0, &job);
    if (rc == VKR_OK)
        rc = run_job(c, &job, output);
    return rc;
}

VKR_EXPORT int vkr_affine_grid(vkr_client_t *c, const vkr_affine_grid_args_t *args,
                               const vkr_tensor_t *theta, vkr_tensor_t *output)
{
    vkr_job_t job;
    int rc;

    memset(&job, 0, sizeof job);
    rc = begin_job(c, args, theta, theta, "theta", output);
    if (rc == VKR_OK)
        rc = describe_tensor(c, "theta", theta, &job.input);
    if (rc == VKR_OK)
        rc = build_grid_common(c, VKR_OP_AFFINE_GRID, 0, 0, (int)args->align_corners,
                               (int)args->backend, args->n_size, args->size,
                               VKR_AFFINE_GRID_MAX_SIZE, &job);
    if (rc == VKR_OK)
        rc = run_job(c, &job, output);
    return rc;
}

VKR_EXPORT int vkr_affine_sample(vkr_client_t *c, const vkr_affine_sample_args_t *args,
                                 const vkr_tensor_t *input, const vkr_tensor_t *theta,
                                 vkr_tensor_t *output)
{
    vkr_job_t job;
    int rc;

    memset(&job, 0, sizeof job);
    rc = begin_job(c, args, input, theta, "theta", output);
    if (rc == VKR_OK)
        rc = describe_tensor(c, "input", input, &job.input);
    if (rc == VKR_OK)
        rc = describe_tensor(c, "theta", theta, &job.aux);
    if (rc == VKR_OK)
        rc = build_grid_common(c, VKR_OP_AFFINE_SAMPLE, (int)args->mode, (int)args->padding_mode,
                               (int)args->align_corners, (int)args->backend, args->n_size,
                               args->size, VKR_INTERP_MAX_SPATIAL, &job);
    if (rc == VKR_OK)
        rc = run_job(c, &job, output);
    return rc;
}

VKR_EXPORT void vkr_tensor_free(vkr_tensor_t *t)
{
    if (t == NULL)
        return;
    free(t->data);
    memset(t, 0, sizeof *t);
}
