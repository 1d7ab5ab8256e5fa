/* backend_agree: the Vulkan backend against the CPU backend, in-process, on random planned
 * interpolate jobs (nearest, nearest-exact, linear, bilinear, trilinear; sizes 1..40, scales such
 * as 1/3, 0.7, 2.5, 7/3; align_corners unset/False/True; recompute_scale_factor), with
 * VK_LAYER_KHRONOS_validation on.  Nearest must be bit-exact; the linear family within 1e-6
 * relative (bit-exact expected).  Also: a second Vulkan backend with tiny binding and workgroup
 * limits (forces N*C chunking, unaligned chunk offsets and multi-dispatch grids), concurrent
 * jobs from several threads, refusals (bicubic, antialias, plane too large, bad device index),
 * and zero validation messages, counted here (this test provides vkr__log) so that messages
 * during destroy count too.  TAP on stdout (tap.h: the plan comes last).
 * Environment: VKR_TEST_SEED (default 20240611), VKR_TEST_CASES (default 240). */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "log.h"
#include "tap.h"

#define MAX_JOB_BYTES (1ull << 30)
#define MAX_CASE_ELEMENTS 300000u     /* input and output elements per case: keeps lavapipe fast */
#define LINEAR_REL_TOL 1e-6
#define SPLIT_BINDING_BYTES 16384     /* the limited backend's binding limit */
#define SPLIT_GROUP_COUNT 4           /* and its workgroups per dispatch along x and y */
#define N_THREADS 4
#define CASES_PER_THREAD 6

/* ------------------------------------------------------------------ logging (replaces log.c) */
int vkr__log_level = VKR_LOG_INFO;
static atomic_uint logged_validation;

void vkr__log(int level, const char *fmt, ...)
{
    if (level > vkr__log_level)
        return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (strncmp(buf, "vulkan validation:", 18) == 0)
        atomic_fetch_add(&logged_validation, 1u);
    for (char *p = buf; *p; p++)
        if (*p == '\n')
            *p = ' ';
    static const char *const names[] = {"error", "warn", "info", "debug"};
    printf("# %s: %s\n", names[level < 0 ? 0 : level > 3 ? 3 : level], buf);
    fflush(stdout);
}

/* ------------------------------------------------------------------ cases */
static uint64_t rng_state;

static uint64_t rng_next(void)   /* splitmix64 */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int rng_int(int lo, int hi) { return lo + (int)(rng_next() % (uint64_t)(hi - lo + 1)); }

typedef struct {
    vkr_interp_plan_t plan;
    char desc[320];
    float *in, *want;               /* want: the CPU backend's output */
} case_t;

static const char *opt_name(int o) { return o == VKR_OPT_TRUE ? "True" : o == VKR_OPT_FALSE ? "False" : "None"; }

