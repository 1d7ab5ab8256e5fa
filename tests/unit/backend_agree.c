/* backend_agree: the Vulkan backend against the CPU backend, in-process, on random planned
 * interpolate jobs of every mode (nearest, nearest-exact, linear, bilinear, trilinear, bicubic,
 * area, and bilinear / bicubic with antialias=True; sizes 1..40, scales such as 1/4, 1/3, 0.7,
 * 2.5, 7/3; align_corners unset/False/True; recompute_scale_factor; area with overlapping
 * windows and all-ones outputs; bicubic on 1..4-pixel inputs, its taps beyond both borders),
 * with VK_LAYER_KHRONOS_validation on.  Nearest must be bit-exact, the others within the
 * contract's tolerance (bit-exact expected).  Also: a second Vulkan backend with tiny binding and
 * workgroup limits and a short loop budget, on which every family must run in several chunks,
 * planes split along their outermost axis (tables too), area's mean over several bindings,
 * multi-dispatch grids and area / antialias sums in several steps (the backend's debug line per
 * job says what it did); fixed split cases that must not be refused; on the real limits, sums
 * longer than llvmpipe's 65535 loop iterations per invocation;
 * concurrent jobs from several threads; refusals (a row too large for the limited bindings, a
 * 3-D bicubic plan, bad device index); and zero validation messages, counted here (this test
 * provides vkr__log) so that messages during destroy count too.  TAP on stdout (tap.h: the plan
 * comes last).
 * Environment: VKR_TEST_SEED (default 20240611), VKR_TEST_CASES (default 400). */
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
#define SPLIT_BINDING_BYTES 16384     /* the limited backend's binding limit */
#define SPLIT_GROUP_COUNT 4           /* and its workgroups per dispatch along x and y */
#define SPLIT_LOOP_ITERATIONS 40      /* and the terms of an area / antialias sum per dispatch */
#define N_THREADS 4
#define CASES_PER_THREAD 6

/* ------------------------------------------------------------------ families */
enum { FAM_NEAREST, FAM_LINEAR, FAM_CUBIC, FAM_AREA, FAM_AA, FAM_COUNT };
static const char *const fam_names[FAM_COUNT] = {"nearest", "linear family", "bicubic", "area", "antialias"};
/* Relative tolerance per family (the contract; bit-exact expected on lavapipe). */
static const double fam_tol[FAM_COUNT] = {0.0, 1e-6, 1e-5, 1e-6, 1e-5};

static int family_of(const vkr_interp_plan_t *p)
{
    if (p->antialias)
        return FAM_AA;
    switch (p->mode) {
    case VKR_MODE_NEAREST:
    case VKR_MODE_NEAREST_EXACT: return FAM_NEAREST;
    case VKR_MODE_BICUBIC: return FAM_CUBIC;
    case VKR_MODE_AREA: return FAM_AREA;
    default: return FAM_LINEAR;
    }
}

/* ------------------------------------------------------------------ logging (replaces log.c) */
int vkr__log_level = VKR_LOG_DEBUG;
static atomic_uint logged_validation;

/* What the backend's debug line said about the last job run on this thread. */
typedef struct {
    bool seen;
    int passes, split;
    unsigned long long steps, chunks, submits, dispatches;
} job_stats_t;
static _Thread_local job_stats_t last_job;

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
    if (level == VKR_LOG_DEBUG) {
        const char *s = strstr(buf, " job: passes ");
        job_stats_t st = {.seen = true};
        if (strncmp(buf, "vulkan: ", 8) == 0 && s &&
            sscanf(s, " job: passes %d, splitting planes %d, steps %llu, chunks %llu, submits %llu, dispatches %llu",
                   &st.passes, &st.split, &st.steps, &st.chunks, &st.submits, &st.dispatches) == 6)
            last_job = st;
        return;   /* one per job: not printed */
    }
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
    char desc[360];
    float *in, *want;               /* want: the CPU backend's output */
} case_t;

static const char *opt_name(int o) { return o == VKR_OPT_TRUE ? "True" : o == VKR_OPT_FALSE ? "False" : "None"; }

