/* The daemon's job queue.  Admission is accounted in slots (one per job, from the moment its
 * header is read until its reply is written) and bytes (its request body and its output), per
 * client, per uid (bytes only) and overall; a full limit answers VKR_E_BUSY at once instead of buffering.  Admitted jobs
 * wait in their client's FIFO.  Two rings of turns: uids with waiting jobs, and within each uid
 * its clients with waiting jobs.  Each free worker goes to the next uid in turn that is under its
 * share of the workers (workers - (active uids - 1), at least one), takes the oldest job of that
 * uid's client whose turn it is, and passes both turns on: a uid with a thousand queued jobs on
 * any number of connections delays another uid's job by at most one job per worker, and while
 * another uid is active it leaves a worker free for it.  Within a uid, clients share as uids do.
 * A batchable job taken by a worker gathers more waiting jobs of its kind (same_batch) into one
 * worker task, round by round over the rings from the next turns, each client's oldest such job
 * per round; the turns themselves are untouched, so the bounds above hold with a batch counted as
 * one job of its lead's uid. */
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
    q->no_account.uid = VKR__NO_UID;
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
    o->share = account != NULL ? account : &q->no_account;
}

/* ---------------------------------------------------------------- active uids */
/* The uids with no admitted job that had one within VKR__QUEUE_LINGER_MS are kept by number (an
 * account may be gone by then), newest last; they count as active until that time is up. */
static void linger_forget(vkr__queue_t *q, unsigned uid)
{
    for (unsigned i = 0; i < q->n_linger; i++)
        if (q->linger[i].uid == uid) {
            memmove(&q->linger[i], &q->linger[i + 1], (q->n_linger - i - 1) * sizeof q->linger[0]);
            q->n_linger--;
            return;
        }
}

static void linger_add(vkr__queue_t *q, unsigned uid)
{
    linger_forget(q, uid);
    if (q->n_linger == VKR__QUEUE_LINGER_UIDS) {   /* the oldest is forgotten */
        memmove(&q->linger[0], &q->linger[1], (q->n_linger - 1) * sizeof q->linger[0]);
        q->n_linger--;
    }
    q->linger[q->n_linger].uid = uid;
    q->linger[q->n_linger].at_ms = uv_now(q->loop);
    q->n_linger++;
}

/* Active uids now: those holding slots, and those still lingering (the expired ones dropped). */
static unsigned active_count(vkr__queue_t *q)
{
    const uint64_t now = uv_now(q->loop);
    unsigned gone = 0;

    while (gone < q->n_linger && now - q->linger[gone].at_ms >= VKR__QUEUE_LINGER_MS)
        gone++;
    if (gone > 0) {
        memmove(&q->linger[0], &q->linger[gone], (q->n_linger - gone) * sizeof q->linger[0]);
        q->n_linger -= gone;
    }
    return q->active_uids + q->n_linger;
}

/* ---------------------------------------------------------------- admission */
/* Whether bytes more fit now, for a job that will hold total bytes in all (VKR_E_TOO_LARGE when
 * total alone exceeds a limit, VKR_E_BUSY when bytes do not fit in what is left). */
static int check_bytes(const vkr__queue_t *q, const vkr__queue_owner_t *o, uint64_t bytes, uint64_t total, vkr_error_t *err)
{
    const vkr__queue_account_t *a = o->account;

    if (total > q->max_bytes)
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "queue", "the job holds %llu bytes, more than the daemon's whole queue "
                                   "(--max-queue-bytes %llu)", (unsigned long long)total, (unsigned long long)q->max_bytes);
    if (bytes > q->max_bytes)
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "queue", "the job holds %llu bytes, more than the daemon's whole queue "
                                   "(--max-queue-bytes %llu)", (unsigned long long)bytes, (unsigned long long)q->max_bytes);
    if (bytes > q->max_bytes - q->bytes)
        return vkr_proto_error_set(err, VKR_E_BUSY, "queue", "daemon queue memory full: %llu of %llu bytes held, the job needs %llu "
                                   "(--max-queue-bytes)", (unsigned long long)q->bytes, (unsigned long long)q->max_bytes,
                                   (unsigned long long)bytes);
    if (a == NULL)
        return VKR_OK;
    if (total > q->max_account_bytes)
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "queue", "the job holds %llu bytes, more than one uid may have in flight "
                                   "(--max-bytes-per-uid %llu)", (unsigned long long)total, (unsigned long long)q->max_account_bytes);
    if (bytes > q->max_account_bytes)
        return vkr_proto_error_set(err, VKR_E_TOO_LARGE, "queue", "the job holds %llu bytes, more than one uid may have in flight "
                                   "(--max-bytes-per-uid %llu)", (unsigned long long)bytes, (unsigned long long)q->max_account_bytes);
    if (bytes > q->max_account_bytes - a->bytes)
        return vkr_proto_error_set(err, VKR_E_BUSY, "queue", "uid %u holds %llu of %llu bytes in flight, the job needs %llu "
                                   "(--max-bytes-per-uid)", a->uid, (unsigned long long)a->bytes,
                                   (unsigned long long)q->max_account_bytes, (unsigned long long)bytes);
    return VKR_OK;
}

