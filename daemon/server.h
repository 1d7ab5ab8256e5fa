/* The daemon's server: the libuv loop on the listening socket, client connections, requests
 * (PING, STATS, SUBMIT, CANCEL), jobs through the queue to the backends, replies and graceful
 * shutdown. */
#ifndef VKR_DAEMON_SERVER_H
#define VKR_DAEMON_SERVER_H

#include <stdint.h>
#include "backend.h"

#define VKR_DEFAULT_WORKERS 4u                       /* jobs running at once (--workers) */
#define VKR_MAX_WORKERS 128u                         /* libuv's thread pool takes at most 1024 */
#define VKR_DEFAULT_MAX_CLIENT_JOBS 64u              /* jobs in flight per connection (--max-client-jobs) */
#define VKR_DEFAULT_MAX_QUEUED_JOBS 1024u            /* jobs in flight in the daemon (--max-queued-jobs) */
#define VKR_DEFAULT_MAX_QUEUE_BYTES (4ull << 30)     /* bytes held by jobs in flight (--max-queue-bytes) */

typedef struct {
    const char *socket_path;        /* where to listen (already resolved from flags / environment);
                                     * unused under socket activation */
    uint64_t max_job_bytes;         /* largest input or output tensor, bytes (--max-job-bytes) */
    unsigned workers;               /* --workers */
    unsigned max_client_jobs;       /* --max-client-jobs */
    unsigned max_queued_jobs;       /* --max-queued-jobs */
    uint64_t max_queue_bytes;       /* --max-queue-bytes */
    vkr_backend_s *vulkan;          /* NULL when not available */
    vkr_backend_s *cpu;             /* NULL when the daemon runs with --backend vulkan only */
    int default_backend;            /* VKR_BACKEND_VULKAN or VKR_BACKEND_CPU: what "auto" jobs get */
    int ready_fd;                   /* -1, or an fd that gets "ready\n" once the socket listens */
} vkr_server_config_t;

/* Listen (socket activation, or bind the path: mode 0600 from the first instant; a stale socket
 * file is replaced, a live one refused), serve until SIGTERM/SIGINT, then stop accepting and
 * reading, finish every admitted job and write its reply, remove the socket it bound and return
 * 0.  Returns 1 if the socket could not be set up (message logged).  The worker count must be in
 * the environment (UV_THREADPOOL_SIZE) before the first call: main.c sets it. */
int vkr__server_run(const vkr_server_config_t *cfg);

#endif
