/* The daemon's job queue.  Admission is accounted in slots (one per job, from the moment its
 * header is read until its reply is written) and bytes (its request body and its output), per
 * client, per uid (bytes only) and overall; a full limit answers VKR_E_BUSY at once instead of buffering.  Admitted jobs
 * wait in their client's FIFO; clients with waiting jobs form a ring, and each free worker takes
 * the oldest job of the client whose turn it is, then passes the turn on: a client with a thousand
 * queued jobs delays another client's job by at most one job per worker.  A batchable job taken
 * by a worker gathers more waiting jobs of its kind (same_batch) into one worker task, round by
 * round over the ring from the next client's turn, each client's oldest such job per round; the
 * turns themselves are untouched, so the bound above holds with a batch counted as one job. */
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

void vkr__queue_set_batching(vkr__queue_t *q, unsigned max_batch, bool (*same_batch)(const vkr__queue_job_t *lead,
                                                                                     const vkr__queue_job_t *other))
{
    q->max_batch = max_batch;
    q->same_batch = same_batch;
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

/* Every job of the task led by lead is finished: after for each, the lead first. */
static void finish_task(vkr__queue_t *q, vkr__queue_job_t *lead, bool ran)
{
    vkr__queue_job_t *job = lead, *next;

    q->running--;
    q->running_jobs -= lead->batch_size;
    for (; job != NULL; job = next) {
        next = job->batch_next;
        job->batch_next = NULL;
        job->state = VKR__JOB_FINISHED;
        job->after(job, ran);   /* may free job */
    }
}

static void after_work_cb(uv_work_t *req, int status)
{
    vkr__queue_job_t *job = (vkr__queue_job_t *)req;
    vkr__queue_t *q = job->owner->queue;

    finish_task(q, job, status == 0);
    dispatch(q);
}

/* Take a waiting job out of its owner's FIFO (the owner leaves the ring when it has no more). */
static void unlink_waiting(vkr__queue_t *q, vkr__queue_job_t *job)
{
    vkr__queue_owner_t *o = job->owner;

    if (job->prev != NULL)
        job->prev->next = job->next;
    else
        o->head = job->next;
    if (job->next != NULL)
        job->next->prev = job->prev;
    else
        o->tail = job->prev;
    job->next = job->prev = NULL;
    q->waiting--;
    if (o->head == NULL)
        ring_remove(q, o);
}

/* Gather waiting jobs that may run with lead (running, alone so far) into its batch: rounds over
 * the ring from the current turn, one job per client per round (its oldest that same_batch
 * accepts), until max_batch or a round that finds none. */
static void gather_batch(vkr__queue_t *q, vkr__queue_job_t *lead)
{
    vkr__queue_job_t **tail = &lead->batch_next;
    bool found = true;

    while (found && lead->batch_size < q->max_batch && q->ring != NULL) {
        vkr__queue_owner_t *o = q->ring;
        unsigned owners = 0;

        found = false;
        do
            owners++;
        while ((o = o->ring_next) != q->ring);
        for (unsigned i = 0; i < owners && lead->batch_size < q->max_batch; i++) {
            vkr__queue_owner_t *next_owner = o->ring_next;   /* o may leave the ring below */
            vkr__queue_job_t *job = o->head;

            while (job != NULL && !(job->batchable && q->same_batch(lead, job)))
                job = job->next;
            if (job != NULL) {
                unlink_waiting(q, job);
                job->state = VKR__JOB_RUNNING;
                job->batch_size = 0;
                job->batch_next = NULL;
                *tail = job;
                tail = &job->batch_next;
                lead->batch_size++;
                found = true;
            }
            o = next_owner;
        }
    }
}

/* Start waiting jobs while workers are free, one per client in ring order (a batchable one with
 * the batch it gathers). */
static void dispatch(vkr__queue_t *q)
{
    while (q->running < q->workers && q->ring != NULL) {
        vkr__queue_owner_t *o = q->ring;
        vkr__queue_job_t *job = o->head;
        int rc;

        q->ring = o->ring_next;         /* the next client's turn */
        unlink_waiting(q, job);
        job->state = VKR__JOB_RUNNING;
        job->batch_size = 1;
        job->batch_next = NULL;
        if (job->batchable && q->max_batch > 1 && q->same_batch != NULL)
            gather_batch(q, job);
        q->running++;
        q->running_jobs += job->batch_size;
        rc = uv_queue_work(q->loop, &job->work, work_cb, after_work_cb);
        if (rc < 0) {
            vkr__log(VKR_LOG_ERROR, "uv_queue_work: %s", uv_strerror(rc));
            finish_task(q, job, false);
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

void vkr__queue_run_here(vkr__queue_t *q, vkr__queue_owner_t *o, vkr__queue_job_t *job)
{
    job->owner = o;
    job->next = job->prev = job->batch_next = NULL;
    job->batch_size = 1;
    job->state = VKR__JOB_RUNNING;
    q->running_jobs++;
    job->run(job);
    q->running_jobs--;
    job->state = VKR__JOB_FINISHED;
    job->after(job, true);   /* may free job */
}

bool vkr__queue_remove(vkr__queue_t *q, vkr__queue_job_t *job)
{
    if (job->state != VKR__JOB_WAITING)
        return false;
    unlink_waiting(q, job);
    job->state = VKR__JOB_FINISHED;
    return true;
}
