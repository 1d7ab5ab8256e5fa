/* One client connection's byte stream: non-blocking recvmsg / sendmsg on a uv_poll_t (libuv's
 * streams cannot carry arbitrary descriptors), frames in (header, the descriptors that came with
 * it, body) and out (a queue of frames, each optionally passing one descriptor).  What a frame
 * means is the server's business (server.c); this file only frames bytes and descriptors. */
#ifndef VKR_DAEMON_CONN_H
#define VKR_DAEMON_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "vkr_proto.h"

#define VKR__CONN_HEAD_MAX (VKR_FRAME_HEADER_BYTES + 1024u)   /* header + fixed body of an outgoing frame */
#define VKR__CONN_READ_BUDGET_BYTES (4u << 20)   /* read per wake-up before other connections get a turn */
#define VKR__CONN_CONTROL_BACKLOG_BYTES (256u << 10)  /* unsent replies without payload (errors, pongs,
                                                       * stats) past which reading pauses */
/* A body is read into a buffer that grows as its bytes arrive (issue 11: nothing is reserved for
 * bytes that have not come): the first VKR__CONN_BODY_FIRST_STEP bytes, then doubling, each step
 * at most VKR__CONN_BODY_MAX_STEP, up to body_len.  The owner reserves every step (on_body_grow)
 * before the buffer grows, so what a stalled frame holds is at most twice what arrived (and at
 * most VKR__CONN_BODY_MAX_STEP more). */
#define VKR__CONN_BODY_FIRST_STEP (64u << 10)
#define VKR__CONN_BODY_MAX_STEP (64u << 20)

typedef struct vkr__conn vkr__conn_t;

/* What one connection may do, in bytes and time. */
typedef struct {
    uint64_t max_submit_body;           /* passed to vkr_header_decode */
    uint64_t idle_timeout_ms;           /* mid-frame without a byte for this long: closed (--idle-timeout; 0 off);
                                         * also how long replies may wait unsent without the peer taking a
                                         * byte of them before the connection is closed */
    uint64_t frame_timeout_ms;          /* a frame not complete this long after its first byte: closed
                                         * (--frame-timeout; 0 off) */
} vkr__conn_limits_t;

/* What the reader should do with the body of a frame whose header was just read. */
enum { VKR__CONN_READ_BODY = 0, VKR__CONN_SKIP_BODY = 1 };

typedef struct {
    /* A header passed vkr_header_decode and exactly h->n_fds descriptors came with it.  Return
     * VKR__CONN_READ_BODY to have the body read into a buffer that grows as it arrives (each
     * step through on_body_grow), or VKR__CONN_SKIP_BODY to have it read and dropped. */
    int (*on_header)(vkr__conn_t *c, const vkr_frame_header_t *h);
    /* The body buffer of the frame being read is to grow from `from` to `to` bytes (the first
     * step comes right after on_header, from 0).  Return true to let it grow, false to refuse the
     * frame: its buffer is freed, the rest of its body is read and dropped, and on_frame gets it
     * with body NULL (the owner answers it). */
    bool (*on_body_grow)(vkr__conn_t *c, const vkr_frame_header_t *h, uint64_t from, uint64_t to);
    /* A whole frame.  body: malloc'd, owned by the callee (NULL when body_len is 0 or the body was
     * skipped); fds[0..n_fds): received descriptors, owned by the callee (close them). */
    void (*on_frame)(vkr__conn_t *c, const vkr_frame_header_t *h, uint8_t *body, int *fds, unsigned n_fds);
    /* The stream cannot be trusted past this point (bad header, descriptor count mismatch), or a
     * frame stalled (VKR_E_TIMEOUT, field "idle_timeout" or "frame_timeout", request_id 0).
     * Reading has stopped; the callee answers with an ERROR and closes after it is written (a peer
     * that does not read it within the idle timeout is closed all the same). */
    void (*on_stream_error)(vkr__conn_t *c, uint32_t request_id, const vkr_error_t *err);
    /* The connection is closed and every queued frame's done callback has run: the owner may
     * free the memory the conn lives in. */
    void (*on_closed)(vkr__conn_t *c);
} vkr__conn_callbacks_t;

