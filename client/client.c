/* libvkresample: the connection.  Owns the client handle, its socket (non-blocking, watched with
 * poll), request ids and the table of requests in flight, the frame reader that matches every
 * reply to its request by request_id (in any order) and takes the descriptors that come with it,
 * writes that keep reading while the socket is full, waits, time limits, cancel, PING and STATS,
 * and the error text of the last call.  What a job is and what its reply must be is jobs.c's;
 * frame bytes are proto/'s (vkr_proto.h): this file never lays out bytes itself. */
#include "client_internal.h"
#include "fd_passing.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum { RX_HEADER, RX_BODY, RX_SKIP };

#define SKIP_CHUNK_BYTES 65536u          /* scratch for a reply nobody waits for any more */
#define MAX_REPLY_FDS 1u                 /* a RESULT carries at most one descriptor */

struct vkr_client {
    int fd;                              /* -1 once the connection failed (I/O or bad reply) */
    uint32_t next_request_id;            /* never 0 */
    char last_error[VKR_CLIENT_ERROR_MAX];
    vkr_request_t *requests;             /* every request not yet freed */
    uint64_t done_seq;
    /* the reply being read */
    int rx_state;
    uint8_t hdr_bytes[VKR_FRAME_HEADER_BYTES];
    size_t hdr_got;
    vkr_frame_header_t hdr;
    vkr_request_t *rx_req;
    bool rx_conn_error;                  /* an ERROR with request_id 0: the daemon refuses the connection */
    uint8_t *rx_body;
    uint64_t rx_got;
    int rx_fds[MAX_REPLY_FDS + VKR_MAX_FDS_PER_FRAME];
    unsigned rx_nfds;
};

_Static_assert(VKR_TENSOR_MAX_RANK == VKR_MAX_RANK, "public and wire rank limits differ");
_Static_assert(VKR_INTERP_MAX_SPATIAL == VKR_MAX_SPATIAL, "public and wire spatial limits differ");
_Static_assert(VKR_SERVER_NAME_MAX == VKR_DEVICE_NAME_MAX, "public and wire name limits differ");
_Static_assert(VKR_SERVER_STATS_MAX_ROWS == VKR_STATS_MAX_ROWS, "public and wire stats rows differ");

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- errors */

int vkr__client_error(vkr_client_t *c, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->last_error, sizeof c->last_error, fmt, ap);
    va_end(ap);
    return code;
}

void vkr__format_error(char *buf, size_t len, const vkr_error_t *e)
{
    if (e->field[0] != '\0')
        snprintf(buf, len, "%s: %s", e->field, e->message);
    else
        snprintf(buf, len, "%s", e->message);
}

/* ---------------------------------------------------------------- names */

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
    case VKR_E_BUSY: return "the daemon's queue is full: retry later";
    case VKR_E_CANCELLED: return "the job was cancelled";
    case VKR_E_TIMEOUT: return "the job did not complete within its time limit";
    case VKR_E_FD: return "a memfd passed with the job cannot be used";
    case VKR_E_PERMISSION: return "this user may not use the daemon";
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

