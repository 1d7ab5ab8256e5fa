/* Kernel spec for F.grid_sample and F.affine_grid (pytorch-semantics.md sec. 8, 9): unnormalize,
 * clip, reflect, the nearest rounding, the bilinear / bicubic weights and their summation order,
 * and the affine map.  Common subset of C11 and GLSL 450; included by the grid shaders and the CPU
 * backend, and the only code that turns a grid value into a source coordinate.
 *
 * 2-D follows PyTorch 1.13's 2-D CPU kernel (its vectorised formulas, ATEN_CPU_CAPABILITY=default),
 * 3-D its scalar 3-D kernel, except where the README's rules say otherwise:
 *  - nearest rounds half to even in 2-D and 3-D (PyTorch >= 2.1; 1.13's 3-D rounds half away);
 *  - non-finite grid values (NaN, +-inf, and finite ones whose coordinate overflows float) give
 *    what 1.13 gives on x86 (measured: README, "Non-finite grid values"), where it rests on
 *    C++-undefined float->int conversions (x86: INT_MIN, out of bounds).  Here those values never
 *    reach arithmetic, a comparison, min/max or a conversion: each step tests them by their bits
 *    (spec_is_nan, spec_is_finite) and takes the path torch's arithmetic takes on IEEE hardware,
 *    so a GPU that assumes no NaN or inf computes the same thing.  No path reads outside the plane.
 *
 * The includer provides the element read: define SPEC_GS_PARAM (a leading parameter with its
 * comma, or nothing), SPEC_GS_ARG (the matching argument) and SPEC_GS_LOAD(i) (element i of the
 * current plane, row-major (D,) H, W) before including; the C default reads a float pointer. */
#ifndef VKR_SPEC_GRID_RULES_H
#define VKR_SPEC_GRID_RULES_H

#include "spec_common.h"
#include "interp_rules.h"

#ifndef SPEC_GS_LOAD
#define SPEC_GS_PARAM const float *spec_gs_src,
#define SPEC_GS_ARG spec_gs_src,
#define SPEC_GS_LOAD(i) spec_gs_src[i]
#endif

/* Mode and padding ids, as on the wire (vkresample_types.h). */
#define SPEC_GS_BILINEAR 1
#define SPEC_GS_NEAREST 2
#define SPEC_GS_BICUBIC 3
#define SPEC_PAD_ZEROS 1
#define SPEC_PAD_BORDER 2
#define SPEC_PAD_REFLECTION 3

/* Bit-level tests: exact on every driver, whatever it assumes about NaN and inf in arithmetic. */
SPEC_FN bool spec_is_nan(float x) { return (spec_float_bits(x) & 0x7fffffffu) > 0x7f800000u; }
SPEC_FN bool spec_is_finite(float x) { return (spec_float_bits(x) & 0x7f800000u) != 0x7f800000u; }
SPEC_FN float spec_nan(void) { return spec_bits_float(0x7fc00000u); }
SPEC_FN bool spec_is_posinf(float x) { return spec_float_bits(x) == 0x7f800000u; }
SPEC_FN bool spec_is_neginf(float x) { return spec_float_bits(x) == 0xff800000u; }

/* IEEE a * b and a + b where an operand may be NaN or inf: the special cases decided on the
 * bits (inf * 0 and inf + -inf are NaN), finite operands by the hardware. */
SPEC_FN float spec_ieee_mul(float a, float b)
{
    if (spec_is_nan(a) || spec_is_nan(b))
        return spec_nan();
    if (!spec_is_finite(a) || !spec_is_finite(b)) {
        if ((spec_float_bits(a) & 0x7fffffffu) == 0u || (spec_float_bits(b) & 0x7fffffffu) == 0u)
            return spec_nan();
        return spec_bits_float(((spec_float_bits(a) ^ spec_float_bits(b)) & 0x80000000u) | 0x7f800000u);
    }
    SPEC_PRECISE float r = a * b;
    return r;
}

SPEC_FN float spec_ieee_add(float a, float b)
{
    if (spec_is_nan(a) || spec_is_nan(b))
        return spec_nan();
    if (!spec_is_finite(a) && !spec_is_finite(b))
        return spec_float_bits(a) == spec_float_bits(b) ? a : spec_nan();
    if (!spec_is_finite(a))
        return a;
    if (!spec_is_finite(b))
        return b;
    SPEC_PRECISE float r = a + b;
    return r;
}

