/* The daemon's counters for the STATS request.  Latencies are kept in a ring of the last
 * VKR__STATS_LATENCY_WINDOW jobs, in microseconds; a snapshot sorts a copy and reads the
 * nearest-rank p50 and p99 (0 when no job has finished yet). */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

uint64_t vkr__stats_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void vkr__stats_init(vkr__stats_t *st)
{
    memset(st, 0, sizeof *st);
    st->start_ns = vkr__stats_now_ns();
}

void vkr__stats_latency(vkr__stats_t *st, uint64_t ns)
{
    uint64_t us = ns / 1000u;

    st->latency_us[st->latency_next] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    st->latency_next = (st->latency_next + 1) % VKR__STATS_LATENCY_WINDOW;
    if (st->latency_n < VKR__STATS_LATENCY_WINDOW)
        st->latency_n++;
}

void vkr__stats_log_batches(const vkr__stats_t *st)
{
    uint64_t jobs = 0;

    for (int op = 1; op < VKR__STATS_OPS; op++)
        for (int b = 1; b < VKR__STATS_BACKENDS; b++)
            jobs += st->done[op][b] + st->failed[op][b];
    vkr__log(VKR_LOG_INFO, "batches: %llu of %llu jobs (mean %.1f per batch), %llu jobs in all", (unsigned long long)st->batches,
             (unsigned long long)st->batched_jobs, st->batches ? (double)st->batched_jobs / (double)st->batches : 0.0,
             (unsigned long long)jobs);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

void vkr__stats_snapshot(const vkr__stats_t *st, const char *device_name, unsigned queued, unsigned running, unsigned clients,
                         unsigned workers, vkr_stats_t *out)
{
    static uint32_t sorted[VKR__STATS_LATENCY_WINDOW];   /* loop thread only */

    memset(out, 0, sizeof *out);
    out->uptime_ms = (vkr__stats_now_ns() - st->start_ns) / 1000000u;
    out->bytes_in = st->bytes_in;
    out->bytes_out = st->bytes_out;
    out->memfd_bytes_in = st->memfd_bytes_in;
    out->memfd_bytes_out = st->memfd_bytes_out;
    out->queued = queued;
    out->running = running;
    out->clients = clients;
    out->workers = workers;
    out->jobs_busy = st->jobs_busy;
    out->jobs_cancelled = st->jobs_cancelled;
    out->frames_refused = st->frames_refused;
    out->flags = st->vulkan_lost ? VKR_STATS_VULKAN_LOST : 0;
    out->jobs_moved_to_cpu = st->jobs_moved_to_cpu;
    out->connections_refused = st->connections_refused;
    out->connections_timed_out = st->connections_timed_out;
    out->accept_pauses = st->accept_pauses;
    if (st->latency_n > 0) {
        memcpy(sorted, st->latency_us, st->latency_n * sizeof sorted[0]);
        qsort(sorted, st->latency_n, sizeof sorted[0], cmp_u32);
        out->latency_p50_us = sorted[(st->latency_n - 1) * 50u / 100u];
        out->latency_p99_us = sorted[(st->latency_n - 1) * 99u / 100u];
    }
    /* a row for every pair that has seen a job, in (op, backend) order */
    for (int op = 1; op < VKR__STATS_OPS; op++) {
        for (int b = 1; b < VKR__STATS_BACKENDS; b++) {
            if (st->done[op][b] == 0 && st->failed[op][b] == 0 && st->in_flight[op][b] == 0)
                continue;
            if (out->n_rows == VKR_STATS_MAX_ROWS)
                break;
            out->rows[out->n_rows++] = (vkr_stats_row_t){(uint16_t)op, (uint16_t)b, st->done[op][b], st->failed[op][b], st->in_flight[op][b]};
        }
    }
    snprintf(out->device_name, sizeof out->device_name, "%s", device_name);
}