int vkr__queue_admit(vkr__queue_t *q, vkr__queue_owner_t *o, uint64_t bytes, uint64_t total, vkr_error_t *err)
{
    int rc = check_bytes(q, o, bytes, total > bytes ? total : bytes, err);

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
    if (o->share->slots++ == 0) {
        q->active_uids++;
        linger_forget(q, o->share->uid);
    }
    o->bytes += bytes;
    q->bytes += bytes;
    if (o->account != NULL)
        o->account->bytes += bytes;
    return VKR_OK;
}

int vkr__queue_grow(vkr__queue_t *q, vkr__queue_owner_t *o, uint64_t bytes, vkr_error_t *err)
{
    int rc = check_bytes(q, o, bytes, bytes, err);

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
    /* the uid stays active a while (linger_count): it may be between a reply and its next request */
    if (--o->share->slots == 0) {
        q->active_uids--;
        linger_add(q, o->share->uid);
    }
}

/* ---------------------------------------------------------------- the rings */
/* Both rings are circular lists whose head is the member whose turn is next; a member joins just
 * before the head (last in this round) and leaves wherever it is (the turn moves on if it was
 * its).  One pair of functions serves both: the members' link fields are named alike. */
#define RING_ADD(head, m)                                                                           \
    do {                                                                                            \
        if ((m)->in_ring)                                                                           \
            break;                                                                                  \
        (m)->in_ring = true;                                                                        \
        if ((head) == NULL) {                                                                       \
            (m)->ring_next = (m)->ring_prev = (m);                                                  \
            (head) = (m);                                                                           \
            break;                                                                                  \
        }                                                                                           \
        (m)->ring_next = (head);                                                                    \
        (m)->ring_prev = (head)->ring_prev;                                                         \
        (m)->ring_prev->ring_next = (m);                                                            \
        (head)->ring_prev = (m);                                                                    \
    } while (0)

#define RING_REMOVE(head, m)                                                                        \
    do {                                                                                            \
        if (!(m)->in_ring)                                                                          \
            break;                                                                                  \
        (m)->in_ring = false;                                                                       \
        if ((m)->ring_next == (m)) {                                                                \
            (head) = NULL;                                                                          \
        } else {                                                                                    \
            (m)->ring_prev->ring_next = (m)->ring_next;                                             \
            (m)->ring_next->ring_prev = (m)->ring_prev;                                             \
            if ((head) == (m))                                                                      \
                (head) = (m)->ring_next;                                                            \
        }                                                                                           \
        (m)->ring_next = (m)->ring_prev = NULL;                                                     \
    } while (0)

/* An owner that has waiting jobs now: in its uid's ring, and its uid in the queue's. */
static void ring_add(vkr__queue_t *q, vkr__queue_owner_t *o)
{
    vkr__queue_account_t *a = o->share;

    RING_ADD(a->owners, o);
    RING_ADD(q->ring, a);
}

/* An owner with no waiting job left: out of its uid's ring, and its uid out of the queue's when it
 * was the uid's last. */
static void ring_remove(vkr__queue_t *q, vkr__queue_owner_t *o)
{
    vkr__queue_account_t *a = o->share;

    RING_REMOVE(a->owners, o);
    if (a->owners == NULL)
        RING_REMOVE(q->ring, a);
}

/* The most worker tasks one uid may run now: one worker kept for each other active uid. */
static unsigned uid_share(vkr__queue_t *q)
{
    const unsigned active = active_count(q);
    const unsigned others = active > 0 ? active - 1 : 0;

    return q->workers > others ? q->workers - others : 1;
}

/* ---------------------------------------------------------------- running */
static void work_cb(uv_work_t *req)
{
    vkr__queue_job_t *job = (vkr__queue_job_t *)req;

    vkr__job_uid = job->owner->share->uid;
    job->run(job);
    vkr__job_uid = VKR__NO_UID;
}

