/* The daemon's counters for the STATS request: jobs done / failed / in flight per op and backend,
 * refusals, bytes, and a window of recent job latencies for p50 / p99; and the counters the
 * STATS_REPLY layout has no room for (batches), which go to the log.  Loop thread only. */
#ifndef VKR_DAEMON_STATS_H
#define VKR_DAEMON_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "vkr_proto.h"

#define VKR__STATS_LATENCY_WINDOW 4096u   /* most recent jobs the percentiles are taken over */
#define VKR__STATS_OPS 5                  /* vkr_op_t values 0..4 (0 unused) */
#define VKR__STATS_BACKENDS 3             /* vkr_backend_id_t values 0..2 (0 unused) */

typedef struct {
    uint64_t start_ns;
    uint64_t bytes_in, bytes_out;                 /* socket bytes (conn.c adds to these) */
    uint64_t memfd_bytes_in, memfd_bytes_out;
    uint64_t jobs_busy, jobs_cancelled, frames_refused;
    uint64_t jobs_moved_to_cpu;                   /* bound for Vulkan, run on the CPU after the device was lost */
    uint64_t connections_refused;                 /* closed at accept: allow lists, per-uid connection cap */
    uint64_t connections_timed_out;               /* closed mid-frame (--idle-timeout, --frame-timeout) or
                                                   * with replies unread for --idle-timeout (conn.c) */
    uint64_t accept_pauses;                       /* accepting paused: descriptors, --max-connections */
    /* Not in STATS_REPLY (its layout is fixed, see proto/PROTOCOL.md): logged (vkr__stats_log_batches). */
    uint64_t batches;                             /* worker tasks that ran several Vulkan jobs of one plan */
    uint64_t batched_jobs;                        /* the jobs in them */
    bool vulkan_lost;                             /* the Vulkan device was lost */
    uint64_t done[VKR__STATS_OPS][VKR__STATS_BACKENDS];
    uint64_t failed[VKR__STATS_OPS][VKR__STATS_BACKENDS];
    uint64_t in_flight[VKR__STATS_OPS][VKR__STATS_BACKENDS];
    uint32_t latency_us[VKR__STATS_LATENCY_WINDOW];
    unsigned latency_n, latency_next;
} vkr__stats_t;

/* Monotonic time in nanoseconds. */
uint64_t vkr__stats_now_ns(void);

/* Zero the counters and start the uptime clock. */
void vkr__stats_init(vkr__stats_t *st);

/* Record one answered job's latency (from its frame read to its reply queued). */
void vkr__stats_latency(vkr__stats_t *st, uint64_t ns);

/* Log the batch counters (one info line: "batches: N of M jobs (mean X per batch), K jobs in
 * all"), at exit and whenever tests want them (STATS with -v). */
void vkr__stats_log_batches(const vkr__stats_t *st);

/* The STATS_REPLY of now: the counters, the percentiles, and the caller's gauges. */
void vkr__stats_snapshot(const vkr__stats_t *st, const char *device_name, unsigned queued, unsigned running, unsigned clients,
                         unsigned workers, vkr_stats_t *out);

#endif
