/* The CPU backend: F.interpolate, grid_sample and affine_grid on the host, bit-exact with PyTorch
 * 1.13's portable kernels (within the README's rules).  It computes no coordinate of its own:
 * every index and weight comes from the kernel spec (shaders/spec/): per-axis tables for
 * interpolate and affine_grid, the per-point grid rules for grid_sample, and the spec's sums in
 * PyTorch's order. */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "backend.h"
#include "spec/axis_tables.h"
#include "spec/cascade_sum.h"
#include "spec/grid_rules.h"
#include "spec/interp_rules.h"

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
            vkr_spec_nearest_indices(n, o, plan->mode == VKR_MODE_NEAREST_EXACT, has_scale, scale, t->idx[a]);
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

/* Work is split over (plane, block of output rows) tasks across OpenMP's threads; each task
 * keeps the intermediate rows it computed (a W-pass row of an input row, or a whole H x W slice
 * for trilinear) and reuses them for the next output row.  Every output element still gets
 * exactly PyTorch's operations in PyTorch's order: an intermediate is the same value whichever
 * output row first asks for it. */
#define ROWS_PER_TASK 32

static int64_t tasks_for(int64_t planes, int64_t rows, int64_t *chunks)
{
    *chunks = (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
    return planes * *chunks;
}

/* ---------------------------------------------------------------- nearest */
static void run_nearest(const axis_tables_t *t, int64_t planes, const float *in, float *out)
{
    const int64_t in_w = t->in[2], in_hw = t->in[1] * in_w, in_plane = t->in[0] * in_hw;
    const int64_t rows = t->out[0] * t->out[1], ow_n = t->out[2];
    const int32_t *id = t->idx[0], *ih = t->idx[1], *iw = t->idx[2];
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < planes * rows; r++) {
        const int64_t p = r / rows, od = (r % rows) / t->out[1], oh = r % t->out[1];
        const float *row = in + p * in_plane + (int64_t)id[od] * in_hw + (int64_t)ih[oh] * in_w;
        float *dst = out + r * ow_n;
        for (int64_t ow = 0; ow < ow_n; ow++)
            dst[ow] = row[iw[ow]];
    }
}

/* ---------------------------------------------------------------- linear family */
/* The W step of one input row into dst[0..ow_n). */
static void lerp_row_w(const float *row, const vkr_linear_taps_t *w, int64_t ow_n, float *dst)
{
    for (int64_t ow = 0; ow < ow_n; ow++)
        dst[ow] = spec_lerp(row[w->i0[ow]], row[w->i1[ow]], w->l0[ow], w->l1[ow]);
}

/* A cache of intermediate rows (or slices) keyed by their source index. */
typedef struct {
    float *buf;
    int64_t len;          /* floats per entry */
    int32_t key[4];
    int next;
} row_cache_t;

/* The entry for source index k, computing it with fill(k, dst, ctx) when absent. */
static const float *cache_get(row_cache_t *c, int slots, int32_t k, void (*fill)(int32_t, float *, const void *), const void *ctx)
{
    for (int i = 0; i < slots; i++)
        if (c->key[i] == k)
            return c->buf + i * c->len;
    int i = c->next;
    c->next = (c->next + 1) % slots;
    c->key[i] = k;
    fill(k, c->buf + i * c->len, ctx);
    return c->buf + i * c->len;
}

typedef struct {
    const float *plane;   /* input plane (or D-slice) */
    int64_t in_w, in_hw;
    const axis_tables_t *t;
} fill_ctx_t;

static void fill_w_row(int32_t h, float *dst, const void *ctx)
{
    const fill_ctx_t *f = ctx;
    lerp_row_w(f->plane + h * f->in_w, &f->t->lin[2], f->t->out[2], dst);
}

/* One output row of the 2-D step: lerp_h(W-row h0, W-row h1). */
static void lerp_row_h(const float *r0, const float *r1, float l0, float l1, int64_t n, float *dst)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = spec_lerp(r0[i], r1[i], l0, l1);
}

