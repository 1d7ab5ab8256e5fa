/* The daemon's server: owns the libuv loop, the listening socket's accept loop, the clients, what
 * each request means (PING, STATS, SUBMIT, CANCEL), the life of a job from its frame to its reply,
 * and shutdown.  Bytes and descriptors on a connection are conn.c's, admission and scheduling
 * queue.c's, memfd checks and mappings memfd.c's, counters stats.c's, the socket listen.c's.
 *
 * A connection is read continuously (pipelining): every SUBMIT is admitted against the queue
 * limits when its header arrives (a full limit: its body is read and dropped and it gets
 * VKR_E_BUSY), decoded, planned, its memfds checked and mapped, and queued; replies go out as
 * jobs finish, in any order, each carrying its request_id.  A header that cannot be trusted gets
 * an ERROR and the connection is closed; a well-framed bad request gets an ERROR and the
 * connection carries on.  A job holds its queue slot and bytes until its reply is written (or it
 * is dropped), so what one client leaves unread is bounded too. */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "conn.h"
#include "listen.h"
#include "log.h"
#include "memfd.h"
#include "queue.h"
#include "stats.h"

typedef struct server_s server_t;
typedef struct job_s job_t;

typedef struct client_s {
    vkr__conn_t conn;
    vkr__queue_owner_t owner;
    server_t *server;
    struct client_s *next, *prev;
    unsigned id;
    int refs;                       /* 1 until the connection is closed, + 1 per live job */
    bool conn_closed;
    job_t *jobs;                    /* live jobs (CANCEL looks them up; a disconnect drops them) */
    /* the SUBMIT whose body is being read */
    bool admitted;                  /* it holds a queue slot and admitted_bytes */
    uint64_t admitted_bytes;
    bool refused;                   /* its body is skipped; refusal is the answer */
    vkr_error_t refusal;
} client_t;

struct job_s {
    vkr__queue_job_t qj;            /* first: the queue hands back this pointer */
    client_t *client;
    job_t *next, *prev;             /* the client's live jobs */
    uint32_t request_id;
    uint64_t t0_ns;                 /* when its frame was read */
    uint64_t held_bytes;            /* queue bytes admitted + grown, released in job_finish */
    uint8_t *body;                  /* owns the request body (inline tensor views point into it) */
    vkr_job_t job;
    vkr_plan_t plan;
    vkr_backend_s *backend;
    int backend_id;
    vkr__mapping_t in_map[VKR_MAX_TENSORS], out_map;
    vkr_host_region_t regions[VKR_HOST_REGIONS];
    int out_fd;                     /* DAEMON_FD: the memfd handed back, else -1 */
    float *out_heap;                /* INLINE: the output, allocated on the worker */
    float *out;                     /* where the backend writes */
    bool counted;                   /* counted in stats in_flight */
    bool answered;                  /* its reply (result, error or cancelled) is queued */
    bool cancelled;                 /* answered VKR_E_CANCELLED while it ran: drop its output */
    bool orphaned;                  /* its client is gone: drop its output */
    int status;
    vkr_error_t error;
    uint8_t head[VKR_FRAME_HEADER_BYTES + VKR_RESULT_FIXED_BYTES];
};

struct server_s {
    const vkr_server_config_t *cfg;
    uv_loop_t *loop;
    vkr__listener_t listener;
    uv_poll_t listen_poll;
    uv_signal_t sigterm, sigint;
    vkr__queue_t queue;
    vkr__stats_t stats;
    client_t *clients;
    unsigned n_clients;
    unsigned next_client_id;
    bool accept_paused;
    bool shutting_down;
};

static void maybe_finish_shutdown(server_t *s);
static void listener_cb(uv_poll_t *h, int status, int events);