VKR_EXPORT const char *vkr_op_name(int op)
{
    return vkr_proto_op_name(op);
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

/* ---------------------------------------------------------------- requests */

static void request_free(vkr_request_t *req)
{
    vkr_client_t *c = req->client;

    if (req->prev != NULL)
        req->prev->next = req->next;
    else
        c->requests = req->next;
    if (req->next != NULL)
        req->next->prev = req->prev;
    if (c->rx_req == req)
        c->rx_req = NULL;
    vkr_tensor_free(&req->result);
    vkr__storage_free(req->out_storage);
    free(req->reply_body);
    free(req);
}

/* Free req once neither its caller nor the wire needs it. */
static void request_maybe_free(vkr_request_t *req)
{
    if (!req->user_owned && !req->wire_pending)
        request_free(req);
}

void vkr__request_finish(vkr_request_t *req, int status, const char *error)
{
    if (req->done)
        return;
    req->done = true;
    req->done_seq = ++req->client->done_seq;
    req->status = status;
    snprintf(req->error, sizeof req->error, "%s", error);
}

static vkr_request_t *find_request(vkr_client_t *c, uint32_t id)
{
    for (vkr_request_t *r = c->requests; r != NULL; r = r->next)
        if (r->wire_pending && r->id == id)
            return r;
    return NULL;
}

vkr_request_t *vkr__request_new(vkr_client_t *c, vkr__req_kind_t kind, uint16_t expect_type)
{
    vkr_request_t *req = calloc(1, sizeof *req);

    if (req == NULL) {
        vkr__client_error(c, VKR_E_NOMEM, "out of memory for a request");
        return NULL;
    }
    do {
        req->id = c->next_request_id++;
        if (c->next_request_id == 0)
            c->next_request_id = 1;
    } while (find_request(c, req->id) != NULL);
    req->client = c;
    req->kind = kind;
    req->expect_type = expect_type;
    req->user_owned = true;
    req->wire_pending = true;
    req->next = c->requests;
    if (c->requests != NULL)
        c->requests->prev = req;
    c->requests = req;
    return req;
}

void vkr__request_discard(vkr_request_t *req)
{
    request_free(req);
}

/* The connection cannot go on: close it, and complete every request in flight with code and the
 * message now in last_error (no reply will come for any of them). */
static int fail_connection(vkr_client_t *c, int code)
{
    vkr_request_t *r, *next;

    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    free(c->rx_body);
    c->rx_body = NULL;
    for (unsigned i = 0; i < c->rx_nfds; i++)
        close(c->rx_fds[i]);
    c->rx_nfds = 0;
    c->rx_req = NULL;
    for (r = c->requests; r != NULL; r = next) {
        next = r->next;
        vkr__request_finish(r, code, c->last_error);
        r->wire_pending = false;
        request_maybe_free(r);
    }
    return code;
}

int vkr__client_usable(vkr_client_t *c)
{
    if (c->fd < 0)
        return vkr__client_error(c, VKR_E_IO, "the connection was closed after an earlier failure");
    c->last_error[0] = '\0';
    return VKR_OK;
}

/* ---------------------------------------------------------------- reading replies */

/* A reply's frame is complete: hand its body and descriptors to its request. */
static int reply_complete(vkr_client_t *c)
{
    vkr_request_t *req = c->rx_req;
    uint8_t *body = c->rx_body;
    int fds[MAX_REPLY_FDS + VKR_MAX_FDS_PER_FRAME];
    unsigned n_fds = c->rx_nfds;
    vkr_error_t derr, perr;
    char detail[VKR_CLIENT_ERROR_MAX];
    int rc = VKR_OK;

    memcpy(fds, c->rx_fds, sizeof fds);
    c->rx_body = NULL;
    c->rx_nfds = 0;
    c->rx_req = NULL;
    c->rx_state = RX_HEADER;
    c->hdr_got = 0;
    if (c->rx_conn_error) {
        /* the daemon refused the connection (uid, a per-uid cap, a stalled frame): every request
         * in flight fails with its code and message */
        c->rx_conn_error = false;
        memset(&derr, 0, sizeof derr);
        memset(&perr, 0, sizeof perr);
        if (vkr_error_decode(body, c->hdr.body_len, &derr, &perr) != VKR_OK) {
            vkr__format_error(detail, sizeof detail, &perr);
            rc = vkr__client_error(c, VKR_E_SERVER, "malformed ERROR from the daemon: %s", detail);
        } else {
            vkr__format_error(detail, sizeof detail, &derr);
            rc = vkr__client_error(c, derr.code, "the daemon closed the connection: %s", detail);
        }
        goto out;
    }
    if (req == NULL || req->done) {
        /* nobody waits for it any more (timed out or cancelled): drop it */
        if (req != NULL) {
            req->wire_pending = false;
            request_maybe_free(req);
        }
        goto out;
    }
    req->wire_pending = false;
    if (c->hdr.type == VKR_MSG_ERROR) {
        memset(&derr, 0, sizeof derr);
        memset(&perr, 0, sizeof perr);
        if (n_fds != 0 || vkr_error_decode(body, c->hdr.body_len, &derr, &perr) != VKR_OK) {
            vkr__format_error(detail, sizeof detail, &perr);
            rc = vkr__client_error(c, VKR_E_SERVER, "malformed ERROR from the daemon: %s", n_fds ? "it carries a descriptor" : detail);
            goto out;
        }
        vkr__format_error(detail, sizeof detail, &derr);
        vkr__request_finish(req, derr.code, detail);
        goto out;
    }
    if (req->kind == VKR__REQ_JOB) {
        rc = vkr__job_complete(req, body, c->hdr.body_len, fds, n_fds);
        body = NULL;
        n_fds = 0;
        goto out;
    }
    if (n_fds != 0) {
        rc = vkr__client_error(c, VKR_E_SERVER, "the daemon's reply of type %u carries a descriptor", (unsigned)c->hdr.type);
        goto out;
    }
    req->reply_body = body;
    req->reply_len = c->hdr.body_len;
    body = NULL;
    vkr__request_finish(req, VKR_OK, "");

out:
    for (unsigned i = 0; i < n_fds; i++)
        close(fds[i]);
    free(body);
    if (rc != VKR_OK)
        fail_connection(c, rc);
    return rc;
}

/* A reply's header is complete: find its request and check what it may carry. */
static int reply_header(vkr_client_t *c)
{
    vkr_error_t perr;
    vkr_request_t *req;
    char detail[VKR_CLIENT_ERROR_MAX];
    uint64_t max_body;

    memset(&perr, 0, sizeof perr);
    if (vkr_header_decode(c->hdr_bytes, 0, UINT64_MAX, &c->hdr, &perr) != VKR_OK) {
        vkr__format_error(detail, sizeof detail, &perr);
        vkr__client_error(c, VKR_E_SERVER, "bad frame header from the daemon (%s): %s", vkr_proto_code_name(perr.code), detail);
        return fail_connection(c, VKR_E_SERVER);
    }
    if (c->hdr.request_id == 0 && c->hdr.type == VKR_MSG_ERROR && c->rx_nfds == 0 && c->hdr.body_len > 0 &&
        c->hdr.body_len <= VKR_MAX_CONTROL_BODY_BYTES) {
        /* request ids are never 0: this is about the connection itself, and the daemon closes it */
        c->rx_body = malloc((size_t)c->hdr.body_len);
        if (c->rx_body == NULL) {
            vkr__client_error(c, VKR_E_NOMEM, "cannot allocate %" PRIu64 " bytes for the reply", c->hdr.body_len);
            return fail_connection(c, VKR_E_NOMEM);
        }
        c->rx_req = NULL;
        c->rx_conn_error = true;
        c->rx_got = 0;
        c->rx_state = RX_BODY;
        return VKR_OK;
    }
    req = find_request(c, c->hdr.request_id);
    if (req == NULL) {
        vkr__client_error(c, VKR_E_SERVER, "a reply carries request_id %" PRIu32 ", which no request in flight has", c->hdr.request_id);
        return fail_connection(c, VKR_E_SERVER);
    }
    if (c->hdr.type != req->expect_type && c->hdr.type != VKR_MSG_ERROR) {
        vkr__client_error(c, VKR_E_SERVER, "the reply to request %" PRIu32 " has message type %u, expected %u or ERROR (%u)",
                          req->id, (unsigned)c->hdr.type, (unsigned)req->expect_type, (unsigned)VKR_MSG_ERROR);
        return fail_connection(c, VKR_E_SERVER);
    }
    if (c->rx_nfds != c->hdr.n_fds) {
        vkr__client_error(c, VKR_E_SERVER, "the reply to request %" PRIu32 " says n_fds %u, but %u descriptor(s) came with it", req->id,
                          c->hdr.n_fds, c->rx_nfds);
        return fail_connection(c, VKR_E_SERVER);
    }
    max_body = VKR_MAX_CONTROL_BODY_BYTES;
    if (c->hdr.type == VKR_MSG_RESULT)
        max_body = VKR_RESULT_FIXED_BYTES + (req->plan_ok && req->result_storage == VKR_RESULT_INLINE ? req->out_bytes : 0);
    if (c->hdr.body_len > max_body) {
        vkr__client_error(c, VKR_E_SERVER, "the reply to request %" PRIu32 " has a body of %" PRIu64 " bytes, over the %" PRIu64
                          " it may have", req->id, c->hdr.body_len, max_body);
        return fail_connection(c, VKR_E_SERVER);
    }
    c->rx_req = req;
    c->rx_got = 0;
    if (req->done) {
        c->rx_state = RX_SKIP;
    } else if (c->hdr.body_len > 0) {
        c->rx_body = malloc((size_t)c->hdr.body_len);
        if (c->rx_body == NULL) {
            vkr__client_error(c, VKR_E_NOMEM, "cannot allocate %" PRIu64 " bytes for the reply", c->hdr.body_len);
            return fail_connection(c, VKR_E_NOMEM);
        }
        c->rx_state = RX_BODY;
    }
    return c->hdr.body_len == 0 ? reply_complete(c) : VKR_OK;
}

/* Read every reply byte that has arrived, without blocking.  Returns VKR_OK, or the code the
 * connection failed with (it is then dropped). */
static int pump(vkr_client_t *c)
{
    static _Thread_local uint8_t skip_buf[SKIP_CHUNK_BYTES];

    while (c->fd >= 0) {
        void *into;
        size_t want;
        uint64_t left;
        ssize_t n;
        bool fds_lost = false;
        int rc;

        if (c->rx_state == RX_HEADER) {
            into = c->hdr_bytes + c->hdr_got;
            want = VKR_FRAME_HEADER_BYTES - c->hdr_got;
        } else {
            left = c->hdr.body_len - c->rx_got;
            if (c->rx_state == RX_BODY) {
                into = c->rx_body + c->rx_got;
                want = left > (1u << 30) ? (1u << 30) : (size_t)left;
            } else {
                into = skip_buf;
                want = left > sizeof skip_buf ? sizeof skip_buf : (size_t)left;
            }
        }
        n = vkr__recv_with_fds(c->fd, into, want, c->rx_fds, &c->rx_nfds, (unsigned)(sizeof c->rx_fds / sizeof c->rx_fds[0]),
                               &fds_lost);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return VKR_OK;
            vkr__client_error(c, VKR_E_IO, "reading the daemon's reply failed: %s", strerror(errno));
            return fail_connection(c, VKR_E_IO);
        }
        if (fds_lost || (c->rx_state != RX_HEADER && c->rx_nfds != c->hdr.n_fds)) {
            vkr__client_error(c, VKR_E_SERVER, "descriptors from the daemon arrived where none may");
            return fail_connection(c, VKR_E_SERVER);
        }
        if (n == 0) {
            if (c->rx_state == RX_HEADER && c->hdr_got == 0)
                vkr__client_error(c, VKR_E_IO, "the daemon closed the connection");
            else
                vkr__client_error(c, VKR_E_IO, "the daemon closed the connection within a reply");
            return fail_connection(c, VKR_E_IO);
        }
        if (c->rx_state == RX_HEADER) {
            c->hdr_got += (size_t)n;
            rc = c->hdr_got == VKR_FRAME_HEADER_BYTES ? reply_header(c) : VKR_OK;
        } else {
            c->rx_got += (uint64_t)n;
            rc = c->rx_got == c->hdr.body_len ? reply_complete(c) : VKR_OK;
        }
        if (rc != VKR_OK)
            return rc;
    }
    return VKR_E_IO;
}

