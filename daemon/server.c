/* The daemon's server: owns the listening Unix socket, every client connection and its frame
 * reader, the hand-off of decoded jobs to libuv's worker pool, reply frames, and shutdown.
 *
 * A connection reads one frame at a time straight into its buffers (32-byte header, then a body
 * whose length was checked before it was allocated).  A header that cannot be trusted (bad magic,
 * version, type, length) gets an ERROR frame and the connection is closed; a well-framed body that
 * is not a valid job gets an ERROR frame and the connection carries on.  While a job runs, the
 * connection stops reading (one job in flight per connection: back-pressure for free). */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "log.h"

typedef enum { READ_HEADER, READ_BODY, READ_PAUSED } read_state_t;

typedef struct server_s server_t;

typedef struct client_s {
    uv_pipe_t pipe;
    server_t *server;
    struct client_s *next, *prev;
    unsigned id;
    int refs;                       /* the pipe handle + each job + each pending write */
    bool closing;
    read_state_t state;
    uint8_t header_bytes[VKR_FRAME_HEADER_BYTES];
    size_t got;
    vkr_frame_header_t header;
    uint8_t *body;                  /* body_len bytes while READ_BODY */
} client_t;

typedef struct {
    uv_work_t work;
    client_t *client;
    uint32_t request_id;
    uint8_t *body;                  /* owns the request body (input tensor view points into it) */
    vkr_job_t job;
    vkr_plan_t plan;
    vkr_backend_s *backend;
    int backend_id;
    float *output;
    vkr_error_t error;
    int status;
} job_t;

typedef struct {
    uv_write_t req;
    client_t *client;
    uint8_t head[VKR_FRAME_HEADER_BYTES + VKR_ERROR_BODY_MAX + VKR_RESULT_FIXED_BYTES + VKR_PONG_BODY_MAX];
    void *payload;                  /* freed when the write completes (output tensor) */
    void *payload2;                 /* freed too (request body) */
    bool close_after;
} write_t;

struct server_s {
    const vkr_server_config_t *cfg;
    uv_loop_t *loop;
    uv_pipe_t listener;
    uv_signal_t sigterm, sigint;
    client_t *clients;
    unsigned next_client_id;
    unsigned jobs_in_flight;
    bool shutting_down;
    bool socket_bound;
};

static void client_unref(client_t *c);
static void client_close(client_t *c);
static void client_resume_reading(client_t *c);
static void maybe_finish_shutdown(server_t *s);

/* ---------------------------------------------------------------- replies */
static void write_done_cb(uv_write_t *req, int status)
{
    write_t *w = (write_t *)req;
    client_t *c = w->client;
    if (status < 0 && status != UV_ECANCELED)
        vkr__log(VKR_LOG_DEBUG, "client %u: write failed: %s", c->id, uv_strerror(status));
    free(w->payload);
    free(w->payload2);
    if (w->close_after || status < 0)
        client_close(c);
    free(w);
    server_t *s = c->server;
    client_unref(c);
    maybe_finish_shutdown(s);
}

/* Queue head (header + fixed body, already encoded in w->head) and an optional payload. */
static void send_frame(client_t *c, write_t *w, size_t head_len, void *payload, size_t payload_len)
{
    if (c->closing) {
        free(payload);
        free(w->payload2);
        free(w);
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init((char *)w->head, (unsigned)head_len), uv_buf_init(payload, (unsigned)payload_len)};
    w->client = c;
    w->payload = payload;
    c->refs++;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, bufs, payload_len ? 2 : 1, write_done_cb);
    if (rc < 0) {
        vkr__log(VKR_LOG_WARN, "client %u: uv_write: %s", c->id, uv_strerror(rc));
        free(w->payload);
        free(w->payload2);
        free(w);
        client_close(c);
        client_unref(c);
    }
}

static void send_error(client_t *c, uint32_t request_id, const vkr_error_t *e, bool close_after)
{
    write_t *w = calloc(1, sizeof *w);
    if (!w) {
        client_close(c);
        return;
    }
    vkr__log(VKR_LOG_INFO, "client %u: request %u refused: %s [%s]: %s", c->id, request_id, vkr_proto_code_name(e->code),
             e->field, e->message);
    size_t body_len = vkr_error_encode(e, w->head + VKR_FRAME_HEADER_BYTES);
    vkr_frame_header_t h = {.magic = VKR_PROTO_MAGIC, .version = VKR_PROTO_VERSION, .type = VKR_MSG_ERROR,
                            .request_id = request_id, .body_len = body_len};
    vkr_header_encode(&h, w->head);
    w->close_after = close_after;
    send_frame(c, w, VKR_FRAME_HEADER_BYTES + body_len, NULL, 0);
}