/* ---------------------------------------------------------------- clients */
static void client_unref(client_t *c)
{
    server_t *s = c->server;

    if (--c->refs > 0)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->n_clients--;
    vkr__log(VKR_LOG_DEBUG, "client %u: gone", c->id);
    free(c);
    if (s->accept_paused && !s->shutting_down && uv_poll_start(&s->listen_poll, UV_READABLE, listener_cb) == 0) {
        s->accept_paused = false;
        vkr__log(VKR_LOG_INFO, "accepting connections again");
    }
    maybe_finish_shutdown(s);
}

/* ---------------------------------------------------------------- replies */
static void frame_sent_cb(void *arg, int status)
{
    (void)arg;
    (void)status;
}

/* Queue a control frame (head already holds the header and body). */
static void send_control(client_t *c, const uint8_t *head, size_t len)
{
    vkr__conn_send(&c->conn, head, len, NULL, 0, -1, frame_sent_cb, NULL);
}

static void send_error(client_t *c, uint32_t request_id, const vkr_error_t *e)
{
    uint8_t head[VKR_FRAME_HEADER_BYTES + VKR_ERROR_BODY_MAX];
    size_t body_len = vkr_error_encode(e, head + VKR_FRAME_HEADER_BYTES);
    vkr_frame_header_t h = {.magic = VKR_PROTO_MAGIC, .version = VKR_PROTO_VERSION, .type = VKR_MSG_ERROR, .request_id = request_id,
                            .body_len = body_len};

    vkr__log(e->code == VKR_E_BUSY || e->code == VKR_E_CANCELLED ? VKR_LOG_DEBUG : VKR_LOG_INFO,
             "client %u: request %u: %s [%s]: %s", c->id, request_id, vkr_proto_code_name(e->code), e->field, e->message);
    vkr_header_encode(&h, head);
    send_control(c, head, VKR_FRAME_HEADER_BYTES + body_len);
}

static const char *device_name(const vkr_server_config_t *cfg)
{
    return (cfg->default_backend == VKR_BACKEND_VULKAN ? cfg->vulkan : cfg->cpu)->device_name;
}

static void send_pong(client_t *c, uint32_t request_id)
{
    const vkr_server_config_t *cfg = c->server->cfg;
    uint8_t head[VKR_FRAME_HEADER_BYTES + VKR_PONG_BODY_MAX];
    vkr_pong_t p = {.default_backend = (uint16_t)cfg->default_backend};

    if (cfg->vulkan)
        p.backend_mask |= 1u << VKR_BACKEND_VULKAN;
    if (cfg->cpu)
        p.backend_mask |= 1u << VKR_BACKEND_CPU;
    snprintf(p.device_name, sizeof p.device_name, "%s", device_name(cfg));
    size_t body_len = vkr_pong_encode(&p, head + VKR_FRAME_HEADER_BYTES);
    vkr_frame_header_t h = {.magic = VKR_PROTO_MAGIC, .version = VKR_PROTO_VERSION, .type = VKR_MSG_PONG, .request_id = request_id,
                            .body_len = body_len};
    vkr_header_encode(&h, head);
    send_control(c, head, VKR_FRAME_HEADER_BYTES + body_len);
}

static void send_stats(client_t *c, uint32_t request_id)
{
    server_t *s = c->server;
    uint8_t head[VKR_FRAME_HEADER_BYTES + VKR_STATS_BODY_MAX];
    vkr_stats_t st;

    vkr__stats_snapshot(&s->stats, device_name(s->cfg), s->queue.waiting, s->queue.running, s->n_clients, s->queue.workers, &st);
    size_t body_len = vkr_stats_encode(&st, head + VKR_FRAME_HEADER_BYTES);
    vkr_frame_header_t h = {.magic = VKR_PROTO_MAGIC, .version = VKR_PROTO_VERSION, .type = VKR_MSG_STATS_REPLY,
                            .request_id = request_id, .body_len = body_len};
    vkr_header_encode(&h, head);
    send_control(c, head, VKR_FRAME_HEADER_BYTES + body_len);
}