/* ---------------------------------------------------------------- writing requests */

int vkr__send_request(vkr_client_t *c, vkr_request_t *req, uint16_t type, const struct iovec *parts, unsigned n_parts,
                      const int *fds, unsigned n_fds)
{
    uint8_t hdr_bytes[VKR_FRAME_HEADER_BYTES];
    struct iovec iov[1 + VKR__SEND_MAX_PARTS];
    vkr_frame_header_t hdr;
    struct iovec *next = iov;
    bool fds_sent = n_fds == 0;
    int iovcnt = 1, rc;

    memset(&hdr, 0, sizeof hdr);
    hdr.magic = VKR_PROTO_MAGIC;
    hdr.version = VKR_PROTO_VERSION;
    hdr.type = type;
    hdr.request_id = req->id;
    hdr.n_fds = n_fds;
    iov[0].iov_base = hdr_bytes;
    iov[0].iov_len = sizeof hdr_bytes;
    for (unsigned i = 0; i < n_parts && i < VKR__SEND_MAX_PARTS; i++) {
        iov[iovcnt++] = parts[i];
        hdr.body_len += (uint64_t)parts[i].iov_len;
    }
    vkr_header_encode(&hdr, hdr_bytes);

    while (iovcnt > 0) {
        struct pollfd pfd;
        ssize_t n;

        if (next->iov_len == 0) {
            next++;
            iovcnt--;
            continue;
        }
        n = vkr__send_with_fds(c->fd, next, iovcnt, fds, fds_sent ? 0 : n_fds);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* the daemon is not reading: take its replies meanwhile (it may be waiting on us) */
                pfd.fd = c->fd;
                pfd.events = POLLIN | POLLOUT;
                pfd.revents = 0;
                if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
                    vkr__client_error(c, VKR_E_IO, "poll: %s", strerror(errno));
                    return fail_connection(c, VKR_E_IO);
                }
                if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) && (rc = pump(c)) != VKR_OK)
                    return rc;
                continue;
            }
            rc = errno;
            /* the daemon may have refused the request or the connection itself (an ERROR with
             * request_id 0) and closed: its ERROR is then waiting */
            if (rc == EPIPE || rc == ECONNRESET) {
                int prc = pump(c);

                if (c->fd < 0 && prc != VKR_OK && prc != VKR_E_IO)
                    return prc;
            }
            if (c->fd >= 0) {
                vkr__client_error(c, VKR_E_IO, "sending the request to the daemon failed: %s", strerror(rc));
                fail_connection(c, VKR_E_IO);
            }
            return VKR_E_IO;
        }
        fds_sent = true;
        while (n > 0) {
            size_t step = (size_t)n < next->iov_len ? (size_t)n : next->iov_len;

            next->iov_base = (uint8_t *)next->iov_base + step;
            next->iov_len -= step;
            n -= (ssize_t)step;
            if (next->iov_len == 0) {
                next++;
                iovcnt--;
            }
        }
    }
    return VKR_OK;
}

