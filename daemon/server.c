/* The daemon's server: owns the libuv loop, the listening socket's accept loop, the clients, what
 * each request means (PING, STATS, SUBMIT, CANCEL), the life of a job from its frame to its reply,
 * and shutdown.  Bytes and descriptors on a connection are conn.c's, admission and scheduling
 * queue.c's, memfd checks and mappings memfd.c's, counters stats.c's, the socket listen.c's.
 *
 * A connection is read continuously (pipelining): every SUBMIT gets a queue slot when its header
 * arrives and its body's bytes as they arrive (on_body_grow; a full limit: its body is read and
 * dropped and it gets VKR_E_BUSY, at the header or mid-body), is decoded, planned, its memfds
 * checked and mapped, and queued; replies go out as jobs finish, in any order, each carrying its
 * request_id.  A connection whose inline replies still to write pass
 * VKR__CLIENT_REPLY_BACKLOG_BYTES is not read until they drain, and one that reads none of them
 * for --idle-timeout is closed (conn.c).  A header that cannot be trusted gets
 * an ERROR and the connection is closed; a well-framed bad request gets an ERROR and the
 * connection carries on.  A job holds its queue slot and bytes until its reply is written (or it
 * is dropped), so what one client leaves unread is bounded too.
 *
 * Who may connect is decided once, at accept: the peer's credentials (peers.c) against the allow
 * lists, then its uid's connection cap; a refused peer gets one ERROR with request_id 0 and is
 * closed.  Accepting pauses (the listening poll stopped: no busy loop) at --max-connections and
 * when the process runs out of descriptors, and resumes when a connection closes or, for
 * descriptors, when VKR__ACCEPT_RETRY_MS have passed.  A Vulkan job that reports a lost device
 * (or the test switch's simulated loss) marks Vulkan lost for good: that job and every job bound
 * for Vulkan run on the CPU backend from then on.  The backend says so (its device_lost hook),
 * never the text of an error.
 *
 * Small Vulkan jobs are batched (VKR_BATCH_MAX_JOB_BYTES, max_batch): the queue gathers waiting
 * jobs of one plan into one worker task and the Vulkan backend runs them in one submission; each
 * keeps its own reply, error and cancel. */
#include "server.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "alloc.h"
#include "conn.h"
#include "listen.h"
#include "log.h"
#include "memfd.h"
#include "peers.h"
#include "queue.h"
#include "stats.h"

typedef struct server_s server_t;
typedef struct job_s job_t;

/* A memfd mapping a connection keeps between its jobs (VKR__CLIENT_MAPPINGS per connection, least
 * recently used first out): a later job whose tensor lies in the same memfd range uses it again,
 * and the backend may keep its import of it (vkr_host_region_t.persistent) until release_mapped,
 * which comes just before the munmap and never while a job holding the mapping runs. */
typedef struct {
    vkr__mapping_t map;             /* base NULL: a free slot */
    uint64_t dev, ino;              /* the memfd */
    uint64_t file_start;            /* the file offset of map.base (page-aligned) */
    bool writable;
    unsigned users;                 /* jobs holding it: it is unmapped only at 0 */
    uint64_t last_use;              /* the client's map_clock when a job last took it */
} client_mapping_t;

typedef struct client_s {
    vkr__conn_t conn;
    vkr__queue_owner_t owner;
    server_t *server;
    struct client_s *next, *prev;
    unsigned id;
    int refs;                       /* 1 until the connection is closed, + 1 per live job */
    vkr__uid_account_t *account;    /* its uid's connections and bytes (one reference) */
    bool conn_closed;
    job_t *jobs;                    /* live jobs (CANCEL looks them up; a disconnect drops them) */
    /* the SUBMIT whose body is being read */
    bool admitted;                  /* it holds a queue slot and admitted_bytes */
    uint64_t admitted_bytes;        /* what of its body is reserved so far (it grows as the body arrives) */
    uint64_t reply_bytes;           /* inline output bytes of its live jobs: replies still to write
                                     * (reading pauses past VKR__CLIENT_REPLY_BACKLOG_BYTES) */
    bool refused;                   /* its body is skipped; refusal is the answer */
    vkr_error_t refusal;
    client_mapping_t mappings[VKR__CLIENT_MAPPINGS];
    uint64_t map_clock;
} client_t;

struct job_s {
    vkr__queue_job_t qj;            /* first: the queue hands back this pointer */
    client_t *client;
    job_t *next, *prev;             /* the client's live jobs */
    uint32_t request_id;
    uint64_t t0_ns;                 /* when its frame was read */
    uint64_t held_bytes;            /* queue bytes admitted + grown, released in job_finish */
    uint64_t reply_bytes;           /* its inline output: counted in its client's reply_bytes */
    uint8_t *body;                  /* owns the request body (inline tensor views point into it) */
    vkr_job_t job;
    vkr_plan_t plan;
    vkr_backend_s *backend;
    int backend_id;
    int counted_backend;            /* the backend its in_flight count is under */
    bool moved;                     /* bound for Vulkan, run on the CPU after the device was lost */
    vkr__mapping_t in_map[VKR_MAX_TENSORS], out_map;   /* mappings of its own (not kept by the client) */
    client_mapping_t *in_kept[VKR_MAX_TENSORS], *out_kept; /* mappings the client keeps, held by this job */
    vkr_host_region_t regions[VKR_HOST_REGIONS];
    int out_fd;                     /* DAEMON_FD: the memfd handed back, else -1 */
    float *out_heap;                /* INLINE: the output, allocated on the worker */
    float *out;                     /* where the backend writes */
    bool counted;                   /* counted in stats in_flight */
    bool answered;                  /* its reply (result, error or cancelled) is queued */
    bool cancelled;                 /* CANCEL came while it ran: answered VKR_E_CANCELLED from job_after */
    bool orphaned;                  /* its client is gone: drop its output */
    atomic_bool stop;               /* set on the loop thread (cancelled or orphaned), read by the
                                     * backend at its boundaries (backend.h): it stops early */
    int status;
    vkr_error_t error;
    uint8_t head[VKR_FRAME_HEADER_BYTES + VKR_RESULT_FIXED_BYTES];
};

struct server_s {
    const vkr_server_config_t *cfg;
    uv_loop_t *loop;
    vkr__listener_t listener;
    uv_poll_t listen_poll;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t shutdown_timer;      /* --shutdown-timeout: draining gives up when it fires */
    uv_prepare_t loop_turn;         /* resets loop_jobs once per loop iteration */
    unsigned loop_jobs;             /* tiny jobs run on the loop thread this iteration */
    vkr__queue_t queue;
    vkr__stats_t stats;
    client_t *clients;
    unsigned n_clients;             /* client structs alive (a closed connection's until its jobs end) */
    unsigned n_open;                /* open connections (--max-connections) */
    unsigned next_client_id;
    vkr__uid_account_t *accounts;   /* one per uid with a live client */
    uv_timer_t accept_timer;        /* out of descriptors: try accepting again */
    bool accept_paused;             /* the listening poll is stopped */
    bool shutting_down;
    int default_backend;            /* what 'auto' jobs get: cfg's until Vulkan is lost, then cpu */
    atomic_bool vulkan_lost;        /* set by a worker thread, once */
    atomic_ulong vulkan_jobs;       /* jobs started on Vulkan (the simulated loss counts them) */
    unsigned long simulate_loss_at; /* VKRESAMPLE_SIMULATE_DEVICE_LOSS, 0: off */
    unsigned max_batch;             /* jobs per batch (1: none) */
};

