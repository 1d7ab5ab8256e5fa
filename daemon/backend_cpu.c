/* The CPU backend: F.interpolate, grid_sample and affine_grid on the host, bit-exact with PyTorch
 * 1.13's portable kernels (within the README's rules).  It computes no coordinate of its own:
 * every index and weight comes from the kernel spec (shaders/spec/): per-axis tables for
 * interpolate and affine_grid, the per-point grid rules for grid_sample, and the spec's sums in
 * PyTorch's order. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backend.h"
#include "cpu_kernels.h"
#include "spec/axis_tables.h"
#include "spec/cascade_sum.h"
#include "spec/grid_rules.h"
#include "spec/interp_rules.h"

_Thread_local unsigned vkr__job_uid = VKR__NO_UID;   /* backend.h: here, in the one backend always built */

typedef enum { FAMILY_NEAREST, FAMILY_LINEAR, FAMILY_CUBIC, FAMILY_AREA, FAMILY_ANTIALIAS } family_t;

/* Per-axis tables of one job, padded to three axes (D, H, W); absent outer axes have extent 1. */
typedef struct {
    int64_t in[3], out[3];
    int32_t *idx[3];              /* nearest */
    vkr_linear_taps_t lin[3];     /* linear family */
    vkr_cubic_taps_t cub[3];      /* bicubic (H, W) */
    int32_t *start[3], *len[3];   /* area windows */
    int max_taps[3];              /* antialias (H, W): xmin, xsize, weights[max_taps] per output */
    int32_t *xmin[3], *xsize[3];
    float *aa_w[3];
    bool channels_last;           /* torch 1.13 takes its channels-last kernel (vkr_spec_channels_last_kernel) */
    void *block;
} axis_tables_t;

static family_t family_of(const vkr_interp_plan_t *plan)
{
    if (plan->antialias)
        return FAMILY_ANTIALIAS;
    switch (plan->mode) {
    case VKR_MODE_LINEAR:
    case VKR_MODE_BILINEAR:
    case VKR_MODE_TRILINEAR: return FAMILY_LINEAR;
    case VKR_MODE_BICUBIC: return FAMILY_CUBIC;
    case VKR_MODE_AREA: return FAMILY_AREA;
    default: return FAMILY_NEAREST;
    }
}

/* 32-bit words a family needs for one axis of output length o. */
static size_t words_per_axis(family_t f, int64_t o, int max_taps)
{
    switch (f) {
    case FAMILY_NEAREST: return (size_t)o;
    case FAMILY_LINEAR: return 4 * (size_t)o;
    case FAMILY_CUBIC: return 8 * (size_t)o;
    case FAMILY_AREA: return 2 * (size_t)o;
    default: return (2 + (size_t)max_taps) * (size_t)o;
    }
}

static int tables_build(const vkr_interp_plan_t *plan, family_t f, axis_tables_t *t, vkr_error_t *err)
{
    memset(t, 0, sizeof *t);
    t->channels_last = vkr_spec_channels_last_kernel(plan->spatial_rank, plan->channels, plan->in_size);
    const int pad = 3 - plan->spatial_rank;
    size_t total = 0;
    for (int a = 0; a < 3; a++) {
        int d = a - pad;
        t->in[a] = d < 0 ? 1 : plan->in_size[d];
        t->out[a] = d < 0 ? 1 : plan->out_size[d];
        if (f == FAMILY_ANTIALIAS && d >= 0)
            t->max_taps[a] = vkr_spec_aa_max_taps(t->in[a], t->out[a], plan->align_corners, plan->has_scale[d], plan->scale[d],
                                                  plan->mode == VKR_MODE_BICUBIC);
        total += words_per_axis(f, t->out[a], t->max_taps[a]);
    }
    t->block = vkr__malloc(total * sizeof(int32_t));
    if (!t->block)
        return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "cpu: out of memory for %zu table entries", total);
    int32_t *p = t->block;
    for (int a = 0; a < 3; a++) {
        const int d = a - pad;
        const int64_t n = t->in[a], o = t->out[a];
        const bool has_scale = d >= 0 && plan->has_scale[d];
        const double scale = d >= 0 ? plan->scale[d] : 0.0;
        switch (f) {
        case FAMILY_NEAREST:
            t->idx[a] = p;
            vkr_spec_nearest_indices(n, o, plan->mode == VKR_MODE_NEAREST_EXACT, has_scale, scale, t->channels_last, t->idx[a]);
            break;
        case FAMILY_LINEAR:
            t->lin[a] = (vkr_linear_taps_t){p, p + o, (float *)(p + 2 * o), (float *)(p + 3 * o)};
            vkr_spec_linear_taps(n, o, plan->align_corners, has_scale, scale, t->lin[a]);
            break;
        case FAMILY_CUBIC:
            for (int k = 0; k < 4; k++) {
                t->cub[a].idx[k] = p + k * o;
                t->cub[a].coeff[k] = (float *)(p + (4 + k) * o);
            }
            vkr_spec_cubic_taps(n, o, plan->align_corners, has_scale, scale, t->cub[a]);
            break;
        case FAMILY_AREA:
            t->start[a] = p;
            t->len[a] = p + o;
            vkr_spec_area_windows(n, o, t->start[a], t->len[a]);
            break;
        case FAMILY_ANTIALIAS:
            t->xmin[a] = p;
            t->xsize[a] = p + o;
            t->aa_w[a] = (float *)(p + 2 * o);
            if (d >= 0)
                vkr_spec_aa_taps(n, o, plan->align_corners, has_scale, scale, plan->mode == VKR_MODE_BICUBIC, t->max_taps[a],
                                 t->xmin[a], t->xsize[a], t->aa_w[a]);
            break;
        }
        p += words_per_axis(f, o, t->max_taps[a]);
    }
    return VKR_OK;
}

/* ---------------------------------------------------------------- task frame */
/* Work is split into tasks spread over OpenMP's threads; each thread owns one scratch block for
 * all its tasks.  body(task, scratch, ctx) does one task.  Every output element still gets
 * exactly PyTorch's operations in PyTorch's order: the vector kernels (cpu_kernels.h) run each
 * element in its own lane, and an intermediate row is the same value whichever task computes it. */
typedef void (*task_body_t)(int64_t task, float *scratch, const void *ctx);

/* A job this small (input + output elements) runs on the calling thread alone: waking OpenMP's
 * team costs more than it saves (tens of microseconds), and the daemon runs tiny jobs on its loop
 * thread, which must not become a team's master.  Set per job, read by every parallel region. */
#define SERIAL_JOB_MAX_ELEMENTS (1u << 16)
static _Thread_local bool job_is_serial;

/* The running job's cancel flag (backend.h), NULL: never cancelled.  Set per job like
 * job_is_serial; a parallel region copies it into a shared local first (OpenMP's threads have
 * their own thread-locals).  Read at task boundaries only: a task's rows are finished or not
 * begun. */
static _Thread_local const atomic_bool *job_cancel;

static bool cancelled(const atomic_bool *c) { return c != NULL && atomic_load_explicit(c, memory_order_relaxed); }

static int cancelled_error(vkr_error_t *err)
{
    return vkr_proto_error_set(err, VKR_E_CANCELLED, "cancel", "cpu: the job was cancelled while it ran");
}

#define ROWS_PER_TASK 32

static int64_t tasks_for(int64_t planes, int64_t rows, int64_t *chunks)
{
    *chunks = (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
    return planes * *chunks;
}

/* With scratch_floats == 0 nothing is allocated (scratch is NULL) and the call fails only when
 * the job is cancelled (VKR_E_CANCELLED: no task starts once the flag is seen). */
static int run_tasks(int64_t tasks, size_t scratch_floats, task_body_t body, const void *ctx, const char *what, vkr_error_t *err)
{
    const atomic_bool *cancel = job_cancel;
    int failed = 0, stopped = 0;
#pragma omp parallel reduction(| : failed, stopped) if(!job_is_serial)
    {
        float *buf = scratch_floats ? vkr__malloc(scratch_floats * sizeof(float)) : NULL;
        failed = scratch_floats && !buf;
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < tasks; task++) {
            if (failed || stopped)
                continue;
            if (cancelled(cancel))
                stopped = 1;
            else
                body(task, buf, ctx);
        }
        vkr__free(buf);
    }
    if (failed)
        return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "cpu: out of memory for %s", what);
    return stopped ? cancelled_error(err) : VKR_OK;
}