/* a / b rounded to nearest, for finite a >= 0 and b > 0.  IEEE division on the CPU; on a GPU,
 * whose division may be a few ULP off, the quotient is corrected with exact fma residuals (the
 * reflections below floor or truncate it, so one ULP can move a result by a whole fold). */
SPEC_FN float spec_div_rn(float a, float b)
{
#ifdef VULKAN
    precise float q = a / b;
    if (a == 0.0 || !spec_is_finite(q))
        return q;
    for (int i = 0; i < 4; i++) {
        precise float lo = spec_bits_float(spec_float_bits(q) - 1u);
        precise float hi = spec_bits_float(spec_float_bits(q) + 1u);
        precise float r = abs(fma(-q, b, a));
        precise float rlo = abs(fma(-lo, b, a));
        precise float rhi = abs(fma(-hi, b, a));
        bool odd = (spec_float_bits(q) & 1u) != 0u;
        if (rlo < r || (rlo == r && odd))
            q = lo;
        else if (rhi < r || (rhi == r && odd))
            q = hi;
        else
            break;
    }
    return q;
#else
    return a / b;
#endif
}

/* fmodf(a, span) exactly, for finite a >= 0 and a normal span > 0: subtract span * 2^k, the
 * largest such multiple not above the remainder, until it is below span (each step is exact). */
SPEC_FN float spec_fmod_positive(float a, float span)
{
    if (!spec_is_finite(a))
        return spec_nan();
    SPEC_UINT sb = spec_float_bits(span);
    float r = a;
    while (r >= span) {
        SPEC_UINT rb = spec_float_bits(r);
        int k = SPEC_INT(rb >> 23) - SPEC_INT(sb >> 23);
        if ((sb & 0x7fffffu) > (rb & 0x7fffffu))
            k = k - 1;
        float s = spec_bits_float(sb + SPEC_UINT_OF(k) * 0x800000u);
        SPEC_PRECISE float d = r - s;
        r = d;
    }
    return r;
}

/* Grid value in [-1, 1] to a pixel coordinate (sec. 8.2): corners map to pixel centres with
 * align_corners, else to the outer pixel edges.  Halving is exact, so the 2-D kernel's
 * (g+1)*f32(W/2) - 0.5 and the scalar ((g+1)*W - 1)/2 are the same value.  NaN stays NaN, +-inf
 * stays +-inf except that inf * 0 (align_corners, size 1) is NaN; a finite value may overflow to
 * +-inf, which then skips the - 0.5. */
SPEC_FN float spec_gs_unnormalize(float g, int size, bool align_corners)
{
    float f = align_corners ? SPEC_FLOAT(size - 1) * 0.5f : SPEC_FLOAT(size) * 0.5f;
    if (!spec_is_finite(g))
        return spec_ieee_mul(g, f);
    SPEC_PRECISE float r = (g + 1.0f) * f;
    if (!align_corners && spec_is_finite(r))
        r = r - 0.5f;
    return r;
}

/* The 3-D kernel's scalar form, without align_corners ((g+1)*size - 1) / 2: the same value,
 * except that (g+1)*size overflows to +-inf for |g| above FLT_MAX / size, half the 2-D bound. */
SPEC_FN float spec_gs_unnormalize_3d(float g, int size, bool align_corners)
{
    if (align_corners || !spec_is_finite(g))
        return spec_gs_unnormalize(g, size, align_corners);
    SPEC_PRECISE float r = (g + 1.0f) * SPEC_FLOAT(size);
    if (spec_is_finite(r)) {
        r = r - 1.0f;
        r = r * 0.5f;
    }
    return r;
}

/* border padding: clip to [0, size-1].  -inf gives 0 and +inf size-1 in both kernels; NaN gives 0
 * in the 2-D kernel (its clamp_min(Vec(0), c) keeps the 0) and size-1 in the 3-D one
 * (std::min(size-1, std::max(NaN, 0)) keeps the size-1). */
