/* Benchmark: one 64 MiB job (F.interpolate nearest of a (1, 16, 1024, 1024) float32 tensor to
 * the same size: the kernel is a copy, so the figure is the transport's) through a real
 * vkresampled on the CPU backend, three ways: every byte inline through the socket; the library
 * copying the input into a memfd and the daemon writing the output into the client's memfd; and
 * an input already in a memfd (vkr_tensor_alloc), so no byte is copied.  Prints the median of
 * REPEATS runs of each, and checks that all three give the same bytes.
 *
 * usage: bench_transport VKRESAMPLED [REPEATS]     (TAP output, figures as comments) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon_proc.h"
#include "tap.h"
#include "vkresample.h"

#define MAX_REPEATS 64

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Median ms of repeats runs of the job; the last output is kept in *out. */
static double run(vkr_client_t *c, const vkr_tensor_t *in, vkr_transport_t transport, int repeats, vkr_tensor_t *out, int *rc)
{
    vkr_interpolate_args_t args = {.mode = VKR_MODE_NEAREST, .n_size = 2, .size = {1024, 1024}};
    vkr_job_options_t opts = {.transport = transport};
    double t[MAX_REPEATS];

    memset(out, 0, sizeof *out);
    *rc = VKR_OK;
    for (int i = 0; i < repeats && *rc == VKR_OK; i++) {
        vkr_request_t *req;
        double t0 = now_ms();

        vkr_tensor_free(out);
        *rc = vkr_submit_interpolate(c, &args, in, &opts, &req);
        if (*rc == VKR_OK)
            *rc = vkr_wait(c, req, out);
        t[i] = now_ms() - t0;
    }
    qsort(t, (size_t)repeats, sizeof t[0], cmp_double);
    return t[repeats / 2];
}

int main(int argc, char **argv)
{
    static const char *const extra[] = {"--backend", "cpu", NULL};
    const int64_t shape[4] = {1, 16, 1024, 1024};
    const size_t n = 16u << 20;
    int repeats = argc > 2 ? atoi(argv[2]) : 5;
    vkr_tensor_t plain, shared, a, b, e;
    vkr_client_t *c = NULL;
    test_daemon_t d;
    double ms_inline, ms_memfd, ms_zero;
    int rc_a, rc_b, rc_e;

    if (argc < 2 || repeats < 1 || repeats > MAX_REPEATS) {
        fprintf(stderr, "usage: bench_transport VKRESAMPLED [REPEATS 1..%d]\n", MAX_REPEATS);
        return 2;
    }
    if (test_daemon_start(&d, argv[1], extra) != 0 || vkr_connect(d.socket, &c) != VKR_OK) {
        tap_check(0, "daemon and connection");
        return tap_done();
    }
    memset(&plain, 0, sizeof plain);
    plain.rank = 4;
    memcpy(plain.shape, shape, sizeof shape);
    plain.data = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        plain.data[i] = (float)(i % 9973) * 0.5f;
    vkr_tensor_alloc(4, shape, &shared);
    memcpy(shared.data, plain.data, n * sizeof(float));

    ms_inline = run(c, &plain, VKR_TRANSPORT_INLINE, repeats, &a, &rc_a);
    ms_memfd = run(c, &plain, VKR_TRANSPORT_MEMFD, repeats, &b, &rc_b);
    ms_zero = run(c, &shared, VKR_TRANSPORT_AUTO, repeats, &e, &rc_e);
    tap_check(rc_a == VKR_OK && rc_b == VKR_OK && rc_e == VKR_OK && a.storage == NULL && b.storage != NULL && e.storage != NULL &&
                  memcmp(a.data, plain.data, n * sizeof(float)) == 0 && memcmp(b.data, a.data, n * sizeof(float)) == 0 &&
                  memcmp(e.data, a.data, n * sizeof(float)) == 0,
              "64 MiB in, 64 MiB out: inline, memfd and zero-copy give the same bytes (%s %s %s)", vkr_code_name(rc_a), vkr_code_name(rc_b),
              vkr_code_name(rc_e));
    printf("# 64 MiB job, median of %d: inline %.1f ms; memfd (input copied into a memfd, output in the client's memfd) %.1f ms; "
           "input already in a memfd (vkr_tensor_alloc) %.1f ms\n", repeats, ms_inline, ms_memfd, ms_zero);
    vkr_tensor_free(&a);
    vkr_tensor_free(&b);
    vkr_tensor_free(&e);
    vkr_tensor_free(&shared);
    free(plain.data);
    vkr_close(c);
    tap_check(test_daemon_stop(&d) == 0, "the daemon stops cleanly");
    return tap_done();
}