/* ---------------------------------------------------------------- passes along rows */
/* Input columns one block of rows is interleaved over at a time (CPU_BLOCK * this floats of
 * scratch): outputs are cut into chunks whose taps span at most this many columns. */
#define ROW_SPAN 1024
#define CHUNK_OUTPUTS 256

/* A pass along the rows (the W step): indexed taps (linear K = 2, bicubic K = 4) or antialias
 * windows, with its outputs cut into chunks of bounded input span. */
typedef struct {
    bool aa;
    int K;
    const int32_t *idx[4];
    const float *w[4];
    const int32_t *xmin, *xsize;
    const float *aw;
    int mt;
    int64_t o;
    int64_t nchunks, maxspan;
    int64_t *ox, *x0, *x1;   /* chunk c: outputs [ox[c], ox[c+1]), input columns [x0[c], x1[c]) */
    int32_t *off[4];         /* per output: each tap's (or aa's first tap's) column - x0 of its chunk, times 8 */
} rowpass_t;

static void tap_range(const rowpass_t *rp, int64_t o, int64_t *lo, int64_t *hi)
{
    if (rp->aa) {
        *lo = rp->xmin[o];
        *hi = rp->xsize[o] > 0 ? (int64_t)rp->xmin[o] + rp->xsize[o] : rp->xmin[o];
        return;
    }
    *lo = *hi = rp->idx[0][o];
    for (int k = 0; k < rp->K; k++) {
        *lo = rp->idx[k][o] < *lo ? rp->idx[k][o] : *lo;
        *hi = rp->idx[k][o] + 1 > *hi ? rp->idx[k][o] + 1 : *hi;
    }
}

static int rowpass_chunk(rowpass_t *rp, vkr_error_t *err)
{
    const int noff = rp->aa ? 1 : rp->K;
    rp->ox = vkr__malloc((size_t)(3 * rp->o + 3) * sizeof(int64_t) + (size_t)(noff * rp->o) * sizeof(int32_t));
    if (!rp->ox)
        return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "cpu: out of memory for row-pass chunks");
    rp->x0 = rp->ox + rp->o + 1;
    rp->x1 = rp->x0 + rp->o + 1;
    rp->nchunks = 0;
    rp->maxspan = 0;
    for (int64_t a = 0; a < rp->o;) {
        int64_t lo, hi, b = a;
        tap_range(rp, a, &lo, &hi);
        for (b = a + 1; b < rp->o && b - a < CHUNK_OUTPUTS; b++) {
            int64_t l, h;
            tap_range(rp, b, &l, &h);
            l = l < lo ? l : lo;
            h = h > hi ? h : hi;
            if (h - l > ROW_SPAN && b - a >= CPU_BLOCK)
                break;
            lo = l;
            hi = h;
        }
        rp->ox[rp->nchunks] = a;
        rp->x0[rp->nchunks] = lo;
        rp->x1[rp->nchunks] = hi;
        rp->maxspan = hi - lo > rp->maxspan ? hi - lo : rp->maxspan;
        rp->nchunks++;
        a = b;
    }
    rp->ox[rp->nchunks] = rp->o;
    for (int k = 0; k < noff; k++)
        rp->off[k] = (int32_t *)(rp->x1 + rp->o + 1) + k * rp->o;
    for (int64_t c = 0; c < rp->nchunks; c++)
        for (int64_t o = rp->ox[c]; o < rp->ox[c + 1]; o++)
            for (int k = 0; k < noff; k++)
                rp->off[k][o] = (int32_t)(((rp->aa ? rp->xmin[o] : rp->idx[k][o]) - rp->x0[c]) * 8);
    return VKR_OK;
}

/* Runs the pass over 8 rows (all readable; out[r] == NULL: row r's results are not wanted).
 * T: CPU_BLOCK * maxspan floats of scratch. */
static void rowpass_apply8(const rowpass_t *rp, const float *const rows[8], float *const out[8], float *T)
{
    for (int64_t c = 0; c < rp->nchunks; c++) {
        const int64_t x0 = rp->x0[c];
        const float *r8[8];
        for (int r = 0; r < 8; r++)
            r8[r] = rows[r] + x0;
        cpu_interleave8(r8, rp->x1[c] - x0, T);
        if (rp->aa)
            cpu_wpass8_aa(T, rp->off[0], rp->xsize, rp->aw, rp->mt, rp->ox[c], rp->ox[c + 1], out);
        else
            cpu_wpass8_idx(T, rp->K, (const int32_t *const *)rp->off, rp->w, rp->ox[c], rp->ox[c + 1], out);
    }
}

static void rowpass_free(rowpass_t *rp) { vkr__free(rp->ox); }

/* ---------------------------------------------------------------- nearest */
typedef struct {
    const axis_tables_t *t;
    int64_t rows, chunks;
    const float *in;
    float *out;
} nearest_ctx_t;

/* A run of output rows; an output row with the same source row as the one before is a copy. */
static void nearest_task(int64_t task, float *scratch, const void *vctx)
{
    (void)scratch;
    const nearest_ctx_t *c = vctx;
    const axis_tables_t *t = c->t;
    const int64_t in_w = t->in[2], in_hw = t->in[1] * in_w, in_plane = t->in[0] * in_hw, ow_n = t->out[2];
    const int64_t p = task / c->chunks, first = (task % c->chunks) * ROWS_PER_TASK;
    const int64_t last = first + ROWS_PER_TASK < c->rows ? first + ROWS_PER_TASK : c->rows;
    const int32_t *id = t->idx[0], *ih = t->idx[1], *iw = t->idx[2];
    const float *prev = NULL;
    for (int64_t r = first; r < last; r++) {
        const int64_t od = r / t->out[1], oh = r % t->out[1];
        const float *row = c->in + p * in_plane + (int64_t)id[od] * in_hw + (int64_t)ih[oh] * in_w;
        float *dst = c->out + (p * c->rows + r) * ow_n;
        if (row == prev) {
            memcpy(dst, dst - ow_n, (size_t)ow_n * sizeof(float));
            continue;
        }
        for (int64_t ow = 0; ow < ow_n; ow++)
            dst[ow] = row[iw[ow]];
        prev = row;
    }
}

static int run_nearest(const axis_tables_t *t, int64_t planes, const float *in, float *out, vkr_error_t *err)
{
    nearest_ctx_t c = {t, t->out[0] * t->out[1], 0, in, out};
    const int64_t tasks = tasks_for(planes, c.rows, &c.chunks);
    return run_tasks(tasks, 0, nearest_task, &c, "nearest", err);
}

/* ---------------------------------------------------------------- linear family and bicubic */
/* Separable: the W step along rows in blocks of 8 rows (rowpass_t), kept in a ring of W-step
 * rows, then the H step (and for trilinear the D step) as weighted sums of whole rows. */
typedef struct {
    const axis_tables_t *t;
    rowpass_t wp;            /* the W step */
    int K;                   /* taps of the H step */
    const int32_t *hidx[4];
    const float *hw[4];
    int64_t chunks, rows_per_task;
    int stream;              /* non-temporal stores for the output */
    const int32_t *pbase, *prel;   /* the 2-D linear W step by permutes (cpu_wlin_perm), or NULL */
    int64_t pblocks;
    const float *in;
    float *out;
} sep_ctx_t;

/* Outputs of at least this many floats (32 MiB, the last-level cache of the 2-core CI machine) are
 * written with non-temporal stores: bilinear x2 8x3x512^2 takes 20% less time on 2 cores. */
#define STREAM_FLOATS (8 << 20)

#define RING 16              /* W-step rows kept: two halves of CPU_BLOCK rows */

typedef struct {
    float *rows;             /* RING rows of out[2] floats */
    int32_t key[RING];       /* input row held by each slot, or -1 */
    int next;                /* half the next block of rows goes to */
} ring_t;

static size_t sep2d_scratch(const sep_ctx_t *c) { return (size_t)(RING * c->t->out[2] + CPU_BLOCK * c->wp.maxspan); }