/* ---------------------------------------------------------------- jobs */
static unsigned stats_backend(const job_t *j)
{
    const vkr_server_config_t *cfg = j->client->server->cfg;
    int b = j->backend != NULL ? j->backend_id : j->job.backend == VKR_BACKEND_AUTO ? cfg->default_backend : j->job.backend;

    return b > 0 && b < VKR__STATS_BACKENDS ? (unsigned)b : (unsigned)cfg->default_backend;
}

static void uncount(job_t *j)
{
    if (!j->counted)
        return;
    j->counted = false;
    j->client->server->stats.in_flight[j->job.op][stats_backend(j)]--;
}

/* Release everything a job holds (queue slot and bytes, mappings, buffers) and free it. */
static void job_finish(job_t *j)
{
    client_t *c = j->client;
    server_t *s = c->server;

    uncount(j);
    for (unsigned k = 0; k < VKR_MAX_TENSORS; k++)
        vkr__memfd_unmap(&j->in_map[k]);
    vkr__memfd_unmap(&j->out_map);
    if (j->out_fd >= 0)
        close(j->out_fd);
    free(j->out_heap);
    free(j->body);
    if (j->prev != NULL)
        j->prev->next = j->next;
    else
        c->jobs = j->next;
    if (j->next != NULL)
        j->next->prev = j->prev;
    vkr__queue_release(&s->queue, &c->owner, j->held_bytes);
    free(j);
    client_unref(c);
}

/* How a job refused before it ran is counted in the stats. */
typedef enum { COUNT_REFUSED, COUNT_FAILED, COUNT_BUSY } refusal_count_t;

/* Answer a job with an ERROR and drop it, counting it as count says. */
static void job_refuse(job_t *j, const vkr_error_t *err, refusal_count_t count)
{
    server_t *s = j->client->server;

    if (count == COUNT_FAILED)
        s->stats.failed[j->job.op][stats_backend(j)]++;
    else if (count == COUNT_BUSY)
        s->stats.jobs_busy++;
    else
        s->stats.frames_refused++;
    j->answered = true;
    send_error(j->client, j->request_id, err);
    job_finish(j);
}

static void result_written_cb(void *arg, int status)
{
    (void)status;
    job_finish(arg);
}

static void send_result(job_t *j)
{
    server_t *s = j->client->server;
    vkr_result_t res = {.backend_used = (uint16_t)j->backend_id};
    const bool inline_data = j->job.result_storage == VKR_RESULT_INLINE;
    uint64_t body_len;
    int fd;

    res.output.rank = (uint8_t)j->plan.out_rank;
    memcpy(res.output.shape, j->plan.out_shape, sizeof res.output.shape);
    res.output.storage = inline_data ? VKR_STORAGE_INLINE
                         : j->job.result_storage == VKR_RESULT_DAEMON_FD ? VKR_STORAGE_MEMFD : VKR_STORAGE_OUTPUT_FD;
    body_len = vkr_result_encode_fixed(&res, j->head + VKR_FRAME_HEADER_BYTES);
    vkr_frame_header_t h = {.magic = VKR_PROTO_MAGIC, .version = VKR_PROTO_VERSION, .type = VKR_MSG_RESULT, .request_id = j->request_id,
                            .n_fds = j->out_fd >= 0 ? 1u : 0u, .body_len = body_len};
    vkr_header_encode(&h, j->head);

    s->stats.done[j->job.op][stats_backend(j)]++;
    if (!inline_data)
        s->stats.memfd_bytes_out += res.output.data_bytes;
    vkr__stats_latency(&s->stats, vkr__stats_now_ns() - j->t0_ns);
    uncount(j);
    /* the output is complete: the client reads it from its own mapping of the memfd */
    vkr__memfd_unmap(&j->out_map);
    for (unsigned k = 0; k < VKR_MAX_TENSORS; k++)
        vkr__memfd_unmap(&j->in_map[k]);
    fd = j->out_fd;
    j->out_fd = -1;
    j->answered = true;
    vkr__conn_send(&j->client->conn, j->head, VKR_FRAME_HEADER_BYTES + VKR_RESULT_FIXED_BYTES, inline_data ? j->out_heap : NULL,
                   inline_data ? (size_t)res.output.data_bytes : 0, fd, result_written_cb, j);
}

