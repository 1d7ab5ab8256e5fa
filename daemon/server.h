/* The daemon's server: the libuv loop on the Unix socket, client connections, frame reading,
 * job dispatch to the backends on libuv's worker pool, replies and graceful shutdown. */
#ifndef VKR_DAEMON_SERVER_H
#define VKR_DAEMON_SERVER_H

#include <stdint.h>
#include "backend.h"

typedef struct {
    const char *socket_path;        /* where to listen (already resolved from flags / environment) */
    uint64_t max_job_bytes;         /* largest input or output tensor, bytes (--max-job-bytes) */
    vkr_backend_s *vulkan;          /* NULL when not available */
    vkr_backend_s *cpu;             /* NULL when the daemon runs with --backend vulkan only */
    int default_backend;            /* VKR_BACKEND_VULKAN or VKR_BACKEND_CPU: what "auto" jobs get */
    int ready_fd;                   /* -1, or an fd that gets "ready\n" once the socket listens */
} vkr_server_config_t;

/* Bind the socket (mode 0600 from the first instant; a stale socket file is replaced, a live one
 * refused), serve until SIGTERM/SIGINT, then stop accepting, finish in-flight jobs, remove the
 * socket and return 0.  Returns 1 if the socket could not be set up (message logged). */
int vkr__server_run(const vkr_server_config_t *cfg);

#endif