SPEC_FN float spec_gs_clip(float c, int size, bool nan_high)
{
    float hi = SPEC_FLOAT(size - 1);
    if (spec_is_nan(c))
        return nan_high ? hi : 0.0f;
    if (spec_is_posinf(c))
        return hi;
    if (spec_is_neginf(c))
        return 0.0f;
    float r = c > 0.0f ? c : 0.0f;
    return r < hi ? r : hi;
}

/* reflection, 2-D kernel form (sec. 8.3): a = |c - low|; f = trunc(a / S2); extra = a - f*S2;
 * min(extra, S2 - extra) + low, with S2 = 2(size-1), low = 0 (align_corners) or S2 = 2 size,
 * low = -0.5. */
SPEC_FN float spec_gs_reflect_2d(float c, int size, bool align_corners)
{
    if (align_corners && size <= 1)
        return 0.0f;
    if (!spec_is_finite(c))             /* extra = inf - inf: NaN, which the clip makes 0 */
        return spec_nan();
    float span2 = align_corners ? SPEC_FLOAT(size - 1) * 2.0f : SPEC_FLOAT(size) * 2.0f;
    float low = align_corners ? 0.0f : -0.5f;
    SPEC_PRECISE float a = SPEC_FABSF(c - low);
    SPEC_PRECISE float f = SPEC_TRUNCF(spec_div_rn(a, span2));
    SPEC_PRECISE float fs = f * span2;
    if (!spec_is_finite(fs))            /* a near FLT_MAX: extra = a - inf = -inf, the clip gives 0 */
        return spec_bits_float(0xff800000u);
    SPEC_PRECISE float extra = a - fs;
    SPEC_PRECISE float other = span2 - extra;
    SPEC_PRECISE float r = (extra < other ? extra : other) + low;
    return r;
}

/* reflection, scalar form of the 3-D kernel (GridSampler.h reflect_coordinates): fmod and the
 * parity of floor(a / span).  PyTorch converts that floor to int: beyond int range x86 gives
 * INT_MIN, which is even, and every float of 2^24 or more is even too. */
SPEC_FN float spec_gs_reflect_3d(float c, int size, bool align_corners)
{
    int twice_low = align_corners ? 0 : -1;
    int twice_high = align_corners ? 2 * (size - 1) : 2 * size - 1;
    if (twice_low == twice_high)
        return 0.0f;
    if (!spec_is_finite(c))             /* fmod(inf or NaN) is NaN; the 3-D clip makes it size-1 */
        return spec_nan();
    float mn = SPEC_FLOAT(twice_low) * 0.5f;
    float span = SPEC_FLOAT(twice_high - twice_low) * 0.5f;
    SPEC_PRECISE float a = SPEC_FABSF(c - mn);
    float extra = spec_fmod_positive(a, span);
    float q = SPEC_FLOORF(spec_div_rn(a, span));
    bool odd = q < 16777216.0f && (SPEC_INT(q) & 1) != 0;
    SPEC_PRECISE float r = odd ? (span - extra) + mn : extra + mn;
    return r;
}

/* padding_mode applied to a coordinate: 2-D (vectorised kernel) and 3-D (scalar kernel) forms. */
SPEC_FN float spec_gs_pad_2d(float c, int size, int padding, bool align_corners)
{
    if (padding == SPEC_PAD_BORDER)
        return spec_gs_clip(c, size, false);
    if (padding == SPEC_PAD_REFLECTION)
        return spec_gs_clip(spec_gs_reflect_2d(c, size, align_corners), size, false);
    return c;
}

SPEC_FN float spec_gs_pad_3d(float c, int size, int padding, bool align_corners)
{
    if (padding == SPEC_PAD_BORDER)
        return spec_gs_clip(c, size, true);
    if (padding == SPEC_PAD_REFLECTION)
        return spec_gs_clip(spec_gs_reflect_3d(c, size, align_corners), size, true);
    return c;
}

/* Round half to even, leaving NaN and inf alone (not handed to roundEven). */
SPEC_FN float spec_gs_round_even(float c)
{
    return spec_is_finite(c) ? SPEC_ROUND_EVEN(c) : c;
}