/* On a worker thread: run the job on its backend. */
static void job_run(vkr__queue_job_t *qj)
{
    job_t *j = (job_t *)qj;
    vkr_backend_s *b = j->backend;
    const vkr_job_t *job = &j->job;
    bool mapped = false;

    if (job->result_storage == VKR_RESULT_INLINE && j->plan.out_elements > 0) {
        j->out_heap = malloc((size_t)(j->plan.out_elements * sizeof(float)));
        if (j->out_heap == NULL) {
            j->status = vkr_proto_error_set(&j->error, VKR_E_NOMEM, "size", "out of memory for an output of %llu bytes",
                                            (unsigned long long)(j->plan.out_elements * sizeof(float)));
            return;
        }
        j->out = j->out_heap;
    }
    for (unsigned k = 0; k < VKR_HOST_REGIONS; k++)
        mapped = mapped || j->regions[k].base != NULL;
    if (mapped && b->run_mapped != NULL) {
        j->status = b->run_mapped(b, &j->plan, j->regions, &j->error);
        if (j->status != VKR_E_UNSUPPORTED)
            return;
    }
    switch (job->op) {
    case VKR_OP_INTERPOLATE:
        j->status = b->interpolate(b, &j->plan.interp, job->input.data, j->out, &j->error);
        break;
    case VKR_OP_AFFINE_GRID:
        j->status = b->grid(b, &j->plan.grid, NULL, job->input.data, j->out, &j->error);
        break;
    default:
        j->status = b->grid(b, &j->plan.grid, job->input.data, job->aux.data, j->out, &j->error);
        break;
    }
}

/* On the loop thread once the job ran (or could not be started). */
static void job_after(vkr__queue_job_t *qj, bool ran)
{
    job_t *j = (job_t *)qj;

    if (j->orphaned || j->cancelled) {
        job_finish(j);
        return;
    }
    if (!ran)
        j->status = vkr_proto_error_set(&j->error, VKR_E_BACKEND, "", "the job could not be started on a worker thread");
    if (j->status != VKR_OK) {
        uncount(j);
        job_refuse(j, &j->error, COUNT_FAILED);
        return;
    }
    send_result(j);
}

/* Pick the backend for a job: returns it, or NULL with *err filled. */
static vkr_backend_s *choose_backend(const vkr_server_config_t *cfg, int requested, int *chosen, vkr_error_t *err)
{
    int id = requested == VKR_BACKEND_AUTO ? cfg->default_backend : requested;
    vkr_backend_s *b = id == VKR_BACKEND_VULKAN ? cfg->vulkan : cfg->cpu;

    if (b == NULL) {
        vkr_proto_error_set(err, VKR_E_BACKEND_UNAVAILABLE, "backend", "backend '%s' is not available in this daemon (it serves: %s%s%s)",
                            vkr_proto_backend_name(id), cfg->vulkan ? "vulkan" : "", cfg->vulkan && cfg->cpu ? ", " : "",
                            cfg->cpu ? "cpu" : "");
        return NULL;
    }
    *chosen = id;
    return b;
}

/* Map the job's memfd tensors (inputs read-only, the output memfd writable) and describe them for
 * the backend's zero-copy hook.  fds are the frame's; the caller closes them. */