/* A whole H x W output slice of the 2-D step for input slice d (used by trilinear). */
static void fill_hw_slice(int32_t d, float *dst, const void *ctx)
{
    const fill_ctx_t *f = ctx;
    const axis_tables_t *t = f->t;
    const int64_t ow_n = t->out[2];
    fill_ctx_t rows = {f->plane + d * f->in_hw, f->in_w, f->in_hw, t};
    float *r = dst + t->out[1] * ow_n;              /* two W-rows of scratch after the slice */
    row_cache_t c = {r, ow_n, {-1, -1, -1, -1}, 0};
    for (int64_t oh = 0; oh < t->out[1]; oh++) {
        const float *a = cache_get(&c, 2, t->lin[1].i0[oh], fill_w_row, &rows);
        const float *b = cache_get(&c, 2, t->lin[1].i1[oh], fill_w_row, &rows);
        lerp_row_h(a, b, t->lin[1].l0[oh], t->lin[1].l1[oh], ow_n, dst + oh * ow_n);
    }
}

static int run_linear(const axis_tables_t *t, int spatial_rank, int64_t planes, const float *in, float *out, vkr_error_t *err)
{
    const int64_t in_w = t->in[2], in_hw = t->in[1] * in_w, in_plane = t->in[0] * in_hw;
    const int64_t ow_n = t->out[2], oh_n = t->out[1], slice = oh_n * ow_n;
    const int64_t outer = spatial_rank == 3 ? t->out[0] : oh_n;   /* rows a task walks */
    int64_t chunks, tasks = tasks_for(planes, outer, &chunks);
    const int64_t scratch = spatial_rank == 3 ? 2 * (slice + 2 * ow_n) : 2 * ow_n;
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        float *buf = vkr__malloc((size_t)scratch * sizeof(float));
        failed = buf == NULL;
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < tasks; task++) {
            if (!buf)
                continue;
            const int64_t p = task / chunks, first = (task % chunks) * ROWS_PER_TASK;
            const int64_t last = first + ROWS_PER_TASK < outer ? first + ROWS_PER_TASK : outer;
            const float *src = in + p * in_plane;
            float *dst = out + p * t->out[0] * slice;
            fill_ctx_t ctx = {src, in_w, in_hw, t};
            if (spatial_rank == 1) {
                lerp_row_w(src, &t->lin[2], ow_n, dst);
            } else if (spatial_rank == 2) {
                row_cache_t c = {buf, ow_n, {-1, -1, -1, -1}, 0};
                for (int64_t oh = first; oh < last; oh++) {
                    const float *a = cache_get(&c, 2, t->lin[1].i0[oh], fill_w_row, &ctx);
                    const float *b = cache_get(&c, 2, t->lin[1].i1[oh], fill_w_row, &ctx);
                    lerp_row_h(a, b, t->lin[1].l0[oh], t->lin[1].l1[oh], ow_n, dst + oh * ow_n);
                }
            } else {
                row_cache_t c = {buf, slice + 2 * ow_n, {-1, -1, -1, -1}, 0};
                for (int64_t od = first; od < last; od++) {
                    const float *a = cache_get(&c, 2, t->lin[0].i0[od], fill_hw_slice, &ctx);
                    const float *b = cache_get(&c, 2, t->lin[0].i1[od], fill_hw_slice, &ctx);
                    lerp_row_h(a, b, t->lin[0].l0[od], t->lin[0].l1[od], slice, dst + od * slice);
                }
            }
        }
        vkr__free(buf);
    }
    return failed ? vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "cpu: out of memory for linear scratch rows") : VKR_OK;
}

/* ---------------------------------------------------------------- bicubic (2-D) */
/* The W step of one input row: the 4-tap sum, left to right (sec. 5). */
static void fill_cubic_row(int32_t h, float *dst, const void *ctx)
{
    const fill_ctx_t *f = ctx;
    const vkr_cubic_taps_t *w = &f->t->cub[2];
    const float *row = f->plane + h * f->in_w;
    for (int64_t ow = 0; ow < f->t->out[2]; ow++) {
        float acc = spec_mul(row[w->idx[0][ow]], w->coeff[0][ow]);
        for (int k = 1; k < 4; k++)
            acc = spec_madd(acc, row[w->idx[k][ow]], w->coeff[k][ow]);
        dst[ow] = acc;
    }
}

