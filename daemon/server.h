/* The daemon's server: the libuv loop on the listening socket, client connections, requests
 * (PING, STATS, SUBMIT, CANCEL), jobs through the queue to the backends, replies and graceful
 * shutdown. */
#ifndef VKR_DAEMON_SERVER_H
#define VKR_DAEMON_SERVER_H

#include <stdint.h>
#include "backend.h"
#include "listen.h"
#include "peers.h"

#define VKR_DEFAULT_WORKERS 4u                       /* jobs running at once (--workers) */
#define VKR_MAX_WORKERS 128u                         /* libuv's thread pool takes at most 1024 */
#define VKR_DEFAULT_MAX_CLIENT_JOBS 64u              /* jobs in flight per connection (--max-client-jobs) */
#define VKR_DEFAULT_MAX_QUEUED_JOBS 1024u            /* jobs in flight in the daemon (--max-queued-jobs) */
#define VKR_DEFAULT_MAX_QUEUE_BYTES (4ull << 30)     /* bytes held by jobs in flight (--max-queue-bytes) */
#define VKR_DEFAULT_MAX_CONNECTIONS 1024u            /* open connections; accepting pauses at it (--max-connections) */
#define VKR_DEFAULT_MAX_CONNECTIONS_PER_UID 256u     /* open connections of one uid; refused past it
                                                      * (--max-connections-per-uid) */
                                                     /* --max-bytes-per-uid defaults to vkr__default_bytes_per_uid() */
#define VKR_DEFAULT_IDLE_TIMEOUT_MS 60000u           /* mid-frame without a byte: closed (--idle-timeout, seconds) */
#define VKR_DEFAULT_FRAME_TIMEOUT_MS 120000u         /* one frame from first to last byte (--frame-timeout, seconds) */
#define VKR_DEFAULT_SHUTDOWN_TIMEOUT_MS 10000u       /* SIGTERM: drain for this long, then close everything
                                                      * (--shutdown-timeout, seconds) */
#define VKR__ACCEPT_RETRY_MS 250u                    /* out of descriptors: accept again after this long */
#define VKR__CLIENT_REPLY_BACKLOG_BYTES (64ull << 20) /* a connection's inline replies still to write
                                                      * (computed or not) past which it is not read */
/* Batches (issue 5): a Vulkan-bound job whose tensors (inputs and output together) hold at most
 * VKR_BATCH_MAX_JOB_BYTES is "small"; a worker that takes one gathers up to max_batch - 1 more
 * waiting small jobs of the same plan (op, shapes, modes, parameters), from any client in
 * round-robin order, and the Vulkan backend runs them all in one submission (run_batch). */
#define VKR_BATCH_MAX_JOB_BYTES (1u << 20)
/* Tiny CPU jobs run on the loop thread as soon as their frame is read (issue 6: a round trip
 * without the two thread-pool hand-offs): a job for the CPU backend whose output has at most
 * VKR_LOOP_JOB_MAX_OUT_ELEMENTS elements and whose inputs at most VKR_LOOP_JOB_MAX_IN_ELEMENTS
 * (tens of microseconds of work), when a worker is idle and no job waits (it would have started
 * at once anyway: --workers and the order of waiting jobs hold), at most VKR_LOOP_JOBS_PER_TURN of
 * them per loop iteration (a client flooding tiny jobs delays the loop by a bounded amount). */
#define VKR_LOOP_JOB_MAX_OUT_ELEMENTS 16384u
#define VKR_LOOP_JOB_MAX_IN_ELEMENTS 65536u
#define VKR_LOOP_JOBS_PER_TURN 8u
#define VKR_DEFAULT_MAX_BATCH 16u                    /* jobs per batch (max_batch; 1: no batches) */
#define VKR_MAX_BATCH_LIMIT 64u                      /* max_batch is clamped to this */
/* Memfd mappings a connection keeps between jobs (issue 5): the same memfd range sent again is
 * not mapped again, so the Vulkan backend's host import of it is reused.  Least recently used
 * first out; a mapping a job holds is never unmapped under it. */