static int map_tensors(job_t *j, const int *fds, unsigned n_fds, vkr_error_t *err)
{
    const char *names[VKR_MAX_TENSORS] = {j->job.op == VKR_OP_AFFINE_GRID ? "theta" : "input",
                                          j->job.op == VKR_OP_GRID_SAMPLE ? "grid" : "theta"};
    vkr_tensor_desc_t *t[VKR_MAX_TENSORS] = {&j->job.input, &j->job.aux};
    server_t *s = j->client->server;
    uint64_t out_bytes = j->plan.out_elements * sizeof(float);
    struct stat st;
    int rc;

    for (unsigned k = 0; k < j->job.n_tensors; k++) {
        if (t[k]->storage != VKR_STORAGE_MEMFD)
            continue;
        rc = vkr__memfd_map(fds[t[k]->fd_index], t[k]->data_offset, t[k]->data_bytes, false, names[k], &j->in_map[k], err);
        if (rc != VKR_OK)
            return rc;
        t[k]->data = j->in_map[k].data;
        s->stats.memfd_bytes_in += t[k]->data_bytes;
        if (j->in_map[k].base != NULL && fstat(fds[t[k]->fd_index], &st) == 0)
            j->regions[k] = (vkr_host_region_t){j->in_map[k].base, j->in_map[k].map_bytes,
                                                (size_t)(j->in_map[k].data - (uint8_t *)j->in_map[k].base), st.st_dev, st.st_ino};
    }
    switch (j->job.result_storage) {
    case VKR_RESULT_INTO_FD:
        rc = vkr__memfd_map(fds[n_fds - 1], 0, out_bytes, true, "output", &j->out_map, err);
        if (rc != VKR_OK)
            return rc;
        if (j->out_map.base != NULL && fstat(fds[n_fds - 1], &st) == 0)
            j->regions[2] = (vkr_host_region_t){j->out_map.base, j->out_map.map_bytes, 0, st.st_dev, st.st_ino};
        break;
    case VKR_RESULT_DAEMON_FD:
        rc = vkr__queue_grow(&s->queue, &j->client->owner, out_bytes, err);
        if (rc != VKR_OK)
            return rc;
        j->held_bytes += out_bytes;
        rc = vkr__memfd_create(out_bytes, &j->out_map, &j->out_fd, err);
        if (rc != VKR_OK)
            return rc;
        if (j->out_map.base != NULL && fstat(j->out_fd, &st) == 0)
            j->regions[2] = (vkr_host_region_t){j->out_map.base, j->out_map.map_bytes, 0, st.st_dev, st.st_ino};
        break;
    default:
        rc = vkr__queue_grow(&s->queue, &j->client->owner, out_bytes, err);
        if (rc != VKR_OK)
            return rc;
        j->held_bytes += out_bytes;
        break;
    }
    j->out = (float *)(void *)j->out_map.data;
    return VKR_OK;
}

static job_t *find_job(client_t *c, uint32_t request_id)
{
    for (job_t *j = c->jobs; j != NULL; j = j->next)
        if (j->request_id == request_id)
            return j;
    return NULL;
}

static void close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

