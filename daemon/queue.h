/* The daemon's job queue: bounded admission (per client, per uid and overall, in jobs and in
 * bytes, with VKR_E_BUSY at once when a limit is full), one FIFO of waiting jobs per client, round-robin
 * dispatch across clients onto a fixed number of libuv worker threads, batches (waiting jobs the
 * server says belong together, gathered across clients in round-robin order to run as one worker
 * task), and removal of waiting jobs (cancel, disconnect).  Loop thread only, except the run
 * callback. */
#ifndef VKR_DAEMON_QUEUE_H
#define VKR_DAEMON_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "vkr_proto.h"

typedef struct vkr__queue vkr__queue_t;
typedef struct vkr__queue_owner vkr__queue_owner_t;
typedef struct vkr__queue_job vkr__queue_job_t;

/* The bytes every connection of one uid holds in the queue (--max-bytes-per-uid).  Owned by the
 * server (one per uid with a connection or a job alive); the queue only adds and subtracts. */
typedef struct {
    unsigned uid;
    uint64_t bytes;
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
    vkr__queue_account_t *account;       /* the client's uid: its bytes count there too */
    vkr__queue_job_t *head, *tail;       /* waiting jobs, oldest first */
    vkr__queue_owner_t *ring_next, *ring_prev;   /* in the round-robin ring while it has waiting jobs */
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
    vkr__queue_owner_t *ring;            /* the owner whose turn is next */
    /* Batching (off until vkr__queue_set_batching): when a worker takes a batchable job, waiting
     * batchable jobs that same_batch(lead, other) accepts join it, up to max_batch in all. */
    unsigned max_batch;
    bool (*same_batch)(const vkr__queue_job_t *lead, const vkr__queue_job_t *other);
};

/* Set up an empty queue. */
void vkr__queue_init(vkr__queue_t *q, uv_loop_t *loop, unsigned workers, unsigned max_owner_slots, unsigned max_slots, uint64_t max_bytes,
                     uint64_t max_account_bytes);

/* Let a batchable job that a worker takes gather up to max_batch - 1 more waiting batchable jobs
 * that same_batch accepts: one round after another over the clients in ring order (the next
 * client's turn first), each client giving its oldest such job per round.  Gathering takes no
 * client's turn away.  max_batch <= 1: no batches. */
void vkr__queue_set_batching(vkr__queue_t *q, unsigned max_batch, bool (*same_batch)(const vkr__queue_job_t *lead,
                                                                                     const vkr__queue_job_t *other));

/* Set up an owner with nothing admitted, whose bytes also count against account (its uid's). */
void vkr__queue_owner_init(vkr__queue_t *q, vkr__queue_owner_t *o, vkr__queue_account_t *account);

/* Admit one job holding bytes for owner: VKR_OK (one slot and the bytes are the owner's until
 * vkr__queue_release), VKR_E_BUSY when a limit is full now (field "queue", the limit and its
 * flag named), or VKR_E_TOO_LARGE when bytes alone exceed --max-queue-bytes or
 * --max-bytes-per-uid. */
int vkr__queue_admit(vkr__queue_t *q, vkr__queue_owner_t *o, uint64_t bytes, vkr_error_t *err);

/* Add bytes to an admitted job (its output, once planned).  Same codes as vkr__queue_admit; on
 * failure nothing changes. */
int vkr__queue_grow(vkr__queue_t *q, vkr__queue_owner_t *o, uint64_t bytes, vkr_error_t *err);

/* Give back one slot and bytes (what was admitted and grown for one job). */
void vkr__queue_release(vkr__queue_t *q, vkr__queue_owner_t *o, uint64_t bytes);

/* Put an admitted job in its owner's FIFO; it runs when a worker is free and it is the owner's
 * turn.  run and after must be set. */
void vkr__queue_push(vkr__queue_t *q, vkr__queue_owner_t *o, vkr__queue_job_t *job);

/* Run an admitted job at once on the calling (loop) thread, outside the worker count: run, then
 * after(job, true).  For jobs too small to be worth a thread hand-off. */
void vkr__queue_run_here(vkr__queue_t *q, vkr__queue_owner_t *o, vkr__queue_job_t *job);

/* Take a job out of its owner's FIFO if it is still waiting.  Returns true if it was (it will
 * never run; its slot is still held), false if it is running (alone or in a batch) or finished. */
bool vkr__queue_remove(vkr__queue_t *q, vkr__queue_job_t *job);

#endif