/* Called once per queued frame: status 0 when it was written completely, else a negative uv
 * error (the connection closed first).  Runs on the loop thread. */
typedef void (*vkr__conn_done_cb)(void *arg, int status);

typedef struct vkr__conn_out vkr__conn_out_t;

struct vkr__conn {
    uv_poll_t poll;
    uv_timer_t timer;                   /* the idle / frame / flush deadlines (armed lazily) */
    int handles_open;                   /* poll and timer: on_closed runs once both are closed */
    int fd;
    void *owner;                        /* the server's per-client data */
    const vkr__conn_callbacks_t *cb;
    vkr__conn_limits_t limits;
    uint64_t *bytes_in, *bytes_out;     /* counters the conn adds to (the server's stats) */
    uint64_t *timed_out;                /* counter of connections closed because the peer did not read its
                                         * replies for the idle timeout (NULL: none; set after start) */
    bool want_read;                     /* the server wants frames */
    bool stream_broken;                 /* after on_stream_error: never read again */
    bool close_when_flushed;
    bool closing;
    int events;                         /* what the poll handle watches now */
    uint64_t frame_start_ms;            /* uv_now() when the frame being read began */
    uint64_t last_rx_ms, last_tx_ms;    /* uv_now() of the last byte read / written */
    uint64_t out_since_ms;              /* uv_now() when the queue of frames to write last became non-empty */
    /* reader */
    int rx_state;
    uint8_t hdr_bytes[VKR_FRAME_HEADER_BYTES];
    size_t hdr_got;
    vkr_frame_header_t hdr;
    uint8_t *body;
    uint64_t body_got;
    uint64_t body_cap;                  /* bytes of body allocated (and reserved by the owner) so far */
    int fds[VKR_MAX_FDS_PER_FRAME];
    unsigned n_fds;
    /* writer */
    vkr__conn_out_t *out_head, *out_tail;
    size_t control_backlog;
};

/* Start serving an accepted, non-blocking socket fd (owned by the conn from now on, closed at the
 * end) under limits (copied).  Reading starts at once.  Returns 0, or a negative uv error (fd
 * then closed, no callback will run). */
int vkr__conn_start(vkr__conn_t *c, uv_loop_t *loop, int fd, const vkr__conn_callbacks_t *cb, void *owner,
                    const vkr__conn_limits_t *limits, uint64_t *bytes_in, uint64_t *bytes_out);

/* Whether the server wants frames (a frame already begun is always read to its end first). */
void vkr__conn_set_reading(vkr__conn_t *c, bool on);

/* True when no frame has been begun (nothing of a next frame read). */
bool vkr__conn_between_frames(const vkr__conn_t *c);

/* True when every queued frame has been written. */
bool vkr__conn_flushed(const vkr__conn_t *c);

/* Queue a frame: head[0..head_len) (copied; at most VKR__CONN_HEAD_MAX bytes), then
 * payload[0..payload_len) (borrowed until done runs), passing pass_fd (>= 0; owned by the conn
 * from now on and closed once sent) with its first byte.  done(arg, status) runs exactly once,
 * also when this call fails.  Returns 0, or a negative uv error (the conn is closing). */
int vkr__conn_send(vkr__conn_t *c, const void *head, size_t head_len, const void *payload, size_t payload_len, int pass_fd,
                   vkr__conn_done_cb done, void *arg);

/* Stop reading and close once every queued frame is written (or when the peer has not read a
 * byte of them for the idle timeout).  Any connection whose queued frames wait for the idle
 * timeout without a byte of them taken by the peer is closed likewise (a client that never reads
 * its replies does not hold them for ever). */
void vkr__conn_close_when_flushed(vkr__conn_t *c);

/* Close now: queued frames are dropped (their done callbacks get UV_ECANCELED), received
 * descriptors closed; on_closed runs from the loop afterwards.  Idempotent. */
void vkr__conn_close(vkr__conn_t *c);

#endif
