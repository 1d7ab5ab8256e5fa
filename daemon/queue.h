/* The daemon's job queue: bounded admission (per client, per uid and overall, in jobs and in
 * bytes, with VKR_E_BUSY at once when a limit is full), one FIFO of waiting jobs per client, a
 * fair share of the libuv worker threads per uid, batches (waiting jobs the server says belong
 * together, gathered across clients in round-robin order to run as one worker task), and removal
 * of waiting jobs (cancel, disconnect).  Loop thread only, except the run callback and
 * vkr__queue_job_uid.
 *
 * Fair share (issue 11): a free worker goes round-robin first across uids with waiting jobs, then
 * across that uid's clients with waiting jobs; and while N uids are active (hold admitted jobs:
 * waiting, running, or with a body or a reply still on the wire; or did within the last
 * VKR__QUEUE_LINGER_MS, so that a uid sending one job at a time stays active between a reply and
 * its next request), one uid may run at most workers - (N - 1) worker tasks at once (never fewer
 * than one), so each other active uid finds a worker of its own when its next job comes.  A uid
 * alone may use every worker; one that stops leaves its worker idle for at most
 * VKR__QUEUE_LINGER_MS plus one task of another uid.  With --workers 1
 * nothing can be kept back: a uid waits for at most one task of each other uid.  Around every
 * job's run the queue sets vkr__job_uid (backend.h) to its owner's uid: the Vulkan backend's
 * device gate shares the device by it in the same way. */
#ifndef VKR_DAEMON_QUEUE_H
#define VKR_DAEMON_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "backend.h"
#include "vkr_proto.h"

typedef struct vkr__queue vkr__queue_t;
typedef struct vkr__queue_owner vkr__queue_owner_t;
typedef struct vkr__queue_job vkr__queue_job_t;

#define VKR__QUEUE_LINGER_MS 100u          /* a uid counts as active this long after its last job was released */
#define VKR__QUEUE_LINGER_UIDS 16u         /* uids remembered that long (more: the oldest forgotten) */

/* One uid's share of the queue: the bytes every connection of it holds (--max-bytes-per-uid), and
 * its place in the fair share.  Owned by the server (one per uid with a connection or a job
 * alive, zeroed but for uid when made); the queue only counts and links. */
typedef struct vkr__queue_account {
    unsigned uid;
    uint64_t bytes;
    unsigned slots;                      /* admitted jobs of its clients not yet released (> 0: active) */
    unsigned running;                    /* worker tasks led by its jobs */
    vkr__queue_owner_t *owners;          /* its clients with waiting jobs: the one whose turn is next */
    struct vkr__queue_account *ring_next, *ring_prev;   /* in the queue's ring of uids with waiting jobs */
    bool in_ring;
} vkr__queue_account_t;

enum { VKR__JOB_ADMITTED, VKR__JOB_WAITING, VKR__JOB_RUNNING, VKR__JOB_FINISHED };

/* Embedded in the server's job.  run: on a worker thread, once per worker task: for the lead of a
 * batch it runs the whole batch (lead, then batch_next...).  after: on the loop thread once run
 * returned (ran true) or the pool refused the work (ran false), once for every job of the task,
 * the lead first (its batch_size still set, batch_next already cleared). */
struct vkr__queue_job {
    uv_work_t work;
    vkr__queue_job_t *next, *prev;       /* the owner's FIFO while waiting */
    vkr__queue_owner_t *owner;
    int state;
    bool batchable;                      /* may lead or join a batch (set before vkr__queue_push) */
    vkr__queue_job_t *batch_next;        /* while running: the next job of its batch, NULL at the end */
    unsigned batch_size;                 /* while running: jobs in the task it leads (1: alone), 0: not a lead */
    void (*run)(vkr__queue_job_t *job);
    void (*after)(vkr__queue_job_t *job, bool ran);
};

/* One per client connection. */
struct vkr__queue_owner {
    vkr__queue_t *queue;
    vkr__queue_account_t *account;       /* the client's uid: its bytes count there too (NULL: no per-uid bytes) */
    vkr__queue_account_t *share;         /* its uid's share: account, or the queue's no_account */
    vkr__queue_job_t *head, *tail;       /* waiting jobs, oldest first */
    vkr__queue_owner_t *ring_next, *ring_prev;   /* in its uid's ring of clients while it has waiting jobs */
    bool in_ring;
    unsigned slots;                      /* admitted jobs not yet released */
    uint64_t bytes;                      /* bytes those jobs hold */
};