static void maybe_finish_shutdown(server_t *s);
static void listener_cb(uv_poll_t *h, int status, int events);
static void accept_and_watch(server_t *s);

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
    vkr__account_unref(&s->accounts, c->account);
    vkr__free(c);
    maybe_finish_shutdown(s);
}

/* Read the client's requests unless the daemon is stopping or its replies still to write (inline
 * outputs of its live jobs, computed or not) are past VKR__CLIENT_REPLY_BACKLOG_BYTES: a client
 * that does not read its replies stops being read (issue 11), and is read again as they drain. */
static void client_update_reading(client_t *c)
{
    if (c->conn_closed)
        return;
    vkr__conn_set_reading(&c->conn, !c->server->shutting_down && c->reply_bytes <= VKR__CLIENT_REPLY_BACKLOG_BYTES);
}

/* ---------------------------------------------------------------- memfd mappings kept per client */
/* Unmap a kept mapping (no job holds it): every backend that may have imported it lets go first. */
static void mapping_drop(client_t *c, client_mapping_t *m)
{
    const vkr_server_config_t *cfg = c->server->cfg;
    vkr_backend_s *backends[2] = {cfg->vulkan, cfg->cpu};

    for (unsigned b = 0; b < 2; b++)
        if (backends[b] != NULL && backends[b]->release_mapped != NULL)
            backends[b]->release_mapped(backends[b], m->map.base, m->map.map_bytes);
    vkr__log(VKR_LOG_DEBUG, "client %u: memfd mapping of %zu bytes unmapped", c->id, m->map.map_bytes);
    vkr__memfd_unmap(&m->map);
    memset(m, 0, sizeof *m);
}

/* Drop every kept mapping no job holds (the connection closed; the rest go with their jobs). */
static void mappings_drop_unused(client_t *c)
{
    for (unsigned i = 0; i < VKR__CLIENT_MAPPINGS; i++)
        if (c->mappings[i].map.base != NULL && c->mappings[i].users == 0)
            mapping_drop(c, &c->mappings[i]);
}

/* The client's kept mapping of memfd dev/ino (writable or not) that covers [offset, offset +
 * bytes), held for one more job (*data: the tensor in it); NULL when it keeps none. */
static client_mapping_t *mapping_find(client_t *c, uint64_t dev, uint64_t ino, uint64_t offset, uint64_t bytes, bool writable,
                                      uint8_t **data)
{
    for (unsigned i = 0; i < VKR__CLIENT_MAPPINGS; i++) {
        client_mapping_t *k = &c->mappings[i];

        if (k->map.base != NULL && k->dev == dev && k->ino == ino && k->writable == writable && k->file_start <= offset &&
            offset + bytes <= k->file_start + k->map.map_bytes) {
            k->users++;
            k->last_use = ++c->map_clock;
            *data = (uint8_t *)k->map.base + (offset - k->file_start);
            return k;
        }
    }
    return NULL;
}

/* Keep a job's fresh mapping *m (of memfd dev/ino, the tensor at file offset `offset`) for the
 * client, held by the job: in a free slot or the least recently used one no job holds (*m
 * zeroed).  NULL: every slot is held, *m stays the job's own. */
static client_mapping_t *mapping_keep(client_t *c, vkr__mapping_t *m, uint64_t dev, uint64_t ino, uint64_t offset, bool writable)
{
    const uint64_t start = offset - (uint64_t)(m->data - (uint8_t *)m->base);
    client_mapping_t *free_slot = NULL, *lru = NULL, *slot;

    for (unsigned i = 0; i < VKR__CLIENT_MAPPINGS; i++) {
        client_mapping_t *k = &c->mappings[i];

        if (k->map.base == NULL) {
            if (free_slot == NULL)
                free_slot = k;
        } else if (k->users == 0 && (lru == NULL || k->last_use < lru->last_use)) {
            lru = k;
        }
    }
    slot = free_slot != NULL ? free_slot : lru;
    if (slot == NULL)
        return NULL;
    if (slot->map.base != NULL)
        mapping_drop(c, slot);
    *slot = (client_mapping_t){.map = *m, .dev = dev, .ino = ino, .file_start = start, .writable = writable, .users = 1,
                               .last_use = ++c->map_clock};
    memset(m, 0, sizeof *m);
    return slot;
}

/* One memfd tensor of a job: checked every time (vkr__memfd_check), mapped only when the client
 * keeps no mapping of that memfd covering it.  *data: the tensor's first byte (NULL for 0
 * bytes); *region: what the backend is told; *kept: the client's mapping the job holds, or NULL
 * with the mapping in *own (the job's alone). */
static int map_memfd_tensor(job_t *j, int fd, uint64_t offset, uint64_t bytes, bool writable, const char *field,
                            vkr__mapping_t *own, client_mapping_t **kept, uint8_t **data, vkr_host_region_t *region,
                            vkr_error_t *err)
{
    client_t *c = j->client;
    uint64_t dev, ino;
    int rc = vkr__memfd_check(fd, offset, bytes, writable, field, &dev, &ino, err);

    *data = NULL;
    if (rc != VKR_OK || bytes == 0)
        return rc;
    *kept = mapping_find(c, dev, ino, offset, bytes, writable, data);
    if (*kept != NULL) {
        vkr__log(VKR_LOG_DEBUG, "client %u: memfd mapping of %zu bytes reused", c->id, (*kept)->map.map_bytes);
    } else {
        rc = vkr__memfd_map_checked(fd, offset, bytes, writable, field, own, err);
        if (rc != VKR_OK)
            return rc;
        *data = own->data;
        *kept = mapping_keep(c, own, dev, ino, offset, writable);
    }
    if (*kept != NULL)
        *region = (vkr_host_region_t){(*kept)->map.base, (*kept)->map.map_bytes, (size_t)(*data - (uint8_t *)(*kept)->map.base), dev,
                                      ino, *data, true};
    else
        *region = (vkr_host_region_t){own->base, own->map_bytes, (size_t)(*data - (uint8_t *)own->base), dev, ino, *data, false};
    return VKR_OK;
}

/* The job lets go of its mappings: its own are unmapped, the client's kept ones released (and
 * dropped at once when the connection is gone). */