/* ---------------------------------------------------------------- time limits and waiting */

/* Jobs past their time limit complete with VKR_E_TIMEOUT and are cancelled on the daemon.  Sending
 * a CANCEL may read replies (and free requests): the scan starts over after each one. */
static int expire(vkr_client_t *c)
{
    char msg[VKR_CLIENT_ERROR_MAX];
    uint64_t now = now_ns();
    vkr_request_t *r;

    for (;;) {
        for (r = c->requests; r != NULL; r = r->next)
            if (!r->done && r->deadline_ns != 0 && now >= r->deadline_ns)
                break;
        if (r == NULL)
            return VKR_OK;
        snprintf(msg, sizeof msg, "request %" PRIu32 " did not complete within its time limit of %" PRIu32 " ms; it was cancelled",
                 r->id, r->timeout_ms);
        vkr__request_finish(r, VKR_E_TIMEOUT, msg);
        if (c->fd >= 0 && r->wire_pending) {
            vkr_request_t cancel = {.client = c, .id = r->id};
            int rc = vkr__send_request(c, &cancel, VKR_MSG_CANCEL, NULL, 0, NULL, 0);

            if (rc != VKR_OK)
                return rc;
        }
    }
}

static uint64_t earliest_deadline(const vkr_client_t *c)
{
    uint64_t d = 0;

    for (const vkr_request_t *r = c->requests; r != NULL; r = r->next)
        if (!r->done && r->deadline_ns != 0 && (d == 0 || r->deadline_ns < d))
            d = r->deadline_ns;
    return d;
}

