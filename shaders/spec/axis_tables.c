/* Host-side table builders of the kernel spec: scales and per-axis linear taps, computed in the
 * precision PyTorch 1.13's CPU kernels use.  Built with -ffp-contract=off. */
#include "axis_tables.h"

#include <math.h>

#include "interp_rules.h"

float vkr_spec_area_pixel_scale(int64_t n, int64_t o, bool align_corners, bool has_scale, double scale)
{
    if (align_corners)
        return o > 1 ? (float)(n - 1) / (float)(o - 1) : 0.0f;
    if (has_scale && scale > 0.0)
        return (float)(1.0 / scale);          /* reciprocal in double, one rounding */
    return (float)n / (float)o;               /* float division */
}

void vkr_spec_linear_taps(int64_t n, int64_t o, bool align_corners, bool has_scale, double scale,
                          vkr_linear_taps_t taps)
{
    if (o == n) {                             /* per-axis identity: x*1 + x*0 (sec. 4.2) */
        for (int64_t i = 0; i < o; i++) {
            taps.i0[i] = taps.i1[i] = (int32_t)i;
            taps.l0[i] = 1.0f;
            taps.l1[i] = 0.0f;
        }
        return;
    }
    double sc = (double)vkr_spec_area_pixel_scale(n, o, align_corners, has_scale, scale);
    for (int64_t i = 0; i < o; i++) {
        double real = spec_src_linear(sc, (int)i, align_corners);
        /* truncation == floor: real >= 0.  A float32 scale rounded up (n > 2^24) can put real at
         * n or past it: 1.13 then reads one element past the row (PyTorch issue 88939); the guard
         * of PyTorch >= 2.0 (guard_index_and_lambda) keeps the index at n - 1 and l1 in [0, 1], so
         * the last element is read instead.  Everywhere 1.13 stays inside the row this changes
         * nothing: there i0 <= n - 1 and 0 <= real - i0 < 1. */
        int64_t i0 = spec_linear_index0(real, n);
        float l1 = spec_linear_lambda1(real, i0);
        taps.i0[i] = (int32_t)i0;
        taps.i1[i] = (int32_t)(i0 + (i0 < n - 1 ? 1 : 0));
        taps.l1[i] = l1;
        taps.l0[i] = 1.0f - l1;
    }
}

bool vkr_spec_channels_last_kernel(int spatial_rank, int64_t channels, const int64_t *in_size)
{
    if (spatial_rank < 2)
        return false;
    bool spatial_ones = true;
    for (int d = 0; d < spatial_rank; d++)
        spatial_ones = spatial_ones && in_size[d] == 1;
    return channels == 1 || spatial_ones;
}

void vkr_spec_nearest_indices(int64_t n, int64_t o, bool exact, bool has_scale, double scale, bool channels_last, int32_t *idx)
{
    float sc = vkr_spec_area_pixel_scale(n, o, false, has_scale, scale);
    for (int64_t i = 0; i < o; i++)
        idx[i] = exact           ? spec_nearest_exact_index((int)i, sc, (int)n)
                 : channels_last ? spec_nearest_index_cl((int)i, sc, (int)n, (int)o)
                                 : spec_nearest_index((int)i, sc, (int)n);
}

void vkr_spec_cubic_taps(int64_t n, int64_t o, bool align_corners, bool has_scale, double scale, vkr_cubic_taps_t taps)
{
    double sc = (double)vkr_spec_area_pixel_scale(n, o, align_corners, has_scale, scale);
    for (int64_t i = 0; i < o; i++) {
        double real = align_corners ? spec_src_align_corners(sc, (int)i) : spec_src_half_pixel(sc, (int)i, false);
        int64_t ii = (int64_t)floorf((float)real);        /* floor of the float-rounded value */
        float t = (float)(real - (double)ii);
        for (int k = 0; k < 4; k++) {
            int64_t j = ii - 1 + k;
            taps.idx[k][i] = (int32_t)(j < 0 ? 0 : j > n - 1 ? n - 1 : j);
            taps.coeff[k][i] = spec_upsample_cubic_coeff(t, k);
        }
    }
}

