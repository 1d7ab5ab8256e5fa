/* One client connection's byte stream: frames and descriptors in and out over a non-blocking Unix
 * socket watched by a uv_poll_t (libuv's own streams cannot pass arbitrary fds: libuv#1587).
 *
 * Reading takes exactly what the current frame still needs (32 header bytes, then body_len
 * bytes), so one recvmsg never spans two frames and the descriptors that arrive with a header's
 * first byte are that frame's: their count must equal the header's n_fds, and none may arrive
 * while a body is read.  Every received descriptor is either handed to on_frame or closed here.
 * Writing keeps a FIFO of frames and sends as much as the socket takes; a frame's descriptor goes
 * with its first byte.
 *
 * A body's buffer grows as its bytes arrive (VKR__CONN_BODY_FIRST_STEP, doubling, steps of at
 * most VKR__CONN_BODY_MAX_STEP), each step reserved by the owner first (on_body_grow): a header
 * announcing a gigabyte followed by one byte holds 64 KiB, not a gigabyte (issue 11).
 *
 * Time: a frame begun must keep arriving (a byte at least every --idle-timeout) and be complete
 * within --frame-timeout of its first byte; otherwise the stream is broken with VKR_E_TIMEOUT.
 * Between frames a connection may stay idle for as long as it likes.  Frames queued to write
 * must be taken by the peer: when --idle-timeout passes without a byte of them written (the
 * peer's receive buffer full, nothing read), the connection is closed.  One timer per connection,
 * armed lazily: reads only record the time, the timer checks the deadlines when it fires and
 * re-arms itself for the next one, so a busy connection costs no timer work per read. */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "alloc.h"
#include "fd_passing.h"
#include "log.h"

enum { RX_HEADER, RX_BODY, RX_SKIP };

#define SKIP_CHUNK_BYTES 65536u   /* scratch for bodies read and dropped */

struct vkr__conn_out {
    vkr__conn_out_t *next;
    uint8_t head[VKR__CONN_HEAD_MAX];
    size_t head_len;
    const uint8_t *payload;
    size_t payload_len;
    size_t sent;
    int fd;
    vkr__conn_done_cb done;
    void *arg;
};

static void poll_cb(uv_poll_t *handle, int status, int events);
static void timer_cb(uv_timer_t *timer);
static uint64_t next_deadline(const vkr__conn_t *c);
static void arm_timer(vkr__conn_t *c, uint64_t deadline_ms);
static uint64_t write_deadline(const vkr__conn_t *c);

/* ---------------------------------------------------------------- state */
bool vkr__conn_between_frames(const vkr__conn_t *c)
{
    return c->rx_state == RX_HEADER && c->hdr_got == 0;
}

bool vkr__conn_flushed(const vkr__conn_t *c)
{
    return c->out_head == NULL;
}

static bool reading_enabled(const vkr__conn_t *c)
{
    if (c->closing || c->stream_broken || c->close_when_flushed)
        return false;
    if (c->control_backlog > VKR__CONN_CONTROL_BACKLOG_BYTES)
        return false;   /* the peer is not reading its replies: stop reading its requests */
    return c->want_read || !vkr__conn_between_frames(c);
}

/* Watch what the state asks for: readable while reading, writable while frames wait. */
static void update_events(vkr__conn_t *c)
{
    int events = 0, rc;

    if (c->closing)
        return;
    if (reading_enabled(c))
        events |= UV_READABLE;
    if (c->out_head != NULL)
        events |= UV_WRITABLE;
    if (events == c->events)
        return;
    c->events = events;
    rc = events ? uv_poll_start(&c->poll, events, poll_cb) : uv_poll_stop(&c->poll);
    if (rc < 0) {
        vkr__log(VKR_LOG_WARN, "connection fd %d: uv_poll: %s", c->fd, uv_strerror(rc));
        vkr__conn_close(c);
    }
}

static void close_received_fds(vkr__conn_t *c)
{
    for (unsigned i = 0; i < c->n_fds; i++)
        close(c->fds[i]);
    c->n_fds = 0;
}

void vkr__conn_set_reading(vkr__conn_t *c, bool on)
{
    c->want_read = on;
    update_events(c);
}

/* ---------------------------------------------------------------- closing */
static void closed_cb(uv_handle_t *handle)
{
    vkr__conn_t *c = handle->data;

    if (--c->handles_open > 0)
        return;
    close(c->fd);
    c->fd = -1;
    c->cb->on_closed(c);
}