/* Block until done(c, arg) holds, until_ns passes (0: no limit) or the connection fails.
 * Returns VKR_OK, VKR_E_TIMEOUT, or the connection's failure code. */
static int block_until(vkr_client_t *c, bool (*done)(vkr_client_t *, void *), void *arg, uint64_t until_ns)
{
    for (;;) {
        struct pollfd pfd;
        uint64_t now, wake;
        int rc, ms;

        rc = pump(c);
        if (rc == VKR_OK)
            rc = expire(c);
        if (done(c, arg))
            return VKR_OK;
        if (rc != VKR_OK)
            return rc;
        if (c->fd < 0)
            return VKR_E_IO;
        now = now_ns();
        if (until_ns != 0 && now >= until_ns)
            return VKR_E_TIMEOUT;
        wake = earliest_deadline(c);
        if (until_ns != 0 && (wake == 0 || until_ns < wake))
            wake = until_ns;
        ms = -1;
        if (wake != 0)
            ms = wake <= now ? 0 : (wake - now) / 1000000u >= INT_MAX ? INT_MAX : (int)((wake - now + 999999u) / 1000000u);
        pfd.fd = c->fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (poll(&pfd, 1, ms) < 0 && errno != EINTR) {
            vkr__client_error(c, VKR_E_IO, "poll: %s", strerror(errno));
            return fail_connection(c, VKR_E_IO);
        }
    }
}