/* Every job of the task led by lead is finished: after for each, the lead first. */
static void finish_task(vkr__queue_t *q, vkr__queue_job_t *lead, bool ran)
{
    vkr__queue_job_t *job = lead, *next;

    q->running--;
    q->running_jobs -= lead->batch_size;
    lead->owner->share->running--;
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

/* Move owner o's oldest waiting job that may run with lead into lead's batch (at *tail).
 * Returns whether it found one. */
static bool gather_one(vkr__queue_t *q, vkr__queue_job_t *lead, vkr__queue_owner_t *o, vkr__queue_job_t ***tail)
{
    vkr__queue_job_t *job = o->head;

    while (job != NULL && !(job->batchable && q->same_batch(lead, job)))
        job = job->next;
    if (job == NULL)
        return false;
    unlink_waiting(q, job);
    job->state = VKR__JOB_RUNNING;
    job->batch_size = 0;
    job->batch_next = NULL;
    **tail = job;
    *tail = &job->batch_next;
    lead->batch_size++;
    return true;
}

/* Gather waiting jobs that may run with lead (running, alone so far) into its batch: rounds over
 * the rings from the current turns (uid by uid, within a uid client by client), one job per
 * client per round (its oldest that same_batch accepts), until max_batch or a round that finds
 * none.  Members may leave the rings as they empty: each round counts them first and keeps the
 * next member before looking at one. */
static void gather_batch(vkr__queue_t *q, vkr__queue_job_t *lead)
{
    vkr__queue_job_t **tail = &lead->batch_next;
    bool found = true;

    while (found && lead->batch_size < q->max_batch && q->ring != NULL) {
        vkr__queue_account_t *a = q->ring;
        unsigned uids = 0;

        found = false;
        do
            uids++;
        while ((a = a->ring_next) != q->ring);
        for (unsigned i = 0; i < uids && lead->batch_size < q->max_batch; i++) {
            vkr__queue_account_t *next_uid = a->ring_next;   /* a may leave the ring below */
            vkr__queue_owner_t *o = a->owners;
            unsigned owners = 0;

            do
                owners++;
            while ((o = o->ring_next) != a->owners);
            for (unsigned k = 0; k < owners && lead->batch_size < q->max_batch; k++) {
                vkr__queue_owner_t *next_owner = o->ring_next;   /* o may leave the ring below */

                found |= gather_one(q, lead, o, &tail);
                o = next_owner;
            }
            a = next_uid;
        }
    }
}

/* The next uid in turn with waiting jobs that is under its share of the workers (the turn itself
 * not moved), or NULL when every such uid is at its share. */
static vkr__queue_account_t *next_uid(vkr__queue_t *q)
{
    const unsigned share = uid_share(q);
    vkr__queue_account_t *a = q->ring;

    if (a == NULL)
        return NULL;
    do
        if (a->running < share)
            return a;
    while ((a = a->ring_next) != q->ring);
    return NULL;
}

/* Start waiting jobs while workers are free, one per uid in ring order among the uids under their
 * share, within the uid one per client in ring order (a batchable one with the batch it
 * gathers).  Not reentered: a call from inside it (through a job's after, when a worker task
 * could not start) returns at once, and the outer loop looks again. */
static void dispatch(vkr__queue_t *q)
{
    vkr__queue_account_t *a;

    if (q->dispatching)
        return;
    q->dispatching = true;
    while (q->running < q->workers && (a = next_uid(q)) != NULL) {
        vkr__queue_owner_t *o = a->owners;
        vkr__queue_job_t *job = o->head;
        int rc;

        /* the next uid's turn; a uid skipped at its share keeps its own, this one goes last */
        if (a == q->ring) {
            q->ring = a->ring_next;
        } else {
            RING_REMOVE(q->ring, a);
            RING_ADD(q->ring, a);
        }
        a->owners = o->ring_next;       /* and within this uid, its next client's */
        unlink_waiting(q, job);
        job->state = VKR__JOB_RUNNING;
        job->batch_size = 1;
        job->batch_next = NULL;
        if (job->batchable && q->max_batch > 1 && q->same_batch != NULL)
            gather_batch(q, job);
        q->running++;
        q->running_jobs += job->batch_size;
        a->running++;
        rc = uv_queue_work(q->loop, &job->work, work_cb, after_work_cb);
        if (rc < 0) {
            vkr__log(VKR_LOG_ERROR, "uv_queue_work: %s", uv_strerror(rc));
            finish_task(q, job, false);
        }
    }
    q->dispatching = false;
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
    vkr__job_uid = o->share->uid;
    job->run(job);
    vkr__job_uid = VKR__NO_UID;
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
