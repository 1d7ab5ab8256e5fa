/* The daemon's job queue.  Admission is accounted in slots (one per job, from the moment its
 * header is read until its reply is written) and bytes (its request body and its output), per
 * client, per uid (bytes only) and overall; a full limit answers VKR_E_BUSY at once instead of buffering.  Admitted jobs
 * wait in their client's FIFO; clients with waiting jobs form a ring, and each free worker takes
 * the oldest job of the client whose turn it is, then passes the turn on: a client with a thousand
 * queued jobs delays another client's job by at most one job per worker. */
#include "queue.h"

#include <string.h>

#include "log.h"

static void dispatch(vkr__queue_t *q);

void vkr__queue_init(vkr__queue_t *q, uv_loop_t *loop, unsigned workers, unsigned max_owner_slots, unsigned max_slots, uint64_t max_bytes,
                     uint64_t max_account_bytes)
{
    memset(q, 0, sizeof *q);
    q->loop = loop;
    q->workers = workers > 0 ? workers : 1;
    q->max_owner_slots = max_owner_slots;
    q->max_slots = max_slots;
    q->max_bytes = max_bytes;
    q->max_account_bytes = max_account_bytes;
}

void vkr__queue_owner_init(vkr__queue_t *q, vkr__queue_owner_t *o, vkr__queue_account_t *account)
{
    memset(o, 0, sizeof *o);
    o->queue = q;
    o->account = account;
}

/* ---------------------------------------------------------------- admission */
static int check_bytes(const vkr__queue_t *q, const vkr__queue_owner_t *o, uint64_t bytes, vkr_error_t *err)
{
    const vkr__queue_account_t *a = o->account;

    if (bytes > q->max_bytes)
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "queue", "the job holds %llu bytes, more than the daemon's whole queue "
                                   "(--max-queue-bytes %llu)", (unsigned long long)bytes, (unsigned long long)q->max_bytes);
    if (bytes > q->max_bytes - q->bytes)
        return vkr_proto_error_set(err, VKR_E_BUSY, "queue", "daemon queue memory full: %llu of %llu bytes held, the job needs %llu "
                                   "(--max-queue-bytes)", (unsigned long long)q->bytes, (unsigned long long)q->max_bytes,
                                   (unsigned long long)bytes);
    if (a == NULL)
        return VKR_OK;
    if (bytes > q->max_account_bytes)
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "queue", "the job holds %llu bytes, more than one uid may have in flight "
                                   "(--max-bytes-per-uid %llu)", (unsigned long long)bytes, (unsigned long long)q->max_account_bytes);
    if (bytes > q->max_account_bytes - a->bytes)
        return vkr_proto_error_set(err, VKR_E_BUSY, "queue", "uid %u holds %llu of %llu bytes in flight, the job needs %llu "
                                   "(--max-bytes-per-uid)", a->uid, (unsigned long long)a->bytes,
                                   (unsigned long long)q->max_account_bytes, (unsigned long long)bytes);
    return VKR_OK;
}

int vkr__queue_admit(vkr__queue_t *q, vkr__queue_owner_t *o, uint64_t bytes, vkr_error_t *err)
{
    int rc = check_bytes(q, o, bytes, err);

    if (rc != VKR_OK)
        return rc;
    if (o->slots >= q->max_owner_slots)
        return vkr_proto_error_set(err, VKR_E_BUSY, "queue", "client queue full: %u jobs in flight on this connection "
                                   "(--max-client-jobs %u)", o->slots, q->max_owner_slots);
    if (q->slots >= q->max_slots)
        return vkr_proto_error_set(err, VKR_E_BUSY, "queue", "daemon queue full: %u jobs in flight (--max-queued-jobs %u)", q->slots,
                                   q->max_slots);
    o->slots++;
    q->slots++;
    o->bytes += bytes;
    q->bytes += bytes;
    if (o->account != NULL)
        o->account->bytes += bytes;
    return VKR_OK;
}