static bool request_done(vkr_client_t *c, void *arg)
{
    (void)c;
    return ((vkr_request_t *)arg)->done;
}

/* The oldest completed job its caller still holds, or NULL. */
static vkr_request_t *first_completed(vkr_client_t *c)
{
    vkr_request_t *best = NULL;

    for (vkr_request_t *r = c->requests; r != NULL; r = r->next)
        if (r->kind == VKR__REQ_JOB && r->user_owned && r->done && (best == NULL || r->done_seq < best->done_seq))
            best = r;
    return best;
}

static bool any_completed(vkr_client_t *c, void *arg)
{
    (void)arg;
    return first_completed(c) != NULL;
}

/* Wait for req and hand over its outcome: status returned, message in last_error, body or result
 * moved out.  req is released. */
static int finish_wait(vkr_client_t *c, vkr_request_t *req, vkr_tensor_t *output)
{
    int rc;

    if (!req->done)
        (void)block_until(c, request_done, req, 0);
    if (!req->done) {
        /* cannot happen: a failed connection completes every request */
        vkr__request_finish(req, VKR_E_IO, c->last_error);
    }
    rc = req->status;
    snprintf(c->last_error, sizeof c->last_error, "%s", req->error);
    if (output != NULL && rc == VKR_OK) {
        *output = req->result;
        memset(&req->result, 0, sizeof req->result);
    }
    req->user_owned = false;
    request_maybe_free(req);
    return rc;
}

VKR_EXPORT int vkr_wait(vkr_client_t *c, vkr_request_t *req, vkr_tensor_t *output)
{
    if (output != NULL)
        memset(output, 0, sizeof *output);
    if (c == NULL)
        return VKR_E_INVALID_ARG;
    if (req == NULL || req->client != c || !req->user_owned)
        return vkr__client_error(c, VKR_E_INVALID_ARG, "req: not a request in flight on this connection");
    return finish_wait(c, req, output);
}

VKR_EXPORT int vkr_poll(vkr_client_t *c, vkr_request_t *req)
{
    int rc;

    if (c == NULL || (req != NULL && (req->client != c || !req->user_owned)))
        return VKR_E_INVALID_ARG;
    rc = pump(c);
    if (rc == VKR_OK)
        rc = expire(c);
    if (req != NULL && req->done)
        return 1;
    return rc != VKR_OK ? rc : 0;
}