static const float *ring_find(const ring_t *R, int64_t ow_n, int32_t h)
{
    for (int i = 0; i < RING; i++)
        if (R->key[i] == h)
            return R->rows + i * ow_n;
    return NULL;
}

/* Computes the W step of up to 8 input rows hs[0..n) of plane src into the next half of the ring. */
static void ring_fill(const sep_ctx_t *c, const float *src, ring_t *R, const int32_t *hs, int n, float *T)
{
    const int64_t in_w = c->t->in[2], ow_n = c->t->out[2];
    const int half = R->next;
    R->next ^= 1;
    const float *rows[8];
    float *out[8];
    for (int r = 0; r < 8; r++) {
        const int slot = half * 8 + r;
        rows[r] = src + (int64_t)hs[r < n ? r : 0] * in_w;
        out[r] = r < n ? R->rows + slot * ow_n : NULL;
        R->key[slot] = r < n ? hs[r] : -1;
    }
    rowpass_apply8(&c->wp, rows, out, T);
}

/* Output rows [first, last) of the 2-D step of plane (or D-slice) src; row oh goes to dst + oh * OW. */
static void sep2d_rows(const sep_ctx_t *c, const float *src, int64_t first, int64_t last, float *dst, float *scratch, int stream)
{
    const int64_t ow_n = c->t->out[2];
    const int K = c->K;
    ring_t R = {scratch, {0}, 0};
    float *T = scratch + RING * ow_n;
    for (int i = 0; i < RING; i++)
        R.key[i] = -1;
    for (int64_t oh = first; oh < last; oh++) {
        const float *rp[4] = {NULL, NULL, NULL, NULL};
        float wt[4];
        bool ok = true;
        for (int k = 0; k < K; k++) {
            const int32_t h = c->hidx[k][oh];
            wt[k] = c->hw[k][oh];
            if (!ring_find(&R, ow_n, h)) {
                /* the next block: this row and the following new rows, in output order */
                int32_t hs[8] = {h};
                int n = 1;
                for (int64_t o = oh; o < last && n < 8; o++)
                    for (int j = 0; j < K && n < 8; j++)
                        if (c->hidx[j][o] > hs[n - 1])
                            hs[n++] = c->hidx[j][o];
                ring_fill(c, src, &R, hs, n, T);
            }
        }
        for (int k = 0; k < K && ok; k++)
            ok = (rp[k] = ring_find(&R, ow_n, c->hidx[k][oh])) != NULL;
        if (!ok) {   /* taps out of order: a block of exactly this row's taps */
            int32_t hs[8];
            int n = 0;
            for (int k = 0; k < K; k++) {
                bool seen = false;
                for (int j = 0; j < n; j++)
                    seen = seen || hs[j] == c->hidx[k][oh];
                if (!seen)
                    hs[n++] = c->hidx[k][oh];
            }
            ring_fill(c, src, &R, hs, n, T);
            for (int k = 0; k < K; k++)
                rp[k] = ring_find(&R, ow_n, c->hidx[k][oh]);
        }
        cpu_wsum_rows(rp, wt, K, ow_n, dst + oh * ow_n, stream);
    }
}

static void sep2d_task(int64_t task, float *scratch, const void *vctx)
{
    const sep_ctx_t *c = vctx;
    const axis_tables_t *t = c->t;
    const int64_t p = task / c->chunks, first = (task % c->chunks) * c->rows_per_task;
    const int64_t last = first + c->rows_per_task < t->out[1] ? first + c->rows_per_task : t->out[1];
    sep2d_rows(c, c->in + p * t->in[1] * t->in[2], first, last, c->out + p * t->out[1] * t->out[2], scratch, c->stream);
}

/* 2-D linear with the W step by permutes: one input row at a time into one of two W-step rows
 * (L1-sized), each computed once per task, then the H step of each output row from them. */
static void perm_wrow(const sep_ctx_t *c, const float *row, float *dst)
{
    cpu_wlin_perm(row, c->pbase, c->prel, c->wp.w[0], c->wp.w[1], c->pblocks, dst);
    const int32_t *i0 = c->wp.idx[0], *i1 = c->wp.idx[1];
    const float *w0 = c->wp.w[0], *w1 = c->wp.w[1];
    for (int64_t o = c->pblocks * 8; o < c->t->out[2]; o++) {
        float a = row[i0[o]] * w0[o];
        const float q = row[i1[o]] * w1[o];
        dst[o] = a + q;
    }
}

static void sep2d_perm_task(int64_t task, float *scratch, const void *vctx)
{
    const sep_ctx_t *c = vctx;
    const axis_tables_t *t = c->t;
    const int64_t W = t->in[2], OW = t->out[2], OH = t->out[1];
    const int64_t p = task / c->chunks, first = (task % c->chunks) * c->rows_per_task;
    const int64_t last = first + c->rows_per_task < OH ? first + c->rows_per_task : OH;
    const float *src = c->in + p * t->in[1] * W;
    float *dst = c->out + p * OH * OW;
    float *slot[2] = {scratch, scratch + OW};
    int32_t key[2] = {-1, -1};
    for (int64_t oh = first; oh < last; oh++) {
        const int32_t h[2] = {c->hidx[0][oh], c->hidx[1][oh]};
        int s[2];
        for (int k = 0; k < 2; k++) {
            s[k] = key[0] == h[k] ? 0 : key[1] == h[k] ? 1 : -1;
            if (s[k] < 0) {
                s[k] = k == 1 ? 1 - s[0] : key[0] == h[1] ? 1 : 0;   /* keep the other tap's row */
                perm_wrow(c, src + (int64_t)h[k] * W, slot[s[k]]);
                key[s[k]] = h[k];

            }
        }
        cpu_wsum2(slot[s[0]], slot[s[1]], c->hw[0][oh], c->hw[1][oh], OW, dst + oh * OW, c->stream);
    }
    if (c->stream)
        cpu_store_fence();
}

/* The permute tables of the W step (block b of 8 outputs: base[2 b + k], rel[16 b + 8 k + j]),
 * or false where some block's taps span 8 columns or more (downscaling) or the row is shorter
 * than 8. */
static bool perm_tables(const sep_ctx_t *c, int32_t **out)
{
    const int64_t W = c->t->in[2], nb = c->t->out[2] / 8;
    *out = NULL;
    if (W < 8 || nb == 0 || !cpu_wlin_perm_available())
        return false;
    int32_t *tb = vkr__malloc((size_t)(18 * nb) * sizeof(int32_t));
    if (!tb)
        return false;
    int32_t *base = tb, *rel = tb + 2 * nb;
    for (int64_t b = 0; b < nb; b++)
        for (int k = 0; k < 2; k++) {
            const int32_t *ix = c->wp.idx[k] + 8 * b;
            int32_t lo = ix[0], hi = ix[0];
            for (int j = 1; j < 8; j++) {
                lo = ix[j] < lo ? ix[j] : lo;
                hi = ix[j] > hi ? ix[j] : hi;
            }
            const int32_t bs = lo + 8 > W ? (int32_t)(W - 8) : lo;
            if (lo < 0 || hi - bs >= 8) {
                vkr__free(tb);
                return false;
            }
            base[2 * b + k] = bs;
            for (int j = 0; j < 8; j++)
                rel[16 * b + 8 * k + j] = ix[j] - bs;
        }
    *out = tb;
    return true;
}

