/* backend_agree: the Vulkan backend against the CPU backend, in-process, on random planned
 * interpolate jobs of every mode (nearest, nearest-exact, linear, bilinear, trilinear, bicubic,
 * area, and bilinear / bicubic with antialias=True; sizes 1..40, scales such as 1/4, 1/3, 0.7,
 * 2.5, 7/3; align_corners unset/False/True; recompute_scale_factor; area with overlapping
 * windows and all-ones outputs; bicubic on 1..4-pixel inputs, its taps beyond both borders;
 * [N, C, 1, 1] inputs, which take torch's channels-last kernels as every C == 1 input does) and
 * random grid jobs (grid_sample, affine_grid, affine_sample; 2-D and 3-D, every mode x padding,
 * align_corners unset/False/True; grid values several periods outside [-1, 1], on +-1 and one ULP
 * either side, pixel centres and half-pixel ties, +-1e30, 3.4e38, NaN and +-inf; theta near the
 * identity or wild, some with NaN / inf), with VK_LAYER_KHRONOS_validation on.  Nearest must be
 * bit-exact, the others within the contract's tolerance (bit-exact expected).  Also: a second
 * Vulkan backend with tiny binding and workgroup limits and a short loop budget, on which every
 * family must run in several chunks, planes split along their outermost axis (tables too), area's
 * mean over several bindings, multi-dispatch grids and area / antialias sums in several steps, and
 * the grid ops in point ranges (W base table and row table split too), channel groups, channel
 * steps and several batches per chunk (the backend's debug line per job says what it did); fixed
 * split cases that must not be refused; on the real limits, sums and channel loops longer than
 * llvmpipe's 65535 loop iterations per invocation; concurrent jobs from several threads;
 * refusals (a row too large for the limited bindings, a grid input plane too large for them,
 * 3-D bicubic plans, bad device index); and zero validation messages, counted by the test's
 * logger (tests/support/log_capture.c) so that messages during destroy count too.  TAP on stdout (tap.h: the plan
 * comes last).
 * Environment: VKR_TEST_SEED (default 20240611), VKR_TEST_CASES (default 400), VKR_TEST_GRID_CASES
 * (default 400); VKR_VULKAN_NO_FP64=1 runs the backends without shaderFloat64 (channels-last linear
 * jobs then compared within the tolerance of the tensor's largest value). */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "log_capture.h"
#include "log.h"
#include "tap.h"

#define MAX_JOB_BYTES (1ull << 30)
#define MAX_CASE_ELEMENTS 300000u     /* input and output elements per case: keeps lavapipe fast */
#define SPLIT_BINDING_BYTES 16384     /* the limited backend's binding limit */
#define SPLIT_GROUP_COUNT 4           /* and its workgroups per dispatch along x and y */
#define SPLIT_LOOP_ITERATIONS 40      /* and the terms of an area / antialias sum per dispatch */
#define N_THREADS 4
#define CASES_PER_THREAD 6
#define GRID_CASES_PER_THREAD 4

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

/* ------------------------------------------------------------------ logging (log_capture.c) */
/* What the backend's debug line said about the last job run on this thread. */
typedef struct {
    bool seen;
    int passes, split;
    unsigned long long steps, chunks, submits, dispatches;
} job_stats_t;
static _Thread_local job_stats_t last_job;
/* The backend said its device has no shaderFloat64 (or VKR_VULKAN_NO_FP64=1): the channels-last
 * linear jobs' tail channels sum in float there, within the contract's tolerance of the tensor's
 * largest value rather than element by element (the conformance test's measure). */
static atomic_bool vk_no_fp64;