/* Coordinate to index, truncating; NaN, inf and values outside int range give INT_MIN (x86's
 * cvttps2dq / cvttss2si; 3-D's int64 conversion gives INT64_MIN, equally out of bounds), which
 * every bounds check then rejects. */
SPEC_FN int spec_gs_index(float c)
{
    if (!spec_is_finite(c) || !(SPEC_FABSF(c) < 2147483648.0f))
        return SPEC_INT_MIN;
    return SPEC_INT(c);
}

SPEC_FN bool spec_gs_inside_3d(int D, int H, int W, int iz, int iy, int ix)
{
    return ix >= 0 && ix < W && iy >= 0 && iy < H && iz >= 0 && iz < D;
}

/* Bilinear weight of corner k (0 nw, 1 ne, 2 sw, 3 se) from the fractions fx, fy (sec. 8.4). */
SPEC_FN float spec_gs_bilinear_weight(float fx, float fy, int k)
{
    SPEC_PRECISE float e = 1.0f - fx;
    SPEC_PRECISE float s = 1.0f - fy;
    SPEC_PRECISE float w = k == 0 ? s * e : k == 1 ? s * fx : k == 2 ? fy * e : fy * fx;
    return w;
}

/* grid_sample's cubic coefficients (sec. 8.5): c3 uses 2 - t, not (1 - t) + 1 as upsample does. */
SPEC_FN float spec_gs_cubic_coeff(float t, int k)
{
    if (k == 0)
        return spec_cubic_cc2(t + 1.0f);
    if (k == 1)
        return spec_cubic_cc1(t);
    if (k == 2)
        return spec_cubic_cc1(1.0f - t);
    return spec_cubic_cc2(2.0f - t);
}

/* A grid point's taps, computed once and applied to every channel: element offsets into the
 * plane (SPEC_TAP_ZERO: reads as 0 and still enters the sum, as 2-D does; SPEC_TAP_SKIP: left
 * out of the sum, as 3-D does) and weights.  The prepare functions return the number of taps, or
 * 0 for a point whose output is NaN in every channel: in 2-D, bilinear with a non-finite
 * coordinate after padding (zeros padding only: its fractions x - floor(x) are NaN) and bicubic
 * with one before padding (the cubic coefficients are NaN, whatever the padding).  Every other
 * non-finite coordinate reaches the taps as INT_MIN: out of bounds, so 0 (zeros padding). */
#define SPEC_TAP_ZERO (-1)
#define SPEC_TAP_SKIP (-2)

SPEC_FN int spec_gs_offset_2d(int H, int W, int iy, int ix)
{
    return (ix >= 0 && ix < W && iy >= 0 && iy < H) ? iy * W + ix : SPEC_TAP_ZERO;
}

/* 2-D: nearest 1 tap; bilinear 4 taps (nw, ne, sw, se) with weights w[0..3]; bicubic 16 taps,
 * row-major over (y - 1 .. y + 2) x (x - 1 .. x + 2), with x coefficients w[0..3] and y
 * coefficients w[4..7]. */