/* A SUBMIT frame: decode, plan, map, queue; every failure is an ERROR frame. */
static void handle_submit(client_t *c, const vkr_frame_header_t *h, uint8_t *body, int *fds, unsigned n_fds)
{
    server_t *s = c->server;
    const vkr_server_config_t *cfg = s->cfg;
    refusal_count_t count = COUNT_REFUSED;
    vkr_error_t err;
    job_t *j;
    bool dup;
    int rc;

    if (c->refused) {
        c->refused = false;
        if (c->refusal.code == VKR_E_BUSY)
            s->stats.jobs_busy++;
        else
            s->stats.frames_refused++;
        send_error(c, h->request_id, &c->refusal);
        close_fds(fds, n_fds);
        free(body);
        return;
    }
    /* the slot on_header admitted is the job's from here on */
    c->admitted = false;
    j = calloc(1, sizeof *j);
    if (j == NULL) {
        vkr_proto_error_set(&err, VKR_E_NOMEM, "", "out of memory for a job");
        vkr__queue_release(&s->queue, &c->owner, c->admitted_bytes);
        s->stats.frames_refused++;
        send_error(c, h->request_id, &err);
        close_fds(fds, n_fds);
        free(body);
        return;
    }
    j->client = c;
    j->request_id = h->request_id;
    j->t0_ns = vkr__stats_now_ns();
    j->held_bytes = c->admitted_bytes;
    j->body = body;
    j->out_fd = -1;
    c->refs++;
    dup = find_job(c, h->request_id) != NULL;
    j->next = c->jobs;
    if (c->jobs != NULL)
        c->jobs->prev = j;
    c->jobs = j;
    if (dup) {
        vkr_proto_error_set(&err, VKR_E_PROTOCOL, "request_id", "request_id %u is already in flight on this connection", h->request_id);
        goto fail;
    }
    if (vkr_submit_decode(body, h->body_len, cfg->max_job_bytes, n_fds, &j->job, &err) != VKR_OK) {
        j->job.op = 0;
        goto fail;
    }
    count = COUNT_FAILED;   /* from here on the job has an op: a refusal is a failed job of it */
    if (vkr_plan_job(&j->job, cfg->max_job_bytes, &j->plan, &err) != VKR_OK)
        goto fail;
    j->backend = choose_backend(cfg, j->job.backend, &j->backend_id, &err);
    if (j->backend == NULL)
        goto fail;
    if (j->job.op != VKR_OP_INTERPOLATE && j->backend->grid == NULL) {
        vkr_proto_error_set(&err, VKR_E_UNSUPPORTED, "backend", "the %s backend does not serve grid_sample / affine_grid / affine_sample yet",
                            j->backend->name);
        goto fail;
    }
    rc = map_tensors(j, fds, n_fds, &err);
    if (rc != VKR_OK) {
        count = rc == VKR_E_BUSY ? COUNT_BUSY : COUNT_FAILED;
        goto fail;
    }
    close_fds(fds, n_fds);
    j->counted = true;
    s->stats.in_flight[j->job.op][j->backend_id]++;
    j->qj.run = job_run;
    j->qj.after = job_after;
    vkr__log(VKR_LOG_DEBUG, "client %u: request %u queued on %s", c->id, j->request_id, j->backend->name);
    vkr__queue_push(&s->queue, &c->owner, &j->qj);
    return;

fail:
    close_fds(fds, n_fds);
    job_refuse(j, &err, count);
}

/* CANCEL: drop the job if it waits; answer it now and drop its output later if it runs; nothing
 * if its reply is already on its way (or the id is unknown). */
static void handle_cancel(client_t *c, uint32_t request_id)
{
    server_t *s = c->server;
    job_t *j = find_job(c, request_id);
    vkr_error_t err;

    if (j == NULL || j->answered)
        return;
    if (vkr__queue_remove(&s->queue, &j->qj)) {
        vkr_proto_error_set(&err, VKR_E_CANCELLED, "", "request %u was cancelled before it started", request_id);
        s->stats.jobs_cancelled++;
        j->answered = true;
        send_error(c, request_id, &err);
        job_finish(j);
        return;
    }
    if (j->qj.state == VKR__JOB_RUNNING) {
        vkr_proto_error_set(&err, VKR_E_CANCELLED, "", "request %u was cancelled while it ran; its output is dropped", request_id);
        s->stats.jobs_cancelled++;
        j->answered = true;
        j->cancelled = true;
        send_error(c, request_id, &err);
    }
}

/* ---------------------------------------------------------------- connection callbacks */
static int on_header(vkr__conn_t *conn, const vkr_frame_header_t *h)
{
    client_t *c = conn->owner;
    server_t *s = c->server;

    c->admitted = false;
    c->refused = false;
    if (h->type != VKR_MSG_SUBMIT)
        return VKR__CONN_READ_BODY;
    memset(&c->refusal, 0, sizeof c->refusal);
    if (vkr__queue_admit(&s->queue, &c->owner, h->body_len, &c->refusal) != VKR_OK) {
        c->refused = true;        /* read the body past, then answer (handle_submit) */
        return VKR__CONN_SKIP_BODY;
    }
    c->admitted = true;
    c->admitted_bytes = h->body_len;
    return VKR__CONN_READ_BODY;
}