static void send_pong(client_t *c, uint32_t request_id)
{
    const vkr_server_config_t *cfg = c->server->cfg;
    write_t *w = calloc(1, sizeof *w);
    if (!w) {
        client_close(c);
        return;
    }
    vkr_pong_t p = {.default_backend = (uint16_t)cfg->default_backend};
    if (cfg->vulkan)
        p.backend_mask |= 1u << VKR_BACKEND_VULKAN;
    if (cfg->cpu)
        p.backend_mask |= 1u << VKR_BACKEND_CPU;
    vkr_backend_s *dev = cfg->default_backend == VKR_BACKEND_VULKAN ? cfg->vulkan : cfg->cpu;
    snprintf(p.device_name, sizeof p.device_name, "%s", dev->device_name);
    size_t body_len = vkr_pong_encode(&p, w->head + VKR_FRAME_HEADER_BYTES);
    vkr_frame_header_t h = {.magic = VKR_PROTO_MAGIC, .version = VKR_PROTO_VERSION, .type = VKR_MSG_PONG,
                            .request_id = request_id, .body_len = body_len};
    vkr_header_encode(&h, w->head);
    send_frame(c, w, VKR_FRAME_HEADER_BYTES + body_len, NULL, 0);
}

/* ---------------------------------------------------------------- jobs */
static void job_work_cb(uv_work_t *req)
{
    job_t *j = (job_t *)req;
    if (j->plan.out_elements) {
        j->output = malloc(j->plan.out_elements * sizeof(float));
        if (!j->output) {
            j->status = vkr_proto_error_set(&j->error, VKR_E_NOMEM, "size", "out of memory for an output of %llu bytes",
                                            (unsigned long long)(j->plan.out_elements * sizeof(float)));
            return;
        }
    }
    const vkr_job_t *job = &j->job;
    vkr_backend_s *b = j->backend;
    switch (job->op) {
    case VKR_OP_INTERPOLATE:
        j->status = b->interpolate(b, &j->plan.interp, job->input.data, j->output, &j->error);
        break;
    case VKR_OP_AFFINE_GRID:
        j->status = b->grid(b, &j->plan.grid, NULL, job->input.data, j->output, &j->error);
        break;
    default:
        j->status = b->grid(b, &j->plan.grid, job->input.data, job->aux.data, j->output, &j->error);
        break;
    }
}

static void job_done_cb(uv_work_t *req, int status)
{
    job_t *j = (job_t *)req;
    client_t *c = j->client;
    server_t *s = c->server;
    s->jobs_in_flight--;
    if (status == UV_ECANCELED)
        vkr_proto_error_set(&j->error, j->status = VKR_E_SHUTDOWN, "", "the job was cancelled");
    if (j->status != VKR_OK) {
        free(j->output);
        free(j->body);
        send_error(c, j->request_id, &j->error, false);
    } else {
        write_t *w = calloc(1, sizeof *w);
        if (!w) {
            free(j->output);
            free(j->body);
            client_close(c);
        } else {
            vkr_result_t res = {.backend_used = (uint16_t)j->backend_id};
            res.output.rank = (uint8_t)j->plan.out_rank;
            memcpy(res.output.shape, j->plan.out_shape, sizeof res.output.shape);
            uint64_t body_len = vkr_result_encode_fixed(&res, w->head + VKR_FRAME_HEADER_BYTES);
            vkr_frame_header_t h = {.magic = VKR_PROTO_MAGIC, .version = VKR_PROTO_VERSION, .type = VKR_MSG_RESULT,
                                    .request_id = j->request_id, .body_len = body_len};
            vkr_header_encode(&h, w->head);
            w->payload2 = j->body;
            send_frame(c, w, VKR_FRAME_HEADER_BYTES + VKR_RESULT_FIXED_BYTES, j->output, res.output.data_bytes);
        }
    }
    free(j);
    client_resume_reading(c);
    client_unref(c);
    maybe_finish_shutdown(s);
}