void vkr__conn_close(vkr__conn_t *c)
{
    vkr__conn_out_t *o;

    if (c->closing)
        return;
    c->closing = true;
    uv_poll_stop(&c->poll);
    uv_timer_stop(&c->timer);
    vkr__free(c->body);
    c->body = NULL;
    close_received_fds(c);
    while ((o = c->out_head) != NULL) {
        c->out_head = o->next;
        if (o->fd >= 0)
            close(o->fd);
        o->done(o->arg, UV_ECANCELED);
        vkr__free(o);
    }
    c->out_tail = NULL;
    c->control_backlog = 0;
    uv_close((uv_handle_t *)&c->poll, closed_cb);
    uv_close((uv_handle_t *)&c->timer, closed_cb);
}

/* Make sure the timer fires by deadline_ms (it may fire earlier: timer_cb re-arms). */
static void arm_timer(vkr__conn_t *c, uint64_t deadline_ms)
{
    uint64_t now = uv_now(c->poll.loop);

    if (uv_is_active((uv_handle_t *)&c->timer) && uv_timer_get_due_in(&c->timer) <= (deadline_ms > now ? deadline_ms - now : 0))
        return;
    uv_timer_start(&c->timer, timer_cb, deadline_ms > now ? deadline_ms - now : 0, 0);
}

void vkr__conn_close_when_flushed(vkr__conn_t *c)
{
    bool was = c->close_when_flushed;

    c->close_when_flushed = true;
    if (c->out_head == NULL) {
        vkr__conn_close(c);
        return;
    }
    update_events(c);
    if (!was && c->limits.idle_timeout_ms > 0) {
        c->last_tx_ms = uv_now(c->poll.loop);   /* the peer has the idle timeout to read what is left */
        arm_timer(c, write_deadline(c));
    }
}

/* The stream is broken: stop reading for good and let the server answer. */
static void stream_error(vkr__conn_t *c, uint32_t request_id, int code, const char *field, const char *message)
{
    vkr_error_t err;

    vkr_proto_error_set(&err, code, field, "%s", message);
    c->stream_broken = true;
    vkr__free(c->body);
    c->body = NULL;
    close_received_fds(c);
    update_events(c);
    c->cb->on_stream_error(c, request_id, &err);
}

/* ---------------------------------------------------------------- writing */
static void flush(vkr__conn_t *c)
{
    vkr__conn_out_t *o;

    while (!c->closing && (o = c->out_head) != NULL) {
        struct iovec iov[2];
        int iovcnt = 0;
        ssize_t n;

        if (o->sent < o->head_len) {
            iov[iovcnt].iov_base = o->head + o->sent;
            iov[iovcnt++].iov_len = o->head_len - o->sent;
        }
        if (o->payload_len > 0) {
            size_t done = o->sent > o->head_len ? o->sent - o->head_len : 0;
            iov[iovcnt].iov_base = (void *)(uintptr_t)(o->payload + done);
            iov[iovcnt++].iov_len = o->payload_len - done;
        }
        n = vkr__send_with_fds(c->fd, iov, iovcnt, &o->fd, o->sent == 0 && o->fd >= 0 ? 1 : 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            vkr__log(VKR_LOG_DEBUG, "connection fd %d: sendmsg: %s", c->fd, strerror(errno));
            vkr__conn_close(c);
            return;
        }
        *c->bytes_out += (uint64_t)n;
        c->last_tx_ms = uv_now(c->poll.loop);
        o->sent += (size_t)n;
        if (o->sent < o->head_len + o->payload_len)
            continue;
        c->out_head = o->next;
        if (c->out_head == NULL)
            c->out_tail = NULL;
        if (o->payload_len == 0)
            c->control_backlog -= o->head_len;
        if (o->fd >= 0)
            close(o->fd);
        o->done(o->arg, 0);
        vkr__free(o);
    }
    if (!c->closing && c->out_head == NULL && c->close_when_flushed)
        vkr__conn_close(c);
}