static void job_release_mappings(job_t *j)
{
    client_t *c = j->client;
    client_mapping_t *kept[VKR_MAX_TENSORS + 1] = {j->in_kept[0], j->in_kept[1], j->out_kept};

    for (unsigned k = 0; k < VKR_MAX_TENSORS; k++)
        vkr__memfd_unmap(&j->in_map[k]);
    vkr__memfd_unmap(&j->out_map);
    for (unsigned k = 0; k < VKR_MAX_TENSORS + 1; k++) {
        if (kept[k] == NULL)
            continue;
        kept[k]->users--;
        if (c->conn_closed && kept[k]->users == 0)
            mapping_drop(c, kept[k]);
    }
    j->in_kept[0] = j->in_kept[1] = j->out_kept = NULL;
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

/* Vulkan's state as the loop thread sees it: once a worker marked the device lost, 'auto' jobs go
 * to the CPU and PING / STATS name the CPU. */
static bool vulkan_usable(server_t *s)
{
    if (s->cfg->vulkan == NULL)
        return false;
    if (atomic_load(&s->vulkan_lost)) {
        s->default_backend = VKR_BACKEND_CPU;
        return false;
    }
    return true;
}

static const char *device_name(server_t *s)
{
    const vkr_server_config_t *cfg = s->cfg;

    vulkan_usable(s);
    return (s->default_backend == VKR_BACKEND_VULKAN ? cfg->vulkan : cfg->cpu)->device_name;
}

static void send_pong(client_t *c, uint32_t request_id)
{
    server_t *s = c->server;
    const vkr_server_config_t *cfg = s->cfg;
    uint8_t head[VKR_FRAME_HEADER_BYTES + VKR_PONG_BODY_MAX];
    vkr_pong_t p = {0};

    if (vulkan_usable(s))
        p.backend_mask |= 1u << VKR_BACKEND_VULKAN;
    if (cfg->cpu)
        p.backend_mask |= 1u << VKR_BACKEND_CPU;
    p.default_backend = (uint16_t)s->default_backend;
    snprintf(p.device_name, sizeof p.device_name, "%s", device_name(s));
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

    s->stats.vulkan_lost = atomic_load(&s->vulkan_lost);
    vkr__stats_snapshot(&s->stats, device_name(s), s->queue.waiting, s->queue.running_jobs, s->n_clients, s->queue.workers, &st);
    if (vkr__log_level >= VKR_LOG_DEBUG)
        vkr__stats_log_batches(&s->stats);
    size_t body_len = vkr_stats_encode(&st, head + VKR_FRAME_HEADER_BYTES);
    vkr_frame_header_t h = {.magic = VKR_PROTO_MAGIC, .version = VKR_PROTO_VERSION, .type = VKR_MSG_STATS_REPLY,
                            .request_id = request_id, .body_len = body_len};
    vkr_header_encode(&h, head);
    send_control(c, head, VKR_FRAME_HEADER_BYTES + body_len);
}

/* ---------------------------------------------------------------- jobs */
static unsigned stats_backend(const job_t *j)
{
    const server_t *s = j->client->server;
    int b = j->backend != NULL ? j->backend_id : j->job.backend == VKR_BACKEND_AUTO ? s->default_backend : j->job.backend;

    return b > 0 && b < VKR__STATS_BACKENDS ? (unsigned)b : (unsigned)s->default_backend;
}

static void uncount(job_t *j)
{
    if (!j->counted)
        return;
    j->counted = false;
    j->client->server->stats.in_flight[j->job.op][j->counted_backend]--;
}

/* Release everything a job holds (queue slot and bytes, mappings, buffers) and free it. */
static void job_finish(job_t *j)
{
    client_t *c = j->client;
    server_t *s = c->server;

    uncount(j);
    if (j->moved)
        s->stats.jobs_moved_to_cpu++;
    job_release_mappings(j);
    if (j->out_fd >= 0)
        close(j->out_fd);
    vkr__free(j->out_heap);
    vkr__free(j->body);
    if (j->prev != NULL)
        j->prev->next = j->next;
    else
        c->jobs = j->next;
    if (j->next != NULL)
        j->next->prev = j->prev;
    vkr__queue_release(&s->queue, &c->owner, j->held_bytes);
    if (j->reply_bytes > 0) {
        c->reply_bytes -= j->reply_bytes;
        client_update_reading(c);
    }
    vkr__free(j);
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
    job_release_mappings(j);
    fd = j->out_fd;
    j->out_fd = -1;
    j->answered = true;
    vkr__conn_send(&j->client->conn, j->head, VKR_FRAME_HEADER_BYTES + VKR_RESULT_FIXED_BYTES, inline_data ? j->out_heap : NULL,
                   inline_data ? (size_t)res.output.data_bytes : 0, fd, result_written_cb, j);
}

/* ---------------------------------------------------------------- a lost Vulkan device */
/* On a worker thread: whether a job that ran on backend b failed because b lost its device (its
 * device_lost hook: set by the backend when a device call reported the loss). */
static bool lost_device(const job_t *j, vkr_backend_s *b)
{
    return j->status != VKR_OK && b->device_lost != NULL && b->device_lost(b);
}

/* On a worker thread: Vulkan is gone for good (logged once, by whichever worker saw it first). */
static void mark_vulkan_lost(job_t *j)
{
    server_t *s = j->client->server;

    if (!atomic_exchange(&s->vulkan_lost, true))
        vkr__log(VKR_LOG_ERROR, "vulkan backend: device lost while running request %u of client %u (%s); Vulkan is no longer used: "
                 "jobs bound for it run on the CPU backend, jobs that ask for 'vulkan' are refused", j->request_id, j->client->id,
                 j->error.message);
}

/* On a worker thread: run a job bound for the lost Vulkan device on the CPU backend instead.
 * Returns false (the job keeps its error) if the daemon has no CPU backend. */
static bool move_to_cpu(job_t *j)
{
    vkr_backend_s *cpu = j->client->server->cfg->cpu;

    if (cpu == NULL)
        return false;
    j->backend = cpu;
    j->backend_id = VKR_BACKEND_CPU;
    j->moved = true;
    j->status = VKR_OK;
    memset(&j->error, 0, sizeof j->error);
    return true;
}

/* On a worker thread: run the job once on j->backend. */
static void run_on_backend(job_t *j)
{
    vkr_backend_s *b = j->backend;
    const vkr_job_t *job = &j->job;
    bool mapped = false;

    if (atomic_load(&j->stop)) {   /* cancelled (or orphaned) before it started, or before a rerun */
        j->status = vkr_proto_error_set(&j->error, VKR_E_CANCELLED, "cancel", "the job was cancelled");
        return;
    }
    for (unsigned k = 0; k < VKR_HOST_REGIONS; k++)
        mapped = mapped || j->regions[k].base != NULL;
    if (j->regions[2].base == NULL)
        j->regions[2].data = j->out;   /* an inline output, allocated on this worker */
    if (mapped && b->run_mapped != NULL) {
        j->status = b->run_mapped(b, &j->plan, j->regions, &j->stop, &j->error);
        if (j->status != VKR_E_UNSUPPORTED)
            return;
    }
    switch (job->op) {
    case VKR_OP_INTERPOLATE:
        j->status = b->interpolate(b, &j->plan.interp, job->input.data, j->out, &j->stop, &j->error);
        break;
    case VKR_OP_AFFINE_GRID:
        j->status = b->grid(b, &j->plan.grid, NULL, job->input.data, j->out, &j->stop, &j->error);
        break;
    default:
        j->status = b->grid(b, &j->plan.grid, job->input.data, job->aux.data, j->out, &j->stop, &j->error);
        break;
    }
}

/* On a worker thread: the job's inline output buffer (a memfd output is mapped already).  false:
 * the job failed (out of memory). */
static bool job_output_ready(job_t *j)
{
    if (j->job.result_storage == VKR_RESULT_INLINE && j->plan.out_elements > 0) {
        j->out_heap = vkr__malloc((size_t)(j->plan.out_elements * sizeof(float)));
        if (j->out_heap == NULL) {
            j->status = vkr_proto_error_set(&j->error, VKR_E_NOMEM, "size", "out of memory for an output of %llu bytes",
                                            (unsigned long long)(j->plan.out_elements * sizeof(float)));
            return false;
        }
        j->out = j->out_heap;
    }
    return true;
}

/* On a worker thread: run one job (its output ready) on its backend; a job bound for Vulkan runs
 * on the CPU when the device is lost, was lost by this very job, or the test switch says this
 * job loses it. */
static void job_run_alone(job_t *j)
{
    server_t *s = j->client->server;
    vkr_backend_s *vulkan = s->cfg->vulkan;

    if (j->backend == vulkan && vulkan != NULL) {
        if (atomic_load(&s->vulkan_lost)) {
            if (!move_to_cpu(j)) {
                j->status = vkr_proto_error_set(&j->error, VKR_E_BACKEND_UNAVAILABLE, "backend", "the Vulkan device was lost");
                return;
            }
        } else if (s->simulate_loss_at != 0 && atomic_fetch_add(&s->vulkan_jobs, 1) + 1 == s->simulate_loss_at) {
            j->status = vkr_proto_error_set(&j->error, VKR_E_BACKEND, "backend", "vulkan: VK_ERROR_DEVICE_LOST (simulated: %s=%lu)",
                                            VKR__SIMULATE_DEVICE_LOSS_ENV, s->simulate_loss_at);
            mark_vulkan_lost(j);
            if (!move_to_cpu(j))
                return;
        }
    }
    run_on_backend(j);
    if (j->backend == vulkan && vulkan != NULL && lost_device(j, vulkan)) {
        mark_vulkan_lost(j);
        if (move_to_cpu(j))
            run_on_backend(j);
    } else if (j->backend == vulkan && vulkan != NULL && j->job.backend == VKR_BACKEND_AUTO && s->cfg->cpu != NULL &&
               (j->status == VKR_E_TOO_LARGE || j->status == VKR_E_UNSUPPORTED)) {
        /* 'auto' promised an answer from whichever backend can give it: a job beyond this device
         * (e.g. llvmpipe's loop limit) runs on the CPU; one that asked for 'vulkan' keeps the refusal */
        vkr__log(VKR_LOG_DEBUG, "client %u: request %u: vulkan refused it (%s: %s); 'auto' runs it on the cpu backend", j->client->id,
                 j->request_id, j->error.field, j->error.message);
        j->backend = s->cfg->cpu;
        j->backend_id = VKR_BACKEND_CPU;
        j->status = VKR_OK;
        memset(&j->error, 0, sizeof j->error);
        run_on_backend(j);
    }
}

/* On a worker thread: a batch (lead, then its batch_next jobs: one plan, all bound for Vulkan)
 * through the backend's run_batch, one submission for all.  Each job keeps its own status and
 * error; a lost device moves the jobs it failed to the CPU, as for a job alone.  With Vulkan
 * lost, under the simulated-loss test switch (which counts jobs one by one), or when the backend
 * declines, each job runs alone. */
static void batch_run(job_t *lead)
{
    server_t *s = lead->client->server;
    vkr_backend_s *vulkan = s->cfg->vulkan;
    job_t *jobs[VKR_MAX_BATCH_LIMIT];
    const float *inputs[VKR_MAX_BATCH_LIMIT], *aux[VKR_MAX_BATCH_LIMIT];
    float *outputs[VKR_MAX_BATCH_LIMIT];
    const atomic_bool *cancels[VKR_MAX_BATCH_LIMIT];
    int statuses[VKR_MAX_BATCH_LIMIT];
    vkr_error_t errs[VKR_MAX_BATCH_LIMIT];
    unsigned n = 0;
    int rc;

    for (vkr__queue_job_t *qj = &lead->qj; qj != NULL; qj = qj->batch_next) {
        job_t *j = (job_t *)qj;

        if (!job_output_ready(j))
            continue;
        if (n == VKR_MAX_BATCH_LIMIT) {   /* never: max_batch is clamped to it */
            job_run_alone(j);
            continue;
        }
        jobs[n] = j;
        inputs[n] = j->job.input.data;
        aux[n] = j->job.n_tensors > 1 ? j->job.aux.data : NULL;
        outputs[n] = j->out;
        cancels[n] = &j->stop;
        n++;
    }
    rc = VKR_E_UNSUPPORTED;
    if (!atomic_load(&s->vulkan_lost) && s->simulate_loss_at == 0 && lead->backend == vulkan && vulkan->run_batch != NULL)
        rc = vulkan->run_batch(vulkan, &lead->plan, n, inputs, aux, outputs, cancels, statuses, errs);
    for (unsigned k = 0; k < n; k++) {
        job_t *j = jobs[k];

        if (rc != VKR_OK) {
            job_run_alone(j);
            continue;
        }
        j->status = statuses[k];
        if (j->status != VKR_OK)
            j->error = errs[k];
        if (lost_device(j, vulkan)) {
            mark_vulkan_lost(j);
            if (move_to_cpu(j))
                run_on_backend(j);
        }
    }
}

/* On a worker thread: one job, or a batch led by this one. */
static void job_run(vkr__queue_job_t *qj)
{
    job_t *j = (job_t *)qj;

    if (qj->batch_next != NULL) {
        batch_run(j);
        return;
    }
    if (job_output_ready(j))
        job_run_alone(j);
}

/* On the loop thread once the job ran (or could not be started). */
static void job_after(vkr__queue_job_t *qj, bool ran)
{
    job_t *j = (job_t *)qj;
    server_t *s = j->client->server;

    if (qj->batch_size > 1) {   /* the lead of a batch (the first of its jobs to get here) */
        s->stats.batches++;
        s->stats.batched_jobs += qj->batch_size;
        vkr__log(VKR_LOG_DEBUG, "batch of %u %s jobs ran as one worker task (lead: client %u, request %u)", qj->batch_size,
                 vkr_proto_op_name(j->job.op), j->client->id, j->request_id);
    }

    if (j->orphaned) {
        job_finish(j);
        return;
    }
    if (j->cancelled) {
        /* only now, its worker returned, is nothing of the job writing the client's memory: the
         * answer is VKR_E_CANCELLED whether it stopped early or had just finished */
        vkr_error_t err;

        vkr_proto_error_set(&err, VKR_E_CANCELLED, "", "request %u was cancelled while it ran; %s", j->request_id,
                            j->status == VKR_E_CANCELLED ? "it stopped early, its output is incomplete"
                                                         : "its output is dropped");
        uncount(j);
        s->stats.jobs_cancelled++;
        j->answered = true;
        send_error(j->client, j->request_id, &err);
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

/* Whether two plans are the same job shape: op, shapes, modes and every parameter the kernels see. */
static bool same_plan(const vkr_plan_t *a, const vkr_plan_t *b)
{
    if (a->op != b->op || a->out_elements != b->out_elements)
        return false;
    if (a->op == VKR_OP_INTERPOLATE) {
        const vkr_interp_plan_t *x = &a->interp, *y = &b->interp;

        if (x->mode != y->mode || x->spatial_rank != y->spatial_rank || x->batch != y->batch || x->channels != y->channels ||
            x->align_corners != y->align_corners || x->antialias != y->antialias || x->in_elements != y->in_elements ||
            x->out_elements != y->out_elements)
            return false;
        for (unsigned d = 0; d < VKR_MAX_SPATIAL; d++)
            if (x->in_size[d] != y->in_size[d] || x->out_size[d] != y->out_size[d] || x->has_scale[d] != y->has_scale[d] ||
                (x->has_scale[d] && memcmp(&x->scale[d], &y->scale[d], sizeof x->scale[d]) != 0))
                return false;
        return true;
    }
    const vkr_grid_plan_t *x = &a->grid, *y = &b->grid;

    if (x->op != y->op || x->mode != y->mode || x->padding_mode != y->padding_mode || x->align_corners != y->align_corners ||
        x->spatial_rank != y->spatial_rank || x->batch != y->batch || x->channels != y->channels || x->in_elements != y->in_elements ||
        x->aux_elements != y->aux_elements || x->out_elements != y->out_elements)
        return false;
    for (unsigned d = 0; d < VKR_MAX_SPATIAL; d++)
        if (x->in_size[d] != y->in_size[d] || x->out_size[d] != y->out_size[d])
            return false;
    return true;
}

/* The queue's batch key: the same backend and the same plan. */
static bool same_batch(const vkr__queue_job_t *lead, const vkr__queue_job_t *other)
{
    const job_t *a = (const job_t *)lead, *b = (const job_t *)other;

    return a->backend == b->backend && same_plan(&a->plan, &b->plan);
}

/* Whether a queued job may lead or join a batch: bound for Vulkan (which can batch), small
 * (VKR_BATCH_MAX_JOB_BYTES in its tensors together), with an output. */
static bool batchable(const job_t *j)
{
    const vkr_backend_s *vulkan = j->client->server->cfg->vulkan;
    const uint64_t in_bytes = (j->plan.op == VKR_OP_INTERPOLATE ? j->plan.interp.in_elements
                                                                 : j->plan.grid.in_elements + j->plan.grid.aux_elements) * sizeof(float);
    const uint64_t out_bytes = j->plan.out_elements * sizeof(float);

    return vulkan != NULL && j->backend == vulkan && vulkan->run_batch != NULL && !j->moved && out_bytes > 0 &&
           in_bytes + out_bytes <= VKR_BATCH_MAX_JOB_BYTES;
}

/* Pick the backend for a job: returns it, or NULL with *err filled.  After a lost device, 'auto'
 * jobs of a daemon whose default was Vulkan go to the CPU (*moved set) and 'vulkan' jobs are
 * refused. */
static vkr_backend_s *choose_backend(server_t *s, int requested, int *chosen, bool *moved, vkr_error_t *err)
{
    const vkr_server_config_t *cfg = s->cfg;
    const bool lost = cfg->vulkan != NULL && !vulkan_usable(s);
    int id = requested == VKR_BACKEND_AUTO ? s->default_backend : requested;
    vkr_backend_s *b = id == VKR_BACKEND_VULKAN ? cfg->vulkan : cfg->cpu;

    *moved = lost && requested == VKR_BACKEND_AUTO && cfg->default_backend == VKR_BACKEND_VULKAN;
    if (lost && id == VKR_BACKEND_VULKAN) {
        vkr_proto_error_set(err, VKR_E_BACKEND_UNAVAILABLE, "backend", "backend 'vulkan' is not available any more: its device was lost "
                            "and this daemon serves on the CPU now (ask for 'cpu' or 'auto')");
        return NULL;
    }
    if (b == NULL) {
        vkr_proto_error_set(err, VKR_E_BACKEND_UNAVAILABLE, "backend", "backend '%s' is not available in this daemon (it serves: %s%s%s)",
                            vkr_proto_backend_name(id), cfg->vulkan ? "vulkan" : "", cfg->vulkan && cfg->cpu ? ", " : "",
                            cfg->cpu ? "cpu" : "");
        return NULL;
    }
    *chosen = id;
    return b;
}

/* An output written into the client's memfd must not share a byte with an input read from the
 * same memfd (the same file, whichever descriptor brought it): the kernels read inputs while they
 * write the output, so an overlap gives a wrong answer, and torch refuses such aliasing too.  The
 * output always starts at offset 0 of its memfd. */
static int refuse_aliased_output(const job_t *j, const char *const names[VKR_MAX_TENSORS], vkr_error_t *err)
{
    const vkr_tensor_desc_t *t[VKR_MAX_TENSORS] = {&j->job.input, &j->job.aux};
    const vkr_host_region_t *out = &j->regions[2];
    const uint64_t out_bytes = j->plan.out_elements * sizeof(float);

    for (unsigned k = 0; k < j->job.n_tensors; k++) {
        const vkr_host_region_t *in = &j->regions[k];

        if (t[k]->storage != VKR_STORAGE_MEMFD || t[k]->data_bytes == 0 || out_bytes == 0 || in->dev != out->dev ||
            in->ino != out->ino)
            continue;
        if (t[k]->data_offset < out_bytes)   /* [offset, offset + bytes) meets [0, out_bytes) */
            return vkr_proto_error_set(err, VKR_E_FD, "output",
                                       "the output's bytes [0, %llu) of its memfd overlap the %s's bytes [%llu, %llu) of the same "
                                       "memfd (inode %llu): an output may not alias an input (pass separate ranges)",
                                       (unsigned long long)out_bytes, names[k], (unsigned long long)t[k]->data_offset,
                                       (unsigned long long)(t[k]->data_offset + t[k]->data_bytes), (unsigned long long)in->ino);
    }
    return VKR_OK;
}

/* Map the job's memfd tensors (inputs read-only, the output memfd writable), through the client's
 * kept mappings where one covers the tensor (persistent regions), and describe every tensor for
 * the backend's zero-copy hook (inline ones by their data).  fds are the frame's; the caller
 * closes them. */
static int map_tensors(job_t *j, const int *fds, unsigned n_fds, vkr_error_t *err)
{
    const char *names[VKR_MAX_TENSORS] = {j->job.op == VKR_OP_AFFINE_GRID ? "theta" : "input",
                                          j->job.op == VKR_OP_GRID_SAMPLE ? "grid" : "theta"};
    vkr_tensor_desc_t *t[VKR_MAX_TENSORS] = {&j->job.input, &j->job.aux};
    server_t *s = j->client->server;
    uint64_t out_bytes = j->plan.out_elements * sizeof(float);
    struct stat st;
    uint8_t *data;
    int rc;

    for (unsigned k = 0; k < j->job.n_tensors; k++) {
        if (t[k]->storage != VKR_STORAGE_MEMFD) {
            j->regions[k].data = t[k]->data;   /* inline: the backend may stage it and import the rest */
            continue;
        }
        rc = map_memfd_tensor(j, fds[t[k]->fd_index], t[k]->data_offset, t[k]->data_bytes, false, names[k], &j->in_map[k],
                              &j->in_kept[k], &data, &j->regions[k], err);
        if (rc != VKR_OK)
            return rc;
        t[k]->data = data;
        s->stats.memfd_bytes_in += t[k]->data_bytes;
    }
    switch (j->job.result_storage) {
    case VKR_RESULT_INTO_FD:
        rc = map_memfd_tensor(j, fds[n_fds - 1], 0, out_bytes, true, "output", &j->out_map, &j->out_kept, &data, &j->regions[2], err);
        if (rc != VKR_OK)
            return rc;
        rc = refuse_aliased_output(j, names, err);
        if (rc != VKR_OK)
            return rc;
        j->out = (float *)(void *)data;
        break;
    case VKR_RESULT_DAEMON_FD:
        rc = vkr__queue_grow(&s->queue, &j->client->owner, out_bytes, err);
        if (rc != VKR_OK)
            return rc;
        j->held_bytes += out_bytes;
        rc = vkr__memfd_create(out_bytes, &j->out_map, &j->out_fd, err);
        if (rc != VKR_OK)
            return rc;
        j->out = (float *)(void *)j->out_map.data;
        if (j->out_map.base != NULL && fstat(j->out_fd, &st) == 0)
            j->regions[2] = (vkr_host_region_t){j->out_map.base, j->out_map.map_bytes, 0, st.st_dev, st.st_ino, j->out_map.data, false};
        break;
    default:
        rc = vkr__queue_grow(&s->queue, &j->client->owner, out_bytes, err);
        if (rc != VKR_OK)
            return rc;
        j->held_bytes += out_bytes;
        j->reply_bytes = out_bytes;
        j->client->reply_bytes += out_bytes;
        client_update_reading(j->client);
        break;   /* the output is allocated on the worker (regions[2].data set there) */
    }
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
/* Whether a job is tiny enough to run on the loop thread now (VKR_LOOP_JOB_MAX_*, at most
 * VKR_LOOP_JOBS_PER_TURN per loop iteration) and a worker is idle with nothing waiting. */
static void loop_turn_cb(uv_prepare_t *h)
{
    ((server_t *)h->data)->loop_jobs = 0;
}

static bool runs_on_loop(server_t *s, const job_t *j)
{
    uint64_t in_elements = j->plan.op == VKR_OP_INTERPOLATE ? j->plan.interp.in_elements
                                                             : j->plan.grid.in_elements + j->plan.grid.aux_elements;

    if (j->backend != s->cfg->cpu || j->plan.out_elements > VKR_LOOP_JOB_MAX_OUT_ELEMENTS ||
        in_elements > VKR_LOOP_JOB_MAX_IN_ELEMENTS)
        return false;
    /* only a job that would start at once on an idle worker: the worker count and the order of
     * waiting jobs stay as they are */
    if (s->queue.waiting > 0 || s->queue.running >= s->queue.workers || s->loop_jobs >= VKR_LOOP_JOBS_PER_TURN)
        return false;
    s->loop_jobs++;
    return true;
}

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
        vkr__free(body);
        return;
    }
    /* the slot on_header admitted is the job's from here on */
    c->admitted = false;
    j = vkr__calloc(1, sizeof *j);
    if (j == NULL) {
        vkr_proto_error_set(&err, VKR_E_NOMEM, "", "out of memory for a job");
        vkr__queue_release(&s->queue, &c->owner, c->admitted_bytes);
        s->stats.frames_refused++;
        send_error(c, h->request_id, &err);
        close_fds(fds, n_fds);
        vkr__free(body);
        return;
    }
    j->client = c;
    j->request_id = h->request_id;
    j->t0_ns = vkr__stats_now_ns();
    j->held_bytes = c->admitted_bytes;
    j->body = body;
    j->out_fd = -1;
    atomic_init(&j->stop, false);
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
    j->backend = choose_backend(s, j->job.backend, &j->backend_id, &j->moved, &err);
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
    j->counted_backend = j->backend_id;
    s->stats.in_flight[j->job.op][j->backend_id]++;
    j->qj.run = job_run;
    j->qj.after = job_after;
    j->qj.batchable = batchable(j);
    if (runs_on_loop(s, j)) {
        vkr__log(VKR_LOG_DEBUG, "client %u: request %u runs at once on %s (loop thread)", c->id, j->request_id, j->backend->name);
        vkr__queue_run_here(&s->queue, &c->owner, &j->qj);
        return;
    }
    vkr__log(VKR_LOG_DEBUG, "client %u: request %u queued on %s", c->id, j->request_id, j->backend->name);
    vkr__queue_push(&s->queue, &c->owner, &j->qj);
    return;

fail:
    close_fds(fds, n_fds);
    job_refuse(j, &err, count);
}

/* CANCEL: drop the job if it waits (answered at once); if it runs, tell its backend to stop (the
 * job's stop flag) and answer VKR_E_CANCELLED from job_after once its worker has returned, so
 * that nothing of it touches the client's memory after the answer; nothing if its reply is
 * already on its way, it was cancelled already, or the id is unknown. */
static void handle_cancel(client_t *c, uint32_t request_id)
{
    server_t *s = c->server;
    job_t *j = find_job(c, request_id);
    vkr_error_t err;

    if (j == NULL || j->answered || j->cancelled)
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
        j->cancelled = true;
        atomic_store(&j->stop, true);
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
    /* a slot now, and bytes as the body arrives (on_body_grow): a header alone reserves nothing */
    if (vkr__queue_admit(&s->queue, &c->owner, 0, h->body_len, &c->refusal) != VKR_OK) {
        c->refused = true;        /* read the body past, then answer (handle_submit) */
        return VKR__CONN_SKIP_BODY;
    }
    c->admitted = true;
    c->admitted_bytes = 0;
    return VKR__CONN_READ_BODY;
}

/* The body of the SUBMIT being read grows: reserve the step.  A step that does not fit refuses
 * the frame with VKR_E_BUSY in the middle of its body (its slot and bytes given back at once;
 * the answer goes out once the rest is read past). */
static bool on_body_grow(vkr__conn_t *conn, const vkr_frame_header_t *h, uint64_t from, uint64_t to)
{
    client_t *c = conn->owner;
    server_t *s = c->server;
    vkr_error_t why;

    if (!c->admitted)
        return true;   /* not a SUBMIT: its body is bounded by the header decode */
    if (vkr__queue_grow(&s->queue, &c->owner, to - from, &why) == VKR_OK) {
        c->admitted_bytes += to - from;
        return true;
    }
    vkr__queue_release(&s->queue, &c->owner, c->admitted_bytes);
    c->admitted = false;
    c->refused = true;
    vkr_proto_error_set(&c->refusal, why.code, why.field, "request %u: body_len %llu refused after %llu bytes arrived: %s", h->request_id,
                        (unsigned long long)h->body_len, (unsigned long long)from, why.message);
    return false;
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
    vkr__free(body);
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
    if (err->code == VKR_E_TIMEOUT)
        s->stats.connections_timed_out++;
    else
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
    s->n_open--;
    c->account->connections--;
    if (c->admitted) {
        c->admitted = false;
        vkr__queue_release(&s->queue, &c->owner, c->admitted_bytes);
    }
    /* nobody is left to answer: waiting jobs go now, running ones when their worker returns */
    for (j = c->jobs; j != NULL; j = next) {
        next = j->next;
        if (vkr__queue_remove(&s->queue, &j->qj)) {
            job_finish(j);
        } else {
            j->orphaned = true;
            atomic_store(&j->stop, true);   /* its backend stops at its next boundary */
        }
    }
    mappings_drop_unused(c);
    client_unref(c);
    /* a descriptor and a connection slot are free again */
    if (s->accept_paused)
        accept_and_watch(s);
}

static const vkr__conn_callbacks_t conn_callbacks = {on_header, on_body_grow, on_frame, on_stream_error, on_closed};

/* ---------------------------------------------------------------- accepting */
/* Refuse an accepted connection: one ERROR with request_id 0 (written straight to the fresh
 * socket, whose send buffer is empty), then close it.  Nothing of the peer's is read. */
static void refuse_connection(server_t *s, int fd, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void refuse_connection(server_t *s, int fd, int code, const char *field, const char *fmt, ...)
{
    uint8_t frame[VKR_FRAME_HEADER_BYTES + VKR_ERROR_BODY_MAX];
    vkr_error_t e = {.code = code};
    vkr_frame_header_t h = {.magic = VKR_PROTO_MAGIC, .version = VKR_PROTO_VERSION, .type = VKR_MSG_ERROR, .request_id = 0};
    va_list ap;

    snprintf(e.field, sizeof e.field, "%s", field);
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof e.message, fmt, ap);
    va_end(ap);
    h.body_len = vkr_error_encode(&e, frame + VKR_FRAME_HEADER_BYTES);
    vkr_header_encode(&h, frame);
    if (send(fd, frame, VKR_FRAME_HEADER_BYTES + h.body_len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        vkr__log(VKR_LOG_DEBUG, "refused connection: send: %s", strerror(errno));
    close(fd);
    s->stats.connections_refused++;
    vkr__log(VKR_LOG_INFO, "connection refused: %s [%s]: %s", vkr_proto_code_name(code), field, e.message);
}

/* A new connection: who is it, may it connect, then serve it. */
static void accept_one(server_t *s, int fd)
{
    const vkr_server_config_t *cfg = s->cfg;
    vkr__conn_limits_t limits = {.max_submit_body = 2 * cfg->max_job_bytes + VKR_SUBMIT_MAX_FIXED_BYTES,
                                 .idle_timeout_ms = cfg->idle_timeout_ms, .frame_timeout_ms = cfg->frame_timeout_ms};
    vkr__uid_account_t *account;
    vkr__peer_t peer;
    char allowed[256];
    client_t *c;
    int rc;

    rc = vkr__peer_read(fd, &peer);
    if (rc < 0) {
        vkr__log(VKR_LOG_WARN, "accept: SO_PEERCRED: %s: connection closed", strerror(-rc));
        close(fd);
        return;
    }
    if (!vkr__peer_allowed(&cfg->allow, fd, &peer)) {
        vkr__allow_describe(&cfg->allow, allowed, sizeof allowed);
        refuse_connection(s, fd, VKR_E_PERMISSION, "uid", "uid %u (gid %u, pid %d) may not use this daemon: it serves %s "
                          "(--allow-uid, --allow-group)", (unsigned)peer.uid, (unsigned)peer.gid, (int)peer.pid, allowed);
        return;
    }
    account = vkr__account_ref(&s->accounts, peer.uid);
    if (account == NULL) {
        vkr__log(VKR_LOG_WARN, "accept: out of memory for uid %u's account: connection closed", (unsigned)peer.uid);
        close(fd);
        return;
    }
    if (account->connections >= cfg->max_connections_per_uid) {
        refuse_connection(s, fd, VKR_E_BUSY, "connections", "uid %u already has %u connections open (--max-connections-per-uid %u)",
                          (unsigned)peer.uid, account->connections, cfg->max_connections_per_uid);
        vkr__account_unref(&s->accounts, account);
        return;
    }
    c = vkr__calloc(1, sizeof *c);
    if (c == NULL) {
        vkr__log(VKR_LOG_WARN, "accept: out of memory for a client: connection closed");
        vkr__account_unref(&s->accounts, account);
        close(fd);
        return;
    }
    c->server = s;
    c->id = ++s->next_client_id;
    c->refs = 1;
    c->account = account;
    account->connections++;
    s->n_open++;
    vkr__queue_owner_init(&s->queue, &c->owner, &account->queue);
    c->next = s->clients;
    if (s->clients != NULL)
        s->clients->prev = c;
    s->clients = c;
    s->n_clients++;
    vkr__log(VKR_LOG_DEBUG, "client %u: connected (pid %d, uid %u)", c->id, (int)peer.pid, (unsigned)peer.uid);
    rc = vkr__conn_start(&c->conn, s->loop, fd, &conn_callbacks, c, &limits, &s->stats.bytes_in, &s->stats.bytes_out);
    if (rc >= 0)
        c->conn.timed_out = &s->stats.connections_timed_out;
    if (rc < 0) {
        vkr__log(VKR_LOG_WARN, "client %u: %s", c->id, uv_strerror(rc));
        c->conn_closed = true;
        s->n_open--;
        account->connections--;
        client_unref(c);
    }
}

/* Accept every connection waiting in the backlog.  Returns 0 once it is empty, -1 when
 * --max-connections are open, or the errno that stopped accept4 (EMFILE, ENFILE, ENOBUFS, ...:
 * the listening socket stays readable, so the caller must stop watching it). */
static int accept_pending(server_t *s)
{
    while (!s->shutting_down) {
        int fd;

        if (s->n_open >= s->cfg->max_connections)
            return -1;
        fd = accept4(s->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            accept_one(s, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return errno;
    }
    return 0;
}

static void accept_timer_cb(uv_timer_t *t)
{
    accept_and_watch(t->data);
}

/* Stop watching the listening socket (it is level-triggered: watching it now would spin): until a
 * connection closes (why -1: --max-connections) or until a connection closes or the retry timer
 * fires (why > 0: accept4's errno). */
static void accept_pause(server_t *s, int why)
{
    if (s->shutting_down)
        return;
    if (!s->accept_paused) {
        uv_poll_stop(&s->listen_poll);
        s->accept_paused = true;
        s->stats.accept_pauses++;
        if (why < 0)
            vkr__log(VKR_LOG_WARN, "accepting paused: %u connections open (--max-connections %u)", s->n_open, s->cfg->max_connections);
        else
            vkr__log(VKR_LOG_WARN, "accept: %s: accepting paused until a connection closes (retry every %u ms)", strerror(why),
                     VKR__ACCEPT_RETRY_MS);
    }
    if (why > 0)
        uv_timer_start(&s->accept_timer, accept_timer_cb, VKR__ACCEPT_RETRY_MS, 0);
    else
        uv_timer_stop(&s->accept_timer);
}

/* Accept what waits, then watch the listening socket again, or stay paused. */
static void accept_and_watch(server_t *s)
{
    int rc;

    if (s->shutting_down)
        return;
    rc = accept_pending(s);
    if (rc != 0) {
        accept_pause(s, rc);
        return;
    }
    if (!s->accept_paused)
        return;
    rc = uv_poll_start(&s->listen_poll, UV_READABLE, listener_cb);
    if (rc < 0) {
        vkr__log(VKR_LOG_WARN, "listening socket: %s", uv_strerror(rc));
        uv_timer_start(&s->accept_timer, accept_timer_cb, VKR__ACCEPT_RETRY_MS, 0);
        return;
    }
    uv_timer_stop(&s->accept_timer);
    s->accept_paused = false;
    vkr__log(VKR_LOG_INFO, "accepting connections again (%u open)", s->n_open);
}

static void listener_cb(uv_poll_t *h, int status, int events)
{
    server_t *s = h->data;

    (void)events;
    if (status < 0) {
        vkr__log(VKR_LOG_WARN, "listening socket: %s", uv_strerror(status));
        return;
    }
    accept_and_watch(s);
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

/* --shutdown-timeout passed while draining: close every connection.  Their waiting jobs go, the
 * running ones are told to stop (orphaned) and end when their workers return; then the loop runs
 * out of handles and the daemon exits 0. */
static void shutdown_timer_cb(uv_timer_t *t)
{
    server_t *s = t->data;
    unsigned open = 0;

    for (client_t *c = s->clients; c != NULL; c = c->next)
        if (!c->conn_closed)
            open++;
    vkr__log(VKR_LOG_WARN, "still draining %.1f s after the signal (--shutdown-timeout): closing %u connection(s) "
             "(jobs queued: %u, running: %u; unsent replies dropped)", (double)s->cfg->shutdown_timeout_ms / 1000.0, open,
             s->queue.waiting, s->queue.running);
    for (client_t *c = s->clients; c != NULL; c = c->next)
        if (!c->conn_closed)
            vkr__conn_close(&c->conn);
}

static void begin_shutdown(server_t *s, const char *why)
{
    if (s->shutting_down)
        return;
    s->shutting_down = true;
    vkr__log(VKR_LOG_INFO, "%s: stopping (jobs queued: %u, running: %u; --shutdown-timeout %.1f s)", why, s->queue.waiting,
             s->queue.running, (double)s->cfg->shutdown_timeout_ms / 1000.0);
    /* the deadline does not keep the loop alive: a drain that ends sooner ends the daemon */
    uv_timer_start(&s->shutdown_timer, shutdown_timer_cb, s->cfg->shutdown_timeout_ms, 0);
    uv_unref((uv_handle_t *)&s->shutdown_timer);
    uv_close((uv_handle_t *)&s->listen_poll, listener_closed_cb);
    uv_close((uv_handle_t *)&s->accept_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&s->sigterm, handle_closed_cb);
    uv_close((uv_handle_t *)&s->sigint, handle_closed_cb);
    uv_close((uv_handle_t *)&s->loop_turn, handle_closed_cb);
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

/* SIGHUP (a closed terminal, a "reload" from a service manager): nothing to reload, the log is
 * stderr; it must not end the daemon (issue 11: it used to, leaving socket and lock behind). */
static void sighup_cb(uv_signal_t *h, int signum)
{
    (void)h;
    (void)signum;
    vkr__log(VKR_LOG_INFO, "SIGHUP: ignored (nothing to reload; SIGTERM or SIGINT stops the daemon)");
}

uint64_t vkr__default_bytes_per_uid(uint64_t max_queue_bytes, uint64_t max_job_bytes)
{
    uint64_t quarter = max_queue_bytes / 4, one_job = 3 * max_job_bytes + VKR_SUBMIT_MAX_FIXED_BYTES;
    uint64_t share = quarter > one_job ? quarter : one_job;

    return share < max_queue_bytes ? share : max_queue_bytes;
}

/* ---------------------------------------------------------------- run */
/* VKRESAMPLE_SIMULATE_DEVICE_LOSS (test only): 0 when unset, -1 when malformed (logged). */
static int parse_simulated_loss(const vkr_server_config_t *cfg, unsigned long *at)
{
    const char *v = getenv(VKR__SIMULATE_DEVICE_LOSS_ENV);
    char *end;

    *at = 0;
    if (v == NULL || v[0] == '\0')
        return 0;
    errno = 0;
    *at = strtoul(v, &end, 10);
    if (errno != 0 || *end != '\0' || v[0] < '0' || v[0] > '9' || *at == 0) {
        vkr__log(VKR_LOG_ERROR, "%s='%s': expected a positive job number", VKR__SIMULATE_DEVICE_LOSS_ENV, v);
        return -1;
    }
    if (cfg->vulkan == NULL)
        vkr__log(VKR_LOG_WARN, "%s=%lu: no Vulkan backend here, nothing to lose", VKR__SIMULATE_DEVICE_LOSS_ENV, *at);
    else
        vkr__log(VKR_LOG_WARN, "%s=%lu: test mode, Vulkan job %lu will report a lost device", VKR__SIMULATE_DEVICE_LOSS_ENV, *at, *at);
    return 0;
}

/* Jobs per Vulkan batch: --max-batch (0: the default), clamped to 1..VKR_MAX_BATCH_LIMIT. */
static unsigned max_batch_of(const vkr_server_config_t *cfg)
{
    unsigned n = cfg->max_batch != 0 ? cfg->max_batch : VKR_DEFAULT_MAX_BATCH;

    return n > VKR_MAX_BATCH_LIMIT ? VKR_MAX_BATCH_LIMIT : n;
}

int vkr__server_run(const vkr_server_config_t *cfg)
{
    static server_t s;   /* one server per process; its handles live until the loop is closed */
    char allowed[256];
    int rc;

    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    s.loop = uv_default_loop();
    s.default_backend = cfg->default_backend;
    atomic_init(&s.vulkan_lost, false);
    atomic_init(&s.vulkan_jobs, 0);
    if (parse_simulated_loss(cfg, &s.simulate_loss_at) < 0 || !vkr__alloc_arm())
        return 1;
    vkr__stats_init(&s.stats);
    vkr__queue_init(&s.queue, s.loop, cfg->workers, cfg->max_client_jobs, cfg->max_queued_jobs, cfg->max_queue_bytes,
                    cfg->max_bytes_per_uid);
    s.max_batch = max_batch_of(cfg);
    vkr__queue_set_batching(&s.queue, s.max_batch, same_batch);
    signal(SIGPIPE, SIG_IGN);
    if (cfg->listener != NULL) {
        s.listener = *cfg->listener;   /* main.c took the lock and bound it before the backends */
        cfg->listener->fd = -1;        /* the server's to close from here on */
        cfg->listener->lock_fd = -1;
    } else if (vkr__listen_open(&cfg->listen, &s.listener) < 0)
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
    uv_timer_init(s.loop, &s.accept_timer);
    s.accept_timer.data = &s;
    uv_timer_init(s.loop, &s.shutdown_timer);
    s.shutdown_timer.data = &s;
    uv_signal_init(s.loop, &s.sigterm);
    uv_signal_init(s.loop, &s.sigint);
    uv_signal_init(s.loop, &s.sighup);
    s.sigterm.data = s.sigint.data = s.sighup.data = &s;
    uv_signal_start(&s.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&s.sigint, signal_cb, SIGINT);
    /* SIGHUP is watched for the whole run, draining included (unref'd: it keeps nothing alive) */
    uv_signal_start(&s.sighup, sighup_cb, SIGHUP);
    uv_unref((uv_handle_t *)&s.sighup);
    uv_prepare_init(s.loop, &s.loop_turn);
    s.loop_turn.data = &s;
    uv_prepare_start(&s.loop_turn, loop_turn_cb);
    uv_unref((uv_handle_t *)&s.loop_turn);

    vkr__allow_describe(&cfg->allow, allowed, sizeof allowed);
    vkr__log(VKR_LOG_INFO, "listening on %s%s (default backend: %s; available:%s%s; max job %llu bytes; %u workers; queue limits: %u jobs "
             "per client, %u jobs, %llu bytes)",
             s.listener.path[0] ? s.listener.path : "an unnamed socket", s.listener.activated ? " (socket activation)" : "",
             vkr_proto_backend_name(cfg->default_backend), cfg->vulkan ? " vulkan" : "", cfg->cpu ? " cpu" : "",
             (unsigned long long)cfg->max_job_bytes, s.queue.workers, cfg->max_client_jobs, cfg->max_queued_jobs,
             (unsigned long long)cfg->max_queue_bytes);
    vkr__log(VKR_LOG_INFO, "who may connect: %s; connections: %u in all, %u per uid; %llu bytes in flight per uid; idle timeout %.1f s, "
             "frame timeout %.1f s (0: off)", allowed, cfg->max_connections, cfg->max_connections_per_uid,
             (unsigned long long)cfg->max_bytes_per_uid, (double)cfg->idle_timeout_ms / 1000.0, (double)cfg->frame_timeout_ms / 1000.0);
    if (cfg->vulkan != NULL)
        vkr__log(VKR_LOG_INFO, "vulkan batches: up to %u jobs of one plan, each holding at most %u bytes of tensors (%s)", s.max_batch,
                 VKR_BATCH_MAX_JOB_BYTES, s.max_batch > 1 ? "on" : "off");
    if (cfg->ready_fd >= 0) {
        static const char ready[] = "ready\n";
        if (write(cfg->ready_fd, ready, sizeof ready - 1) < 0)
            vkr__log(VKR_LOG_WARN, "ready fd %d: %s", cfg->ready_fd, strerror(errno));
        close(cfg->ready_fd);
    }
    uv_run(s.loop, UV_RUN_DEFAULT);
    /* the two unref'd handles go last; libuv gives SIGHUP its default action back when its last
     * watcher closes, so it is ignored again from then on */
    uv_close((uv_handle_t *)&s.shutdown_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&s.sighup, handle_closed_cb);
    uv_run(s.loop, UV_RUN_DEFAULT);
    signal(SIGHUP, SIG_IGN);
    vkr__stats_log_batches(&s.stats);
    rc = uv_loop_close(s.loop);
    if (rc < 0)
        vkr__log(VKR_LOG_WARN, "uv_loop_close: %s (handles still open)", uv_strerror(rc));
    vkr__log(VKR_LOG_INFO, "stopped");
    return 0;
}