/* trilinear: D-slices of the 2-D step, two kept, then the D step over whole slices. */
static void sep3d_task(int64_t task, float *scratch, const void *vctx)
{
    const sep_ctx_t *c = vctx;
    const axis_tables_t *t = c->t;
    const int64_t in_hw = t->in[1] * t->in[2], slice = t->out[1] * t->out[2];
    const int64_t p = task / c->chunks, first = (task % c->chunks) * ROWS_PER_TASK;
    const int64_t last = first + ROWS_PER_TASK < t->out[0] ? first + ROWS_PER_TASK : t->out[0];
    float *buf[2] = {scratch + sep2d_scratch(c), scratch + sep2d_scratch(c) + slice};
    int32_t key[2] = {-1, -1};
    for (int64_t od = first; od < last; od++) {
        const int32_t d[2] = {t->lin[0].i0[od], t->lin[0].i1[od]};
        int slot[2];
        for (int k = 0; k < 2; k++) {
            slot[k] = key[0] == d[k] ? 0 : key[1] == d[k] ? 1 : -1;
            if (slot[k] < 0) {
                slot[k] = k == 1 ? 1 - slot[0] : key[0] == d[1] ? 1 : 0;   /* keep the other tap's slice */
                sep2d_rows(c, c->in + (p * t->in[0] + d[k]) * in_hw, 0, t->out[1], buf[slot[k]], scratch, 0);
                key[slot[k]] = d[k];
            }
        }
        const float *rows[2] = {buf[slot[0]], buf[slot[1]]};
        const float w[2] = {t->lin[0].l0[od], t->lin[0].l1[od]};
        cpu_wsum_rows(rows, w, 2, slice, c->out + (p * t->out[0] + od) * slice, c->stream);
    }
}

/* The W step alone over `rows` rows of n inputs: 1-D linear, and antialias' horizontal pass. */
typedef struct {
    const rowpass_t *wp;
    int64_t rows, n;
    const float *in;
    float *out;
} rows_ctx_t;

#define ROWS_PER_ROW_TASK 64

static void rows_task(int64_t task, float *scratch, const void *vctx)
{
    const rows_ctx_t *c = vctx;
    const int64_t r0 = task * ROWS_PER_ROW_TASK, r1 = r0 + ROWS_PER_ROW_TASK < c->rows ? r0 + ROWS_PER_ROW_TASK : c->rows;
    for (int64_t g = r0; g < r1; g += 8) {
        const float *rows[8];
        float *out[8];
        for (int r = 0; r < 8; r++) {
            rows[r] = c->in + (g + r < r1 ? g + r : g) * c->n;
            out[r] = g + r < r1 ? c->out + (g + r) * c->wp->o : NULL;
        }
        rowpass_apply8(c->wp, rows, out, scratch);
    }
}

static int run_rows(const rowpass_t *wp, int64_t rows, int64_t n, const float *in, float *out, vkr_error_t *err)
{
    rows_ctx_t c = {wp, rows, n, in, out};
    return run_tasks((rows + ROWS_PER_ROW_TASK - 1) / ROWS_PER_ROW_TASK, (size_t)(CPU_BLOCK * wp->maxspan), rows_task, &c,
                     "row-pass scratch", err);
}

static int run_separable(const axis_tables_t *t, family_t f, int spatial_rank, int64_t planes, const float *in, float *out,
                         vkr_error_t *err)
{
    sep_ctx_t c = {.t = t, .in = in, .out = out};
    c.wp.o = t->out[2];
    if (f == FAMILY_CUBIC) {
        c.K = c.wp.K = 4;
        for (int k = 0; k < 4; k++) {
            c.wp.idx[k] = t->cub[2].idx[k];
            c.wp.w[k] = t->cub[2].coeff[k];
            c.hidx[k] = t->cub[1].idx[k];
            c.hw[k] = t->cub[1].coeff[k];
        }
    } else {
        c.K = c.wp.K = 2;
        c.wp.idx[0] = t->lin[2].i0;
        c.wp.idx[1] = t->lin[2].i1;
        c.wp.w[0] = t->lin[2].l0;
        c.wp.w[1] = t->lin[2].l1;
        c.hidx[0] = t->lin[1].i0;
        c.hidx[1] = t->lin[1].i1;
        c.hw[0] = t->lin[1].l0;
        c.hw[1] = t->lin[1].l1;
    }
    int rc = rowpass_chunk(&c.wp, err);
    if (rc)
        return rc;
    c.stream = planes * t->out[0] * t->out[1] * t->out[2] >= STREAM_FLOATS;
    int32_t *ptab = NULL;
    if (spatial_rank == 1) {
        rc = run_rows(&c.wp, planes, t->in[2], in, out, err);
    } else if (spatial_rank == 2 && f == FAMILY_LINEAR && perm_tables(&c, &ptab)) {
        c.pbase = ptab;
        c.pblocks = t->out[2] / 8;
        c.prel = ptab + 2 * c.pblocks;
        c.rows_per_task = 128;
        while (c.rows_per_task > ROWS_PER_TASK && planes * ((t->out[1] + c.rows_per_task - 1) / c.rows_per_task) < 64)
            c.rows_per_task /= 2;
        c.chunks = (t->out[1] + c.rows_per_task - 1) / c.rows_per_task;
        rc = run_tasks(planes * c.chunks, (size_t)(2 * t->out[2]), sep2d_perm_task, &c, "interpolation scratch rows", err);
    } else if (spatial_rank == 2) {
        /* long runs of output rows: a block of W-step rows shared by two runs is computed twice */
        c.rows_per_task = 128;
        while (c.rows_per_task > ROWS_PER_TASK && planes * ((t->out[1] + c.rows_per_task - 1) / c.rows_per_task) < 64)
            c.rows_per_task /= 2;
        c.chunks = (t->out[1] + c.rows_per_task - 1) / c.rows_per_task;
        const int64_t tasks = planes * c.chunks;
        rc = run_tasks(tasks, sep2d_scratch(&c), sep2d_task, &c, "interpolation scratch rows", err);
    } else {
        const int64_t tasks = tasks_for(planes, t->out[0], &c.chunks);
        rc = run_tasks(tasks, sep2d_scratch(&c) + (size_t)(2 * t->out[1] * t->out[2]), sep3d_task, &c, "trilinear scratch slices",
                       err);
    }
    rowpass_free(&c.wp);
    vkr__free(ptab);
    return rc;
}

/* ---------------------------------------------------------------- linear, channels-last kernel */
/* bilinear / trilinear on the inputs torch 1.13 sends to cpu_upsample_linear_channels_last (C == 1,
 * or every spatial extent 1): per output position, the corners' offsets and weights once, then
 * each channel summed as that kernel does (spec_cl_*: float right to left in the vector channels
 * c < C - C % 8, the double left-to-right sum in the others).  Scalar: such inputs are one plane
 * per batch or one element per plane.  A task is a run of output rows (od, oh) of one batch. */
typedef struct {
    const axis_tables_t *t;
    int rank;                /* 2 or 3 */
    int64_t channels, rows, chunks;
    const float *in;
    float *out;
} linear_cl_ctx_t;

/* C == 1: every channel is the scalar tail.  Per output row, the corners' weights along the row
 * (spec_cl_weight: f32(outer * lw), outer = hl, trilinear f32(dl * hl)) into scratch, then the
 * double sum (cpu_cl_dsum_row).  Corner k = 2 j + t: input row j of (h0, h1) or (d0h0, d0h1,
 * d1h0, d1h1), W tap t. */
static void linear_cl_row_c1(const linear_cl_ctx_t *c, int64_t n, int64_t r, float *scratch)
{
    const axis_tables_t *t = c->t;
    const int64_t in_w = t->in[2], in_hw = t->in[1] * in_w, ow_n = t->out[2];
    const int64_t od = r / t->out[1], oh = r % t->out[1];
    const int R = c->rank == 3 ? 4 : 2;
    const float *plane = c->in + n * t->in[0] * in_hw;
    const float *rows[8];
    const int32_t *idx[8];
    const float *wp[8];
    for (int j = 0; j < R; j++) {
        const bool bd = j & 2, bh = j & 1;
        const int64_t id = bd ? t->lin[0].i1[od] : t->lin[0].i0[od], ih = bh ? t->lin[1].i1[oh] : t->lin[1].i0[oh];
        const float lh = bh ? t->lin[1].l1[oh] : t->lin[1].l0[oh];
        const float outer = c->rank == 3 ? spec_cl_weight(bd ? t->lin[0].l1[od] : t->lin[0].l0[od], lh) : lh;
        for (int tap = 0; tap < 2; tap++) {
            const int k = 2 * j + tap;
            const float *lw = tap ? t->lin[2].l1 : t->lin[2].l0;
            float *w = scratch + k * ow_n;
            for (int64_t ow = 0; ow < ow_n; ow++)
                w[ow] = spec_cl_weight(outer, lw[ow]);
            rows[k] = plane + id * in_hw + ih * in_w;
            idx[k] = tap ? t->lin[2].i1 : t->lin[2].i0;
            wp[k] = w;
        }
    }
    cpu_cl_dsum_row(2 * R, rows, idx, wp, ow_n, c->out + (n * t->out[0] * t->out[1] + r) * ow_n);
}