static void on_frame(vkr__conn_t *conn, const vkr_frame_header_t *h, uint8_t *body, int *fds, unsigned n_fds)
{
    client_t *c = conn->owner;
    vkr_error_t err;

    switch (h->type) {
    case VKR_MSG_SUBMIT:
        handle_submit(c, h, body, fds, n_fds);
        body = NULL;
        n_fds = 0;
        break;
    case VKR_MSG_PING:
        send_pong(c, h->request_id);
        break;
    case VKR_MSG_STATS:
        send_stats(c, h->request_id);
        break;
    case VKR_MSG_CANCEL:
        handle_cancel(c, h->request_id);
        break;
    default:
        vkr_proto_error_set(&err, VKR_E_PROTOCOL, "type", "message type %u is not a request", h->type);
        c->server->stats.frames_refused++;
        send_error(c, h->request_id, &err);
        vkr__conn_close_when_flushed(&c->conn);
        break;
    }
    close_fds(fds, n_fds);
    free(body);
    maybe_finish_shutdown(c->server);
}

static void on_stream_error(vkr__conn_t *conn, uint32_t request_id, const vkr_error_t *err)
{
    client_t *c = conn->owner;
    server_t *s = c->server;

    if (c->admitted) {
        c->admitted = false;
        vkr__queue_release(&s->queue, &c->owner, c->admitted_bytes);
    }
    s->stats.frames_refused++;
    send_error(c, request_id, err);
    vkr__conn_close_when_flushed(&c->conn);
}

static void on_closed(vkr__conn_t *conn)
{
    client_t *c = conn->owner;
    server_t *s = c->server;
    job_t *j, *next;

    c->conn_closed = true;
    if (c->admitted) {
        c->admitted = false;
        vkr__queue_release(&s->queue, &c->owner, c->admitted_bytes);
    }
    /* nobody is left to answer: waiting jobs go now, running ones when their worker returns */
    for (j = c->jobs; j != NULL; j = next) {
        next = j->next;
        if (vkr__queue_remove(&s->queue, &j->qj))
            job_finish(j);
        else
            j->orphaned = true;
    }
    client_unref(c);
}

static const vkr__conn_callbacks_t conn_callbacks = {on_header, on_frame, on_stream_error, on_closed};

/* ---------------------------------------------------------------- accepting */
static void accept_one(server_t *s, int fd)
{
    const vkr_server_config_t *cfg = s->cfg;
    client_t *c = calloc(1, sizeof *c);
    struct ucred cred;
    socklen_t len = sizeof cred;
    int rc;

    if (c == NULL) {
        vkr__log(VKR_LOG_WARN, "accept: out of memory for a client");
        close(fd);
        return;
    }
    c->server = s;
    c->id = ++s->next_client_id;
    c->refs = 1;
    vkr__queue_owner_init(&s->queue, &c->owner);
    c->next = s->clients;
    if (s->clients != NULL)
        s->clients->prev = c;
    s->clients = c;
    s->n_clients++;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
        vkr__log(VKR_LOG_DEBUG, "client %u: connected (pid %d, uid %u)", c->id, (int)cred.pid, (unsigned)cred.uid);
    /* a SUBMIT carries at most two tensors of up to max_job_bytes each */
    rc = vkr__conn_start(&c->conn, s->loop, fd, &conn_callbacks, c, 2 * cfg->max_job_bytes + VKR_SUBMIT_MAX_FIXED_BYTES,
                         &s->stats.bytes_in, &s->stats.bytes_out);
    if (rc < 0) {
        vkr__log(VKR_LOG_WARN, "client %u: %s", c->id, uv_strerror(rc));
        c->conn_closed = true;
        client_unref(c);
    }
}