#define VKR__CLIENT_MAPPINGS 16u
#define VKR__SIMULATE_DEVICE_LOSS_ENV "VKRESAMPLE_SIMULATE_DEVICE_LOSS"   /* test only: the N-th Vulkan job
                                                                          * reports a lost device */

typedef struct {
    vkr__listen_config_t listen;    /* where and how to bind (already resolved from flags /
                                     * environment); unused under socket activation */
    vkr__listener_t *listener;      /* NULL, or the socket main.c already opened (and locked) with
                                     * vkr__listen_open before the backends: the server serves it
                                     * and closes it */
    vkr__allow_t allow;             /* who may connect (--allow-uid, --allow-group; the daemon's
                                     * own uid is always in it) */
    unsigned max_connections;       /* --max-connections */
    unsigned max_connections_per_uid;   /* --max-connections-per-uid */
    uint64_t max_bytes_per_uid;     /* --max-bytes-per-uid */
    uint64_t idle_timeout_ms;       /* --idle-timeout (0: off) */
    uint64_t frame_timeout_ms;      /* --frame-timeout (0: off) */
    uint64_t shutdown_timeout_ms;   /* --shutdown-timeout (0: close at once) */
    uint64_t max_job_bytes;         /* largest input or output tensor, bytes (--max-job-bytes) */
    unsigned workers;               /* --workers */
    unsigned max_client_jobs;       /* --max-client-jobs */
    unsigned max_queued_jobs;       /* --max-queued-jobs */
    uint64_t max_queue_bytes;       /* --max-queue-bytes */
    vkr_backend_s *vulkan;          /* NULL when not available */
    vkr_backend_s *cpu;             /* NULL when the daemon runs with --backend vulkan only */
    int default_backend;            /* VKR_BACKEND_VULKAN or VKR_BACKEND_CPU: what "auto" jobs get */
    int ready_fd;                   /* -1, or an fd that gets "ready\n" once the socket listens */
    unsigned max_batch;             /* --max-batch: jobs per Vulkan batch; 0: VKR_DEFAULT_MAX_BATCH, 1: no batches */
} vkr_server_config_t;

/* Listen (cfg->listener, else socket activation, or lock and bind the path: mode 0600 from the
 * first instant; a stale socket file is replaced, a live one refused), serve until
 * SIGTERM/SIGINT, then stop accepting and reading, finish every admitted job and write its reply
 * (for at most cfg->shutdown_timeout_ms: then every connection is closed, its jobs dropped),
 * remove the socket it bound and its lock file and return 0.  SIGHUP is logged and ignored.  Returns 1 if the socket could not be set up or a test
 * switch in the environment is malformed (message logged).  The worker count must be in the
 * environment (UV_THREADPOOL_SIZE) before the first call: main.c sets it.
 *
 * Test-only switch (README's testing section): VKRESAMPLE_SIMULATE_DEVICE_LOSS=N makes the N-th
 * job that runs on Vulkan report a lost device instead of running, exactly as a real
 * VK_ERROR_DEVICE_LOST from the backend does: Vulkan is marked lost, that job and every job
 * admitted for Vulkan run on the CPU backend, later 'auto' jobs go to the CPU, later jobs that ask
 * for 'vulkan' get VKR_E_BACKEND_UNAVAILABLE, and STATS reports it. */
int vkr__server_run(const vkr_server_config_t *cfg);

/* --max-bytes-per-uid when not given: a quarter of --max-queue-bytes, but never less than the
 * most one job may hold (two input tensors and an inline output of --max-job-bytes each, plus the
 * fixed part of its SUBMIT), and never more than --max-queue-bytes: a uid alone can always run
 * any job the daemon accepts. */
uint64_t vkr__default_bytes_per_uid(uint64_t max_queue_bytes, uint64_t max_job_bytes);

#endif