static void linear_cl_task(int64_t task, float *scratch, const void *vctx)
{
    const linear_cl_ctx_t *c = vctx;
    const axis_tables_t *t = c->t;
    const int64_t in_w = t->in[2], in_hw = t->in[1] * in_w, in_plane = t->in[0] * in_hw;
    const int64_t ow_n = t->out[2], out_plane = t->out[0] * t->out[1] * ow_n, C = c->channels, nvec = C - C % 8;
    const int64_t n = task / c->chunks, first = (task % c->chunks) * ROWS_PER_TASK;
    const int64_t last = first + ROWS_PER_TASK < c->rows ? first + ROWS_PER_TASK : c->rows;
    const int K = c->rank == 3 ? 8 : 4;
    if (C == 1) {
        for (int64_t r = first; r < last; r++)
            linear_cl_row_c1(c, n, r, scratch);
        return;
    }
    for (int64_t r = first; r < last; r++) {
        const int64_t od = r / t->out[1], oh = r % t->out[1];
        for (int64_t ow = 0; ow < ow_n; ow++) {
            int64_t off[8];
            float w[8];
            for (int k = 0; k < K; k++) {   /* corner k: bit 2 the D tap, bit 1 the H tap, bit 0 the W tap */
                const bool bd = k & 4, bh = k & 2, bw = k & 1;
                const int64_t id = bd ? t->lin[0].i1[od] : t->lin[0].i0[od];
                const int64_t ih = bh ? t->lin[1].i1[oh] : t->lin[1].i0[oh];
                const int64_t iw = bw ? t->lin[2].i1[ow] : t->lin[2].i0[ow];
                const float lh = bh ? t->lin[1].l1[oh] : t->lin[1].l0[oh], lw = bw ? t->lin[2].l1[ow] : t->lin[2].l0[ow];
                off[k] = id * in_hw + ih * in_w + iw;
                if (c->rank == 3) {
                    const float ld = bd ? t->lin[0].l1[od] : t->lin[0].l0[od];
                    w[k] = spec_cl_weight(spec_cl_weight(ld, lh), lw);
                } else {
                    w[k] = spec_cl_weight(lh, lw);
                }
            }
            for (int64_t ch = 0; ch < C; ch++) {
                const float *src = c->in + (n * C + ch) * in_plane;
                float v;
                if (ch < nvec) {
                    v = spec_mul(src[off[K - 1]], w[K - 1]);
                    for (int k = K - 2; k >= 0; k--)
                        v = spec_cl_vec_step(v, src[off[k]], w[k]);
                } else {
                    double a = (double)src[off[0]] * (double)w[0];
                    for (int k = 1; k < K; k++)
                        a = spec_cl_tail_step(a, src[off[k]], w[k]);
                    v = (float)a;
                }
                c->out[(n * C + ch) * out_plane + r * ow_n + ow] = v;
            }
        }
    }
}

static int run_linear_cl(const axis_tables_t *t, int rank, int64_t batch, int64_t channels, const float *in, float *out,
                         vkr_error_t *err)
{
    linear_cl_ctx_t c = {t, rank, channels, t->out[0] * t->out[1], 0, in, out};
    const int64_t tasks = tasks_for(batch, c.rows, &c.chunks);
    return run_tasks(tasks, channels == 1 ? (size_t)(8 * t->out[2]) : 0, linear_cl_task, &c, "channels-last linear", err);
}

/* ---------------------------------------------------------------- area */
/* Blocks of 8 output rows (over planes, D and H) as vector lanes: lane r sums its window's input
 * rows in (d, h) order, each left to right, into a running sum per output column; a lane whose
 * window has fewer rows adds rows of zeros (x + 0 == x for a running sum that starts at +0, which
 * can never become -0). */
typedef struct {
    const axis_tables_t *t;
    int64_t planes, rows;
    int64_t nchunks, maxspan;
    const int64_t *ow, *x0, *x1;
    const float *in;
    float *out;
} area_ctx_t;

#define AREA_BLOCKS_PER_TASK 4

static void area_task(int64_t task, float *scratch, const void *vctx)
{
    const area_ctx_t *c = vctx;
    const axis_tables_t *t = c->t;
    const int64_t in_w = t->in[2], in_hw = t->in[1] * in_w, in_plane = t->in[0] * in_hw, ow_n = t->out[2];
    float *T = scratch, *zero = T + CPU_BLOCK * c->maxspan, *A = zero + c->maxspan;
    memset(zero, 0, (size_t)c->maxspan * sizeof(float));
    for (int64_t g = task * AREA_BLOCKS_PER_TASK * 8; g < (task + 1) * AREA_BLOCKS_PER_TASK * 8 && g < c->rows; g += 8) {
        const float *base[8];
        float *out[8];
        float kd[8], kh[8];
        int32_t steps[8], khi[8], S = 0;
        for (int r = 0; r < 8; r++) {
            const int64_t R = g + r < c->rows ? g + r : g;
            const int64_t p = R / (t->out[0] * t->out[1]), od = (R / t->out[1]) % t->out[0], oh = R % t->out[1];
            khi[r] = t->len[1][oh];
            kd[r] = (float)t->len[0][od];
            kh[r] = (float)khi[r];
            steps[r] = g + r < c->rows ? t->len[0][od] * khi[r] : 0;
            base[r] = c->in + p * in_plane + (int64_t)t->start[0][od] * in_hw + (int64_t)t->start[1][oh] * in_w;
            out[r] = g + r < c->rows ? c->out + R * ow_n : NULL;
            S = steps[r] > S ? steps[r] : S;
        }
        for (int64_t ch = 0; ch < c->nchunks; ch++) {
            const int64_t a = c->ow[ch], m = c->ow[ch + 1] - a, x0 = c->x0[ch];
            memset(A, 0, (size_t)(8 * m) * sizeof(float));
            for (int32_t s = 0; s < S; s++) {
                const float *rows[8];
                for (int r = 0; r < 8; r++)
                    rows[r] = s < steps[r] ? base[r] + (int64_t)(s / khi[r]) * in_hw + (int64_t)(s % khi[r]) * in_w + x0 : zero;
                cpu_interleave8(rows, c->x1[ch] - x0, T);
                cpu_area_acc8(T, x0, t->start[2], t->len[2], a, (int)m, A);
            }
            cpu_area_finish8(A, kd, kh, t->len[2], a, (int)m, out);
        }
    }
}

static int run_area(const axis_tables_t *t, int64_t planes, const float *in, float *out, vkr_error_t *err)
{
    const int64_t in_w = t->in[2], in_hw = t->in[1] * in_w, in_plane = t->in[0] * in_hw, ow_n = t->out[2];
    if (t->out[0] == 1 && t->out[1] == 1 && t->out[2] == 1) {
        /* adaptive_avg_pool with an all-ones output is torch's mean(): cascade sum / n */
        const atomic_bool *cancel = job_cancel;
        int stopped = 0;
#pragma omp parallel for schedule(static) reduction(| : stopped) if(!job_is_serial)
        for (int64_t p = 0; p < planes; p++) {
            if (stopped || (stopped = cancelled(cancel)))
                continue;
            out[p] = spec_area_mean(spec_cascade_sum(in + p * in_plane, (int)in_plane), 1, 1, (int)in_plane);
        }
        return stopped ? cancelled_error(err) : VKR_OK;
    }
    /* column chunks: at most CHUNK_OUTPUTS outputs, input span at most ROW_SPAN (or 8 outputs) */
    int64_t *ow = vkr__malloc((size_t)(3 * ow_n + 3) * sizeof(int64_t));
    if (!ow)
        return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "cpu: out of memory for area column chunks");
    area_ctx_t c = {t, planes, planes * t->out[0] * t->out[1], 0, 0, ow, ow + ow_n + 1, ow + 2 * ow_n + 2, in, out};
    int64_t *x0 = ow + ow_n + 1, *x1 = x0 + ow_n + 1;
    for (int64_t a = 0, b; a < ow_n; a = b) {
        const int64_t lo = t->start[2][a];
        int64_t hi = lo + t->len[2][a];
        for (b = a + 1; b < ow_n && b - a < CHUNK_OUTPUTS; b++) {
            const int64_t h = (int64_t)t->start[2][b] + t->len[2][b] > hi ? (int64_t)t->start[2][b] + t->len[2][b] : hi;
            const int64_t l = t->start[2][b] < lo ? t->start[2][b] : lo;
            if (h - l > ROW_SPAN && b - a >= CPU_BLOCK)
                break;
            hi = h;
        }
        ow[c.nchunks] = a;
        x0[c.nchunks] = lo;
        x1[c.nchunks] = hi;
        c.maxspan = hi - lo > c.maxspan ? hi - lo : c.maxspan;
        c.nchunks++;
    }
    ow[c.nchunks] = ow_n;
    const int64_t tasks = (c.rows + 8 * AREA_BLOCKS_PER_TASK - 1) / (8 * AREA_BLOCKS_PER_TASK);
    int rc = run_tasks(tasks, (size_t)((CPU_BLOCK + 1) * c.maxspan + 8 * CHUNK_OUTPUTS), area_task, &c, "area scratch", err);
    vkr__free(ow);
    return rc;
}