SPEC_FN int spec_gs_prepare_2d(int H, int W, float gx, float gy, int mode, int padding, bool align_corners, SPEC_OUT int tap[16],
                               SPEC_OUT float w[8])
{
    float x = spec_gs_unnormalize(gx, W, align_corners);
    float y = spec_gs_unnormalize(gy, H, align_corners);
    if (mode == SPEC_GS_BICUBIC) {                    /* padding applies to each of the 16 taps */
        if (!spec_is_finite(x) || !spec_is_finite(y))
            return 0;
        SPEC_PRECISE float ix = SPEC_FLOORF(x);
        SPEC_PRECISE float iy = SPEC_FLOORF(y);
        SPEC_PRECISE float tx = x - ix;
        SPEC_PRECISE float ty = y - iy;
        int xx[4];                                    /* a column's padding is the same in every row */
        for (int j = 0; j < 4; j++) {
            SPEC_PRECISE float cx = ix + SPEC_FLOAT(j - 1);
            xx[j] = spec_gs_index(spec_gs_pad_2d(cx, W, padding, align_corners));
        }
        for (int i = 0; i < 4; i++) {
            SPEC_PRECISE float cy = iy + SPEC_FLOAT(i - 1);
            int yy = spec_gs_index(spec_gs_pad_2d(cy, H, padding, align_corners));
            for (int j = 0; j < 4; j++)
                tap[4 * i + j] = spec_gs_offset_2d(H, W, yy, xx[j]);
            w[i] = spec_gs_cubic_coeff(tx, i);
            w[4 + i] = spec_gs_cubic_coeff(ty, i);
        }
        return 16;
    }
    x = spec_gs_pad_2d(x, W, padding, align_corners);
    y = spec_gs_pad_2d(y, H, padding, align_corners);
    if (mode == SPEC_GS_NEAREST) {
        tap[0] = spec_gs_offset_2d(H, W, spec_gs_index(spec_gs_round_even(y)), spec_gs_index(spec_gs_round_even(x)));
        return 1;
    }
    if (!spec_is_finite(x) || !spec_is_finite(y))
        return 0;
    SPEC_PRECISE float xw = SPEC_FLOORF(x);
    SPEC_PRECISE float yn = SPEC_FLOORF(y);
    SPEC_PRECISE float fx = x - xw;
    SPEC_PRECISE float fy = y - yn;
    int ix = spec_gs_index(xw);
    int iy = spec_gs_index(yn);
    for (int k = 0; k < 4; k++) {
        tap[k] = spec_gs_offset_2d(H, W, iy + (k >> 1), ix + (k & 1));
        w[k] = spec_gs_bilinear_weight(fx, fy, k);
    }
    return 4;
}

SPEC_FN float spec_gs_tap(SPEC_GS_PARAM int offset)
{
    return offset >= 0 ? SPEC_GS_LOAD(offset) : 0.0f;
}

/* One channel's value from a 2-D point's taps: the sums in PyTorch's order (sec. 8.4, 8.5). */
SPEC_FN float spec_gs_apply_2d(SPEC_GS_PARAM int taps, SPEC_IN int tap[16], SPEC_IN float w[8])
{
    if (taps == 0)
        return spec_nan();
    if (taps == 1)
        return spec_gs_tap(SPEC_GS_ARG tap[0]);
    if (taps == 4) {
        float acc = spec_mul(spec_gs_tap(SPEC_GS_ARG tap[0]), w[0]);
        for (int k = 1; k < 4; k++)
            acc = spec_madd(acc, spec_gs_tap(SPEC_GS_ARG tap[k]), w[k]);
        return acc;
    }
    float acc = 0.0f;
    for (int i = 0; i < 4; i++) {
        float row = spec_mul(spec_gs_tap(SPEC_GS_ARG tap[4 * i]), w[0]);
        for (int j = 1; j < 4; j++)
            row = spec_madd(row, spec_gs_tap(SPEC_GS_ARG tap[4 * i + j]), w[j]);
        acc = i == 0 ? spec_mul(row, w[4]) : spec_madd(acc, row, w[4 + i]);
    }
    return acc;
}

/* 3-D: nearest 1 tap; bilinear 8 corners (tnw, tne, tsw, tse, bnw, bne, bsw, bse), each a
 * product of distances to the opposite corner; corners outside the volume are skipped, not
 * multiplied by 0 (sec. 8.4). */
