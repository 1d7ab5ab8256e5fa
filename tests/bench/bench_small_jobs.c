/* vkr-bench-small-jobs: the small-job round trip of issue 6 through libvkresample (the C client),
 * against a running vkresampled, for tests/bench/bench.py.
 *
 *   vkr-bench-small-jobs SOCKET [--seconds S] [--clients N] [--backend auto|cpu|vulkan]
 *
 * One client runs F.interpolate(x, size=(64, 64), mode='bilinear', align_corners=False) of a
 * 1x3x32x32 float32 tensor back to back (vkr_interpolate: submit, wait) for S seconds after 200
 * warm-up jobs and reports the round trip's p50 / p90 / p99 / min; then N clients (one thread and
 * one connection each) run the same job back to back for S seconds and the total jobs/s is
 * reported.  Before that, PINGs back to back for S / 3 seconds give the round trip of the socket and
 * the daemon's loop alone (no worker thread, no compute, no payload): the floor under any job.
 * Prints one JSON line:
 *   {"jobs": J, "p50_us": ..., "p90_us": ..., "p99_us": ..., "min_us": ..., "ping_p50_us": ...,
 *    "ping_p99_us": ..., "clients": N, "jobs_per_s": ...}
 * Exit 1 when a job fails (message on stderr), 2 on a usage error. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vkresample.h"

#define MAX_CLIENTS 64
#define MAX_SAMPLES (4u << 20)

static const char *g_socket;
static vkr_backend_id_t g_backend = VKR_BACKEND_CPU;
static float g_input[1 * 3 * 32 * 32];
static atomic_int g_failed;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* The index of quantile q in n sorted samples (as bench.py takes it). */
static size_t pct(size_t n, double q)
{
    size_t i = (size_t)((double)n * q);

    return i < n ? i : n - 1;
}

static int one_job(vkr_client_t *c)
{
    static const int64_t shape[4] = {1, 3, 32, 32};
    vkr_interpolate_args_t args = {.mode = VKR_MODE_BILINEAR, .n_size = 2, .size = {64, 64},
                                   .align_corners = VKR_OPT_FALSE, .backend = g_backend};
    vkr_tensor_t in = {.rank = 4, .data = g_input}, out;
    int rc;

    memcpy(in.shape, shape, sizeof shape);
    rc = vkr_interpolate(c, &args, &in, &out);
    if (rc != VKR_OK) {
        if (atomic_fetch_add(&g_failed, 1) == 0)
            fprintf(stderr, "vkr-bench-small-jobs: %s: %s\n", vkr_code_name(rc), vkr_last_error(c));
        return rc;
    }
    vkr_tensor_free(&out);
    return VKR_OK;
}

typedef struct {
    double stop;
    long jobs;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    vkr_client_t *c;

    if (vkr_connect(g_socket, &c) != VKR_OK) {
        atomic_fetch_add(&g_failed, 1);
        return NULL;
    }
    while (now_s() < w->stop && one_job(c) == VKR_OK)
        w->jobs++;
    vkr_close(c);
    return NULL;
}

int main(int argc, char **argv)
{
    double seconds = 3.0, end, *lat;
    int clients = 8;
    size_t n = 0;
    vkr_client_t *c;
    pthread_t th[MAX_CLIENTS];
    worker_t w[MAX_CLIENTS];
    long total = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: vkr-bench-small-jobs SOCKET [--seconds S] [--clients N] [--backend auto|cpu|vulkan]\n");
        return 2;
    }
    g_socket = argv[1];
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--clients") == 0 && i + 1 < argc)
            clients = atoi(argv[++i]);
        else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc)
            g_backend = (vkr_backend_id_t)vkr_backend_from_name(argv[++i]);
        else {
            fprintf(stderr, "vkr-bench-small-jobs: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (seconds <= 0 || clients < 0 || clients > MAX_CLIENTS || (int)g_backend < 0) {
        fprintf(stderr, "vkr-bench-small-jobs: bad --seconds, --clients or --backend\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof g_input / sizeof g_input[0]; i++)
        g_input[i] = (float)((i * 2654435761u) % 2001u) / 1000.0f - 1.0f;
    lat = malloc(MAX_SAMPLES * sizeof *lat);
    if (lat == NULL || vkr_connect(g_socket, &c) != VKR_OK) {
        fprintf(stderr, "vkr-bench-small-jobs: cannot connect to %s\n", g_socket);
        return 1;
    }
    for (int i = 0; i < 200; i++)
        if (one_job(c) != VKR_OK)
            return 1;
    end = now_s() + seconds;
    while (n < MAX_SAMPLES) {
        double t0 = now_s(), t1;

        if (one_job(c) != VKR_OK)
            return 1;
        t1 = now_s();
        lat[n++] = t1 - t0;
        if (t1 >= end)
            break;
    }
    qsort(lat, n, sizeof lat[0], cmp_double);
    double job_p50 = lat[pct(n, 0.50)], job_p90 = lat[pct(n, 0.90)], job_p99 = lat[pct(n, 0.99)], job_min = lat[0];
    size_t jobs = n;

    n = 0;
    end = now_s() + seconds / 3;
    while (n < MAX_SAMPLES) {
        vkr_server_info_t info;
        double t0 = now_s(), t1;

        if (vkr_ping(c, &info) != VKR_OK) {
            fprintf(stderr, "vkr-bench-small-jobs: ping: %s\n", vkr_last_error(c));
            return 1;
        }
        t1 = now_s();
        lat[n++] = t1 - t0;
        if (t1 >= end)
            break;
    }
    vkr_close(c);
    qsort(lat, n, sizeof lat[0], cmp_double);

    double stop = now_s() + seconds, t0 = now_s();
    for (int k = 0; k < clients; k++) {
        w[k] = (worker_t){.stop = stop};
        pthread_create(&th[k], NULL, worker, &w[k]);
    }
    for (int k = 0; k < clients; k++) {
        pthread_join(th[k], NULL);
        total += w[k].jobs;
    }
    double elapsed = now_s() - t0;
    if (atomic_load(&g_failed))
        return 1;
    printf("{\"jobs\": %zu, \"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"min_us\": %.1f, \"ping_p50_us\": %.1f, "
           "\"ping_p99_us\": %.1f, \"clients\": %d, \"jobs_per_s\": %.0f}\n",
           jobs, job_p50 * 1e6, job_p90 * 1e6, job_p99 * 1e6, job_min * 1e6, lat[pct(n, 0.50)] * 1e6, lat[pct(n, 0.99)] * 1e6, clients,
           clients > 0 ? (double)total / elapsed : 0.0);
    free(lat);
    return 0;
}