int vkr__queue_grow(vkr__queue_t *q, vkr__queue_owner_t *o, uint64_t bytes, vkr_error_t *err)
{
    int rc = check_bytes(q, o, bytes, err);

    if (rc != VKR_OK)
        return rc;
    o->bytes += bytes;
    q->bytes += bytes;
    if (o->account != NULL)
        o->account->bytes += bytes;
    return VKR_OK;
}

void vkr__queue_release(vkr__queue_t *q, vkr__queue_owner_t *o, uint64_t bytes)
{
    o->slots--;
    q->slots--;
    o->bytes -= bytes;
    q->bytes -= bytes;
    if (o->account != NULL)
        o->account->bytes -= bytes;
}

/* ---------------------------------------------------------------- the ring */
static void ring_add(vkr__queue_t *q, vkr__queue_owner_t *o)
{
    if (o->in_ring)
        return;
    o->in_ring = true;
    if (q->ring == NULL) {
        o->ring_next = o->ring_prev = o;
        q->ring = o;
        return;
    }
    /* join just before the current turn: last in this round */
    o->ring_next = q->ring;
    o->ring_prev = q->ring->ring_prev;
    o->ring_prev->ring_next = o;
    q->ring->ring_prev = o;
}

static void ring_remove(vkr__queue_t *q, vkr__queue_owner_t *o)
{
    if (!o->in_ring)
        return;
    o->in_ring = false;
    if (o->ring_next == o) {
        q->ring = NULL;
    } else {
        o->ring_prev->ring_next = o->ring_next;
        o->ring_next->ring_prev = o->ring_prev;
        if (q->ring == o)
            q->ring = o->ring_next;
    }
    o->ring_next = o->ring_prev = NULL;
}

/* ---------------------------------------------------------------- running */
static void work_cb(uv_work_t *req)
{
    vkr__queue_job_t *job = (vkr__queue_job_t *)req;

    job->run(job);
}

static void after_work_cb(uv_work_t *req, int status)
{
    vkr__queue_job_t *job = (vkr__queue_job_t *)req;
    vkr__queue_t *q = job->owner->queue;

    q->running--;
    job->state = VKR__JOB_FINISHED;
    job->after(job, status == 0);
    dispatch(q);
}

/* Start waiting jobs while workers are free, one per client in ring order. */
static void dispatch(vkr__queue_t *q)
{
    while (q->running < q->workers && q->ring != NULL) {
        vkr__queue_owner_t *o = q->ring;
        vkr__queue_job_t *job = o->head;
        int rc;

        o->head = job->next;
        if (o->head != NULL)
            o->head->prev = NULL;
        else
            o->tail = NULL;
        job->next = job->prev = NULL;
        q->waiting--;
        q->ring = o->ring_next;         /* the next client's turn */
        if (o->head == NULL)
            ring_remove(q, o);
        job->state = VKR__JOB_RUNNING;
        q->running++;
        rc = uv_queue_work(q->loop, &job->work, work_cb, after_work_cb);
        if (rc < 0) {
            vkr__log(VKR_LOG_ERROR, "uv_queue_work: %s", uv_strerror(rc));
            q->running--;
            job->state = VKR__JOB_FINISHED;
            job->after(job, false);
        }
    }
}

void vkr__queue_push(vkr__queue_t *q, vkr__queue_owner_t *o, vkr__queue_job_t *job)
{
    job->owner = o;
    job->state = VKR__JOB_WAITING;
    job->next = NULL;
    job->prev = o->tail;
    if (o->tail != NULL)
        o->tail->next = job;
    else
        o->head = job;
    o->tail = job;
    q->waiting++;
    ring_add(q, o);
    dispatch(q);
}

bool vkr__queue_remove(vkr__queue_t *q, vkr__queue_job_t *job)
{
    vkr__queue_owner_t *o = job->owner;

    if (job->state != VKR__JOB_WAITING)
        return false;
    if (job->prev != NULL)
        job->prev->next = job->next;
    else
        o->head = job->next;
    if (job->next != NULL)
        job->next->prev = job->prev;
    else
        o->tail = job->prev;
    job->next = job->prev = NULL;
    job->state = VKR__JOB_FINISHED;
    q->waiting--;
    if (o->head == NULL)
        ring_remove(q, o);
    return true;
}