static int run_cubic(const axis_tables_t *t, int64_t planes, const float *in, float *out, vkr_error_t *err)
{
    const int64_t in_w = t->in[2], in_plane = t->in[1] * in_w, ow_n = t->out[2], oh_n = t->out[1];
    const vkr_cubic_taps_t *h = &t->cub[1];
    int64_t chunks, tasks = tasks_for(planes, oh_n, &chunks);
    int failed = 0;
#pragma omp parallel reduction(| : failed)
    {
        float *buf = vkr__malloc((size_t)(4 * ow_n) * sizeof(float));
        failed = buf == NULL;
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < tasks; task++) {
            if (!buf)
                continue;
            const int64_t p = task / chunks, first = (task % chunks) * ROWS_PER_TASK;
            const int64_t last = first + ROWS_PER_TASK < oh_n ? first + ROWS_PER_TASK : oh_n;
            fill_ctx_t ctx = {in + p * in_plane, in_w, in_plane, t};
            row_cache_t c = {buf, ow_n, {-1, -1, -1, -1}, 0};
            for (int64_t oh = first; oh < last; oh++) {
                const float *r[4];
                for (int k = 0; k < 4; k++)
                    r[k] = cache_get(&c, 4, h->idx[k][oh], fill_cubic_row, &ctx);
                float *dst = out + (p * oh_n + oh) * ow_n;
                const float c0 = h->coeff[0][oh], c1 = h->coeff[1][oh], c2 = h->coeff[2][oh], c3 = h->coeff[3][oh];
                for (int64_t ow = 0; ow < ow_n; ow++)
                    dst[ow] = spec_madd(spec_madd(spec_madd(spec_mul(r[0][ow], c0), r[1][ow], c1), r[2][ow], c2), r[3][ow], c3);
            }
        }
        vkr__free(buf);
    }
    return failed ? vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "cpu: out of memory for bicubic scratch rows") : VKR_OK;
}

/* ---------------------------------------------------------------- area */
static void run_area(const axis_tables_t *t, int64_t planes, const float *in, float *out)
{
    const int64_t in_w = t->in[2], in_hw = t->in[1] * in_w, in_plane = t->in[0] * in_hw;
    if (t->out[0] == 1 && t->out[1] == 1 && t->out[2] == 1) {
        /* adaptive_avg_pool with an all-ones output is torch's mean(): cascade sum / n */
#pragma omp parallel for schedule(static)
        for (int64_t p = 0; p < planes; p++)
            out[p] = spec_area_mean(spec_cascade_sum(in + p * in_plane, (int)in_plane), 1, 1, (int)in_plane);
        return;
    }
    const int64_t rows = t->out[0] * t->out[1];
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < planes * rows; r++) {
        const int64_t p = r / rows, od = (r % rows) / t->out[1], oh = r % t->out[1];
        const int kd = t->len[0][od], kh = t->len[1][oh];
        const float *rowbase = in + p * in_plane + t->start[0][od] * in_hw + t->start[1][oh] * in_w;
        float *dst = out + r * t->out[2];
        for (int64_t ow = 0; ow < t->out[2]; ow++) {
            const int kw = t->len[2][ow];
            const float *base = rowbase + t->start[2][ow];
            float sum = 0.0f;                              /* row-major running sum from 0 */
            for (int id = 0; id < kd; id++)
                for (int ih = 0; ih < kh; ih++)
                    for (int iw = 0; iw < kw; iw++)
                        sum = sum + base[id * in_hw + ih * in_w + iw];
            dst[ow] = spec_area_mean(sum, kd, kh, kw);
        }
    }
}