struct vkr__queue {
    uv_loop_t *loop;
    unsigned workers;                    /* jobs that may run at once */
    unsigned max_owner_slots;            /* --max-client-jobs */
    unsigned max_slots;                  /* --max-queued-jobs */
    uint64_t max_bytes;                  /* --max-queue-bytes */
    uint64_t max_account_bytes;          /* --max-bytes-per-uid */
    unsigned slots, waiting, running;    /* running: worker tasks (a batch is one) */
    unsigned running_jobs;               /* jobs in those tasks */
    uint64_t bytes;
    vkr__queue_account_t *ring;          /* the uid whose turn is next (ring of uids with waiting jobs) */
    unsigned active_uids;                /* accounts with slots > 0 */
    struct {                             /* uids that recently had their last slot released */
        unsigned uid;
        uint64_t at_ms;                  /* uv_now when it was */
    } linger[VKR__QUEUE_LINGER_UIDS];
    unsigned n_linger;
    vkr__queue_account_t no_account;     /* the share of owners set up without an account (uid VKR__NO_UID) */
    bool dispatching;                    /* dispatch is on the stack (a release inside it does not recurse) */
    /* Batching (off until vkr__queue_set_batching): when a worker takes a batchable job, waiting
     * batchable jobs that same_batch(lead, other) accepts join it, up to max_batch in all. */
    unsigned max_batch;
    bool (*same_batch)(const vkr__queue_job_t *lead, const vkr__queue_job_t *other);
};

/* Set up an empty queue. */
void vkr__queue_init(vkr__queue_t *q, uv_loop_t *loop, unsigned workers, unsigned max_owner_slots, unsigned max_slots, uint64_t max_bytes,
                     uint64_t max_account_bytes);

/* Let a batchable job that a worker takes gather up to max_batch - 1 more waiting batchable jobs
 * that same_batch accepts: one round after another over the clients in ring order (the next uid's
 * turn first, within a uid its next client's), each client giving its oldest such job per round.
 * Gathering takes no turn away, and the batch is one task of its lead's uid.  max_batch <= 1: no
 * batches. */
void vkr__queue_set_batching(vkr__queue_t *q, unsigned max_batch, bool (*same_batch)(const vkr__queue_job_t *lead,
                                                                                     const vkr__queue_job_t *other));

/* Set up an owner with nothing admitted, whose bytes also count against account (its uid's). */
void vkr__queue_owner_init(vkr__queue_t *q, vkr__queue_owner_t *o, vkr__queue_account_t *account);

/* Admit one job holding bytes for owner now, and total bytes once all of its body has arrived
 * (the server reserves a body as it arrives, vkr__queue_grow for each step): VKR_OK (one slot
 * and the bytes are the owner's until vkr__queue_release), VKR_E_BUSY when a limit is full now
 * (field "queue", the limit and its flag named), or VKR_E_TOO_LARGE when total (or bytes) alone
 * exceed --max-queue-bytes or --max-bytes-per-uid. */
int vkr__queue_admit(vkr__queue_t *q, vkr__queue_owner_t *o, uint64_t bytes, uint64_t total, vkr_error_t *err);

/* Add bytes to an admitted job (its output, once planned).  Same codes as vkr__queue_admit; on
 * failure nothing changes. */
int vkr__queue_grow(vkr__queue_t *q, vkr__queue_owner_t *o, uint64_t bytes, vkr_error_t *err);

/* Give back one slot and bytes (what was admitted and grown for one job).  When that leaves the
 * owner's uid with no admitted job, the other uids' share of the workers grows, from the next
 * dispatch on (a push, a task done): a uid between two requests keeps its worker free. */
void vkr__queue_release(vkr__queue_t *q, vkr__queue_owner_t *o, uint64_t bytes);

/* Put an admitted job in its owner's FIFO; it runs when a worker is free, its uid is under its
 * share of the workers, and it is its uid's and then its owner's turn.  run and after must be
 * set. */
void vkr__queue_push(vkr__queue_t *q, vkr__queue_owner_t *o, vkr__queue_job_t *job);

/* Run an admitted job at once on the calling (loop) thread, outside the worker count: run, then
 * after(job, true).  For jobs too small to be worth a thread hand-off. */
void vkr__queue_run_here(vkr__queue_t *q, vkr__queue_owner_t *o, vkr__queue_job_t *job);

/* Take a job out of its owner's FIFO if it is still waiting.  Returns true if it was (it will
 * never run; its slot is still held), false if it is running (alone or in a batch) or finished. */
bool vkr__queue_remove(vkr__queue_t *q, vkr__queue_job_t *job);

#endif