void log_capture_line(int level, const char *line)
{
    if (strstr(line, "vulkan: no shaderFloat64"))
        atomic_store(&vk_no_fp64, true);
    if (level == VKR_LOG_DEBUG) {
        const char *s = strstr(line, " job: passes ");
        job_stats_t st = {.seen = true};
        if (strncmp(line, "vulkan: ", 8) == 0 && s &&
            sscanf(s, " job: passes %d, splitting planes %d, steps %llu, chunks %llu, submits %llu, dispatches %llu",
                   &st.passes, &st.split, &st.steps, &st.chunks, &st.submits, &st.dispatches) == 6)
            last_job = st;
        return;   /* one per job: not printed */
    }
    log_capture_print(level, line);
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

/* A grid op case (see "grid ops" below). */
typedef struct gcase_s {
    vkr_grid_plan_t plan;
    char desc[360];
    float *img, *coords, *want;      /* img: NULL for affine_grid; coords: grid or theta */
    uint64_t n_coords;
} gcase_t;

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
    static const double scales[] = {1.0 / 3, 0.7, 2.5, 7.0 / 3, 0.5, 2.0, 1.0, 1.1, 0.9, 3.0, 4.1, 1.5, 0.25, 1.05, 0.37, 2.05};
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
    if (rank >= 2 && rng_int(0, 7) == 0) {   /* [N, C, 1, 1(, 1)]: torch's channels-last kernels, 8-float lanes and tail */
        job.input.shape[1] = rng_int(1, 19);
        for (int d = 0; d < rank; d++)
            job.input.shape[2 + d] = 1;
    }
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
    if (cpu->interpolate(cpu, &c->plan, c->in, c->want, NULL, &err) != VKR_OK) {
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
    const vkr_interp_plan_t *pl = &c->plan;
    bool spatial_ones = true;
    for (int d = 0; d < pl->spatial_rank; d++)
        spatial_ones = spatial_ones && pl->in_size[d] == 1;
    if (fam == FAM_LINEAR && pl->spatial_rank >= 2 && (pl->channels == 1 || spatial_ones) && atomic_load(&vk_no_fp64)) {
        double scale = 0.0, diff = 0.0;   /* max |got - want| / max |want| over finite values, NaN where NaN */
        for (uint64_t i = 0; i < pl->out_elements; i++) {
            const float a = got[i], b = c->want[i];
            v.bit_exact = v.bit_exact && (bits_of(a) == bits_of(b) || (isnan(a) && isnan(b)));
            if (isnan(a) != isnan(b) || (isinf(b) && a != b) || (isinf(a) && a != b))
                diff = INFINITY;
            else if (isfinite(b)) {
                scale = fmax(scale, fabs((double)b));
                diff = fmax(diff, fabs((double)a - (double)b));
            }
        }
        v.max_rel = diff == 0.0 ? 0.0 : scale > 0.0 ? diff / scale : INFINITY;
        v.ok = v.max_rel <= fam_tol[fam];
        if (!v.ok)
            snprintf(v.why, sizeof v.why, "channels-last, no shaderFloat64: max |vulkan - cpu| / max |cpu| = %.3g (tolerance %g)",
                     v.max_rel, fam_tol[fam]);
        return v;
    }
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
    gcase_t *gcases;                 /* grid cases, run after the interpolate ones */
    int ng;
    int failures;
    char why[1024];
} thread_arg_t;

static bool thread_grid_case(vkr_backend_s *vk, const gcase_t *g, char *why, size_t why_len);

static void *thread_main(void *p)
{
    thread_arg_t *t = p;
    for (int i = 0; i < t->n; i++) {
        case_t *c = &t->cases[i];
        float *got = malloc((c->plan.out_elements ? c->plan.out_elements : 1) * sizeof(float));
        vkr_error_t err = {0};
        int rc = got ? t->vk->interpolate(t->vk, &c->plan, c->in, got, NULL, &err) : VKR_E_NOMEM;
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
    for (int i = 0; i < t->ng; i++) {
        char why[1024];
        if (!thread_grid_case(t->vk, &t->gcases[i], why, sizeof why)) {
            if (!t->failures)
                snprintf(t->why, sizeof t->why, "%s", why);
            t->failures++;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ the limited backend */
typedef struct {
    int ran, agreed, refused, split, chunked, multi_dispatch, two_pass, stepped, batched;
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
    int rc = vk->interpolate(vk, &c->plan, c->in, got, NULL, &err);
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

/* ------------------------------------------------------------------ grid ops */
/* Families of the grid ops, each with its contract tolerance (relative to the case's largest
 * finite reference value; bit-exact expected on lavapipe). */
enum { GF_NEAREST, GF_BILINEAR, GF_BICUBIC, GF_AFFINE_GRID, GF_AFFINE_SAMPLE, GF_COUNT };
static const char *const gf_names[GF_COUNT] = {"grid_sample nearest", "grid_sample bilinear", "grid_sample bicubic", "affine_grid",
                                               "affine_sample"};
static const double gf_tol[GF_COUNT] = {0.0, 1e-6, 1e-5, 1e-6, 1e-5};

static int gfamily_of(const vkr_grid_plan_t *p)
{
    if (p->op == VKR_OP_AFFINE_GRID)
        return GF_AFFINE_GRID;
    if (p->op == VKR_OP_AFFINE_SAMPLE)
        return GF_AFFINE_SAMPLE;
    return p->mode == VKR_GRID_NEAREST ? GF_NEAREST : p->mode == VKR_GRID_BICUBIC ? GF_BICUBIC : GF_BILINEAR;
}

static double rng_unit(void) { return (double)(rng_next() >> 11) / 9007199254740992.0; }

/* A grid job from its tensors' shapes and arguments, planned and described; false if the
 * planner refuses it or it is over max_elements. */
typedef struct {
    int op, mode, padding, align_corners, rank;
    int64_t n, c, in[3], out[3];
    const char *what;
} gspec_t;

static bool plan_gcase(gcase_t *g, const gspec_t *s, uint64_t max_elements)
{
    vkr_job_t job;
    memset(&job, 0, sizeof job);
    job.op = (uint16_t)s->op;
    job.backend = VKR_BACKEND_AUTO;
    job.n_tensors = (uint16_t)vkr_op_tensors(s->op);
    job.input.dtype = job.aux.dtype = VKR_DTYPE_F32;
    job.input.layout = job.aux.layout = VKR_LAYOUT_CONTIGUOUS;
    job.grid.mode = (uint16_t)(s->op == VKR_OP_AFFINE_GRID ? 0 : s->mode);
    job.grid.padding_mode = (uint16_t)(s->op == VKR_OP_AFFINE_GRID ? 0 : s->padding);
    job.grid.align_corners = (uint8_t)s->align_corners;
    const int R = s->rank;
    vkr_tensor_desc_t *theta = s->op == VKR_OP_AFFINE_GRID ? &job.input : &job.aux;
    if (s->op != VKR_OP_AFFINE_GRID) {
        job.input.rank = (uint8_t)(R + 2);
        job.input.shape[0] = s->n;
        job.input.shape[1] = s->c;
        for (int d = 0; d < R; d++)
            job.input.shape[2 + d] = s->in[d];
    }
    if (s->op == VKR_OP_GRID_SAMPLE) {
        job.aux.rank = (uint8_t)(R + 2);
        job.aux.shape[0] = s->n;
        for (int d = 0; d < R; d++)
            job.aux.shape[1 + d] = s->out[d];
        job.aux.shape[R + 1] = R;
    } else {
        theta->rank = 3;
        theta->shape[0] = s->n;
        theta->shape[1] = R;
        theta->shape[2] = R + 1;
        if (s->op == VKR_OP_AFFINE_GRID) {
            job.grid.n_size = (uint8_t)(R + 2);
            job.grid.size[0] = s->n;
            job.grid.size[1] = s->c;
            for (int d = 0; d < R; d++)
                job.grid.size[2 + d] = s->out[d];
        } else {
            job.grid.n_size = (uint8_t)R;
            for (int d = 0; d < R; d++)
                job.grid.size[d] = s->out[d];
        }
    }
    vkr_plan_t plan;
    vkr_error_t err;
    if (vkr_plan_job(&job, MAX_JOB_BYTES, &plan, &err) != VKR_OK)
        return false;
    g->plan = plan.grid;
    if (g->plan.in_elements > max_elements || g->plan.out_elements > max_elements || g->plan.aux_elements > max_elements)
        return false;
    int n = snprintf(g->desc, sizeof g->desc, "%s %dD", s->op == VKR_OP_GRID_SAMPLE ? "grid_sample" : s->op == VKR_OP_AFFINE_GRID
                                                                                                    ? "affine_grid" : "affine_sample", R);
    if (s->op != VKR_OP_AFFINE_GRID)
        n += snprintf(g->desc + n, sizeof g->desc - (size_t)n, " %s/%s", vkr_proto_grid_mode_name(s->mode),
                      vkr_proto_padding_name(s->padding));
    n += snprintf(g->desc + n, sizeof g->desc - (size_t)n, " N=%" PRId64 " C=%" PRId64, s->n, s->c);
    if (s->op != VKR_OP_AFFINE_GRID) {
        n += snprintf(g->desc + n, sizeof g->desc - (size_t)n, " in=[");
        for (int d = 0; d < R; d++)
            n += snprintf(g->desc + n, sizeof g->desc - (size_t)n, "%s%" PRId64, d ? "," : "", s->in[d]);
        n += snprintf(g->desc + n, sizeof g->desc - (size_t)n, "]");
    }
    n += snprintf(g->desc + n, sizeof g->desc - (size_t)n, " out=[");
    for (int d = 0; d < R; d++)
        n += snprintf(g->desc + n, sizeof g->desc - (size_t)n, "%s%" PRId64, d ? "," : "", s->out[d]);
    n += snprintf(g->desc + n, sizeof g->desc - (size_t)n, "] align_corners=%s", opt_name(s->align_corners));
    if (s->what)
        snprintf(g->desc + n, sizeof g->desc - (size_t)n, " (%s)", s->what);
    return true;
}

/* A grid value along an axis of `size` pixels: uniform in [-1.6, 1.6], far outside (+-7), or
 * (30%) a special one: the borders and one ULP either side, +-1e30, values several periods out,
 * pixel centres and half-pixel ties just outside and inside the image. */
static float grid_value(int64_t size, bool ac)
{
    const double u = rng_unit();
    if (u < 0.55)
        return (float)(rng_unit() * 3.2 - 1.6);
    if (u < 0.7)
        return (float)(rng_unit() * 14.0 - 7.0);
    static const float fixed[] = {-1.0f, 1.0f, 0.0f, 1.00000012f, 0.99999994f, -1.00000012f, -0.99999994f, 1e30f, -1e30f,
                                  3.7f, -5.3f, 9.1f};
    const int nf = (int)(sizeof fixed / sizeof fixed[0]);
    const int k = rng_int(0, nf + 2 * ((int)size + 2) - 1);
    if (k < nf)
        return fixed[k];
    const double c = (double)((k - nf) / 2 - 1) + ((k - nf) % 2 ? 0.5 : 0.0);   /* pixel -1 .. size, or its tie */
    return (float)(ac && size > 1 ? c / (double)(size - 1) * 2.0 - 1.0 : (2.0 * c + 1.0) / (double)size - 1.0);
}

/* Inputs of a grid case: the image as fill_input's; the grid from grid_value per component (every
 * 8th case with NaN, +-inf and 1e30 components); theta near the identity, or wild (some cases far
 * outside the image, every 8th with a NaN or inf entry). */
static bool gcase_ready(gcase_t *g, int index, vkr_backend_s *cpu)
{
    const vkr_grid_plan_t *p = &g->plan;
    const int R = p->spatial_rank;
    g->n_coords = p->op == VKR_OP_GRID_SAMPLE ? p->aux_elements : (uint64_t)p->batch * (uint64_t)(R * (R + 1));
    g->img = p->op == VKR_OP_AFFINE_GRID ? NULL : malloc((p->in_elements ? p->in_elements : 1) * sizeof(float));
    g->coords = malloc((g->n_coords ? g->n_coords : 1) * sizeof(float));
    g->want = malloc((p->out_elements ? p->out_elements : 1) * sizeof(float));
    if ((!g->img && p->op != VKR_OP_AFFINE_GRID) || !g->coords || !g->want) {
        printf("Bail out! out of memory\n");
        return false;
    }
    if (g->img) {
        const float mag = (float)pow(10.0, rng_int(-3, 3));
        for (uint64_t i = 0; i < p->in_elements; i++)
            g->img[i] = mag * (float)(rng_unit() * 2.0 - 1.0);
        if (index % 8 == 7 && p->in_elements) {
            static const float specials[] = {INFINITY, -INFINITY, NAN, -0.0f};
            for (int k = 0; k < 4; k++)
                g->img[rng_next() % p->in_elements] = specials[k];
        }
    }
    if (p->op == VKR_OP_GRID_SAMPLE) {
        for (uint64_t i = 0; i < g->n_coords; i++) {
            const int k = (int)(i % (uint64_t)R);   /* component k indexes axis R - 1 - k */
            g->coords[i] = grid_value(p->in_size[R - 1 - k], p->align_corners);
        }
        if (index % 8 == 3 && g->n_coords) {
            static const float specials[] = {NAN, INFINITY, -INFINITY, 1e30f, -1e30f, 3.4e38f};
            for (int k = 0; k < 6; k++)
                g->coords[rng_next() % g->n_coords] = specials[k];
        }
    } else {
        const int kind = rng_int(0, 9);
        for (uint64_t i = 0; i < g->n_coords; i++) {
            const int row = (int)(i % (uint64_t)(R * (R + 1))) / (R + 1), col = (int)(i % (uint64_t)(R + 1));
            const double noise = rng_unit() * 2.0 - 1.0;
            g->coords[i] = kind < 5 ? (float)((row == col ? 1.0 : 0.0) + 0.3 * noise)
                         : kind < 8 ? (float)(2.0 * noise) : (float)(50.0 * noise);
        }
        if (index % 8 == 5 && g->n_coords) {
            g->coords[rng_next() % g->n_coords] = NAN;
            g->coords[rng_next() % g->n_coords] = INFINITY;
        }
    }
    vkr_error_t err;
    if (cpu->grid(cpu, p, g->img, g->coords, g->want, NULL, &err) != VKR_OK) {
        printf("Bail out! cpu backend refused %s: %s\n", g->desc, err.message);
        return false;
    }
    return true;
}

/* A random grid case, planned; false if the planner refused it (the caller draws again). */
static bool draw_gcase(gcase_t *g)
{
    gspec_t s = {0};
    const int pick = rng_int(0, 19);
    s.op = pick < 12 ? VKR_OP_GRID_SAMPLE : pick < 15 ? VKR_OP_AFFINE_GRID : VKR_OP_AFFINE_SAMPLE;
    s.rank = rng_int(0, 9) < 6 ? 2 : 3;
    s.mode = rng_int(1, s.rank == 2 ? 3 : 2);
    s.padding = rng_int(1, 3);
    s.align_corners = rng_int(0, 2);
    s.n = rng_int(1, 3);
    s.c = rng_int(1, 5);
    /* one case in six large enough to be cut into chunks on the limited backend */
    const bool large = rng_int(0, 5) == 0;
    const int in_hi = s.rank == 2 ? (large ? 40 : 14) : (large ? 10 : 6), out_hi = s.rank == 2 ? (large ? 90 : 14) : (large ? 20 : 6);
    for (int d = 0; d < s.rank; d++) {
        s.in[d] = rng_int(1, in_hi);
        s.out[d] = rng_int(large ? out_hi / 2 : 1, out_hi);
    }
    return plan_gcase(g, &s, MAX_CASE_ELEMENTS);
}

/* Element-wise against the CPU: NaN matches NaN (counted as bit-exact, as the conformance test
 * does), infinities must be equal, else |a - b| over the case's largest finite |reference|
 * within the family's tolerance. */
static verdict_t gcompare(const gcase_t *g, const float *got)
{
    verdict_t v = {.ok = true, .bit_exact = true, .max_rel = 0.0};
    const int fam = gfamily_of(&g->plan);
    double scale = 0.0;
    for (uint64_t i = 0; i < g->plan.out_elements; i++)
        if (isfinite(g->want[i]) && fabs((double)g->want[i]) > scale)
            scale = fabs((double)g->want[i]);
    for (uint64_t i = 0; i < g->plan.out_elements; i++) {
        float a = got[i], b = g->want[i];
        if (bits_of(a) == bits_of(b) || (isnan(a) && isnan(b)))
            continue;   /* NaN payloads may differ: the spec promises NaN, not which */
        v.bit_exact = false;
        double rel;
        if (isnan(a) || isnan(b) || isinf(a) || isinf(b))
            rel = INFINITY;
        else
            rel = fabs((double)a - (double)b) / (scale > 0.0 ? scale : 1.0);
        if (rel > v.max_rel)
            v.max_rel = rel;
        if (v.ok && !(rel <= gf_tol[fam])) {
            v.ok = false;
            snprintf(v.why, sizeof v.why, "element %" PRIu64 ": vulkan %.9g (0x%08x) cpu %.9g (0x%08x) rel %.3g (%s tolerance %g)", i,
                     (double)a, bits_of(a), (double)b, bits_of(b), rel, gf_names[fam], gf_tol[fam]);
        }
    }
    return v;
}

/* Run g on vk into a buffer poisoned with a NaN pattern (so that an element the backend leaves
 * unwritten shows), compare; fills *st like run_limited. */
static bool run_grid(vkr_backend_s *vk, const gcase_t *g, bool allow_refusal, split_stats_t *st, verdict_t *vout, char *why,
                     size_t why_len)
{
    const uint64_t n = g->plan.out_elements ? g->plan.out_elements : 1;
    float *got = malloc(n * sizeof(float));
    if (!got) {
        snprintf(why, why_len, "%s: out of memory", g->desc);
        return false;
    }
    for (uint64_t i = 0; i < n; i++)
        got[i] = -NAN;
    vkr_error_t err = {0};
    last_job = (job_stats_t){0};
    int rc = vk->grid(vk, &g->plan, g->img, g->coords, got, NULL, &err);
    bool ok = true;
    st->ran++;
    if (rc == VKR_OK) {
        verdict_t v = gcompare(g, got);
        if (vout)
            *vout = v;
        if (v.ok) {
            st->agreed++;
            if (last_job.seen) {
                st->split += last_job.split > 0;
                st->chunked += last_job.chunks > 1;
                st->multi_dispatch += last_job.dispatches > last_job.chunks;
                st->stepped += last_job.steps > 1;
                st->batched += last_job.chunks < (unsigned long long)g->plan.batch;
            }
        } else {
            ok = false;
            snprintf(why, why_len, "%s: %s", g->desc, v.why);
        }
    } else if (rc == VKR_E_TOO_LARGE && allow_refusal) {
        st->refused++;
    } else {
        ok = false;
        snprintf(why, why_len, "%s: %s %s", g->desc, vkr_proto_code_name(rc), err.message);
    }
    free(got);
    return ok;
}

static bool thread_grid_case(vkr_backend_s *vk, const gcase_t *g, char *why, size_t why_len)
{
    split_stats_t st = {0};
    return run_grid(vk, g, false, &st, NULL, why, why_len);
}

/* Summary row of a random grid case: op, rank, mode, padding. */
#define GKEYS (3 * 2 * 4 * 4)
static int gkey_of(const vkr_grid_plan_t *p)
{
    const int op = p->op == VKR_OP_GRID_SAMPLE ? 0 : p->op == VKR_OP_AFFINE_SAMPLE ? 1 : 2;
    const int mode = op == 2 ? 0 : p->mode, pad = op == 2 ? 0 : p->padding_mode;
    return ((op * 2 + p->spatial_rank - 2) * 4 + mode) * 4 + pad;
}

static void gkey_name(int key, char *buf, size_t len)
{
    const int pad = key % 4, mode = key / 4 % 4, rank = key / 16 % 2 + 2, op = key / 32;
    if (op == 2)
        snprintf(buf, len, "affine_grid %dD", rank);
    else
        snprintf(buf, len, "%s %dD %s %s", op ? "affine_sample" : "grid_sample", rank, vkr_proto_grid_mode_name(mode),
                 vkr_proto_padding_name(pad));
}

/* Fixed grid jobs the limited backend must run (not refuse), each forcing a chunking path: point
 * ranges (grid, output, W table or row table over a binding), channel groups in steps, several
 * batches per chunk (theta read from the table buffer at a batch offset). */
static const gspec_t gfixed_cases[] = {
    {VKR_OP_GRID_SAMPLE, VKR_GRID_BILINEAR, VKR_PADDING_ZEROS, VKR_OPT_FALSE, 2, 1, 2, {40, 50}, {80, 70}, "points split"},
    {VKR_OP_GRID_SAMPLE, VKR_GRID_BICUBIC, VKR_PADDING_REFLECTION, VKR_OPT_TRUE, 2, 2, 3, {30, 30}, {60, 45}, "bicubic points split"},
    {VKR_OP_GRID_SAMPLE, VKR_GRID_NEAREST, VKR_PADDING_BORDER, VKR_OPT_FALSE, 3, 1, 2, {10, 12, 14}, {15, 16, 17}, "3-D points split"},
    {VKR_OP_GRID_SAMPLE, VKR_GRID_BICUBIC, VKR_PADDING_BORDER, VKR_OPT_FALSE, 2, 2, 7, {8, 9}, {8, 8}, "7 channels in steps"},
    {VKR_OP_GRID_SAMPLE, VKR_GRID_BILINEAR, VKR_PADDING_REFLECTION, VKR_OPT_TRUE, 3, 300, 2, {2, 3, 4}, {2, 2, 3}, "batches per chunk"},
    {VKR_OP_GRID_SAMPLE, VKR_GRID_NEAREST, VKR_PADDING_ZEROS, VKR_OPT_FALSE, 2, 3, 40, {20, 20}, {10, 10}, "channel groups"},
    {VKR_OP_AFFINE_SAMPLE, VKR_GRID_BICUBIC, VKR_PADDING_REFLECTION, VKR_OPT_FALSE, 2, 2, 3, {30, 30}, {100, 90}, "affine points split"},
    {VKR_OP_AFFINE_SAMPLE, VKR_GRID_NEAREST, VKR_PADDING_ZEROS, VKR_OPT_TRUE, 3, 1, 1, {4, 5, 6}, {1, 2, 5000}, "W table split"},
    {VKR_OP_AFFINE_SAMPLE, VKR_GRID_BILINEAR, VKR_PADDING_BORDER, VKR_OPT_FALSE, 3, 300, 2, {3, 3, 3}, {2, 3, 2}, "affine batches per chunk"},
    {VKR_OP_AFFINE_GRID, 0, 0, VKR_OPT_FALSE, 3, 2, 1, {0}, {20, 30, 40}, "affine_grid points split"},
    {VKR_OP_AFFINE_SAMPLE, VKR_GRID_NEAREST, VKR_PADDING_REFLECTION, VKR_OPT_TRUE, 3, 1, 2, {2, 3, 4}, {100, 60, 1}, "row table split"},
    {VKR_OP_AFFINE_GRID, 0, 0, VKR_OPT_TRUE, 2, 1, 1, {0}, {2, 6000}, "affine_grid W table split"},
    {VKR_OP_AFFINE_GRID, 0, 0, VKR_OPT_FALSE, 2, 600, 1, {0}, {3, 4}, "affine_grid batches per chunk"},
};

/* On the real limits: channel loops longer than llvmpipe's 65535 iterations per invocation (the
 * channels go in groups per dispatch), and many tiny batches in one chunk. */
static const gspec_t glong_cases[] = {
    {VKR_OP_GRID_SAMPLE, VKR_GRID_BILINEAR, VKR_PADDING_ZEROS, VKR_OPT_FALSE, 2, 1, 70000, {2, 2}, {1, 2}, "70000 channels"},
    {VKR_OP_GRID_SAMPLE, VKR_GRID_BICUBIC, VKR_PADDING_REFLECTION, VKR_OPT_TRUE, 2, 1, 9000, {3, 2}, {2, 1}, "9000 bicubic channels"},
    {VKR_OP_AFFINE_SAMPLE, VKR_GRID_NEAREST, VKR_PADDING_BORDER, VKR_OPT_FALSE, 3, 1, 70000, {1, 2, 2}, {1, 1, 2}, "70000 channels 3-D"},
    {VKR_OP_AFFINE_SAMPLE, VKR_GRID_BILINEAR, VKR_PADDING_REFLECTION, VKR_OPT_TRUE, 2, 4096, 1, {3, 3}, {4, 4}, "4096 batches"},
};

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
    {VKR_MODE_BILINEAR, 2, false, VKR_OPT_FALSE, 2, 11, {1, 1}, {80, 90}, "channels-last, 11 channels: vector lanes and tail"},
    {VKR_MODE_TRILINEAR, 3, false, VKR_OPT_TRUE, 2, 19, {1, 1, 1}, {9, 30, 30}, "channels-last trilinear, 19 channels"},
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
    s = getenv("VKR_TEST_GRID_CASES");
    int n_gcases = s ? atoi(s) : 400;
    if (n_gcases < 1)
        n_gcases = 1;
    const int n_gthread = N_THREADS * GRID_CASES_PER_THREAD;
    const int n_gfixed = (int)(sizeof gfixed_cases / sizeof gfixed_cases[0]);
    const int n_glong = (int)(sizeof glong_cases / sizeof glong_cases[0]);
    const int n_gall = n_gcases + n_gthread + n_gfixed + n_glong;
    printf("# seed %" PRIu64 ", %d interpolate cases, %d grid cases\n", rng_state, n_cases, n_gcases);

    vkr_error_t err = {0};
    vkr_backend_s *cpu = NULL, *vk = NULL, *vk_split = NULL;
    case_t *cases = calloc((size_t)(n_cases + n_thread_cases + n_fixed + n_long), sizeof *cases);
    gcase_t *gcases = calloc((size_t)n_gall, sizeof *gcases);
    if (!cases || !gcases || vkr__backend_cpu_create(&cpu, &err) != VKR_OK) {
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
    gcase_t *gthread = &gcases[n_gcases], *gfixed = gthread + n_gthread, *glongs = gfixed + n_gfixed;
    for (int i = 0; i < n_gall; i++) {
        gcase_t *g = &gcases[i];
        const int k = i - n_gcases - n_gthread;
        const gspec_t *f = k < 0 ? NULL : k < n_gfixed ? &gfixed_cases[k] : &glong_cases[k - n_gfixed];
        if (!f) {
            while (!draw_gcase(g))
                ;
        } else if (!plan_gcase(g, f, 1u << 22)) {
            printf("Bail out! fixed grid case %d (%s) was refused by the planner\n", k, f->what);
            return 1;
        }
        if (!gcase_ready(g, f ? 0 : i, cpu))   /* fixed cases: finite values only */
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
        int rc = vk->interpolate(vk, &c->plan, c->in, got, NULL, &err);
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

    /* 1b. Grid ops: one TAP line per random case, the same case on the limited backend, the
     * fixed split cases there, and the long channel loops on the real limits. */
    {
        int n_key[GKEYS] = {0}, exact_key[GKEYS] = {0};
        double rel_key[GKEYS] = {0};
        split_stats_t gsplit[GF_COUNT];
        memset(gsplit, 0, sizeof gsplit);
        int gbad = 0;
        char gwhy[1024] = "";
        for (int i = 0; i < n_gcases; i++) {
            gcase_t *g = &gcases[i];
            split_stats_t st = {0};
            verdict_t v = {.ok = false};
            char why[1024] = "";
            const bool ok = run_grid(vk, g, false, &st, &v, why, sizeof why);
            if (ok) {
                const int key = gkey_of(&g->plan);
                n_key[key]++;
                exact_key[key] += v.bit_exact;
                rel_key[key] = v.max_rel > rel_key[key] ? v.max_rel : rel_key[key];
            }
            if (ok)
                tap_check(true, "%s (%s)", g->desc, v.bit_exact ? "bit-exact" : "within tolerance");
            else
                tap_check(false, "%s", why);
            if (!run_grid(vk_split, g, true, &gsplit[gfamily_of(&g->plan)], NULL, why, sizeof why) && !gbad++)
                snprintf(gwhy, sizeof gwhy, "%s", why);
        }
        for (int k = 0; k < GKEYS; k++)
            if (n_key[k]) {
                char name[64];
                gkey_name(k, name, sizeof name);
                printf("# %-36s: %3d/%3d cases bit-exact, max relative error %.3g\n", name, exact_key[k], n_key[k], rel_key[k]);
            }
        tap_check(gbad == 0, "limited backend: every random grid case agrees or is refused as too large (%d wrong%s%s)", gbad,
                  gbad ? ": " : "", gwhy);
        for (int f = 0; f < GF_COUNT; f++) {
            const split_stats_t *t = &gsplit[f];
            tap_check(t->ran > 0 && t->agreed == t->ran && t->multi_dispatch + t->chunked > 0,
                      "limited backend, %s: %d cases, %d agree (%d in several chunks, %d splitting planes, %d with several "
                      "dispatches per chunk, %d with channel steps), %d refused as too large", gf_names[f], t->ran, t->agreed,
                      t->chunked, t->split, t->multi_dispatch, t->stepped, t->refused);
        }
        split_stats_t all = {0};
        for (int i = 0; i < n_gfixed; i++) {
            split_stats_t st = {0};
            char why[1024] = "";
            bool ok = run_grid(vk_split, &gfixed[i], false, &st, NULL, why, sizeof why);
            tap_check(ok && (last_job.chunks > 1 || last_job.steps > 1), "limited backend: %s: %s (%llu chunks, %llu steps, %llu dispatches)",
                      gfixed[i].desc, !ok ? why : "agrees", last_job.chunks, last_job.steps, last_job.dispatches);
            all.split += st.split;
            all.stepped += st.stepped;
            all.batched += st.batched && gfixed[i].plan.batch > 1;
            all.multi_dispatch += st.multi_dispatch;
        }
        tap_check(all.split >= 6 && all.stepped >= 1 && all.batched >= 3 && all.multi_dispatch >= 1,
                  "limited backend, fixed grid cases: %d split a plane's points, %d ran channel steps, %d put several batches in a "
                  "chunk, %d dispatched a chunk in several parts", all.split, all.stepped, all.batched, all.multi_dispatch);
        for (int i = 0; i < n_glong; i++) {
            split_stats_t st = {0};
            char why[1024] = "";
            bool ok = run_grid(vk, &glongs[i], false, &st, NULL, why, sizeof why);
            tap_check(ok, "%s: %s (%llu chunks, %llu steps, %llu dispatches)", glongs[i].desc, !ok ? why : "agrees", last_job.chunks,
                      last_job.steps, last_job.dispatches);
        }
    }

    /* 2. Concurrent jobs on one backend. */
    thread_arg_t targs[N_THREADS];
    pthread_t th[N_THREADS];
    int started = 0;
    for (int t = 0; t < N_THREADS; t++) {
        targs[t] = (thread_arg_t){.vk = vk, .cases = &cases[n_cases + t * CASES_PER_THREAD], .n = CASES_PER_THREAD,
                                  .gcases = &gthread[t * GRID_CASES_PER_THREAD], .ng = GRID_CASES_PER_THREAD};
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
    tap_check(started == N_THREADS && thread_failures == 0,
              "%d threads x (%d interpolate + %d grid) concurrent jobs agree with cpu (%d failures%s%s)", started, CASES_PER_THREAD,
              GRID_CASES_PER_THREAD, thread_failures, thread_failures ? ": " : "", thread_why);

    /* 3. Refusals and edge cases. */
    {
        vkr_interp_plan_t p = {.mode = VKR_MODE_BICUBIC, .spatial_rank = 3, .batch = 1, .channels = 1,
                               .in_size = {2, 2, 2}, .out_size = {3, 3, 3}, .in_elements = 8, .out_elements = 27};
        float in[8] = {0}, out[27];
        int rc = vk->interpolate(vk, &p, in, out, NULL, &err);
        tap_check(rc == VKR_E_UNSUPPORTED, "3-D bicubic plan -> VKR_E_UNSUPPORTED (got %s: %s)", vkr_proto_code_name(rc),
                  rc ? err.message : "");
    }
    {
        vkr_interp_plan_t p = {.mode = VKR_MODE_TRILINEAR, .spatial_rank = 3, .batch = 1, .channels = 1, .antialias = true,
                               .in_size = {2, 2, 2}, .out_size = {1, 1, 1}, .in_elements = 8, .out_elements = 1};
        float in[8] = {0}, out[1];
        int rc = vk->interpolate(vk, &p, in, out, NULL, &err);
        tap_check(rc == VKR_E_UNSUPPORTED, "trilinear antialias plan -> VKR_E_UNSUPPORTED (got %s: %s)", vkr_proto_code_name(rc),
                  rc ? err.message : "");
    }
    {
        /* One output row of 5000 floats is over a 16 KiB binding: nothing left to split. */
        vkr_interp_plan_t p = {.mode = VKR_MODE_BILINEAR, .spatial_rank = 2, .batch = 1, .channels = 1,
                               .in_size = {2, 5000}, .out_size = {2, 5000}, .in_elements = 10000, .out_elements = 10000};
        float dummy[1];
        int rc = vk_split->interpolate(vk_split, &p, dummy, dummy, NULL, &err);
        tap_check(rc == VKR_E_TOO_LARGE, "rows of 5000 on %d-byte bindings -> VKR_E_TOO_LARGE (got %s: %s)", SPLIT_BINDING_BYTES,
            vkr_proto_code_name(rc), rc ? err.message : "");
    }
    {
        vkr_interp_plan_t p = {.mode = VKR_MODE_AREA, .spatial_rank = 2, .batch = 1, .channels = 1,
                               .in_size = {100, 130}, .out_size = {1, 1}, .in_elements = 13000, .out_elements = 1};
        float dummy[1];
        int rc = vk_split->interpolate(vk_split, &p, dummy, dummy, NULL, &err);
        tap_check(rc == VKR_E_TOO_LARGE, "area mean of 13000 elements on 3 bindings of %d bytes -> VKR_E_TOO_LARGE (got %s: %s)",
                  SPLIT_BINDING_BYTES, vkr_proto_code_name(rc), rc ? err.message : "");
    }
    {
        vkr_interp_plan_t p = {.mode = VKR_MODE_NEAREST, .spatial_rank = 1, .batch = 0, .channels = 3,
                               .in_size = {5}, .out_size = {7}, .has_scale = {false}, .in_elements = 0, .out_elements = 0};
        int rc = vk->interpolate(vk, &p, NULL, NULL, NULL, &err);
        tap_check(rc == VKR_OK, "N=0 job -> VKR_OK without work (got %s)", vkr_proto_code_name(rc));
    }
    {
        vkr_interp_plan_t p = {.mode = VKR_MODE_AREA, .spatial_rank = 2, .batch = 1, .channels = 2,
                               .in_size = {5, 6}, .out_size = {0, 3}, .in_elements = 60, .out_elements = 0};
        float in[60] = {0};
        int rc = vk->interpolate(vk, &p, in, NULL, NULL, &err);
        tap_check(rc == VKR_OK, "area with an empty output -> VKR_OK without work (got %s)", vkr_proto_code_name(rc));
    }
    {
        vkr_grid_plan_t p = {.op = VKR_OP_GRID_SAMPLE, .mode = VKR_GRID_BICUBIC, .padding_mode = VKR_PADDING_ZEROS, .spatial_rank = 3,
                             .batch = 1, .channels = 1, .in_size = {2, 2, 2}, .out_size = {1, 1, 1}, .in_elements = 8,
                             .aux_elements = 3, .out_elements = 1};
        float in[8] = {0}, grid[3] = {0}, out[1];
        int rc = vk->grid(vk, &p, in, grid, out, NULL, &err);
        tap_check(rc == VKR_E_UNSUPPORTED, "3-D bicubic grid_sample plan -> VKR_E_UNSUPPORTED (got %s: %s)", vkr_proto_code_name(rc),
                  rc ? err.message : "");
    }
    {
        /* grid_sample reads anywhere in a plane: a plane of 5000 floats cannot be bound in 16 KiB. */
        vkr_grid_plan_t p = {.op = VKR_OP_AFFINE_SAMPLE, .mode = VKR_GRID_BILINEAR, .padding_mode = VKR_PADDING_ZEROS,
                             .spatial_rank = 2, .batch = 1, .channels = 1, .in_size = {50, 100}, .out_size = {2, 2},
                             .in_elements = 5000, .aux_elements = 6, .out_elements = 4};
        float dummy[1];
        int rc = vk_split->grid(vk_split, &p, dummy, dummy, dummy, NULL, &err);
        tap_check(rc == VKR_E_TOO_LARGE, "an input plane of 5000 floats on %d-byte bindings -> VKR_E_TOO_LARGE (got %s: %s)",
                  SPLIT_BINDING_BYTES, vkr_proto_code_name(rc), rc ? err.message : "");
    }
    {
        vkr_grid_plan_t p = {.op = VKR_OP_GRID_SAMPLE, .mode = VKR_GRID_NEAREST, .padding_mode = VKR_PADDING_BORDER, .spatial_rank = 2,
                             .batch = 0, .channels = 3, .in_size = {4, 5}, .out_size = {6, 7}};
        int rc = vk->grid(vk, &p, NULL, NULL, NULL, NULL, &err);
        vkr_grid_plan_t q = {.op = VKR_OP_AFFINE_GRID, .spatial_rank = 3, .batch = 2, .channels = 1, .out_size = {3, 0, 2},
                             .in_elements = 24};
        float theta[24] = {0};
        int rc2 = vk->grid(vk, &q, NULL, theta, NULL, NULL, &err);
        tap_check(rc == VKR_OK && rc2 == VKR_OK, "N=0 grid_sample and an empty affine_grid -> VKR_OK without work (got %s, %s)",
                  vkr_proto_code_name(rc), vkr_proto_code_name(rc2));
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
    unsigned logged = log_capture_validation_messages();
    tap_check(logged == 0, "no validation message logged through destroy (got %u)", logged);

    for (int i = 0; i < n_cases + n_thread_cases + n_fixed + n_long; i++) {
        free(cases[i].in);
        free(cases[i].want);
    }
    free(cases);
    for (int i = 0; i < n_gall; i++) {
        free(gcases[i].img);
        free(gcases[i].coords);
        free(gcases[i].want);
    }
    free(gcases);
    return tap_done();
}