/* A random job, planned; false if the planner refused it (the caller draws again). */
static bool draw_case(case_t *c)
{
    static const int modes[] = {VKR_MODE_NEAREST, VKR_MODE_NEAREST_EXACT, VKR_MODE_LINEAR, VKR_MODE_BILINEAR, VKR_MODE_TRILINEAR};
    static const double scales[] = {1.0 / 3, 0.7, 2.5, 7.0 / 3, 0.5, 2.0, 1.0, 1.1, 0.9, 3.0, 4.1, 1.5, 0.25};
    const int mode = modes[rng_int(0, 4)];
    int rank = mode == VKR_MODE_LINEAR ? 1 : mode == VKR_MODE_BILINEAR ? 2 : mode == VKR_MODE_TRILINEAR ? 3 : rng_int(1, 3);
    bool linear = mode >= VKR_MODE_LINEAR;
    vkr_job_t job;
    memset(&job, 0, sizeof job);
    job.op = VKR_OP_INTERPOLATE;
    job.backend = VKR_BACKEND_AUTO;
    job.n_tensors = 1;
    job.input.dtype = VKR_DTYPE_F32;
    job.input.layout = VKR_LAYOUT_CONTIGUOUS;
    job.input.rank = (uint8_t)(rank + 2);
    job.input.shape[0] = rng_int(1, 3);
    job.input.shape[1] = rng_int(1, rank == 3 ? 2 : 6);
    for (int d = 0; d < rank; d++)
        job.input.shape[2 + d] = rng_int(1, 40);
    vkr_interp_params_t *ip = &job.interp;
    ip->mode = (uint16_t)mode;
    ip->align_corners = linear ? (uint8_t)rng_int(0, 2) : VKR_OPT_UNSET;
    if (rng_int(0, 9) < 6) {
        ip->n_scale = (uint8_t)(rng_int(0, 1) ? rank : 1);
        for (int d = 0; d < ip->n_scale; d++)
            ip->scale_factor[d] = scales[rng_int(0, (int)(sizeof scales / sizeof scales[0]) - 1)];
        ip->recompute_scale_factor = (uint8_t)rng_int(0, 2);
    } else {
        ip->n_size = (uint8_t)(rng_int(0, 1) ? rank : 1);
        for (int d = 0; d < ip->n_size; d++)
            ip->size[d] = rng_int(1, 60);
        ip->recompute_scale_factor = (uint8_t)rng_int(0, 1);
    }
    vkr_error_t err;
    if (vkr_plan_interpolate(&job, MAX_JOB_BYTES, &c->plan, &err) != VKR_OK)
        return false;
    if (c->plan.in_elements > MAX_CASE_ELEMENTS || c->plan.out_elements > MAX_CASE_ELEMENTS)
        return false;

    int n = snprintf(c->desc, sizeof c->desc, "%s N=%" PRId64 " C=%" PRId64 " in=[", vkr_proto_mode_name(mode),
                     c->plan.batch, c->plan.channels);
    for (int d = 0; d < rank; d++)
        n += snprintf(c->desc + n, sizeof c->desc - (size_t)n, "%s%" PRId64, d ? "," : "", c->plan.in_size[d]);
    n += snprintf(c->desc + n, sizeof c->desc - (size_t)n, "] out=[");
    for (int d = 0; d < rank; d++)
        n += snprintf(c->desc + n, sizeof c->desc - (size_t)n, "%s%" PRId64, d ? "," : "", c->plan.out_size[d]);
    n += snprintf(c->desc + n, sizeof c->desc - (size_t)n, "] %s=", ip->n_scale ? "scale" : "size");
    for (int d = 0; d < (ip->n_scale ? ip->n_scale : ip->n_size); d++)
        n += ip->n_scale ? snprintf(c->desc + n, sizeof c->desc - (size_t)n, "%s%.6g", d ? "," : "", ip->scale_factor[d])
                         : snprintf(c->desc + n, sizeof c->desc - (size_t)n, "%s%" PRId64, d ? "," : "", ip->size[d]);
    snprintf(c->desc + n, sizeof c->desc - (size_t)n, " align_corners=%s recompute=%s", opt_name(ip->align_corners),
             opt_name(ip->recompute_scale_factor));
    return true;
}

/* Input data: uniform in [-1, 1) scaled by a random power of ten; every 8th case also carries
 * +-inf, NaN and -0 (PyTorch semantics: inf * 0 = NaN in the lerp). */