/* ---------------------------------------------------------------- antialias (2-D, separable) */
/* One pass along an axis: rows of n inputs (stride `step` between taps) -> o outputs. */
static void aa_pass(const float *in, float *out, int64_t outer, int64_t n, int64_t o, int64_t inner, const axis_tables_t *t,
                    int a)
{
    const int mt = t->max_taps[a];
#pragma omp parallel for schedule(static)
    for (int64_t xi = 0; xi < outer * o; xi++) {
        const int64_t x = xi / o, i = xi % o;
        const float *src = in + x * n * inner;
        float *dst = out + x * o * inner;
        const float *w = t->aa_w[a] + i * mt;
        const int32_t xmin = t->xmin[a][i], xsize = t->xsize[a][i];
        if (inner == 1) {                                 /* horizontal: taps along the row */
            const float *s = src + xmin;
            float acc = xsize > 0 ? spec_mul(s[0], w[0]) : 0.0f;
            for (int32_t j = 1; j < xsize; j++)
                acc = spec_madd(acc, s[j], w[j]);
            dst[i] = acc;
            continue;
        }
        float *d = dst + i * inner;                       /* vertical: whole rows at a time */
        const float *s0 = src + xmin * inner;
        for (int64_t y = 0; y < inner; y++)
            d[y] = xsize > 0 ? spec_mul(s0[y], w[0]) : 0.0f;
        for (int32_t j = 1; j < xsize; j++) {
            const float *sj = src + (xmin + j) * inner;
            for (int64_t y = 0; y < inner; y++)
                d[y] = spec_madd(d[y], sj[y], w[j]);
        }
    }
}

/* PyTorch 1.13 runs both passes even where an axis keeps its size (its weights then need not be
 * the identity: a scale_factor of 1.05 on 8 pixels gives 8 outputs with 1/1.05 weights). */
static int run_antialias(const axis_tables_t *t, int64_t planes, const float *in, float *out, vkr_error_t *err)
{
    const int64_t H = t->in[1], W = t->in[2], OH = t->out[1], OW = t->out[2];
    float *tmp = vkr__malloc((size_t)(planes * H * OW) * sizeof(float));
    if (!tmp)
        return vkr_proto_error_set(err, VKR_E_NOMEM, "backend", "cpu: out of memory for the antialias intermediate");
    aa_pass(in, tmp, planes * H, W, OW, 1, t, 2);  /* horizontal: N*C*H rows of W -> OW */
    aa_pass(tmp, out, planes, H, OH, OW, t, 1);    /* vertical: columns of H -> OH */
    vkr__free(tmp);
    return VKR_OK;
}

static int cpu_interpolate(vkr_backend_s *self, const vkr_interp_plan_t *plan, const float *in, float *out, vkr_error_t *err)
{
    (void)self;
    if (plan->out_elements == 0)
        return VKR_OK;
    const family_t f = family_of(plan);
    axis_tables_t t;
    int rc = tables_build(plan, f, &t, err);
    if (rc)
        return rc;
    const int64_t planes = plan->batch * plan->channels;
    switch (f) {
    case FAMILY_NEAREST: run_nearest(&t, planes, in, out); break;
    case FAMILY_LINEAR: rc = run_linear(&t, plan->spatial_rank, planes, in, out, err); break;
    case FAMILY_CUBIC: rc = run_cubic(&t, planes, in, out, err); break;
    case FAMILY_AREA: run_area(&t, planes, in, out); break;
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

static int cpu_grid(vkr_backend_s *self, const vkr_grid_plan_t *plan, const float *image, const float *coords, float *out,
                    vkr_error_t *err)
{
    (void)self;
    if (plan->out_elements == 0)
        return VKR_OK;
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
#pragma omp parallel for schedule(static)
        for (int64_t np = 0; np < plan->batch * points; np++) {
            float g[3];
            grid_point(plan, coords, base, np / points, np % points, points, g);
            for (int k = 0; k < sr; k++)
                out[np * sr + k] = g[k];
        }
        vkr__free(base[0]);
        return VKR_OK;
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
    for (int64_t n = 0; n < plan->batch; n++) {
#pragma omp parallel for schedule(static)
        for (int64_t p = 0; p < points; p++) {
            float g[3];
            prepared_t *q = &prep[p];
            grid_point(plan, coords, base, n, p, points, g);
            q->taps = sr == 2 ? spec_gs_prepare_2d(H, W, g[0], g[1], plan->mode, plan->padding_mode, plan->align_corners, q->tap, q->w)
                              : spec_gs_prepare_3d(D, H, W, g[0], g[1], g[2], plan->mode, plan->padding_mode, plan->align_corners, q->tap,
                                                   q->w);
        }
#pragma omp parallel for schedule(static) collapse(2)
        for (int64_t c = 0; c < C; c++) {
            for (int64_t blk = 0; blk < (points + 4095) / 4096; blk++) {
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
    return VKR_OK;
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