/* Plan a job (false if the planner refuses it or it is over max_elements) and describe it. */
static bool plan_case(case_t *c, const vkr_job_t *job, uint64_t max_elements)
{
    vkr_error_t err;
    if (vkr_plan_interpolate(job, MAX_JOB_BYTES, &c->plan, &err) != VKR_OK)
        return false;
    if (c->plan.in_elements > max_elements || c->plan.out_elements > max_elements)
        return false;
    const vkr_interp_params_t *ip = &job->interp;
    const int rank = c->plan.spatial_rank;
    int n = snprintf(c->desc, sizeof c->desc, "%s%s N=%" PRId64 " C=%" PRId64 " in=[", vkr_proto_mode_name(ip->mode),
                     ip->antialias ? " antialias" : "", c->plan.batch, c->plan.channels);
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

static void job_init(vkr_job_t *job, int mode, int rank)
{
    memset(job, 0, sizeof *job);
    job->op = VKR_OP_INTERPOLATE;
    job->backend = VKR_BACKEND_AUTO;
    job->n_tensors = 1;
    job->input.dtype = VKR_DTYPE_F32;
    job->input.layout = VKR_LAYOUT_CONTIGUOUS;
    job->input.rank = (uint8_t)(rank + 2);
    job->interp.mode = (uint16_t)mode;
}

/* A random job, planned; false if the planner refused it (the caller draws again). */
static bool draw_case(case_t *c)
{
    static const int modes[] = {VKR_MODE_NEAREST, VKR_MODE_NEAREST_EXACT, VKR_MODE_LINEAR, VKR_MODE_BILINEAR,
                                VKR_MODE_TRILINEAR, VKR_MODE_BICUBIC, VKR_MODE_AREA, VKR_MODE_BILINEAR, VKR_MODE_BICUBIC};
    static const double scales[] = {1.0 / 3, 0.7, 2.5, 7.0 / 3, 0.5, 2.0, 1.0, 1.1, 0.9, 3.0, 4.1, 1.5, 0.25, 1.05, 0.37};
    const int pick = rng_int(0, (int)(sizeof modes / sizeof modes[0]) - 1);
    const int mode = modes[pick];
    const bool antialias = pick >= 7;   /* the last two: bilinear / bicubic with antialias=True */
    int rank = mode == VKR_MODE_LINEAR ? 1 : mode == VKR_MODE_BILINEAR || mode == VKR_MODE_BICUBIC ? 2
             : mode == VKR_MODE_TRILINEAR ? 3 : rng_int(1, 3);
    bool interpolating = mode != VKR_MODE_NEAREST && mode != VKR_MODE_NEAREST_EXACT && mode != VKR_MODE_AREA;
    vkr_job_t job;
    job_init(&job, mode, rank);
    job.input.shape[0] = rng_int(1, 3);
    job.input.shape[1] = rng_int(1, rank == 3 ? 2 : 6);
    const bool tiny = mode == VKR_MODE_BICUBIC && rng_int(0, 9) < 3;   /* taps beyond both borders */
    for (int d = 0; d < rank; d++)
        job.input.shape[2 + d] = tiny ? rng_int(1, 4) : rng_int(1, 40);
    vkr_interp_params_t *ip = &job.interp;
    ip->antialias = antialias;
    ip->align_corners = interpolating ? (uint8_t)rng_int(0, 2) : VKR_OPT_UNSET;
    if (mode == VKR_MODE_AREA && rng_int(0, 9) < 2) {   /* all-ones output: torch's mean() */
        ip->n_size = 1;
        ip->size[0] = 1;
    } else if (rng_int(0, 9) < 6) {
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
    return plan_case(c, &job, MAX_CASE_ELEMENTS);
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

/* Allocate, fill and compute the CPU reference of a planned case; false (Bail out printed) on failure. */
static bool case_ready(case_t *c, int index, vkr_backend_s *cpu)
{
    vkr_error_t err;
    c->in = malloc((c->plan.in_elements ? c->plan.in_elements : 1) * sizeof(float));
    c->want = malloc((c->plan.out_elements ? c->plan.out_elements : 1) * sizeof(float));
    if (!c->in || !c->want) {
        printf("Bail out! out of memory\n");
        return false;
    }
    fill_input(c, index);
    if (cpu->interpolate(cpu, &c->plan, c->in, c->want, &err) != VKR_OK) {
        printf("Bail out! cpu backend refused %s: %s\n", c->desc, err.message);
        return false;
    }
    return true;
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

/* Element-wise: NaN matches NaN, infinities must be equal, else |a - b| / max(|a|, |b|) within
 * the family's tolerance. */
static verdict_t compare(const case_t *c, const float *got)
{
    verdict_t v = {.ok = true, .bit_exact = true, .max_rel = 0.0};
    const int fam = family_of(&c->plan);
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
        if (v.ok && !(rel <= fam_tol[fam])) {
            v.ok = false;
            snprintf(v.why, sizeof v.why, "element %" PRIu64 ": vulkan %.9g (0x%08x) cpu %.9g (0x%08x) rel %.3g (%s tolerance %g)", i,
                     (double)a, bits_of(a), (double)b, bits_of(b), rel, fam_names[fam], fam_tol[fam]);
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
        float *got = malloc((c->plan.out_elements ? c->plan.out_elements : 1) * sizeof(float));
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

/* ------------------------------------------------------------------ the limited backend */
typedef struct {
    int ran, agreed, refused, split, chunked, multi_dispatch, two_pass, stepped;
} split_stats_t;

/* Run c on the limited backend: must agree, or (if allow_refusal) be refused with
 * VKR_E_TOO_LARGE.  Fills *st; returns false with *why filled when wrong. */
static bool run_limited(vkr_backend_s *vk, const case_t *c, bool allow_refusal, split_stats_t *st, char *why, size_t why_len)
{
    float *got = malloc((c->plan.out_elements ? c->plan.out_elements : 1) * sizeof(float));
    if (!got) {
        snprintf(why, why_len, "%s: out of memory", c->desc);
        return false;
    }
    memset(got, 0, (c->plan.out_elements ? c->plan.out_elements : 1) * sizeof(float));
    vkr_error_t err = {0};
    last_job = (job_stats_t){0};
    int rc = vk->interpolate(vk, &c->plan, c->in, got, &err);
    bool ok = true;
    st->ran++;
    if (rc == VKR_OK) {
        verdict_t v = compare(c, got);
        if (v.ok) {
            st->agreed++;
            if (last_job.seen) {
                st->split += last_job.split > 0;
                st->chunked += last_job.chunks > (unsigned long long)last_job.passes;
                st->multi_dispatch += last_job.dispatches > last_job.chunks;
                st->two_pass += last_job.passes == 2;
                st->stepped += last_job.steps > (unsigned long long)last_job.passes;
            }
        } else {
            ok = false;
            snprintf(why, why_len, "%s: %s", c->desc, v.why);
        }
    } else if (rc == VKR_E_TOO_LARGE && allow_refusal) {
        st->refused++;
    } else {
        ok = false;
        snprintf(why, why_len, "%s: %s %s", c->desc, vkr_proto_code_name(rc), err.message);
    }
    free(got);
    return ok;
}

/* Fixed jobs the limited backend must run (not refuse), each forcing a split path. */
typedef struct {
    int mode, rank;
    bool antialias;
    int align_corners;
    int64_t n, c, in[3], out[3];
    const char *what;
} fixed_t;

static const fixed_t fixed_cases[] = {
    {VKR_MODE_BILINEAR, 2, false, VKR_OPT_FALSE, 1, 1, {100, 100}, {105, 105}, "plane split along H"},
    {VKR_MODE_NEAREST, 2, false, VKR_OPT_UNSET, 1, 2, {90, 97}, {181, 60}, "nearest plane split along H"},
    {VKR_MODE_NEAREST_EXACT, 3, false, VKR_OPT_UNSET, 1, 1, {20, 30, 30}, {31, 45, 44}, "3-D plane split along D"},
    {VKR_MODE_TRILINEAR, 3, false, VKR_OPT_TRUE, 1, 1, {20, 30, 30}, {27, 41, 35}, "trilinear split along D"},
    {VKR_MODE_LINEAR, 1, false, VKR_OPT_FALSE, 2, 1, {20000}, {30001}, "1-D split along W, table split too"},
    {VKR_MODE_NEAREST, 1, false, VKR_OPT_UNSET, 1, 1, {7000}, {20000}, "1-D nearest split along W"},
    {VKR_MODE_BICUBIC, 2, false, VKR_OPT_FALSE, 1, 1, {90, 90}, {100, 100}, "bicubic split along H"},
    {VKR_MODE_BICUBIC, 2, false, VKR_OPT_TRUE, 2, 1, {70, 3}, {5000, 2}, "bicubic, H table split"},
    {VKR_MODE_AREA, 2, false, VKR_OPT_UNSET, 1, 1, {100, 110}, {33, 47}, "area overlapping windows, split along H"},
    {VKR_MODE_AREA, 3, false, VKR_OPT_UNSET, 1, 1, {20, 30, 30}, {7, 9, 11}, "3-D area split along D"},
    {VKR_MODE_AREA, 1, false, VKR_OPT_UNSET, 1, 2, {20000}, {7001}, "1-D area split along W"},
    {VKR_MODE_AREA, 2, false, VKR_OPT_UNSET, 1, 2, {100, 110}, {1, 1}, "area mean over 3 bindings"},
    {VKR_MODE_AREA, 1, false, VKR_OPT_UNSET, 2, 1, {5000}, {1}, "area mean over 2 bindings"},
    {VKR_MODE_BILINEAR, 2, true, VKR_OPT_FALSE, 1, 1, {100, 100}, {50, 50}, "antialias down, both passes split"},
    {VKR_MODE_BICUBIC, 2, true, VKR_OPT_FALSE, 1, 1, {100, 100}, {160, 37}, "bicubic antialias up and down, split"},
    {VKR_MODE_BICUBIC, 2, true, VKR_OPT_TRUE, 1, 1, {1000, 10}, {50, 10}, "antialias with wide filters, split"},
    {VKR_MODE_BILINEAR, 2, true, VKR_OPT_FALSE, 1, 2, {3000, 1}, {2, 1}, "antialias filters of 3000 taps, in steps"},
    {VKR_MODE_AREA, 1, false, VKR_OPT_UNSET, 1, 1, {4200}, {3}, "area windows of 1400, split and in steps"},
    {VKR_MODE_AREA, 2, false, VKR_OPT_UNSET, 2, 1, {90, 60}, {3, 2}, "area windows of 30x30, split and in steps"},
};

/* Jobs on the real limits whose sums are longer than llvmpipe's 65535 loop iterations per shader
 * invocation (area windows and antialias filters run in steps), and area means on both sides of
 * the longest cascade sum the backend runs in one invocation there. */
static const fixed_t long_cases[] = {
    {VKR_MODE_AREA, 1, false, VKR_OPT_UNSET, 1, 2, {140000}, {2}, "area windows of 70000"},
    {VKR_MODE_BILINEAR, 2, true, VKR_OPT_FALSE, 1, 1, {70000, 1}, {1, 1}, "antialias filter of 70000 taps"},
    {VKR_MODE_BICUBIC, 2, true, VKR_OPT_TRUE, 1, 1, {2, 140000}, {2, 2}, "bicubic antialias filters of 70000 taps"},
    {VKR_MODE_AREA, 2, false, VKR_OPT_UNSET, 1, 2, {1000, 1000}, {1, 1}, "area mean of 10^6"},
    {VKR_MODE_AREA, 2, false, VKR_OPT_UNSET, 1, 1, {2000, 1000}, {1, 1}, "area mean of 2*10^6"},
};

static bool fixed_case(case_t *c, const fixed_t *f)
{
    vkr_job_t job;
    job_init(&job, f->mode, f->rank);
    job.input.shape[0] = f->n;
    job.input.shape[1] = f->c;
    job.interp.antialias = f->antialias;
    job.interp.align_corners = (uint8_t)f->align_corners;
    job.interp.n_size = (uint8_t)f->rank;
    for (int d = 0; d < f->rank; d++) {
        job.input.shape[2 + d] = f->in[d];
        job.interp.size[d] = f->out[d];
    }
    if (!plan_case(c, &job, 1u << 22))
        return false;
    snprintf(c->desc + strlen(c->desc), sizeof c->desc - strlen(c->desc), " (%s)", f->what);
    return true;
}

/* ------------------------------------------------------------------ main */
static vkr_backend_s *create_vulkan(const char *binding, const char *groups, const char *loops, vkr_error_t *err)
{
    if (binding) {
        setenv("VKR_VULKAN_MAX_BINDING_BYTES", binding, 1);
        setenv("VKR_VULKAN_MAX_GROUP_COUNT", groups, 1);
        setenv("VKR_VULKAN_MAX_LOOP_ITERATIONS", loops, 1);
    }
    vkr_vulkan_options_t opts = {.device_index = -1, .validation = true};
    vkr_backend_s *vk = NULL;
    if (vkr__backend_vulkan_create(&opts, &vk, err) != VKR_OK)
        vk = NULL;
    unsetenv("VKR_VULKAN_MAX_BINDING_BYTES");
    unsetenv("VKR_VULKAN_MAX_GROUP_COUNT");
    unsetenv("VKR_VULKAN_MAX_LOOP_ITERATIONS");
    return vk;
}

int main(void)
{
    const char *s = getenv("VKR_TEST_SEED");
    rng_state = s ? strtoull(s, NULL, 0) : 20240611u;
    s = getenv("VKR_TEST_CASES");
    int n_cases = s ? atoi(s) : 400;
    if (n_cases < 1)
        n_cases = 1;
    const int n_thread_cases = N_THREADS * CASES_PER_THREAD;
    const int n_fixed = (int)(sizeof fixed_cases / sizeof fixed_cases[0]);
    const int n_long = (int)(sizeof long_cases / sizeof long_cases[0]);
    printf("# seed %" PRIu64 ", %d cases\n", rng_state, n_cases);

    vkr_error_t err = {0};
    vkr_backend_s *cpu = NULL, *vk = NULL, *vk_split = NULL;
    case_t *cases = calloc((size_t)(n_cases + n_thread_cases + n_fixed + n_long), sizeof *cases);
    if (!cases || vkr__backend_cpu_create(&cpu, &err) != VKR_OK) {
        printf("Bail out! cpu backend: %s\n", err.message);
        return 1;
    }
    vk = create_vulkan(NULL, NULL, NULL, &err);
    if (!vk) {
        printf("Bail out! vulkan backend: %s (%s)\n", err.message, vkr_proto_code_name(err.code));
        return 1;
    }
    printf("# vulkan device: %s\n", vk->device_name);
    char split_binding[32], split_groups[32], split_loops[32];
    snprintf(split_binding, sizeof split_binding, "%d", SPLIT_BINDING_BYTES);
    snprintf(split_groups, sizeof split_groups, "%d", SPLIT_GROUP_COUNT);
    snprintf(split_loops, sizeof split_loops, "%d", SPLIT_LOOP_ITERATIONS);
    vk_split = create_vulkan(split_binding, split_groups, split_loops, &err);
    if (!vk_split) {
        printf("Bail out! vulkan backend with split limits: %s\n", err.message);
        return 1;
    }

    /* Draw every case and its CPU reference first. */
    case_t *fixed = &cases[n_cases + n_thread_cases], *longs = fixed + n_fixed;
    for (int i = 0; i < n_cases + n_thread_cases + n_fixed + n_long; i++) {
        case_t *c = &cases[i];
        const int k = i - n_cases - n_thread_cases;
        const fixed_t *f = k < 0 ? NULL : k < n_fixed ? &fixed_cases[k] : &long_cases[k - n_fixed];
        if (!f) {
            while (!draw_case(c))
                ;
        } else if (!fixed_case(c, f)) {
            printf("Bail out! fixed case %d (%s) was refused by the planner\n", k, f->what);
            return 1;
        }
        if (!case_ready(c, i, cpu))
            return 1;
    }

    /* 1. One TAP line per case: the Vulkan backend against the CPU backend; and the same case
     * on the limited backend, which must agree or refuse with VKR_E_TOO_LARGE. */
    int n_fam[FAM_COUNT] = {0}, exact_fam[FAM_COUNT] = {0};
    double max_rel[FAM_COUNT] = {0};
    split_stats_t split[FAM_COUNT];
    memset(split, 0, sizeof split);
    int split_bad = 0;
    char split_why[1024] = "";
    for (int i = 0; i < n_cases; i++) {
        case_t *c = &cases[i];
        const int fam = family_of(&c->plan);
        float *got = malloc((c->plan.out_elements ? c->plan.out_elements : 1) * sizeof(float));
        if (!got) {
            printf("Bail out! out of memory\n");
            return 1;
        }
        int rc = vk->interpolate(vk, &c->plan, c->in, got, &err);
        if (rc != VKR_OK) {
            tap_check(false, "%s: vulkan failed: %s %s", c->desc, vkr_proto_code_name(rc), err.message);
        } else {
            verdict_t v = compare(c, got);
            n_fam[fam]++;
            exact_fam[fam] += v.bit_exact;
            max_rel[fam] = v.max_rel > max_rel[fam] ? v.max_rel : max_rel[fam];
            if (v.ok)
                tap_check(true, "%s (%s)", c->desc, v.bit_exact ? "bit-exact" : "within tolerance");
            else
                tap_check(false, "%s: %s", c->desc, v.why);
        }
        free(got);
        char why[1024];
        if (!run_limited(vk_split, c, true, &split[fam], why, sizeof why) && !split_bad++)
            snprintf(split_why, sizeof split_why, "%s", why);
    }
    for (int f = 0; f < FAM_COUNT; f++)
        printf("# %-13s: %3d/%3d cases bit-exact, max relative error %.3g\n", fam_names[f], exact_fam[f], n_fam[f], max_rel[f]);
    tap_check(split_bad == 0, "limited backend (bindings <= %d bytes, <= %d workgroups per axis, <= %d loop iterations): every "
              "random case agrees or is refused as too large (%d wrong%s%s)", SPLIT_BINDING_BYTES, SPLIT_GROUP_COUNT,
              SPLIT_LOOP_ITERATIONS, split_bad, split_bad ? ": " : "", split_why);
    for (int f = 0; f < FAM_COUNT; f++) {
        const split_stats_t *t = &split[f];
        /* (splitting planes and steps are certain in the fixed cases below, not in random draws) */
        tap_check(t->ran > 0 && t->agreed >= 2 * t->ran / 3 && t->chunked > 0 && t->multi_dispatch > 0 &&
                      (f != FAM_AA || t->two_pass > 0),
                  "limited backend, %s: %d cases, %d agree (%d in several chunks, %d splitting planes, %d with several "
                  "dispatches per chunk, %d summing in steps), %d refused as too large", fam_names[f], t->ran, t->agreed,
                  t->chunked, t->split, t->multi_dispatch, t->stepped, t->refused);
    }
    /* Fixed split cases: never refused. */
    for (int i = 0; i < n_fixed; i++) {
        split_stats_t st = {0};
        char why[1024] = "";
        bool ok = run_limited(vk_split, &fixed[i], false, &st, why, sizeof why);
        tap_check(ok && st.split == 1, "limited backend: %s: %s (%llu chunks, %llu steps, %llu dispatches)", fixed[i].desc,
                  !ok ? why : st.split ? "agrees" : "agrees but did not split a plane", last_job.chunks, last_job.steps,
                  last_job.dispatches);
    }

    /* Long sums on the real limits: never wrong; on llvmpipe, only the 2*10^6 mean is refused
     * (its cascade sum cannot be split across dispatches). */
    const bool llvmpipe = strncmp(vk->device_name, "llvmpipe", 8) == 0;
    for (int i = 0; i < n_long; i++) {
        split_stats_t st = {0};
        char why[1024] = "";
        const bool refusable = llvmpipe && longs[i].plan.in_elements / (uint64_t)(longs[i].plan.batch * longs[i].plan.channels) >= 2000000;
        bool ok = run_limited(vk, &longs[i], refusable, &st, why, sizeof why);
        tap_check(ok && st.refused == refusable, "%s: %s (%llu steps, %llu dispatches)", longs[i].desc,
                  !ok ? why : st.refused ? "refused as too large (llvmpipe)" : refusable ? "agrees, not refused" : "agrees",
                  last_job.steps, last_job.dispatches);
    }

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
        vkr_interp_plan_t p = {.mode = VKR_MODE_BICUBIC, .spatial_rank = 3, .batch = 1, .channels = 1,
                               .in_size = {2, 2, 2}, .out_size = {3, 3, 3}, .in_elements = 8, .out_elements = 27};
        float in[8] = {0}, out[27];
        int rc = vk->interpolate(vk, &p, in, out, &err);
        tap_check(rc == VKR_E_UNSUPPORTED, "3-D bicubic plan -> VKR_E_UNSUPPORTED (got %s: %s)", vkr_proto_code_name(rc),
                  rc ? err.message : "");
    }
    {
        vkr_interp_plan_t p = {.mode = VKR_MODE_TRILINEAR, .spatial_rank = 3, .batch = 1, .channels = 1, .antialias = true,
                               .in_size = {2, 2, 2}, .out_size = {1, 1, 1}, .in_elements = 8, .out_elements = 1};
        float in[8] = {0}, out[1];
        int rc = vk->interpolate(vk, &p, in, out, &err);
        tap_check(rc == VKR_E_UNSUPPORTED, "trilinear antialias plan -> VKR_E_UNSUPPORTED (got %s: %s)", vkr_proto_code_name(rc),
                  rc ? err.message : "");
    }
    {
        /* One output row of 5000 floats is over a 16 KiB binding: nothing left to split. */
        vkr_interp_plan_t p = {.mode = VKR_MODE_BILINEAR, .spatial_rank = 2, .batch = 1, .channels = 1,
                               .in_size = {2, 5000}, .out_size = {2, 5000}, .in_elements = 10000, .out_elements = 10000};
        float dummy[1];
        int rc = vk_split->interpolate(vk_split, &p, dummy, dummy, &err);
        tap_check(rc == VKR_E_TOO_LARGE, "rows of 5000 on %d-byte bindings -> VKR_E_TOO_LARGE (got %s: %s)", SPLIT_BINDING_BYTES,
            vkr_proto_code_name(rc), rc ? err.message : "");
    }
    {
        vkr_interp_plan_t p = {.mode = VKR_MODE_AREA, .spatial_rank = 2, .batch = 1, .channels = 1,
                               .in_size = {100, 130}, .out_size = {1, 1}, .in_elements = 13000, .out_elements = 1};
        float dummy[1];
        int rc = vk_split->interpolate(vk_split, &p, dummy, dummy, &err);
        tap_check(rc == VKR_E_TOO_LARGE, "area mean of 13000 elements on 3 bindings of %d bytes -> VKR_E_TOO_LARGE (got %s: %s)",
                  SPLIT_BINDING_BYTES, vkr_proto_code_name(rc), rc ? err.message : "");
    }
    {
        vkr_interp_plan_t p = {.mode = VKR_MODE_NEAREST, .spatial_rank = 1, .batch = 0, .channels = 3,
                               .in_size = {5}, .out_size = {7}, .has_scale = {false}, .in_elements = 0, .out_elements = 0};
        int rc = vk->interpolate(vk, &p, NULL, NULL, &err);
        tap_check(rc == VKR_OK, "N=0 job -> VKR_OK without work (got %s)", vkr_proto_code_name(rc));
    }
    {
        vkr_interp_plan_t p = {.mode = VKR_MODE_AREA, .spatial_rank = 2, .batch = 1, .channels = 2,
                               .in_size = {5, 6}, .out_size = {0, 3}, .in_elements = 60, .out_elements = 0};
        float in[60] = {0};
        int rc = vk->interpolate(vk, &p, in, NULL, &err);
        tap_check(rc == VKR_OK, "area with an empty output -> VKR_OK without work (got %s)", vkr_proto_code_name(rc));
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

    for (int i = 0; i < n_cases + n_thread_cases + n_fixed + n_long; i++) {
        free(cases[i].in);
        free(cases[i].want);
    }
    free(cases);
    return tap_done();
}