/* ---------------------------------------------------------------- antialias (2-D, separable) */
/* PyTorch 1.13 runs both passes even where an axis keeps its size (its weights then need not be
 * the identity: a scale_factor of 1.05 on 8 pixels gives 8 outputs with 1/1.05 weights).  A task
 * is a run of output rows of one plane: the horizontal pass of the input rows they need, in blocks
 * of 8 rows, then the vertical pass as weighted sums of those rows (the overlap between tasks is
 * computed twice, to the same values). */
typedef struct {
    const axis_tables_t *t;
    rowpass_t wp;
    int64_t chunks, max_rows;
    const float *in;
    float *out;
} aa_ctx_t;

static void aa_rows_of(const axis_tables_t *t, int64_t first, int64_t last, int64_t *lo, int64_t *hi)
{
    *lo = INT64_MAX;
    *hi = 0;
    for (int64_t oh = first; oh < last; oh++)
        if (t->xsize[1][oh] > 0) {
            *lo = t->xmin[1][oh] < *lo ? t->xmin[1][oh] : *lo;
            *hi = (int64_t)t->xmin[1][oh] + t->xsize[1][oh] > *hi ? (int64_t)t->xmin[1][oh] + t->xsize[1][oh] : *hi;
        }
    if (*lo > *hi)
        *lo = *hi;
}

static void aa_task(int64_t task, float *scratch, const void *vctx)
{
    const aa_ctx_t *c = vctx;
    const axis_tables_t *t = c->t;
    const int64_t H = t->in[1], W = t->in[2], OH = t->out[1], OW = t->out[2], mt = t->max_taps[1];
    const int64_t p = task / c->chunks, first = (task % c->chunks) * ROWS_PER_TASK;
    const int64_t last = first + ROWS_PER_TASK < OH ? first + ROWS_PER_TASK : OH;
    int64_t lo, hi;
    aa_rows_of(t, first, last, &lo, &hi);
    float *rows_h = scratch, *T = scratch + c->max_rows * OW;
    const float *src = c->in + p * H * W;
    for (int64_t g = lo; g < hi; g += 8) {            /* horizontal: rows [lo, hi) of W -> OW */
        const float *rows[8];
        float *dst[8];
        for (int r = 0; r < 8; r++) {
            rows[r] = src + (g + r < hi ? g + r : g) * W;
            dst[r] = g + r < hi ? rows_h + (g + r - lo) * OW : NULL;
        }
        rowpass_apply8(&c->wp, rows, dst, T);
    }
    for (int64_t oh = first; oh < last; oh++) {       /* vertical: columns of H -> OH */
        const int32_t n = t->xsize[1][oh];
        const float *base = rows_h + (n > 0 ? (int64_t)t->xmin[1][oh] - lo : 0) * OW;
        cpu_wsum_strided(base, OW, t->aa_w[1] + oh * mt, n, OW, c->out + (p * OH + oh) * OW);
    }
}

static int run_antialias(const axis_tables_t *t, int64_t planes, const float *in, float *out, vkr_error_t *err)
{
    aa_ctx_t c = {.t = t, .in = in, .out = out};
    c.wp = (rowpass_t){.aa = true, .xmin = t->xmin[2], .xsize = t->xsize[2], .aw = t->aa_w[2], .mt = t->max_taps[2], .o = t->out[2]};
    int rc = rowpass_chunk(&c.wp, err);
    if (rc)
        return rc;
    const int64_t tasks = tasks_for(planes, t->out[1], &c.chunks);
    for (int64_t k = 0; k < c.chunks; k++) {
        int64_t lo, hi, last = (k + 1) * ROWS_PER_TASK < t->out[1] ? (k + 1) * ROWS_PER_TASK : t->out[1];
        aa_rows_of(t, k * ROWS_PER_TASK, last, &lo, &hi);
        c.max_rows = hi - lo > c.max_rows ? hi - lo : c.max_rows;
    }
    rc = run_tasks(tasks, (size_t)(c.max_rows * t->out[2] + CPU_BLOCK * c.wp.maxspan), aa_task, &c, "the antialias intermediate rows",
                   err);
    rowpass_free(&c.wp);
    return rc;
}

static int cpu_interpolate(vkr_backend_s *self, const vkr_interp_plan_t *plan, const float *in, float *out, const atomic_bool *cancel,
                           vkr_error_t *err)
{
    (void)self;
    if (plan->out_elements == 0)
        return VKR_OK;
    if (cancelled(cancel))
        return cancelled_error(err);
    job_is_serial = plan->in_elements + plan->out_elements <= SERIAL_JOB_MAX_ELEMENTS;
    job_cancel = cancel;
    const family_t f = family_of(plan);
    axis_tables_t t;
    int rc = tables_build(plan, f, &t, err);
    if (rc)
        return rc;
    const int64_t planes = plan->batch * plan->channels;
    switch (f) {
    case FAMILY_NEAREST: rc = run_nearest(&t, planes, in, out, err); break;
    case FAMILY_LINEAR:
        if (t.channels_last) {   /* spatial_rank 2 or 3 */
            rc = run_linear_cl(&t, plan->spatial_rank, plan->batch, plan->channels, in, out, err);
            break;
        }
        /* fall through */
    case FAMILY_CUBIC: rc = run_separable(&t, f, plan->spatial_rank, planes, in, out, err); break;
    case FAMILY_AREA: rc = run_area(&t, planes, in, out, err); break;
    case FAMILY_ANTIALIAS: rc = run_antialias(&t, planes, in, out, err); break;
    }
    vkr__free(t.block);
    return rc;
}

/* ---------------------------------------------------------------- grid ops */
/* affine_grid's base tables, one per spatial axis (outer to inner), in one block. */
static int affine_bases(const vkr_grid_plan_t *plan, float *base[3], vkr_error_t *err)
{
    int64_t total = 0;
    for (int d = 0; d < plan->spatial_rank; d++)
        total += plan->out_size[d];
    float *block = vkr__malloc((size_t)(total ? total : 1) * sizeof(float));
    if (!block)
        return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "cpu: out of memory for affine_grid's base coordinates");
    for (int d = 0; d < plan->spatial_rank; d++) {
        base[d] = d ? base[d - 1] + plan->out_size[d - 1] : block;
        vkr_spec_affine_base(plan->out_size[d], plan->align_corners, base[d]);
    }
    return VKR_OK;
}

/* The sampling point of output position p (flattened over the output extents) of batch n:
 * from the grid tensor, or from theta and the base tables (affine_sample, affine_grid). */