/* Pick the backend for a job: returns it, or NULL with *err filled. */
static vkr_backend_s *choose_backend(const vkr_server_config_t *cfg, int requested, int *chosen, vkr_error_t *err)
{
    int id = requested == VKR_BACKEND_AUTO ? cfg->default_backend : requested;
    vkr_backend_s *b = id == VKR_BACKEND_VULKAN ? cfg->vulkan : cfg->cpu;
    if (!b) {
        vkr_proto_error_set(err, VKR_E_BACKEND_UNAVAILABLE, "backend",
                            "backend '%s' is not available in this daemon (it serves: %s%s%s)", vkr_proto_backend_name(id),
                            cfg->vulkan ? "vulkan" : "", cfg->vulkan && cfg->cpu ? ", " : "", cfg->cpu ? "cpu" : "");
        return NULL;
    }
    *chosen = id;
    return b;
}

/* Take ownership of a SUBMIT body: decode, plan, queue.  Errors become ERROR frames. */
static void handle_submit(client_t *c, uint8_t *body)
{
    server_t *s = c->server;
    const vkr_server_config_t *cfg = s->cfg;
    job_t *j = calloc(1, sizeof *j);
    vkr_error_t err;
    if (!j) {
        vkr_proto_error_set(&err, VKR_E_NOMEM, "", "out of memory for a job");
        goto fail;
    }
    j->client = c;
    j->request_id = c->header.request_id;
    j->body = body;
    if (vkr_submit_decode(body, c->header.body_len, cfg->max_job_bytes, &j->job, &err) ||
        vkr_plan_job(&j->job, cfg->max_job_bytes, &j->plan, &err))
        goto fail;
    if (!(j->backend = choose_backend(cfg, j->job.backend, &j->backend_id, &err)))
        goto fail;
    if (j->job.op != VKR_OP_INTERPOLATE && !j->backend->grid) {
        vkr_proto_error_set(&err, VKR_E_UNSUPPORTED, "backend", "the %s backend does not serve grid_sample / affine_grid / affine_sample yet",
                            j->backend->name);
        goto fail;
    }
    int rc = uv_queue_work(s->loop, &j->work, job_work_cb, job_done_cb);
    if (rc < 0) {
        vkr_proto_error_set(&err, VKR_E_BACKEND, "", "could not queue the job: %s", uv_strerror(rc));
        goto fail;
    }
    vkr__log(VKR_LOG_DEBUG, "client %u: request %u queued on %s", c->id, j->request_id, j->backend->name);
    s->jobs_in_flight++;
    c->refs++;
    c->state = READ_PAUSED;
    uv_read_stop((uv_stream_t *)&c->pipe);
    return;
fail:
    send_error(c, c->header.request_id, &err, false);
    free(body);
    free(j);
}

/* A complete frame has arrived (header in c->header, body in c->body). */
static void handle_frame(client_t *c)
{
    uint8_t *body = c->body;
    c->body = NULL;
    c->state = READ_HEADER;
    c->got = 0;
    switch (c->header.type) {
    case VKR_MSG_PING:
        send_pong(c, c->header.request_id);
        free(body);
        break;
    case VKR_MSG_SUBMIT:
        handle_submit(c, body);
        break;
    default: {
        vkr_error_t err;
        vkr_proto_error_set(&err, VKR_E_PROTOCOL, "type", "message type %u is not a request", c->header.type);
        free(body);
        send_error(c, c->header.request_id, &err, true);
        c->state = READ_PAUSED;
        uv_read_stop((uv_stream_t *)&c->pipe);
        return;
    }
    }
    if (c->server->shutting_down && c->state == READ_HEADER) {
        /* the frame that was arriving when shutdown began is served; nothing after it is read */
        c->state = READ_PAUSED;
        uv_read_stop((uv_stream_t *)&c->pipe);
        maybe_finish_shutdown(c->server);
    }
}

/* ---------------------------------------------------------------- reading */
static void alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    client_t *c = handle->data;
    (void)suggested;
    if (c->state == READ_HEADER)
        *buf = uv_buf_init((char *)c->header_bytes + c->got, (unsigned)(VKR_FRAME_HEADER_BYTES - c->got));
    else if (c->state == READ_BODY) {
        uint64_t left = c->header.body_len - c->got;
        *buf = uv_buf_init((char *)c->body + c->got, (unsigned)(left > (1u << 30) ? (1u << 30) : left));
    } else
        *buf = uv_buf_init(NULL, 0);
}