SPEC_FN int spec_gs_prepare_3d(int D, int H, int W, float gx, float gy, float gz, int mode, int padding, bool align_corners,
                               SPEC_OUT int tap[16], SPEC_OUT float w[8])
{
    float x = spec_gs_pad_3d(spec_gs_unnormalize_3d(gx, W, align_corners), W, padding, align_corners);
    float y = spec_gs_pad_3d(spec_gs_unnormalize_3d(gy, H, align_corners), H, padding, align_corners);
    float z = spec_gs_pad_3d(spec_gs_unnormalize_3d(gz, D, align_corners), D, padding, align_corners);
    if (mode == SPEC_GS_NEAREST) {
        int ix = spec_gs_index(spec_gs_round_even(x)), iy = spec_gs_index(spec_gs_round_even(y));
        int iz = spec_gs_index(spec_gs_round_even(z));
        tap[0] = spec_gs_inside_3d(D, H, W, iz, iy, ix) ? (iz * H + iy) * W + ix : SPEC_TAP_ZERO;
        return 1;
    }
    if (!spec_is_finite(x) || !spec_is_finite(y) || !spec_is_finite(z)) {
        /* zeros padding: the corner indices are INT64_MIN, every corner is skipped, the sum is 0 */
        for (int k = 0; k < 8; k++) {
            tap[k] = SPEC_TAP_SKIP;
            w[k] = 0.0f;
        }
        return 8;
    }
    SPEC_PRECISE float x0 = SPEC_FLOORF(x);
    SPEC_PRECISE float y0 = SPEC_FLOORF(y);
    SPEC_PRECISE float z0 = SPEC_FLOORF(z);
    SPEC_PRECISE float x1 = x0 + 1.0f;
    SPEC_PRECISE float y1 = y0 + 1.0f;
    SPEC_PRECISE float z1 = z0 + 1.0f;
    int ix = spec_gs_index(x0), iy = spec_gs_index(y0), iz = spec_gs_index(z0);
    for (int k = 0; k < 8; k++) {
        int dx = k & 1, dy = (k >> 1) & 1, dz = k >> 2;
        SPEC_PRECISE float wx = dx != 0 ? x - x0 : x1 - x;
        SPEC_PRECISE float wy = dy != 0 ? y - y0 : y1 - y;
        SPEC_PRECISE float wz = dz != 0 ? z - z0 : z1 - z;
        SPEC_PRECISE float p = wx * wy;
        p = p * wz;
        w[k] = p;
        tap[k] = spec_gs_inside_3d(D, H, W, iz + dz, iy + dy, ix + dx) ? ((iz + dz) * H + iy + dy) * W + ix + dx : SPEC_TAP_SKIP;
    }
    return 8;
}

SPEC_FN float spec_gs_apply_3d(SPEC_GS_PARAM int taps, SPEC_IN int tap[16], SPEC_IN float w[8])
{
    if (taps == 0)
        return spec_nan();
    if (taps == 1)
        return spec_gs_tap(SPEC_GS_ARG tap[0]);
    float acc = 0.0f;
    for (int k = 0; k < 8; k++)
        if (tap[k] != SPEC_TAP_SKIP)
            acc = spec_madd(acc, SPEC_GS_LOAD(tap[k]), w[k]);
    return acc;
}

/* One output value of grid_sample for one channel: prepare and apply in one call. */
SPEC_FN float spec_grid_sample_2d(SPEC_GS_PARAM int H, int W, float gx, float gy, int mode, int padding, bool align_corners)
{
    int tap[16];
    float w[8];
    int taps = spec_gs_prepare_2d(H, W, gx, gy, mode, padding, align_corners, tap, w);
    return spec_gs_apply_2d(SPEC_GS_ARG taps, tap, w);
}

SPEC_FN float spec_grid_sample_3d(SPEC_GS_PARAM int D, int H, int W, float gx, float gy, float gz, int mode, int padding,
                                  bool align_corners)
{
    int tap[16];
    float w[8];
    int taps = spec_gs_prepare_3d(D, H, W, gx, gy, gz, mode, padding, align_corners, tap, w);
    return spec_gs_apply_3d(SPEC_GS_ARG taps, tap, w);
}

/* affine_grid's point (sec. 9), left to right as torch's bmm computes it:
 * 2-D ((x t0 + y t1) + t2), 3-D (((x t0 + y t1) + z t2) + t3); x, y, z from the host's base tables.
 * IEEE on a non-finite theta or an overflowing sum (inf * 0 and inf - inf are NaN). */
SPEC_FN float spec_affine_2d(float x, float y, float t0, float t1, float t2)
{
    return spec_ieee_add(spec_ieee_add(spec_ieee_mul(x, t0), spec_ieee_mul(y, t1)), t2);
}

SPEC_FN float spec_affine_3d(float x, float y, float z, float t0, float t1, float t2, float t3)
{
    return spec_ieee_add(spec_ieee_add(spec_ieee_add(spec_ieee_mul(x, t0), spec_ieee_mul(y, t1)), spec_ieee_mul(z, t2)), t3);
}

#endif /* VKR_SPEC_GRID_RULES_H */