int vkr__conn_send(vkr__conn_t *c, const void *head, size_t head_len, const void *payload, size_t payload_len, int pass_fd,
                   vkr__conn_done_cb done, void *arg)
{
    vkr__conn_out_t *o;
    bool was_empty;

    if (c->closing || head_len > VKR__CONN_HEAD_MAX) {
        if (pass_fd >= 0)
            close(pass_fd);
        done(arg, c->closing ? UV_ECANCELED : UV_EINVAL);
        return c->closing ? UV_ECANCELED : UV_EINVAL;
    }
    o = vkr__calloc(1, sizeof *o);
    if (o == NULL) {
        if (pass_fd >= 0)
            close(pass_fd);
        done(arg, UV_ENOMEM);
        vkr__conn_close(c);
        return UV_ENOMEM;
    }
    memcpy(o->head, head, head_len);
    o->head_len = head_len;
    o->payload = payload;
    o->payload_len = payload_len;
    o->fd = pass_fd;
    o->done = done;
    o->arg = arg;
    was_empty = c->out_head == NULL;
    if (c->out_tail != NULL)
        c->out_tail->next = o;
    else
        c->out_head = o;
    c->out_tail = o;
    if (payload_len == 0)
        c->control_backlog += head_len;
    if (was_empty) {
        c->out_since_ms = uv_now(c->poll.loop);
        flush(c);
    }
    /* what the socket did not take must be taken within the idle timeout */
    if (!c->closing && c->out_head != NULL && c->limits.idle_timeout_ms > 0)
        arm_timer(c, write_deadline(c));
    update_events(c);
    return 0;
}

/* ---------------------------------------------------------------- reading */
/* A whole frame is in: hand it over and get ready for the next header. */
static void frame_complete(vkr__conn_t *c)
{
    vkr_frame_header_t h = c->hdr;
    int fds[VKR_MAX_FDS_PER_FRAME];
    unsigned n_fds = c->n_fds;
    uint8_t *body = c->body;
    char msg[128];

    if (n_fds != h.n_fds) {
        snprintf(msg, sizeof msg, "%u descriptor(s) arrived in the middle of a frame (n_fds %u)", n_fds - h.n_fds, h.n_fds);
        stream_error(c, h.request_id, VKR_E_PROTOCOL, "n_fds", msg);
        return;
    }
    memcpy(fds, c->fds, n_fds * sizeof(int));
    c->n_fds = 0;
    c->body = NULL;
    c->rx_state = RX_HEADER;
    c->hdr_got = 0;
    c->body_got = 0;
    c->body_cap = 0;
    c->cb->on_frame(c, &h, body, fds, n_fds);
}

/* The body buffer is full (or not there yet): grow it by the next step, reserved by the owner
 * first.  Returns false when the stream broke (out of memory); a refused step turns the frame
 * into one whose body is skipped, and returns true. */
static bool grow_body(vkr__conn_t *c)
{
    uint64_t step = c->body_cap == 0 ? VKR__CONN_BODY_FIRST_STEP : c->body_cap;
    uint64_t to;
    uint8_t *grown;
    char msg[128];

    if (step > VKR__CONN_BODY_MAX_STEP)
        step = VKR__CONN_BODY_MAX_STEP;
    to = c->hdr.body_len - c->body_cap > step ? c->body_cap + step : c->hdr.body_len;
    if (!c->cb->on_body_grow(c, &c->hdr, c->body_cap, to)) {
        vkr__free(c->body);   /* refused: the owner answers once the rest is read past */
        c->body = NULL;
        c->body_cap = 0;
        c->rx_state = RX_SKIP;
        return true;
    }
    grown = vkr__realloc(c->body, (size_t)to);
    if (grown == NULL) {
        snprintf(msg, sizeof msg, "out of memory for a body of %llu bytes (%llu of them arrived)",
                 (unsigned long long)c->hdr.body_len, (unsigned long long)c->body_got);
        stream_error(c, c->hdr.request_id, VKR_E_NOMEM, "body_len", msg);
        return false;
    }
    c->body = grown;
    c->body_cap = to;
    return true;
}