VKR_EXPORT int vkr_wait_any(vkr_client_t *c, int timeout_ms, vkr_request_t **done)
{
    bool any = false;
    int rc;

    if (done != NULL)
        *done = NULL;
    if (c == NULL || done == NULL)
        return c == NULL ? VKR_E_INVALID_ARG : vkr__client_error(c, VKR_E_INVALID_ARG, "done: NULL");
    for (vkr_request_t *r = c->requests; r != NULL && !any; r = r->next)
        any = r->kind == VKR__REQ_JOB && r->user_owned;
    if (!any)
        return vkr__client_error(c, VKR_E_INVALID_ARG, "no job is in flight on this connection");
    rc = block_until(c, any_completed, NULL, timeout_ms < 0 ? 0 : now_ns() + (uint64_t)timeout_ms * 1000000u + (timeout_ms == 0));
    *done = first_completed(c);
    if (*done != NULL)
        return VKR_OK;
    if (rc == VKR_E_TIMEOUT)
        return vkr__client_error(c, VKR_E_TIMEOUT, "no job completed within %d ms", timeout_ms);
    return rc;
}

VKR_EXPORT int vkr_cancel(vkr_client_t *c, vkr_request_t *req)
{
    int rc = VKR_OK;

    if (c == NULL)
        return VKR_E_INVALID_ARG;
    if (req == NULL || req->client != c || !req->user_owned)
        return vkr__client_error(c, VKR_E_INVALID_ARG, "req: not a request in flight on this connection");
    c->last_error[0] = '\0';
    if (!req->done) {
        vkr__request_finish(req, VKR_E_CANCELLED, "cancelled by the caller");
        if (c->fd >= 0 && req->wire_pending) {
            vkr_request_t cancel = {.client = c, .id = req->id};
            rc = vkr__send_request(c, &cancel, VKR_MSG_CANCEL, NULL, 0, NULL, 0);
        }
    }
    req->user_owned = false;
    request_maybe_free(req);
    return rc;
}

VKR_EXPORT uint32_t vkr_request_id(const vkr_request_t *req)
{
    return req != NULL ? req->id : 0;
}

VKR_EXPORT int vkr_fd(const vkr_client_t *c)
{
    return c != NULL ? c->fd : -1;
}

VKR_EXPORT int vkr_next_timeout_ms(const vkr_client_t *c)
{
    uint64_t d, now;

    if (c == NULL)
        return -1;
    for (const vkr_request_t *r = c->requests; r != NULL; r = r->next)
        if (r->done && r->user_owned)
            return 0;       /* its reply is already read off the socket: poll() must not block */
    if ((d = earliest_deadline(c)) == 0)
        return -1;
    now = now_ns();
    if (d <= now)
        return 0;
    return (d - now) / 1000000u >= INT_MAX ? INT_MAX : (int)((d - now + 999999u) / 1000000u);
}

/* ---------------------------------------------------------------- PING and STATS */

/* Send an empty-bodied request and wait for its reply body.  Returns VKR_OK with *out (released
 * by the caller with request release), or a code with last_error set. */
static int control_request(vkr_client_t *c, uint16_t type, uint16_t reply_type, vkr__req_kind_t kind, vkr_request_t **out)
{
    vkr_request_t *req;
    int rc;

    *out = NULL;
    rc = vkr__client_usable(c);
    if (rc != VKR_OK)
        return rc;
    req = vkr__request_new(c, kind, reply_type);
    if (req == NULL)
        return VKR_E_NOMEM;
    (void)vkr__send_request(c, req, type, NULL, 0, NULL, 0);
    if (!req->done)
        (void)block_until(c, request_done, req, 0);
    snprintf(c->last_error, sizeof c->last_error, "%s", req->error);
    rc = req->status;
    if (rc != VKR_OK) {
        req->user_owned = false;
        request_maybe_free(req);
        return rc;
    }
    *out = req;
    return VKR_OK;
}