static void grid_point(const vkr_grid_plan_t *plan, const float *coords, float *const base[3], int64_t n, int64_t p, int64_t points,
                       float g[3])
{
    const int sr = plan->spatial_rank;
    if (plan->op == VKR_OP_GRID_SAMPLE) {
        const float *q = coords + (n * points + p) * sr;
        for (int k = 0; k < sr; k++)
            g[k] = q[k];
        return;
    }
    const float *t = coords + n * sr * (sr + 1);   /* theta[n]: sr rows of sr + 1 */
    const int64_t W = plan->out_size[sr - 1], H = plan->out_size[sr - 2];
    const float x = base[sr - 1][p % W], y = base[sr - 2][(p / W) % H];
    if (sr == 2) {
        for (int k = 0; k < 2; k++)
            g[k] = spec_affine_2d(x, y, t[3 * k], t[3 * k + 1], t[3 * k + 2]);
    } else {
        const float z = base[0][p / (W * H)];
        for (int k = 0; k < 3; k++)
            g[k] = spec_affine_3d(x, y, z, t[4 * k], t[4 * k + 1], t[4 * k + 2], t[4 * k + 3]);
    }
}

/* 2-D bilinear and bicubic grid_sample: the taps of every point of a batch prepared once into
 * planar arrays, then applied to blocks of GS_CHANNELS channels over tiles of points, 8 points per
 * vector.  Bilinear keeps 4 offsets and 4 weights per point.  Bicubic keeps its 16 taps as 4 row
 * offsets (y * W, or -1 outside) and 4 columns (x, or -1 outside): spec_gs_prepare_2d's taps are
 * offset(row i, column j), valid where both are, which is checked point by point (a mismatch
 * sends the batch down the generic path).  A point the spec gives NaN (prepare returns 0: a
 * non-finite coordinate, sec. "Non-finite grid values" of the README) gets no valid tap and NaN
 * weights, hence NaN, reading nothing. */
#define GS_TILE 4096
#define GS_CHANNELS 4
/* With C >= GS_CB_MIN_CHANNELS the batch is first copied channel-blocked (8 channels of a pixel
 * side by side, cpu_interleave8, GS_CB_CHUNK pixels a step); then each tile of GS_CB_TILE points
 * is prepared into a record on the stack (no per-batch arrays, prepared once for all channels)
 * and applied to all channel blocks, point by point, 8 channels a vector load (cpu_gs_*_cb).  The sums are the
 * spec's, lane by lane; cancellation is checked per tile as in the planar path. */
#define GS_CB_MIN_CHANNELS 8
#define GS_CB_MAX_BYTES ((uint64_t)256 << 20)   /* the copy is one batch's input: bigger ones stay planar */
#define GS_CB_CHUNK 16384
#define GS_CB_TILE 256
/* The tile's outputs go through a buffer on the stack, GS_CB_OCH channels at a time, each
 * channel's row GS_CB_OSTRIDE floats apart (not a multiple of 4 KiB: rows that far apart would
 * share L1 sets), then out one contiguous row per channel, instead of 8 x nb output planes
 * (exactly a plane apart) written at once in 16-byte pieces. */
#define GS_CB_OCH 32
#define GS_CB_OSTRIDE (GS_CB_TILE + 16)

/* Point p of batch n prepared into its group's record (ip, fp: entry 0 of the point, entries 8
 * apart): bilinear 4 offsets and weights, bicubic 4 rows, 4 columns and 8 weights.  Returns 0
 * where the bicubic taps are not rows x columns (the caller takes the generic path). */
static int gs_prepare_point(const vkr_grid_plan_t *plan, const float *coords, float *const base[3], int64_t n, int64_t p, int64_t points,
                            bool cubic, int32_t *ip, float *fp)
{
    const int H = (int)plan->in_size[0], W = (int)plan->in_size[1];
    float g[3], pw[8];
    int tap[16];
    grid_point(plan, coords, base, n, p, points, g);
    const int taps = spec_gs_prepare_2d(H, W, g[0], g[1], plan->mode, plan->padding_mode, plan->align_corners, tap, pw);
    if (!cubic) {
        for (int k = 0; k < 4; k++) {
            ip[8 * k] = taps ? tap[k] : -1;
            fp[8 * k] = taps ? pw[k] : spec_nan();
        }
        return 1;
    }
    int ok = 1;
    int32_t row[4] = {-1, -1, -1, -1}, col[4] = {-1, -1, -1, -1};
    for (int i = 0; i < 4 && taps; i++)
        for (int j = 0; j < 4; j++)
            if (tap[4 * i + j] >= 0) {
                if (row[i] < 0)
                    row[i] = tap[4 * i + j] / W * W;
                col[j] = tap[4 * i + j] - row[i];
            }
    for (int i = 0; i < 4 && taps; i++)
        for (int j = 0; j < 4; j++)
            ok &= tap[4 * i + j] == (row[i] >= 0 && col[j] >= 0 ? row[i] + col[j] : -1);
    for (int k = 0; k < 4; k++) {
        ip[8 * k] = row[k];
        ip[8 * (4 + k)] = col[k];
    }
    for (int k = 0; k < 8; k++)
        fp[8 * k] = taps ? pw[k] : spec_nan();
    return ok;
}

static int grid_soa_2d(const vkr_grid_plan_t *plan, const float *image, const float *coords, float *const base[3], int64_t points,
                       int64_t in_plane, float *out, bool *separable, vkr_error_t *err)
{
    const int64_t C = plan->channels;
    const bool cubic = plan->mode == SPEC_GS_BICUBIC;
    const int nw = cubic ? 8 : 4;   /* int arrays = float arrays = nw */
    const int64_t G = 8 * nw, groups = (points + 7) / 8;   /* records interleaved in groups of 8 points */
    const int64_t tiles = (points + GS_TILE - 1) / GS_TILE;
    const int64_t nb = (C + 7) / 8, bstride = (in_plane + 1) * 8;   /* pixel in_plane of a block: 0s */
    const bool cb = C >= GS_CB_MIN_CHANNELS && (uint64_t)(nb * bstride) * sizeof(float) <= GS_CB_MAX_BYTES;
    float *blocks = cb ? vkr__malloc((size_t)(nb * bstride) * sizeof(float)) : NULL;
    for (int64_t b = 0; blocks && b < nb; b++)
        memset(blocks + b * bstride + in_plane * 8, 0, 8 * sizeof(float));
    int32_t *ints = blocks ? NULL : vkr__malloc((size_t)(groups * G) * 2 * sizeof(int32_t));
    if (!blocks && !ints)
        return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "cpu: out of memory for %lld prepared grid points", (long long)points);
    float *flts = ints ? (float *)(ints + groups * G) : NULL;
    const atomic_bool *cancel = job_cancel;
    int ok = 1, stopped = 0;
    for (int64_t n = 0; n < plan->batch && ok && !stopped; n++) {
        if ((stopped = cancelled(cancel)))
            break;
        if (blocks) {
            const int64_t chunks = (in_plane + GS_CB_CHUNK - 1) / GS_CB_CHUNK;
#pragma omp parallel for schedule(static) collapse(2) reduction(| : stopped) if(!job_is_serial)
            for (int64_t b = 0; b < nb; b++) {
                for (int64_t ch = 0; ch < chunks; ch++) {
                    if (stopped || (stopped = cancelled(cancel)))
                        continue;
                    const int64_t x0 = ch * GS_CB_CHUNK, len = x0 + GS_CB_CHUNK < in_plane ? GS_CB_CHUNK : in_plane - x0;
                    const float *rows[8];
                    for (int r = 0; r < 8; r++) {   /* lanes past C repeat channel C - 1 and are not stored */
                        const int64_t c = 8 * b + r < C ? 8 * b + r : C - 1;
                        rows[r] = image + (n * C + c) * in_plane + x0;
                    }
                    cpu_interleave8(rows, len, blocks + b * bstride + x0 * 8);
                }
            }
            if (stopped)
                break;
            const int64_t cb_tiles = (points + GS_CB_TILE - 1) / GS_CB_TILE;
#pragma omp parallel for schedule(static) reduction(| : stopped) reduction(& : ok) if(!job_is_serial)
            for (int64_t tile = 0; tile < cb_tiles; tile++) {
                if (stopped || !ok || (stopped = cancelled(cancel)))
                    continue;
                const int64_t p0 = tile * GS_CB_TILE, len = p0 + GS_CB_TILE < points ? GS_CB_TILE : points - p0;
                int32_t ti[GS_CB_TILE * 8];   /* this tile's prepared points, as grid_soa_2d's records */
                float tf[GS_CB_TILE * 8];
                for (int64_t q = 0; q < len; q++)
                    ok &= gs_prepare_point(plan, coords, base, n, p0 + q, points, cubic, ti + q / 8 * G + q % 8, tf + q / 8 * G + q % 8);
                const int32_t *iv[8];
                const float *fv[8];
                for (int k = 0; k < nw; k++) {
                    iv[k] = ti + 8 * k;
                    fv[k] = tf + 8 * k;
                }
                float obuf[GS_CB_OCH * GS_CB_OSTRIDE];
                for (int64_t c0 = 0; c0 < C; c0 += GS_CB_OCH) {
                    const int nc = C - c0 < GS_CB_OCH ? (int)(C - c0) : GS_CB_OCH;
                    if (cubic)
                        cpu_gs_bicubic_cb(nc, blocks + c0 / 8 * bstride, bstride, in_plane, iv, fv, G, len, obuf, GS_CB_OSTRIDE);
                    else
                        cpu_gs_bilinear_cb(nc, blocks + c0 / 8 * bstride, bstride, in_plane, iv, fv, G, len, obuf, GS_CB_OSTRIDE);
                    for (int c = 0; c < nc; c++)
                        memcpy(out + (n * C + c0 + c) * points + p0, obuf + c * GS_CB_OSTRIDE, (size_t)len * sizeof(float));
                }
            }
            continue;
        }
#pragma omp parallel for schedule(static) reduction(& : ok) if(!job_is_serial)
        for (int64_t p = 0; p < points; p++)
            ok &= gs_prepare_point(plan, coords, base, n, p, points, cubic, ints + p / 8 * G + p % 8, flts + p / 8 * G + p % 8);
        if (!ok)
            break;
        const int64_t cblocks = (C + GS_CHANNELS - 1) / GS_CHANNELS;
#pragma omp parallel for schedule(static) collapse(2) reduction(| : stopped) if(!job_is_serial)
        for (int64_t cbk = 0; cbk < cblocks; cbk++) {
            for (int64_t tile = 0; tile < tiles; tile++) {
                if (stopped || (stopped = cancelled(cancel)))
                    continue;
                const int64_t p0 = tile * GS_TILE, len = p0 + GS_TILE < points ? GS_TILE : points - p0;
                const int64_t c0 = cbk * GS_CHANNELS, nc = c0 + GS_CHANNELS < C ? GS_CHANNELS : C - c0;
                const int32_t *iv[8];
                const float *fv[8];
                for (int k = 0; k < nw; k++) {
                    iv[k] = ints + p0 / 8 * G + 8 * k;
                    fv[k] = flts + p0 / 8 * G + 8 * k;
                }
                const float *src[GS_CHANNELS];
                float *dst[GS_CHANNELS];
                for (int64_t k = 0; k < nc; k++) {
                    src[k] = image + (n * C + c0 + k) * in_plane;
                    dst[k] = out + (n * C + c0 + k) * points + p0;
                }
                if (cubic)
                    cpu_gs_bicubic((int)nc, src, iv, fv, G, len, dst);
                else
                    cpu_gs_bilinear((int)nc, src, iv, fv, G, in_plane, len, dst);
            }
        }
    }
    vkr__free(blocks);
    vkr__free(ints);
    *separable = ok || stopped;
    return stopped ? cancelled_error(err) : VKR_OK;
}