static void header_complete(vkr__conn_t *c)
{
    vkr_error_t err;
    char msg[128];

    memset(&err, 0, sizeof err);
    if (vkr_header_decode(c->hdr_bytes, c->limits.max_submit_body, 0, &c->hdr, &err) != VKR_OK) {
        stream_error(c, c->hdr.request_id, err.code, err.field, err.message);
        return;
    }
    if (c->n_fds != c->hdr.n_fds) {
        snprintf(msg, sizeof msg, "n_fds %u, but %u descriptor(s) arrived with the header", c->hdr.n_fds, c->n_fds);
        stream_error(c, c->hdr.request_id, VKR_E_PROTOCOL, "n_fds", msg);
        return;
    }
    c->body_got = 0;
    c->body_cap = 0;
    if (c->cb->on_header(c, &c->hdr) == VKR__CONN_SKIP_BODY) {
        c->rx_state = RX_SKIP;
    } else if (c->hdr.body_len > 0) {
        c->rx_state = RX_BODY;
        if (!grow_body(c))
            return;
    }
    if (c->hdr.body_len == 0)
        frame_complete(c);
}

static void do_read(vkr__conn_t *c)
{
    static uint8_t skip_buf[SKIP_CHUNK_BYTES];   /* loop thread only */
    size_t budget = VKR__CONN_READ_BUDGET_BYTES;

    while (budget > 0 && reading_enabled(c)) {
        void *into;
        size_t want;
        uint64_t left;
        bool fds_lost = false;
        ssize_t n;

        if (c->rx_state == RX_HEADER) {
            into = c->hdr_bytes + c->hdr_got;
            want = VKR_FRAME_HEADER_BYTES - c->hdr_got;
        } else {
            left = c->hdr.body_len - c->body_got;
            if (c->rx_state == RX_BODY && c->body_got == c->body_cap && !grow_body(c))
                return;
            if (c->rx_state == RX_BODY) {
                left = c->body_cap - c->body_got;
                into = c->body + c->body_got;
                want = left > (1u << 30) ? (1u << 30) : (size_t)left;
            } else {
                into = skip_buf;
                want = left > sizeof skip_buf ? sizeof skip_buf : (size_t)left;
            }
        }
        n = vkr__recv_with_fds(c->fd, into, want, c->fds, &c->n_fds, VKR_MAX_FDS_PER_FRAME, &fds_lost);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                vkr__log(VKR_LOG_DEBUG, "connection fd %d: recvmsg: %s", c->fd, strerror(errno));
                vkr__conn_close(c);
            }
            return;
        }
        if (fds_lost) {
            stream_error(c, c->hdr.request_id, VKR_E_PROTOCOL, "n_fds", "more descriptors arrived than a frame may carry (3)");
            return;
        }
        if (n == 0) {
            vkr__conn_close(c);   /* the peer closed (mid-frame or not) */
            return;
        }
        *c->bytes_in += (uint64_t)n;
        budget -= (size_t)n < budget ? (size_t)n : budget;
        c->last_rx_ms = uv_now(c->poll.loop);
        if (vkr__conn_between_frames(c)) {
            /* a frame begins: its clocks start */
            c->frame_start_ms = c->last_rx_ms;
            if (c->limits.idle_timeout_ms > 0)
                arm_timer(c, c->last_rx_ms + c->limits.idle_timeout_ms);
            if (c->limits.frame_timeout_ms > 0)
                arm_timer(c, c->frame_start_ms + c->limits.frame_timeout_ms);
        }
        if (c->rx_state == RX_HEADER) {
            c->hdr_got += (size_t)n;
            if (c->hdr_got == VKR_FRAME_HEADER_BYTES)
                header_complete(c);
        } else {
            c->body_got += (uint64_t)n;
            if (c->body_got == c->hdr.body_len)
                frame_complete(c);
        }
    }
}

/* ---------------------------------------------------------------- time limits */
/* When queued frames that the peer takes nothing of are given up (UINT64_MAX: none due): the
 * idle timeout after the later of the last byte written and the moment the queue filled. */
static uint64_t write_deadline(const vkr__conn_t *c)
{
    if (c->out_head == NULL || c->limits.idle_timeout_ms == 0)
        return UINT64_MAX;
    return (c->last_tx_ms > c->out_since_ms ? c->last_tx_ms : c->out_since_ms) + c->limits.idle_timeout_ms;
}

/* Whether a frame is being read whose deadlines count. */
static bool reading_frame(const vkr__conn_t *c)
{
    return !c->stream_broken && !c->close_when_flushed && !vkr__conn_between_frames(c);
}