VKR_EXPORT int vkr_ping(vkr_client_t *c, vkr_server_info_t *info)
{
    vkr_request_t *req = NULL;
    vkr_error_t perr;
    vkr_pong_t pong;
    char detail[VKR_CLIENT_ERROR_MAX];
    int rc;

    if (c == NULL)
        return VKR_E_INVALID_ARG;
    rc = control_request(c, VKR_MSG_PING, VKR_MSG_PONG, VKR__REQ_PING, &req);
    if (rc != VKR_OK)
        goto out;
    memset(&pong, 0, sizeof pong);
    memset(&perr, 0, sizeof perr);
    if (vkr_pong_decode(req->reply_body, req->reply_len, &pong, &perr) != VKR_OK) {
        vkr__format_error(detail, sizeof detail, &perr);
        rc = vkr__client_error(c, VKR_E_SERVER, "malformed PONG from the daemon: %s", detail);
        fail_connection(c, VKR_E_SERVER);
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
    if (req != NULL) {
        req->user_owned = false;
        request_maybe_free(req);
    }
    return rc;
}

VKR_EXPORT int vkr_stats(vkr_client_t *c, vkr_server_stats_t *out)
{
    vkr_request_t *req = NULL;
    vkr_error_t perr;
    vkr_stats_t st;
    char detail[VKR_CLIENT_ERROR_MAX];
    int rc;

    if (c == NULL)
        return VKR_E_INVALID_ARG;
    if (out == NULL)
        return vkr__client_error(c, VKR_E_INVALID_ARG, "out: NULL");
    memset(out, 0, sizeof *out);
    rc = control_request(c, VKR_MSG_STATS, VKR_MSG_STATS_REPLY, VKR__REQ_STATS, &req);
    if (rc != VKR_OK)
        goto out;
    memset(&perr, 0, sizeof perr);
    if (vkr_stats_decode(req->reply_body, req->reply_len, &st, &perr) != VKR_OK) {
        vkr__format_error(detail, sizeof detail, &perr);
        rc = vkr__client_error(c, VKR_E_SERVER, "malformed STATS_REPLY from the daemon: %s", detail);
        fail_connection(c, VKR_E_SERVER);
        goto out;
    }
    out->uptime_ms = st.uptime_ms;
    out->bytes_in = st.bytes_in;
    out->bytes_out = st.bytes_out;
    out->memfd_bytes_in = st.memfd_bytes_in;
    out->memfd_bytes_out = st.memfd_bytes_out;
    out->queued = st.queued;
    out->running = st.running;
    out->clients = st.clients;
    out->workers = st.workers;
    out->latency_p50_us = st.latency_p50_us;
    out->latency_p99_us = st.latency_p99_us;
    out->jobs_busy = st.jobs_busy;
    out->jobs_cancelled = st.jobs_cancelled;
    out->frames_refused = st.frames_refused;
    out->vulkan_lost = (st.flags & VKR_STATS_VULKAN_LOST) != 0;
    out->jobs_moved_to_cpu = st.jobs_moved_to_cpu;
    out->connections_refused = st.connections_refused;
    out->connections_timed_out = st.connections_timed_out;
    out->accept_pauses = st.accept_pauses;
    out->n_rows = st.n_rows;
    for (unsigned i = 0; i < st.n_rows; i++)
        out->rows[i] = (vkr_server_stats_row_t){(vkr_op_t)st.rows[i].op, (vkr_backend_id_t)st.rows[i].backend, st.rows[i].done,
                                                st.rows[i].failed, st.rows[i].in_flight};
    memcpy(out->device_name, st.device_name, sizeof out->device_name);

out:
    if (req != NULL) {
        req->user_owned = false;
        request_maybe_free(req);
    }
    return rc;
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
    int rc, saved_errno, flags;

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
    /* from here on every wait is a poll(): replies are read as they come, in any order */
    flags = fcntl(c->fd, F_GETFL);
    if (flags < 0 || fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        rc = VKR_E_IO;
        goto fail;
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
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->rx_body);
    for (unsigned i = 0; i < c->rx_nfds; i++)
        close(c->rx_fds[i]);
    while (c->requests != NULL)
        request_free(c->requests);
    free(c);
}