static int cpu_grid(vkr_backend_s *self, const vkr_grid_plan_t *plan, const float *image, const float *coords, float *out,
                    const atomic_bool *cancel, vkr_error_t *err)
{
    (void)self;
    if (plan->out_elements == 0)
        return VKR_OK;
    if (cancelled(cancel))
        return cancelled_error(err);
    job_is_serial = plan->in_elements + plan->aux_elements + plan->out_elements <= SERIAL_JOB_MAX_ELEMENTS;
    job_cancel = cancel;
    int stopped = 0;
    const int sr = plan->spatial_rank;
    float *base[3] = {NULL, NULL, NULL};
    if (plan->op != VKR_OP_GRID_SAMPLE) {
        int rc = affine_bases(plan, base, err);
        if (rc)
            return rc;
    }
    int64_t points = 1, in_plane = 1;
    for (int d = 0; d < sr; d++) {
        points *= plan->out_size[d];
        in_plane *= plan->in_size[d];
    }
    const int D = sr == 3 ? (int)plan->in_size[0] : 1, H = (int)plan->in_size[sr - 2], W = (int)plan->in_size[sr - 1];
    const int64_t C = plan->channels;
    if (plan->op == VKR_OP_AFFINE_GRID) {
#pragma omp parallel for schedule(static) reduction(| : stopped) if(!job_is_serial)
        for (int64_t np = 0; np < plan->batch * points; np++) {
            if (stopped || (np % GS_TILE == 0 && (stopped = cancelled(cancel))))
                continue;
            float g[3];
            grid_point(plan, coords, base, np / points, np % points, points, g);
            for (int k = 0; k < sr; k++)
                out[np * sr + k] = g[k];
        }
        vkr__free(base[0]);
        return stopped ? cancelled_error(err) : VKR_OK;
    }
    if (sr == 2 && (plan->mode == SPEC_GS_BILINEAR || plan->mode == SPEC_GS_BICUBIC)) {
        bool done = true;
        int rc = grid_soa_2d(plan, image, coords, base, points, in_plane, out, &done, err);
        if (rc || done) {
            vkr__free(base[0]);
            return rc;
        }
    }
    /* Per batch: prepare every point's taps once, then sweep channel by channel so that each
     * sweep reads a single input plane. */
    typedef struct {
        int32_t taps, tap[16];
        float w[8];
    } prepared_t;
    prepared_t *prep = vkr__malloc((size_t)points * sizeof *prep);
    if (!prep) {
        vkr__free(base[0]);
        return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "cpu: out of memory for %lld prepared grid points", (long long)points);
    }
    for (int64_t n = 0; n < plan->batch && !stopped; n++) {
        if ((stopped = cancelled(cancel)))
            break;
#pragma omp parallel for schedule(static) if(!job_is_serial)
        for (int64_t p = 0; p < points; p++) {
            float g[3];
            prepared_t *q = &prep[p];
            grid_point(plan, coords, base, n, p, points, g);
            q->taps = sr == 2 ? spec_gs_prepare_2d(H, W, g[0], g[1], plan->mode, plan->padding_mode, plan->align_corners, q->tap, q->w)
                              : spec_gs_prepare_3d(D, H, W, g[0], g[1], g[2], plan->mode, plan->padding_mode, plan->align_corners, q->tap,
                                                   q->w);
        }
#pragma omp parallel for schedule(static) collapse(2) reduction(| : stopped) if(!job_is_serial)
        for (int64_t c = 0; c < C; c++) {
            for (int64_t blk = 0; blk < (points + 4095) / 4096; blk++) {
                if (stopped || (stopped = cancelled(cancel)))
                    continue;
                const float *src = image + (n * C + c) * in_plane;
                float *dst = out + (n * C + c) * points;
                const int64_t end = (blk + 1) * 4096 < points ? (blk + 1) * 4096 : points;
                for (int64_t p = blk * 4096; p < end; p++)
                    dst[p] = sr == 2 ? spec_gs_apply_2d(src, prep[p].taps, prep[p].tap, prep[p].w)
                                     : spec_gs_apply_3d(src, prep[p].taps, prep[p].tap, prep[p].w);
            }
        }
    }
    vkr__free(prep);
    vkr__free(base[0]);
    return stopped ? cancelled_error(err) : VKR_OK;
}

static unsigned cpu_validation_messages(vkr_backend_s *self)
{
    (void)self;
    return 0;
}

static void cpu_destroy(vkr_backend_s *self) { vkr__free(self); }

int vkr__backend_cpu_create(vkr_backend_s **out, vkr_error_t *err)
{
    vkr_backend_s *b = vkr__calloc(1, sizeof *b);
    if (!b)
        return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "cpu: out of memory");
    b->name = "cpu";
    strcpy(b->device_name, "cpu");
    b->interpolate = cpu_interpolate;
    b->grid = cpu_grid;
    b->validation_messages = cpu_validation_messages;
    b->destroy = cpu_destroy;
    *out = b;
    return VKR_OK;
}