/* The earliest deadline: the frame being read, the frames waiting to be written (UINT64_MAX: none). */
static uint64_t next_deadline(const vkr__conn_t *c)
{
    uint64_t due = write_deadline(c);

    if (!reading_frame(c))
        return due;
    if (c->limits.idle_timeout_ms > 0 && c->last_rx_ms + c->limits.idle_timeout_ms < due)
        due = c->last_rx_ms + c->limits.idle_timeout_ms;
    if (c->limits.frame_timeout_ms > 0 && c->frame_start_ms + c->limits.frame_timeout_ms < due)
        due = c->frame_start_ms + c->limits.frame_timeout_ms;
    return due;
}

static void timer_cb(uv_timer_t *timer)
{
    vkr__conn_t *c = timer->data;
    uint64_t now = uv_now(timer->loop), due;
    char msg[256], got[96];

    if (c->closing)
        return;
    if (now >= write_deadline(c)) {
        /* the peer has not taken a byte of its replies for the idle timeout: it is not waited for */
        const uint64_t since = c->last_tx_ms > c->out_since_ms ? c->last_tx_ms : c->out_since_ms;

        if (c->close_when_flushed) {
            vkr__log(VKR_LOG_INFO, "connection fd %d: closed: its last replies were not read for %.1f s (--idle-timeout)", c->fd,
                     (double)c->limits.idle_timeout_ms / 1000.0);
        } else {
            vkr__log(VKR_LOG_INFO, "connection fd %d: closed: replies waited %.1f s without the peer reading a byte of them "
                     "(--idle-timeout %.1f s)", c->fd, (double)(now - since) / 1000.0, (double)c->limits.idle_timeout_ms / 1000.0);
            if (c->timed_out != NULL)
                (*c->timed_out)++;
        }
        vkr__conn_close(c);
        return;
    }
    if (reading_frame(c)) {
        if (c->rx_state == RX_HEADER)
            snprintf(got, sizeof got, "%zu of %u header bytes", c->hdr_got, VKR_FRAME_HEADER_BYTES);
        else
            snprintf(got, sizeof got, "%llu of %llu body bytes", (unsigned long long)c->body_got, (unsigned long long)c->hdr.body_len);
        if (c->limits.frame_timeout_ms > 0 && now >= c->frame_start_ms + c->limits.frame_timeout_ms) {
            snprintf(msg, sizeof msg, "a frame was not complete %.1f s after its first byte (%s; --frame-timeout %.1f s)",
                     (double)(now - c->frame_start_ms) / 1000.0, got, (double)c->limits.frame_timeout_ms / 1000.0);
            stream_error(c, 0, VKR_E_TIMEOUT, "frame_timeout", msg);
            return;
        }
        if (c->limits.idle_timeout_ms > 0 && now >= c->last_rx_ms + c->limits.idle_timeout_ms) {
            snprintf(msg, sizeof msg, "no byte of a frame begun arrived for %.1f s (%s; --idle-timeout %.1f s)",
                     (double)(now - c->last_rx_ms) / 1000.0, got, (double)c->limits.idle_timeout_ms / 1000.0);
            stream_error(c, 0, VKR_E_TIMEOUT, "idle_timeout", msg);
            return;
        }
    }
    due = next_deadline(c);
    if (due != UINT64_MAX)
        arm_timer(c, due);
}

static void poll_cb(uv_poll_t *handle, int status, int events)
{
    vkr__conn_t *c = handle->data;

    if (status < 0) {
        vkr__log(VKR_LOG_DEBUG, "connection fd %d: poll: %s", c->fd, uv_strerror(status));
        vkr__conn_close(c);
        return;
    }
    if (events & UV_WRITABLE)
        flush(c);
    if ((events & UV_READABLE) && !c->closing)
        do_read(c);
    update_events(c);
}

int vkr__conn_start(vkr__conn_t *c, uv_loop_t *loop, int fd, const vkr__conn_callbacks_t *cb, void *owner,
                    const vkr__conn_limits_t *limits, uint64_t *bytes_in, uint64_t *bytes_out)
{
    int rc;

    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->cb = cb;
    c->owner = owner;
    c->limits = *limits;
    c->bytes_in = bytes_in;
    c->bytes_out = bytes_out;
    c->want_read = true;
    rc = uv_poll_init(loop, &c->poll, fd);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    c->poll.data = c;
    uv_timer_init(loop, &c->timer);   /* cannot fail */
    c->timer.data = c;
    c->handles_open = 2;
    update_events(c);
    return 0;
}
