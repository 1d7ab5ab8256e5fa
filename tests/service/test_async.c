/* The asynchronous C API and the daemon's queues, against a real vkresampled (CPU backend):
 * pipelined jobs completing out of order and matched by request id, a caller's poll loop on
 * vkr_fd, cancel of queued and of running work, per-job time limits, VKR_E_BUSY from every queue
 * limit, and memfd jobs byte-identical to inline ones.  Synchronisation is by replies only
 * (STATS round trips, job completions): no test sleeps.
 *
 * usage: test_async VKRESAMPLED     (TAP output) */
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon_proc.h"
#include "tap.h"
#include "vkresample.h"

static const char *daemon_bin;

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---------------------------------------------------------------- tensors and jobs */
static void tensor_init(vkr_tensor_t *t, int rank, const int64_t *shape, unsigned seed)
{
    size_t n = 1;

    memset(t, 0, sizeof *t);
    t->rank = rank;
    for (int i = 0; i < rank; i++) {
        t->shape[i] = shape[i];
        n *= (size_t)shape[i];
    }
    t->data = malloc(n * sizeof(float) + 1);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        t->data[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

static size_t elements(const vkr_tensor_t *t)
{
    size_t n = 1;

    for (int i = 0; i < t->rank; i++)
        n *= (size_t)t->shape[i];
    return n;
}

static bool same_tensor(const vkr_tensor_t *a, const vkr_tensor_t *b)
{
    if (a->rank != b->rank || memcmp(a->shape, b->shape, (size_t)a->rank * sizeof(int64_t)) != 0)
        return false;
    return memcmp(a->data, b->data, elements(a) * sizeof(float)) == 0;
}

/* A small job with a known answer: nearest, scale 2, of a (1, 2, 3, 4) tensor. */
typedef struct {
    vkr_tensor_t in;
    vkr_interpolate_args_t args;
} small_job_t;

static void small_job(small_job_t *j, unsigned seed)
{
    tensor_init(&j->in, 4, (const int64_t[]){1, 2, 3, 4}, seed);
    memset(&j->args, 0, sizeof j->args);
    j->args.mode = VKR_MODE_NEAREST;
    j->args.n_scale = 1;
    j->args.scale_factor[0] = 2.0;
}

static bool small_ok(const small_job_t *j, const vkr_tensor_t *out)
{
    if (out->rank != 4 || out->shape[2] != 6 || out->shape[3] != 8)
        return false;
    for (int c = 0; c < 2; c++)
        for (int y = 0; y < 6; y++)
            for (int x = 0; x < 8; x++)
                if (out->data[(c * 6 + y) * 8 + x] != j->in.data[(c * 3 + y / 2) * 4 + x / 2])
                    return false;
    return true;
}

/* The slow job: bicubic grid_sample of (1, 32, 128, 128) on a 512 x 512 grid (~100-200 ms on
 * the CPU backend of a 2-core machine; its tensors go in memfds). */
typedef struct {
    vkr_tensor_t x, grid;
    vkr_grid_sample_args_t args;
} big_job_t;

static void big_job(big_job_t *j, unsigned seed)
{
    tensor_init(&j->x, 4, (const int64_t[]){1, 32, 128, 128}, seed);
    tensor_init(&j->grid, 4, (const int64_t[]){1, 512, 512, 2}, seed + 1);
    memset(&j->args, 0, sizeof j->args);
    j->args.mode = VKR_GRID_BICUBIC;
    j->args.padding_mode = VKR_PADDING_REFLECTION;
}

static void big_free(big_job_t *j)
{
    free(j->x.data);
    free(j->grid.data);
}

static vkr_client_t *connect_to(const test_daemon_t *d)
{
    vkr_client_t *c = NULL;
    int rc = vkr_connect(d->socket, &c);

    if (rc != VKR_OK) {
        tap_check(0, "connect to %s: %s", d->socket, vkr_code_name(rc));
        exit(tap_done());
    }
    return c;
}

/* The row of (op, cpu) in the daemon's stats, zeroed if absent. */
static vkr_server_stats_row_t row_of(const vkr_server_stats_t *st, vkr_op_t op)
{
    vkr_server_stats_row_t none = {op, VKR_BACKEND_CPU, 0, 0, 0};

    for (int i = 0; i < st->n_rows; i++)
        if (st->rows[i].op == op && st->rows[i].backend == VKR_BACKEND_CPU)
            return st->rows[i];
    return none;
}

static int start(test_daemon_t *d, const char *const *extra)
{
    if (test_daemon_start(d, daemon_bin, extra) != 0) {
        tap_check(0, "daemon starts");
        exit(tap_done());
    }
    return 0;
}

static void stop(test_daemon_t *d, const char *what)
{
    int status = test_daemon_stop(d);

    tap_check(status == 0, "%s: the daemon stops cleanly on SIGTERM (status %d)", what, status);
}

/* ---------------------------------------------------------------- tests */
static void test_pipelining(void)
{
    static const char *const extra[] = {"--backend", "cpu", "--workers", "2", NULL};
    enum { N_SMALL = 6 };
    test_daemon_t d;
    vkr_client_t *c, *c2;
    big_job_t big;
    small_job_t small[N_SMALL];
    vkr_request_t *big_req = NULL, *reqs[N_SMALL] = {0}, *done = NULL;
    vkr_tensor_t out, ref;
    int order = 0, big_order = -1, rc, ok_small = 0;
    uint32_t ids[N_SMALL + 1];
    bool distinct = true;

    start(&d, extra);
    c = connect_to(&d);
    big_job(&big, 1);
    rc = vkr_submit_grid_sample(c, &big.args, &big.x, &big.grid, NULL, &big_req);
    tap_check(rc == VKR_OK && big_req != NULL, "pipelining: the slow job is submitted (rc %s)", vkr_code_name(rc));
    for (int k = 0; k < N_SMALL; k++) {
        small_job(&small[k], 100 + (unsigned)k);
        rc = vkr_submit_interpolate(c, &small[k].args, &small[k].in, NULL, &reqs[k]);
        if (rc != VKR_OK)
            tap_check(0, "pipelining: small job %d submitted (%s: %s)", k, vkr_code_name(rc), vkr_last_error(c));
    }
    ids[N_SMALL] = vkr_request_id(big_req);
    for (int k = 0; k < N_SMALL; k++)
        ids[k] = vkr_request_id(reqs[k]);
    for (int a = 0; a <= N_SMALL; a++)
        for (int b = a + 1; b <= N_SMALL; b++)
            distinct = distinct && ids[a] != ids[b];
    tap_check(distinct, "pipelining: seven jobs in flight on one connection, each with its own request id");

    /* collect in completion order */
    for (order = 0; order <= N_SMALL; order++) {
        rc = vkr_wait_any(c, 60000, &done);
        if (rc != VKR_OK) {
            tap_check(0, "pipelining: wait_any %d: %s %s", order, vkr_code_name(rc), vkr_last_error(c));
            break;
        }
        if (done == big_req) {
            big_order = order;
            rc = vkr_wait(c, done, &out);
            c2 = connect_to(&d);
            int rc2 = vkr_grid_sample(c2, &big.args, &big.x, &big.grid, &ref);
            tap_check(rc == VKR_OK && rc2 == VKR_OK && same_tensor(&out, &ref),
                      "pipelining: the slow job's result equals the same job run alone (rc %s / %s)", vkr_code_name(rc), vkr_code_name(rc2));
            vkr_tensor_free(&out);
            vkr_tensor_free(&ref);
            vkr_close(c2);
            continue;
        }
        for (int k = 0; k < N_SMALL; k++) {
            if (done != reqs[k])
                continue;
            rc = vkr_wait(c, done, &out);
            ok_small += rc == VKR_OK && small_ok(&small[k], &out);
            vkr_tensor_free(&out);
            reqs[k] = NULL;
        }
    }
    tap_check(big_order == N_SMALL, "pipelining: the slow job, submitted first, completed last (position %d of %d): out of order",
              big_order, N_SMALL);
    tap_check(ok_small == N_SMALL, "pipelining: every small job's reply matched its request and is correct (%d of %d)", ok_small, N_SMALL);
    rc = vkr_wait_any(c, 0, &done);
    tap_check(rc == VKR_E_INVALID_ARG && done == NULL, "wait_any with nothing in flight: VKR_E_INVALID_ARG (%s)", vkr_code_name(rc));
    for (int k = 0; k < N_SMALL; k++)
        free(small[k].in.data);
    big_free(&big);
    vkr_close(c);
    stop(&d, "pipelining");
}

static void test_poll_loop(void)
{
    static const char *const extra[] = {"--backend", "cpu", NULL};
    enum { N = 8 };
    test_daemon_t d;
    vkr_client_t *c;
    small_job_t jobs[N];
    vkr_request_t *reqs[N];
    vkr_job_options_t opts = {.timeout_ms = 60000};
    int remaining = N, ok = 0, rounds = 0, t;
    bool seen[N] = {false};

    start(&d, extra);
    c = connect_to(&d);
    tap_check(vkr_next_timeout_ms(c) == -1, "poll loop: no time limit in flight -> vkr_next_timeout_ms -1");
    for (int k = 0; k < N; k++) {
        small_job(&jobs[k], 200 + (unsigned)k);
        if (vkr_submit_interpolate(c, &jobs[k].args, &jobs[k].in, &opts, &reqs[k]) != VKR_OK)
            tap_check(0, "poll loop: submit %d", k);
    }
    t = vkr_next_timeout_ms(c);
    tap_check(t > 50000 && t <= 60000, "poll loop: vkr_next_timeout_ms %d within the 60 s limit", t);
    while (remaining > 0 && rounds++ < 100000) {
        struct pollfd pfd = {.fd = vkr_fd(c), .events = POLLIN};

        if (poll(&pfd, 1, vkr_next_timeout_ms(c)) < 0)
            break;
        if (vkr_poll(c, NULL) < 0)
            break;
        for (int k = 0; k < N; k++) {
            if (seen[k] || vkr_poll(c, reqs[k]) != 1)
                continue;
            vkr_tensor_t out;
            seen[k] = true;
            remaining--;
            ok += vkr_wait(c, reqs[k], &out) == VKR_OK && small_ok(&jobs[k], &out);
            vkr_tensor_free(&out);
        }
    }
    tap_check(ok == N, "poll loop: poll() on vkr_fd + vkr_poll completes all %d jobs correctly (%d)", N, ok);
    for (int k = 0; k < N; k++)
        free(jobs[k].in.data);
    vkr_close(c);
    stop(&d, "poll loop");
}

/* Ask for STATS until pred holds (each round trip is a reply: no sleeping). */
static bool stats_until(vkr_client_t *c, vkr_server_stats_t *st, bool (*pred)(const vkr_server_stats_t *), int max_rounds)
{
    for (int i = 0; i < max_rounds; i++) {
        if (vkr_stats(c, st) != VKR_OK)
            return false;
        if (pred(st))
            return true;
    }
    return false;
}

static bool one_running(const vkr_server_stats_t *st)
{
    return st->running == 1;
}

static bool grid_idle(const vkr_server_stats_t *st)
{
    return row_of(st, VKR_OP_GRID_SAMPLE).in_flight == 0 && st->running == 0;
}

static void test_cancel(void)
{
    static const char *const extra[] = {"--backend", "cpu", "--workers", "1", NULL};
    test_daemon_t d;
    vkr_client_t *c, *watch;
    big_job_t a, b, e;
    small_job_t s;
    vkr_request_t *ra, *rb, *rc_small, *re;
    vkr_server_stats_t st;
    vkr_tensor_t out;
    int rc, rc2;
    bool ok;

    start(&d, extra);
    c = connect_to(&d);
    watch = connect_to(&d);
    big_job(&a, 10);
    big_job(&b, 20);
    small_job(&s, 30);
    vkr_submit_grid_sample(c, &a.args, &a.x, &a.grid, NULL, &ra);
    vkr_submit_grid_sample(c, &b.args, &b.x, &b.grid, NULL, &rb);
    vkr_submit_interpolate(c, &s.args, &s.in, NULL, &rc_small);
    rc = vkr_cancel(c, rb);
    tap_check(rc == VKR_OK, "cancel: a queued job is cancelled (rc %s)", vkr_code_name(rc));
    rc = vkr_wait(c, ra, &out);
    vkr_tensor_free(&out);
    rc2 = vkr_wait(c, rc_small, &out);
    tap_check(rc == VKR_OK && rc2 == VKR_OK && small_ok(&s, &out), "cancel: the jobs around it complete (%s, %s)", vkr_code_name(rc),
              vkr_code_name(rc2));
    vkr_tensor_free(&out);
    rc = vkr_stats(watch, &st);
    tap_check(rc == VKR_OK && st.jobs_cancelled == 1 && row_of(&st, VKR_OP_GRID_SAMPLE).done == 1 && row_of(&st, VKR_OP_INTERPOLATE).done == 1,
              "cancel: the daemon dropped the queued job (cancelled %" PRIu64 ", grid_sample done %" PRIu64 ")", st.jobs_cancelled,
              row_of(&st, VKR_OP_GRID_SAMPLE).done);

    /* a running job: answered at once, its output dropped when its worker returns */
    big_job(&e, 40);
    vkr_submit_grid_sample(c, &e.args, &e.x, &e.grid, NULL, &re);
    ok = stats_until(watch, &st, one_running, 100000);
    tap_check(ok, "cancel: the next slow job is running (stats: running %u)", st.running);
    rc = vkr_cancel(c, re);
    free(s.in.data);
    small_job(&s, 32);
    rc2 = vkr_interpolate(c, &s.args, &s.in, &out);
    tap_check(rc == VKR_OK && rc2 == VKR_OK && small_ok(&s, &out), "cancel: a running job is cancelled and the connection goes on (%s, %s: %s)",
              vkr_code_name(rc), vkr_code_name(rc2), vkr_last_error(c));
    vkr_tensor_free(&out);
    ok = stats_until(watch, &st, grid_idle, 100000);
    tap_check(ok && st.jobs_cancelled == 2 && row_of(&st, VKR_OP_GRID_SAMPLE).done == 1 && row_of(&st, VKR_OP_GRID_SAMPLE).failed == 0,
              "cancel: the running job's output was dropped, not sent (cancelled %" PRIu64 ", grid_sample done %" PRIu64 ")", st.jobs_cancelled,
              row_of(&st, VKR_OP_GRID_SAMPLE).done);
    big_free(&a);
    big_free(&b);
    big_free(&e);
    free(s.in.data);
    vkr_close(c);
    vkr_close(watch);
    stop(&d, "cancel");
}

static void test_timeout(void)
{
    static const char *const extra[] = {"--backend", "cpu", "--workers", "1", NULL};
    test_daemon_t d;
    vkr_client_t *c, *watch;
    big_job_t a;
    small_job_t s;
    vkr_request_t *ra;
    vkr_job_options_t opts = {.timeout_ms = 20};
    vkr_server_stats_t st;
    vkr_tensor_t out;
    double t0, waited, alone;
    int rc;

    start(&d, extra);
    c = connect_to(&d);
    watch = connect_to(&d);
    big_job(&a, 50);
    t0 = now_ms();
    rc = vkr_grid_sample(c, &a.args, &a.x, &a.grid, &out);
    alone = now_ms() - t0;
    vkr_tensor_free(&out);
    tap_check(rc == VKR_OK, "timeout: the slow job alone takes %.0f ms", alone);

    t0 = now_ms();
    rc = vkr_submit_grid_sample(c, &a.args, &a.x, &a.grid, &opts, &ra);
    if (rc == VKR_OK)
        rc = vkr_wait(c, ra, &out);
    waited = now_ms() - t0;
    tap_check(rc == VKR_E_TIMEOUT && out.data == NULL && strstr(vkr_last_error(c), "20 ms") != NULL,
              "timeout: a 20 ms limit gives VKR_E_TIMEOUT after %.0f ms (%s: %s)", waited, vkr_code_name(rc), vkr_last_error(c));
    tap_check(waited < alone, "timeout: it returned before the job could have finished (%.0f < %.0f ms)", waited, alone);
    small_job(&s, 60);
    rc = vkr_interpolate(c, &s.args, &s.in, &out);
    tap_check(rc == VKR_OK && small_ok(&s, &out), "timeout: the connection goes on; the late reply is read and ignored (%s: %s)",
              vkr_code_name(rc), vkr_last_error(c));
    vkr_tensor_free(&out);
    rc = vkr_stats(watch, &st);
    tap_check(rc == VKR_OK && st.jobs_cancelled == 1, "timeout: the library cancelled the job on the daemon (cancelled %" PRIu64 ")",
              st.jobs_cancelled);
    big_free(&a);
    free(s.in.data);
    vkr_close(c);
    vkr_close(watch);
    stop(&d, "timeout");
}

static void test_busy(void)
{
    static const char *const extra[] = {"--backend", "cpu", "--workers", "1", "--max-client-jobs", "2", "--max-queued-jobs", "3",
                                        "--max-queue-bytes", "1M", NULL};
    test_daemon_t d;
    vkr_client_t *c1, *c2, *c3, *watch;
    big_job_t a, b;
    small_job_t s1, s2, s3, s4;
    vkr_request_t *ra, *rb, *r1, *r2, *r3;
    vkr_job_options_t inline_opts = {.transport = VKR_TRANSPORT_INLINE};
    vkr_server_stats_t st;
    vkr_tensor_t out, huge;
    int rc;

    start(&d, extra);
    c1 = connect_to(&d);
    c2 = connect_to(&d);
    c3 = connect_to(&d);
    watch = connect_to(&d);
    big_job(&a, 70);
    big_job(&b, 80);
    small_job(&s1, 90);
    small_job(&s2, 91);
    small_job(&s3, 92);
    small_job(&s4, 93);
    vkr_submit_grid_sample(c1, &a.args, &a.x, &a.grid, NULL, &ra);
    vkr_submit_grid_sample(c1, &b.args, &b.x, &b.grid, NULL, &rb);
    vkr_submit_interpolate(c1, &s1.args, &s1.in, NULL, &r1);
    rc = vkr_wait(c1, r1, &out);
    tap_check(rc == VKR_E_BUSY && strstr(vkr_last_error(c1), "--max-client-jobs 2") != NULL,
              "busy: a third job on a connection with --max-client-jobs 2 -> VKR_E_BUSY at once (%s: %s)", vkr_code_name(rc),
              vkr_last_error(c1));
    vkr_submit_interpolate(c2, &s2.args, &s2.in, NULL, &r2);
    vkr_submit_interpolate(c3, &s3.args, &s3.in, NULL, &r3);
    rc = vkr_wait(c3, r3, &out);
    tap_check(rc == VKR_E_BUSY && strstr(vkr_last_error(c3), "--max-queued-jobs 3") != NULL,
              "busy: a fourth job in the daemon with --max-queued-jobs 3 -> VKR_E_BUSY (%s: %s)", vkr_code_name(rc), vkr_last_error(c3));
    /* bytes: the queued jobs hold little (memfd tensors); an inline job of 1.5 MiB is over 1M */
    tensor_init(&huge, 4, (const int64_t[]){1, 3, 256, 512}, 5);
    {
        vkr_interpolate_args_t args = {.mode = VKR_MODE_NEAREST, .n_size = 1, .size = {2}};
        vkr_request_t *rh;

        vkr_submit_interpolate(c3, &args, &huge, &inline_opts, &rh);
        rc = vkr_wait(c3, rh, &out);
    }
    tap_check(rc == VKR_E_TOO_LARGE && strstr(vkr_last_error(c3), "--max-queue-bytes") != NULL,
              "busy: one job bigger than --max-queue-bytes -> VKR_E_TOO_LARGE, not busy (%s: %s)", vkr_code_name(rc), vkr_last_error(c3));
    rc = vkr_wait(c1, ra, &out);
    vkr_tensor_free(&out);
    rc = rc == VKR_OK ? vkr_wait(c1, rb, &out) : rc;
    vkr_tensor_free(&out);
    int rc2 = vkr_wait(c2, r2, &out);
    tap_check(rc == VKR_OK && rc2 == VKR_OK && small_ok(&s2, &out), "busy: the admitted jobs all complete (%s, %s)", vkr_code_name(rc),
              vkr_code_name(rc2));
    vkr_tensor_free(&out);
    rc = vkr_interpolate(c1, &s4.args, &s4.in, &out);
    tap_check(rc == VKR_OK && small_ok(&s4, &out), "busy: once the queue drains the refused connection is served again (%s)", vkr_code_name(rc));
    vkr_tensor_free(&out);
    rc = vkr_stats(watch, &st);
    tap_check(rc == VKR_OK && st.jobs_busy == 2 && st.queued == 0 && st.running == 0,
              "busy: stats count 2 busy refusals and an empty queue (busy %" PRIu64 ", queued %u)", st.jobs_busy, st.queued);
    big_free(&a);
    big_free(&b);
    free(s1.in.data);
    free(s2.in.data);
    free(s3.in.data);
    free(s4.in.data);
    free(huge.data);
    vkr_close(c1);
    vkr_close(c2);
    vkr_close(c3);
    vkr_close(watch);
    stop(&d, "busy");
}

/* Run one op three ways (inline, memfd copies, memfd tensors from vkr_tensor_alloc) and compare. */
typedef int (*run_fn)(vkr_client_t *c, const vkr_tensor_t *t0, const vkr_tensor_t *t1, const vkr_job_options_t *o, vkr_tensor_t *out);

static int run_interp(vkr_client_t *c, const vkr_tensor_t *t0, const vkr_tensor_t *t1, const vkr_job_options_t *o, vkr_tensor_t *out)
{
    vkr_interpolate_args_t args = {.mode = VKR_MODE_BICUBIC, .n_scale = 1, .scale_factor = {1.7}, .align_corners = VKR_OPT_TRUE};
    vkr_request_t *r;
    int rc = vkr_submit_interpolate(c, &args, t0, o, &r);

    (void)t1;
    return rc == VKR_OK ? vkr_wait(c, r, out) : rc;
}

static int run_grid(vkr_client_t *c, const vkr_tensor_t *t0, const vkr_tensor_t *t1, const vkr_job_options_t *o, vkr_tensor_t *out)
{
    vkr_grid_sample_args_t args = {.mode = VKR_GRID_BILINEAR, .padding_mode = VKR_PADDING_BORDER};
    vkr_request_t *r;
    int rc = vkr_submit_grid_sample(c, &args, t0, t1, o, &r);

    return rc == VKR_OK ? vkr_wait(c, r, out) : rc;
}

static int run_affine_grid(vkr_client_t *c, const vkr_tensor_t *t0, const vkr_tensor_t *t1, const vkr_job_options_t *o, vkr_tensor_t *out)
{
    vkr_affine_grid_args_t args = {.n_size = 4, .size = {2, 3, 300, 400}};
    vkr_request_t *r;
    int rc = vkr_submit_affine_grid(c, &args, t1, o, &r);

    (void)t0;
    return rc == VKR_OK ? vkr_wait(c, r, out) : rc;
}

static int run_affine_sample(vkr_client_t *c, const vkr_tensor_t *t0, const vkr_tensor_t *t1, const vkr_job_options_t *o, vkr_tensor_t *out)
{
    vkr_affine_sample_args_t args = {.mode = VKR_GRID_NEAREST, .padding_mode = VKR_PADDING_REFLECTION, .n_size = 2, .size = {250, 270}};
    vkr_request_t *r;
    int rc = vkr_submit_affine_sample(c, &args, t0, t1, o, &r);

    return rc == VKR_OK ? vkr_wait(c, r, out) : rc;
}

static void to_memfd_tensor(const vkr_tensor_t *src, vkr_tensor_t *dst)
{
    if (vkr_tensor_alloc(src->rank, src->shape, dst) != VKR_OK) {
        tap_check(0, "vkr_tensor_alloc");
        exit(tap_done());
    }
    memcpy(dst->data, src->data, elements(src) * sizeof(float));
}

static void test_memfd_identical(void)
{
    static const char *const extra[] = {"--backend", "cpu", NULL};
    static const struct {
        const char *name;
        run_fn run;
        int grid_kind;   /* the second tensor: 0 a grid, 1 theta */
    } ops[] = {{"interpolate", run_interp, 0}, {"grid_sample", run_grid, 0}, {"affine_grid", run_affine_grid, 1},
               {"affine_sample", run_affine_sample, 1}};
    test_daemon_t d;
    vkr_client_t *c;
    vkr_tensor_t x, grid, theta, mx, mgrid, mtheta;
    vkr_job_options_t inline_opts = {.transport = VKR_TRANSPORT_INLINE}, memfd_opts = {.transport = VKR_TRANSPORT_MEMFD};
    vkr_server_stats_t st0, st1;
    const float th[12] = {0.9f, -0.25f, 0.1f, 0.3f, 1.1f, -0.05f, 1.2f, 0.1f, 0.2f, 0.05f, 0.8f, 0.0f};

    start(&d, extra);
    c = connect_to(&d);
    tensor_init(&x, 4, (const int64_t[]){2, 3, 200, 300}, 7);
    tensor_init(&grid, 4, (const int64_t[]){2, 160, 170, 2}, 8);
    tensor_init(&theta, 3, (const int64_t[]){2, 2, 3}, 9);
    memcpy(theta.data, th, sizeof th);
    to_memfd_tensor(&x, &mx);
    to_memfd_tensor(&grid, &mgrid);
    to_memfd_tensor(&theta, &mtheta);
    vkr_stats(c, &st0);
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        const vkr_tensor_t *second = ops[i].grid_kind ? &theta : &grid, *msecond = ops[i].grid_kind ? &mtheta : &mgrid;
        vkr_tensor_t a, b, e;
        int ra = ops[i].run(c, &x, second, &inline_opts, &a);
        int rb = ops[i].run(c, &x, second, &memfd_opts, &b);
        int re = ops[i].run(c, &mx, msecond, NULL, &e);

        tap_check(ra == VKR_OK && rb == VKR_OK && re == VKR_OK && a.storage == NULL && b.storage != NULL && same_tensor(&a, &b) &&
                      same_tensor(&a, &e),
                  "memfd: %s through memfds (copies, then vkr_tensor_alloc tensors; output in a memfd) is byte-identical to inline "
                  "(%s %s %s: %s)",
                  ops[i].name, vkr_code_name(ra), vkr_code_name(rb), vkr_code_name(re), vkr_last_error(c));
        vkr_tensor_free(&a);
        vkr_tensor_free(&b);
        vkr_tensor_free(&e);
    }
    vkr_stats(c, &st1);
    tap_check(st1.memfd_bytes_in > st0.memfd_bytes_in && st1.memfd_bytes_out > st0.memfd_bytes_out,
              "memfd: the daemon counted memfd bytes (in %" PRIu64 ", out %" PRIu64 ")", st1.memfd_bytes_in, st1.memfd_bytes_out);
    free(x.data);
    free(grid.data);
    free(theta.data);
    vkr_tensor_free(&mx);
    vkr_tensor_free(&mgrid);
    vkr_tensor_free(&mtheta);
    vkr_close(c);
    stop(&d, "memfd");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_async VKRESAMPLED\n");
        return 2;
    }
    daemon_bin = argv[1];
    test_pipelining();
    test_poll_loop();
    test_cancel();
    test_timeout();
    test_busy();
    test_memfd_identical();
    return tap_done();
}