static void header_complete(client_t *c)
{
    const vkr_server_config_t *cfg = c->server->cfg;
    vkr_error_t err;
    /* a SUBMIT carries at most two tensors of up to max_job_bytes each */
    if (vkr_header_decode(c->header_bytes, 2 * cfg->max_job_bytes + VKR_SUBMIT_MAX_FIXED_BYTES, 0, &c->header, &err)) {
        /* the stream cannot be trusted past a bad header: answer and close */
        send_error(c, c->header.request_id, &err, true);
        c->state = READ_PAUSED;
        uv_read_stop((uv_stream_t *)&c->pipe);
        return;
    }
    c->got = 0;
    if (c->header.body_len == 0) {
        c->body = NULL;
        handle_frame(c);
        return;
    }
    c->body = malloc(c->header.body_len);
    if (!c->body) {
        vkr_proto_error_set(&err, VKR_E_NOMEM, "body_len", "out of memory for a body of %llu bytes",
                            (unsigned long long)c->header.body_len);
        send_error(c, c->header.request_id, &err, true);
        c->state = READ_PAUSED;
        uv_read_stop((uv_stream_t *)&c->pipe);
        return;
    }
    c->state = READ_BODY;
}

static void read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    client_t *c = stream->data;
    (void)buf;
    if (nread < 0) {
        if (nread != UV_EOF)
            vkr__log(VKR_LOG_DEBUG, "client %u: read: %s", c->id, uv_strerror((int)nread));
        client_close(c);
        return;
    }
    if (nread == 0)
        return;
    c->got += (size_t)nread;
    if (c->state == READ_HEADER && c->got == VKR_FRAME_HEADER_BYTES)
        header_complete(c);
    else if (c->state == READ_BODY && c->got == c->header.body_len)
        handle_frame(c);
}

static void client_resume_reading(client_t *c)
{
    if (c->closing || c->state != READ_PAUSED || c->server->shutting_down)
        return;
    c->state = READ_HEADER;
    c->got = 0;
    int rc = uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
    if (rc < 0)
        client_close(c);
}

/* ---------------------------------------------------------------- connections */
static void client_unref(client_t *c)
{
    if (--c->refs > 0)
        return;
    server_t *s = c->server;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->body);
    vkr__log(VKR_LOG_DEBUG, "client %u: gone", c->id);
    free(c);
}

static void client_closed_cb(uv_handle_t *h)
{
    client_t *c = h->data;
    server_t *s = c->server;
    client_unref(c);
    maybe_finish_shutdown(s);
}

static void client_close(client_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->pipe, client_closed_cb);
}

static void connection_cb(uv_stream_t *listener, int status)
{
    server_t *s = listener->data;
    if (status < 0) {
        vkr__log(VKR_LOG_WARN, "accept: %s", uv_strerror(status));
        return;
    }
    client_t *c = calloc(1, sizeof *c);
    if (!c || uv_pipe_init(s->loop, &c->pipe, 0) < 0) {
        free(c);
        vkr__log(VKR_LOG_WARN, "accept: out of memory");
        return;
    }
    c->pipe.data = c;
    c->server = s;
    c->id = ++s->next_client_id;
    c->refs = 1;
    c->next = s->clients;
    if (s->clients)
        s->clients->prev = c;
    s->clients = c;
    if (uv_accept(listener, (uv_stream_t *)&c->pipe) < 0 ||
        uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb) < 0) {
        client_close(c);
        return;
    }
    vkr__log(VKR_LOG_DEBUG, "client %u: connected", c->id);
}