static void fill_input(case_t *c, int index)
{
    const float mag = (float)pow(10.0, rng_int(-3, 3));
    for (uint64_t i = 0; i < c->plan.in_elements; i++)
        c->in[i] = mag * (float)((double)(rng_next() >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    if (index % 8 == 7) {
        static const float specials[] = {INFINITY, -INFINITY, NAN, -0.0f};
        for (int k = 0; k < 4; k++)
            c->in[rng_next() % c->plan.in_elements] = specials[k];
    }
}

/* ------------------------------------------------------------------ comparison */
typedef struct {
    bool ok, bit_exact;
    double max_rel;
    char why[400];
} verdict_t;

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static verdict_t compare(const case_t *c, const float *got)
{
    verdict_t v = {.ok = true, .bit_exact = true, .max_rel = 0.0};
    const bool nearest = c->plan.mode == VKR_MODE_NEAREST || c->plan.mode == VKR_MODE_NEAREST_EXACT;
    for (uint64_t i = 0; i < c->plan.out_elements; i++) {
        float a = got[i], b = c->want[i];
        if (bits_of(a) == bits_of(b))
            continue;
        v.bit_exact = false;
        double rel;
        if (isnan(a) && isnan(b))
            rel = 0.0;   /* NaN payloads may differ */
        else if (isnan(a) || isnan(b) || isinf(a) || isinf(b))
            rel = INFINITY;
        else
            rel = fabs((double)a - (double)b) / fmax(fabs((double)a), fabs((double)b));
        if (rel > v.max_rel)
            v.max_rel = rel;
        if (v.ok && (nearest || !(rel <= LINEAR_REL_TOL))) {
            v.ok = false;
            snprintf(v.why, sizeof v.why, "element %" PRIu64 ": vulkan %.9g (0x%08x) cpu %.9g (0x%08x) rel %.3g (%s)", i,
                     (double)a, bits_of(a), (double)b, bits_of(b), rel, nearest ? "nearest must be bit-exact" : "tolerance 1e-6");
        }
    }
    return v;
}

/* ------------------------------------------------------------------ threads */
typedef struct {
    vkr_backend_s *vk;
    case_t *cases;
    int n;
    int failures;
    char why[1024];
} thread_arg_t;

static void *thread_main(void *p)
{
    thread_arg_t *t = p;
    for (int i = 0; i < t->n; i++) {
        case_t *c = &t->cases[i];
        float *got = malloc(c->plan.out_elements * sizeof(float));
        vkr_error_t err = {0};
        int rc = got ? t->vk->interpolate(t->vk, &c->plan, c->in, got, &err) : VKR_E_NOMEM;
        verdict_t v = {.ok = false};
        if (rc == VKR_OK)
            v = compare(c, got);
        if (rc != VKR_OK || !v.ok) {
            if (!t->failures)
                snprintf(t->why, sizeof t->why, "%s: %s", c->desc, rc ? err.message : v.why);
            t->failures++;
        }
        free(got);
    }
    return NULL;
}

/* ------------------------------------------------------------------ main */
static vkr_backend_s *create_vulkan(const char *binding, const char *groups, vkr_error_t *err)
{
    if (binding) {
        setenv("VKR_VULKAN_MAX_BINDING_BYTES", binding, 1);
        setenv("VKR_VULKAN_MAX_GROUP_COUNT", groups, 1);
    }
    vkr_vulkan_options_t opts = {.device_index = -1, .validation = true};
    vkr_backend_s *vk = NULL;
    if (vkr__backend_vulkan_create(&opts, &vk, err) != VKR_OK)
        vk = NULL;
    unsetenv("VKR_VULKAN_MAX_BINDING_BYTES");
    unsetenv("VKR_VULKAN_MAX_GROUP_COUNT");
    return vk;
}

int main(void)
{
    const char *s = getenv("VKR_TEST_SEED");
    rng_state = s ? strtoull(s, NULL, 0) : 20240611u;
    s = getenv("VKR_TEST_CASES");
    int n_cases = s ? atoi(s) : 240;
    if (n_cases < 1)
        n_cases = 1;
    const int n_thread_cases = N_THREADS * CASES_PER_THREAD;
    printf("# seed %" PRIu64 ", %d cases\n", rng_state, n_cases);

    vkr_error_t err = {0};
    vkr_backend_s *cpu = NULL, *vk = NULL, *vk_split = NULL;
    case_t *cases = calloc((size_t)(n_cases + n_thread_cases), sizeof *cases);
    if (!cases || vkr__backend_cpu_create(&cpu, &err) != VKR_OK) {
        printf("Bail out! cpu backend: %s\n", err.message);
        return 1;
    }
    vk = create_vulkan(NULL, NULL, &err);
    if (!vk) {
        printf("Bail out! vulkan backend: %s (%s)\n", err.message, vkr_proto_code_name(err.code));
        return 1;
    }
    printf("# vulkan device: %s\n", vk->device_name);
    char split_binding[32], split_groups[32];
    snprintf(split_binding, sizeof split_binding, "%d", SPLIT_BINDING_BYTES);
    snprintf(split_groups, sizeof split_groups, "%d", SPLIT_GROUP_COUNT);
    vk_split = create_vulkan(split_binding, split_groups, &err);
    if (!vk_split) {
        printf("Bail out! vulkan backend with split limits: %s\n", err.message);
        return 1;
    }

    /* Draw every case and its CPU reference first. */
    for (int i = 0; i < n_cases + n_thread_cases; i++) {
        case_t *c = &cases[i];
        while (!draw_case(c))
            ;
        c->in = malloc(c->plan.in_elements * sizeof(float));
        c->want = malloc(c->plan.out_elements * sizeof(float));
        if (!c->in || !c->want) {
            printf("Bail out! out of memory\n");
            return 1;
        }
        fill_input(c, i);
        if (cpu->interpolate(cpu, &c->plan, c->in, c->want, &err) != VKR_OK) {
            printf("Bail out! cpu backend refused %s: %s\n", c->desc, err.message);
            return 1;
        }
    }

    /* 1. One TAP line per case: the Vulkan backend against the CPU backend. */
    int exact_nearest = 0, n_nearest = 0, exact_linear = 0, n_linear = 0;
    double max_rel = 0.0;
    int split_ok = 0, split_refused = 0, split_bad = 0, split_chunked = 0, split_multi_dispatch = 0;
    char split_why[1024] = "";
    for (int i = 0; i < n_cases; i++) {
        case_t *c = &cases[i];
        const bool nearest = c->plan.mode == VKR_MODE_NEAREST || c->plan.mode == VKR_MODE_NEAREST_EXACT;
        float *got = malloc(c->plan.out_elements * sizeof(float));
        if (!got) {
            printf("Bail out! out of memory\n");
            return 1;
        }
        int rc = vk->interpolate(vk, &c->plan, c->in, got, &err);
        if (rc != VKR_OK) {
            tap_check(false, "%s: vulkan failed: %s %s", c->desc, vkr_proto_code_name(rc), err.message);
        } else {
            verdict_t v = compare(c, got);
            if (nearest) {
                n_nearest++;
                exact_nearest += v.bit_exact;
            } else {
                n_linear++;
                exact_linear += v.bit_exact;
            }
            max_rel = v.max_rel > max_rel ? v.max_rel : max_rel;
            if (v.ok)
                tap_check(true, "%s (%s)", c->desc, v.bit_exact ? "bit-exact" : "within 1e-6");
            else
                tap_check(false, "%s: %s", c->desc, v.why);
        }
        /* The same case on the limited backend: it must agree, or refuse a plane too big for
         * its bindings with VKR_E_TOO_LARGE. */
        uint64_t in_plane = c->plan.in_elements / (uint64_t)(c->plan.batch * c->plan.channels);
        uint64_t out_plane = c->plan.out_elements / (uint64_t)(c->plan.batch * c->plan.channels);
        uint64_t plane_bytes = 4 * (in_plane > out_plane ? in_plane : out_plane);
        memset(got, 0, c->plan.out_elements * sizeof(float));
        rc = vk_split->interpolate(vk_split, &c->plan, c->in, got, &err);
        if (rc == VKR_OK) {
            verdict_t v = compare(c, got);
            split_ok += v.ok;
            /* Estimate (alignment <= 16) of what the limited backend had to do. */
            uint64_t per_chunk = (SPLIT_BINDING_BYTES - 12) / plane_bytes;
            split_chunked += (uint64_t)(c->plan.batch * c->plan.channels) > per_chunk;
            split_multi_dispatch += c->plan.out_elements > 64u * SPLIT_GROUP_COUNT * SPLIT_GROUP_COUNT;
            if (!v.ok && !split_bad++)
                snprintf(split_why, sizeof split_why, "%s: %s", c->desc, v.why);
        } else if (rc == VKR_E_TOO_LARGE && plane_bytes > SPLIT_BINDING_BYTES / 2) {
            split_refused++;
        } else if (!split_bad++) {
            snprintf(split_why, sizeof split_why, "%s: %s %s", c->desc, vkr_proto_code_name(rc), err.message);
        }
        free(got);
    }
    printf("# nearest: %d/%d cases bit-exact; linear family: %d/%d cases bit-exact; max relative error %.3g\n", exact_nearest,
           n_nearest, exact_linear, n_linear, max_rel);
    printf("# limited backend: about %d cases ran in several chunks, %d needed several dispatches\n", split_chunked,
           split_multi_dispatch);
    tap_check(split_bad == 0 && split_ok > n_cases / 4,
        "limited backend (bindings <= %d bytes, <= %d workgroups per axis): %d agree, %d refused as too large, %d wrong%s%s",
        SPLIT_BINDING_BYTES, SPLIT_GROUP_COUNT, split_ok, split_refused, split_bad, split_bad ? ": " : "", split_why);

    /* 2. Concurrent jobs on one backend. */
    thread_arg_t targs[N_THREADS];
    pthread_t th[N_THREADS];
    int started = 0;
    for (int t = 0; t < N_THREADS; t++) {
        targs[t] = (thread_arg_t){.vk = vk, .cases = &cases[n_cases + t * CASES_PER_THREAD], .n = CASES_PER_THREAD};
        if (pthread_create(&th[t], NULL, thread_main, &targs[t]) == 0)
            started++;
        else
            break;
    }
    int thread_failures = 0;
    const char *thread_why = "";
    for (int t = 0; t < started; t++) {
        pthread_join(th[t], NULL);
        if (targs[t].failures && !thread_failures)
            thread_why = targs[t].why;
        thread_failures += targs[t].failures;
    }
    tap_check(started == N_THREADS && thread_failures == 0, "%d threads x %d concurrent jobs agree with cpu (%d failures%s%s)", started,
        CASES_PER_THREAD, thread_failures, thread_failures ? ": " : "", thread_why);

    /* 3. Refusals and edge cases. */
    {
        vkr_interp_plan_t p = cases[0].plan;
        p.mode = VKR_MODE_BICUBIC;
        float dummy[1];
        int rc = vk->interpolate(vk, &p, cases[0].in, dummy, &err);
        tap_check(rc == VKR_E_UNSUPPORTED, "bicubic plan -> VKR_E_UNSUPPORTED (got %s: %s)", vkr_proto_code_name(rc), rc ? err.message : "");
    }
    {
        vkr_interp_plan_t p = {.mode = VKR_MODE_BILINEAR, .spatial_rank = 2, .batch = 1, .channels = 1, .antialias = true,
                               .in_size = {4, 4}, .out_size = {2, 2}, .in_elements = 16, .out_elements = 4};
        float in[16] = {0}, out[4];
        int rc = vk->interpolate(vk, &p, in, out, &err);
        tap_check(rc == VKR_E_UNSUPPORTED, "bilinear antialias plan -> VKR_E_UNSUPPORTED (got %s: %s)", vkr_proto_code_name(rc),
                  rc ? err.message : "");
    }
    {
        vkr_interp_plan_t p = {.mode = VKR_MODE_BILINEAR, .spatial_rank = 2, .batch = 1, .channels = 1,
                               .in_size = {100, 100}, .out_size = {100, 100}, .in_elements = 10000, .out_elements = 10000};
        float dummy[1];
        int rc = vk_split->interpolate(vk_split, &p, dummy, dummy, &err);
        tap_check(rc == VKR_E_TOO_LARGE, "100x100 plane on %d-byte bindings -> VKR_E_TOO_LARGE (got %s: %s)", SPLIT_BINDING_BYTES,
            vkr_proto_code_name(rc), rc ? err.message : "");
    }
    {
        vkr_interp_plan_t p = {.mode = VKR_MODE_NEAREST, .spatial_rank = 1, .batch = 0, .channels = 3,
                               .in_size = {5}, .out_size = {7}, .has_scale = {false}, .in_elements = 0, .out_elements = 0};
        int rc = vk->interpolate(vk, &p, NULL, NULL, &err);
        tap_check(rc == VKR_OK, "N=0 job -> VKR_OK without work (got %s)", vkr_proto_code_name(rc));
    }
    {
        vkr_vulkan_options_t opts = {.device_index = 99, .validation = false};
        vkr_backend_s *bad = NULL;
        int rc = vkr__backend_vulkan_create(&opts, &bad, &err);
        tap_check(rc == VKR_E_BACKEND_UNAVAILABLE && !bad, "--device 99 -> VKR_E_BACKEND_UNAVAILABLE (got %s: %s)", vkr_proto_code_name(rc),
            rc ? err.message : "");
        if (rc == VKR_OK)
            bad->destroy(bad);
    }

    /* 4. Validation: the backends' counters, then every message logged, destroy included. */
    unsigned counted = vk->validation_messages(vk) + vk_split->validation_messages(vk_split);
    tap_check(counted == 0, "validation_messages() == 0 (got %u)", counted);
    vk_split->destroy(vk_split);
    vk->destroy(vk);
    cpu->destroy(cpu);
    unsigned logged = atomic_load(&logged_validation);
    tap_check(logged == 0, "no validation message logged through destroy (got %u)", logged);

    for (int i = 0; i < n_cases + n_thread_cases; i++) {
        free(cases[i].in);
        free(cases[i].want);
    }
    free(cases);
    return tap_done();
}