void vkr_spec_area_windows(int64_t n, int64_t o, int32_t *start, int32_t *len)
{
    for (int64_t i = 0; i < o; i++) {
        int64_t s = (i * n) / o;                            /* floor(i*n/o) */
        int64_t e = ((i + 1) * n + o - 1) / o;              /* ceil((i+1)*n/o) */
        start[i] = (int32_t)s;
        len[i] = (int32_t)(e - s);
    }
}

/* PIL's filters as PyTorch 1.13's CPU kernel compiles them (sec. 6). */
static float aa_triangle(float x)
{
    x = fabsf(x);
    return x < 1.0f ? 1.0f - x : 0.0f;
}

static float aa_keys(float x)
{
    x = fabsf(x);
    if (x < 1.0f) {
        double X = (double)x;                               /* PIL's 2.0/3.0 literals: double */
        return (float)((1.5 * X - 2.5) * X * X + 1.0);
    }
    if (x < 2.0f) {
        float t = x - 5.0f;
        t = t * x;
        t = t + 8.0f;
        t = t * x;
        t = t - 4.0f;
        return t * -0.5f;
    }
    return 0.0f;
}

static float aa_support(float sc, bool bicubic)
{
    float half = bicubic ? 2.0f : 1.0f;                     /* interp_size * 0.5 */
    return sc >= 1.0f ? half * sc : half;
}

int vkr_spec_aa_max_taps(int64_t n, int64_t o, bool align_corners, bool has_scale, double scale, bool bicubic)
{
    float sc = vkr_spec_area_pixel_scale(n, o, align_corners, has_scale, scale);
    return (int)ceilf(aa_support(sc, bicubic)) * 2 + 1;
}

void vkr_spec_aa_taps(int64_t n, int64_t o, bool align_corners, bool has_scale, double scale, bool bicubic, int max_taps,
                      int32_t *xmin_out, int32_t *xsize_out, float *weights)
{
    float sc = vkr_spec_area_pixel_scale(n, o, align_corners, has_scale, scale);
    float support = aa_support(sc, bicubic);
    float invscale = sc >= 1.0f ? (float)(1.0 / (double)sc) : 1.0f;
    for (int64_t i = 0; i < o; i++) {
        float center = (float)((double)sc * ((double)i + 0.5));
        int64_t xmin = (int64_t)((double)(center - support) + 0.5);
        if (xmin < 0)
            xmin = 0;
        int64_t xmax = (int64_t)((double)(center + support) + 0.5);
        int64_t xsize = (xmax < n ? xmax : n) - xmin;
        xsize = xsize < 0 ? 0 : xsize > max_taps ? max_taps : xsize;
        float *w = weights + i * max_taps;
        float total = 0.0f;
        for (int64_t j = 0; j < max_taps; j++) {
            if (j >= xsize) {
                w[j] = 0.0f;
                continue;
            }
            float arg = (float)(((double)((float)(j + xmin) - center) + 0.5) * (double)invscale);
            w[j] = bicubic ? aa_keys(arg) : aa_triangle(arg);
            total += w[j];
        }
        if (total != 0.0f)
            for (int64_t j = 0; j < xsize; j++)
                w[j] = w[j] / total;
        xmin_out[i] = (int32_t)xmin;
        xsize_out[i] = (int32_t)xsize;
    }
}

/* torch.linspace(-1, 1, n)[idx] outside the vector blocks: the two-sided formula. */
static float linspace_scalar(int64_t n, float step, int64_t idx)
{
    if (idx < n / 2)
        return -1.0f + step * (float)idx;
    return 1.0f - step * (float)(n - idx - 1);
}

void vkr_spec_affine_base(int64_t n, bool align_corners, float *out)
{
    if (n <= 1) {
        if (n == 1)
            out[0] = 0.0f;
        return;
    }
    const float step = 2.0f / (float)(n - 1);
    const int64_t lanes = 8, vectorised = (n / (2 * lanes)) * (2 * lanes);
    for (int64_t j = 0; j < vectorised; j += lanes) {
        float base = linspace_scalar(n, step, j);
        out[j] = base;
        out[j + 1] = base + step;
        for (int64_t k = 2; k < lanes; k++)
            out[j + k] = base + (float)k * step;
    }
    for (int64_t idx = vectorised; idx < n; idx++)
        out[idx] = linspace_scalar(n, step, idx);
    if (!align_corners)
        for (int64_t i = 0; i < n; i++)
            out[i] = out[i] * (float)(n - 1) / (float)n;
}