/* ---------------------------------------------------------------- socket file */
/* Make path free to bind: refuse a live socket, a symlink or a non-socket; unlink a stale one. */
static int prepare_socket_path(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : (vkr__log(VKR_LOG_ERROR, "socket %s: %s", path, strerror(errno)), -1);
    if (S_ISLNK(st.st_mode)) {
        vkr__log(VKR_LOG_ERROR, "socket %s is a symbolic link: refusing to use it", path);
        return -1;
    }
    if (!S_ISSOCK(st.st_mode)) {
        vkr__log(VKR_LOG_ERROR, "socket %s exists and is not a socket: refusing to replace it", path);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int live = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    int connect_errno = errno;
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

/* ---------------------------------------------------------------- shutdown */
static void handle_closed_cb(uv_handle_t *h) { (void)h; }

static void maybe_finish_shutdown(server_t *s)
{
    if (!s->shutting_down || s->jobs_in_flight > 0)
        return;
    /* every in-flight job has been answered; close the connections once their replies are out */
    for (client_t *c = s->clients; c; c = c->next)
        if (!c->closing && c->refs == 1 && c->state == READ_PAUSED)
            client_close(c);
}

static void begin_shutdown(server_t *s, const char *why)
{
    if (s->shutting_down)
        return;
    s->shutting_down = true;
    vkr__log(VKR_LOG_INFO, "%s: stopping (jobs in flight: %u)", why, s->jobs_in_flight);
    uv_close((uv_handle_t *)&s->listener, handle_closed_cb);
    /* libuv unlinks a pipe server's path when it closes it; make sure of it */
    if (s->socket_bound && unlink(s->cfg->socket_path) < 0 && errno != ENOENT)
        vkr__log(VKR_LOG_WARN, "unlink %s: %s", s->cfg->socket_path, strerror(errno));
    s->socket_bound = false;
    uv_close((uv_handle_t *)&s->sigterm, handle_closed_cb);
    uv_close((uv_handle_t *)&s->sigint, handle_closed_cb);
    for (client_t *c = s->clients; c; c = c->next)
        if (!c->closing && c->state == READ_HEADER && c->got == 0) {
            /* idle connections: no new requests will be read; one mid-frame finishes its frame */
            uv_read_stop((uv_stream_t *)&c->pipe);
            c->state = READ_PAUSED;
        }
    maybe_finish_shutdown(s);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    begin_shutdown(h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

int vkr__server_run(const vkr_server_config_t *cfg)
{
    server_t s = {.cfg = cfg};
    s.loop = uv_default_loop();
    int rc;
    size_t len = strlen(cfg->socket_path);
    if (len == 0 || len >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        vkr__log(VKR_LOG_ERROR, "socket path '%s' is %zu bytes: it must be 1..%zu", cfg->socket_path, len,
                 sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
        return 1;
    }
    if (prepare_socket_path(cfg->socket_path) < 0)
        return 1;
    uv_pipe_init(s.loop, &s.listener, 0);
    s.listener.data = &s;
    mode_t old_umask = umask(0177);              /* the socket is 0600 from the first instant */
    rc = uv_pipe_bind(&s.listener, cfg->socket_path);
    umask(old_umask);
    if (rc < 0) {
        vkr__log(VKR_LOG_ERROR, "bind %s: %s", cfg->socket_path, uv_strerror(rc));
        goto fail_listener;
    }
    s.socket_bound = true;
    if ((rc = uv_listen((uv_stream_t *)&s.listener, 128, connection_cb)) < 0) {
        vkr__log(VKR_LOG_ERROR, "listen %s: %s", cfg->socket_path, uv_strerror(rc));
        goto fail_listener;
    }
    uv_signal_init(s.loop, &s.sigterm);
    uv_signal_init(s.loop, &s.sigint);
    s.sigterm.data = s.sigint.data = &s;
    uv_signal_start(&s.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&s.sigint, signal_cb, SIGINT);
    signal(SIGPIPE, SIG_IGN);

    vkr__log(VKR_LOG_INFO, "listening on %s (default backend: %s; available:%s%s; max job %llu bytes)", cfg->socket_path,
             vkr_proto_backend_name(cfg->default_backend), cfg->vulkan ? " vulkan" : "", cfg->cpu ? " cpu" : "",
             (unsigned long long)cfg->max_job_bytes);
    if (cfg->ready_fd >= 0) {
        static const char ready[] = "ready\n";
        if (write(cfg->ready_fd, ready, sizeof ready - 1) < 0)
            vkr__log(VKR_LOG_WARN, "ready fd %d: %s", cfg->ready_fd, strerror(errno));
        close(cfg->ready_fd);
    }
    uv_run(s.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(s.loop);
    if (rc < 0)
        vkr__log(VKR_LOG_WARN, "uv_loop_close: %s (handles still open)", uv_strerror(rc));
    vkr__log(VKR_LOG_INFO, "stopped");
    return 0;

fail_listener:
    uv_close((uv_handle_t *)&s.listener, handle_closed_cb);
    uv_run(s.loop, UV_RUN_DEFAULT);
    if (s.socket_bound)
        unlink(cfg->socket_path);
    uv_loop_close(s.loop);
    return 1;
}