static void listener_cb(uv_poll_t *h, int status, int events)
{
    server_t *s = h->data;

    (void)events;
    if (status < 0) {
        vkr__log(VKR_LOG_WARN, "listening socket: %s", uv_strerror(status));
        return;
    }
    while (!s->shutting_down) {
        int fd = accept4(s->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            accept_one(s, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE) {
            /* level-triggered: accepting again now would spin; wait for a client to leave */
            vkr__log(VKR_LOG_WARN, "accept: %s: pausing until a connection closes", strerror(errno));
            uv_poll_stop(&s->listen_poll);
            s->accept_paused = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            vkr__log(VKR_LOG_WARN, "accept: %s", strerror(errno));
        }
        return;
    }
}

/* ---------------------------------------------------------------- shutdown */
static void handle_closed_cb(uv_handle_t *h)
{
    (void)h;
}

/* The poll handle is gone: now the socket may be closed (and its path unlinked). */
static void listener_closed_cb(uv_handle_t *h)
{
    server_t *s = h->data;

    vkr__listen_close(&s->listener);
}

/* Close every connection that has nothing left to do: no live job, no frame half read. */
static void maybe_finish_shutdown(server_t *s)
{
    if (!s->shutting_down)
        return;
    for (client_t *c = s->clients; c != NULL; c = c->next)
        if (!c->conn_closed && c->jobs == NULL && vkr__conn_between_frames(&c->conn))
            vkr__conn_close_when_flushed(&c->conn);
}

static void begin_shutdown(server_t *s, const char *why)
{
    if (s->shutting_down)
        return;
    s->shutting_down = true;
    vkr__log(VKR_LOG_INFO, "%s: stopping (jobs queued: %u, running: %u)", why, s->queue.waiting, s->queue.running);
    uv_close((uv_handle_t *)&s->listen_poll, listener_closed_cb);
    uv_close((uv_handle_t *)&s->sigterm, handle_closed_cb);
    uv_close((uv_handle_t *)&s->sigint, handle_closed_cb);
    /* no new requests: a frame half read is finished (and served), nothing after it is read */
    for (client_t *c = s->clients; c != NULL; c = c->next)
        if (!c->conn_closed)
            vkr__conn_set_reading(&c->conn, false);
    maybe_finish_shutdown(s);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    begin_shutdown(h->data, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* ---------------------------------------------------------------- run */
int vkr__server_run(const vkr_server_config_t *cfg)
{
    static server_t s;   /* one server per process; its handles live until the loop is closed */
    int rc;

    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    s.loop = uv_default_loop();
    vkr__stats_init(&s.stats);
    vkr__queue_init(&s.queue, s.loop, cfg->workers, cfg->max_client_jobs, cfg->max_queued_jobs, cfg->max_queue_bytes);
    signal(SIGPIPE, SIG_IGN);
    if (vkr__listen_open(cfg->socket_path, &s.listener) < 0)
        return 1;
    rc = uv_poll_init(s.loop, &s.listen_poll, s.listener.fd);
    if (rc < 0) {
        vkr__log(VKR_LOG_ERROR, "listening socket: %s", uv_strerror(rc));
        vkr__listen_close(&s.listener);
        return 1;
    }
    s.listen_poll.data = &s;
    rc = uv_poll_start(&s.listen_poll, UV_READABLE, listener_cb);
    if (rc < 0) {
        vkr__log(VKR_LOG_ERROR, "listening socket: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&s.listen_poll, listener_closed_cb);
        uv_run(s.loop, UV_RUN_DEFAULT);
        uv_loop_close(s.loop);
        return 1;
    }
    uv_signal_init(s.loop, &s.sigterm);
    uv_signal_init(s.loop, &s.sigint);
    s.sigterm.data = s.sigint.data = &s;
    uv_signal_start(&s.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&s.sigint, signal_cb, SIGINT);

    vkr__log(VKR_LOG_INFO, "listening on %s%s (default backend: %s; available:%s%s; max job %llu bytes; %u workers; queue limits: %u jobs "
             "per client, %u jobs, %llu bytes)",
             s.listener.path[0] ? s.listener.path : "an unnamed socket", s.listener.activated ? " (socket activation)" : "",
             vkr_proto_backend_name(cfg->default_backend), cfg->vulkan ? " vulkan" : "", cfg->cpu ? " cpu" : "",
             (unsigned long long)cfg->max_job_bytes, s.queue.workers, cfg->max_client_jobs, cfg->max_queued_jobs,
             (unsigned long long)cfg->max_queue_bytes);
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
}
