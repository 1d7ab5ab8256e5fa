/* Kernel spec for F.interpolate (PyTorch 1.13 CPU, ATEN_CPU_CAPABILITY=default): the coordinate
 * maps, the nearest / nearest-exact index rules and the linear combination order.  Included by
 * the compute shaders, by the CPU backend and by the host table builder (axis_tables.c); no other
 * code computes a source coordinate.  See ../shared/spec/pytorch-semantics.md sec. 2-sec. 4. */
#ifndef VKR_SPEC_INTERP_RULES_H
#define VKR_SPEC_INTERP_RULES_H

#include "spec_common.h"

/* align_corners=True map: src = scale * i  (sec. 2). */
SPEC_FN SPEC_REAL spec_src_align_corners(SPEC_REAL scale, int i)
{
    SPEC_PRECISE SPEC_REAL src = scale * SPEC_REAL_OF(i);
    return src;
}

/* Half-pixel map: src = scale * (i + 0.5) - 0.5; the linear modes clamp a negative source to 0,
 * cubic does not (sec. 2, sec. 4.1, sec. 5). */
SPEC_FN SPEC_REAL spec_src_half_pixel(SPEC_REAL scale, int i, bool clamp_negative)
{
    SPEC_PRECISE SPEC_REAL src = scale * (SPEC_REAL_OF(i) + SPEC_REAL_OF(0.5)) - SPEC_REAL_OF(0.5);
    return (clamp_negative && src < SPEC_REAL_OF(0.0)) ? SPEC_REAL_OF(0.0) : src;
}

/* Linear-family source coordinate (sec. 4.1): in double on the CPU, from a float scale. */
SPEC_FN SPEC_REAL spec_src_linear(SPEC_REAL scale, int i, bool align_corners)
{
    return align_corners ? spec_src_align_corners(scale, i) : spec_src_half_pixel(scale, i, true);
}

/* Linear-family lower tap of source coordinate real >= 0 on an axis of n (sec. 4.1), guarded:
 * min(trunc(real), n - 1) (PyTorch issue 88939: a float32 scale rounded up can give real >= n). */
SPEC_FN int spec_linear_index0(SPEC_REAL real, int n)
{
    SPEC_REAL last = SPEC_REAL_OF(n - 1);
    return real < last ? SPEC_INT(real) : n - 1;
}

/* Its weight of the upper tap: f32(real - i0), kept in [0, 1] (the same guard). */
SPEC_FN float spec_linear_lambda1(SPEC_REAL real, int i0)
{
    SPEC_PRECISE SPEC_REAL d = real - SPEC_REAL_OF(i0);
    d = d < SPEC_REAL_OF(0.0) ? SPEC_REAL_OF(0.0) : d > SPEC_REAL_OF(1.0) ? SPEC_REAL_OF(1.0) : d;
    return SPEC_FLOAT(d);
}

/* nearest (sec. 3.1): idx = min(floor(f32(f32(i) * scale)), n - 1), float32 product. */
SPEC_FN int spec_nearest_index(int i, float scale, int n)
{
    SPEC_PRECISE float src = SPEC_FLOAT(i) * scale;
    int idx = SPEC_INT(SPEC_FLOORF(src));
    return idx < n - 1 ? idx : n - 1;
}

/* nearest in torch 1.13's channels-last kernel (cpu_upsample_nearest_channels_last's nearest_idx,
 * sec. 3.1), which runs for every input vkr_spec_channels_last_kernel accepts: o == n copies
 * (idx = i), o == 2n halves (idx = i >> 1), whatever scale_factor gave that size; otherwise the
 * formula above.  nearest-exact has no shortcut in any kernel. */
SPEC_FN int spec_nearest_index_cl(int i, float scale, int n, int o)
{
    return o == n ? i : o == 2 * n ? (i >> 1) : spec_nearest_index(i, scale, n);
}

/* nearest-exact (sec. 3.2): idx = min(floor(f32(f32(i + 0.5) * scale)), n - 1). */
SPEC_FN int spec_nearest_exact_index(int i, float scale, int n)
{
    SPEC_PRECISE float src = (SPEC_FLOAT(i) + 0.5f) * scale;
    int idx = SPEC_INT(SPEC_FLOORF(src));
    return idx < n - 1 ? idx : n - 1;
}

/* One linear step, DEFAULT capability order (sec. 4.2): f32(f32(a*l0) + f32(b*l1)).  The separable
 * recursion applies it along W first, then H, then D. */
SPEC_FN float spec_lerp(float a, float b, float l0, float l1)
{
    SPEC_PRECISE float pa = a * l0;
    SPEC_PRECISE float pb = b * l1;
    SPEC_PRECISE float r = pa + pb;
    return r;
}

/* torch 1.13's channels-last linear kernel (cpu_upsample_linear_channels_last, sec. 4.3; run for
 * every input vkr_spec_channels_last_kernel accepts, bilinear and trilinear).  The taps and
 * per-axis weights are those of sec. 4.1; a corner's weight is the float product of its axes'
 * weights, outer axis first: f32(hl * wl), trilinear f32(f32(dl * hl) * wl).  Corners are numbered
 * with the outer axis' tap as the high bit (2-D: 00, 01, 10, 11 = (h0,w0), (h0,w1), (h1,w0),
 * (h1,w1)).  Channel c of C is summed one of two ways:
 *  - c < C - C % 8 (the 8-float vector lanes of the DEFAULT build): float, right to left:
 *    acc = f32(v_last * w_last), then acc = spec_cl_vec_step(acc, v_k, w_k) for k = last-1 .. 0;
 *  - the other channels (the scalar tail: every channel when C < 8, so every C == 1 tensor):
 *    the exact double products summed left to right in double, rounded once to float:
 *    acc = double(v_0) * w_0, acc = spec_cl_tail_step(acc, v_k, w_k) for k = 1 .. last, f32(acc).
 * Measured against torch 1.13 (ATEN_CPU_CAPABILITY=default) on random C == 1 and all-spatial-1
 * tensors, 2-D and 3-D, both align_corners, size and scale_factor: bit-exact. */
SPEC_FN float spec_cl_weight(float a, float b)
{
    SPEC_PRECISE float w = a * b;
    return w;
}

SPEC_FN float spec_cl_vec_step(float acc, float v, float w)
{
    SPEC_PRECISE float p = v * w;
    SPEC_PRECISE float r = p + acc;
    return r;
}

#ifdef SPEC_DOUBLE
SPEC_FN SPEC_DOUBLE spec_cl_tail_step(SPEC_DOUBLE acc, float v, float w)
{
    SPEC_PRECISE SPEC_DOUBLE p = SPEC_DOUBLE_OF(v) * SPEC_DOUBLE_OF(w);
    SPEC_PRECISE SPEC_DOUBLE r = acc + p;
    return r;
}
#endif

/* Cubic convolution, A = -0.75 (sec. 5), float, exactly this evaluation order.  The constants fold
 * exactly: A+2 = 1.25, A+3 = 2.25, 5A = -3.75, 8A = -6, 4A = -3.
 *   cc1(x) = ((A+2)x - (A+3)) x x + 1        for |x| <= 1
 *   cc2(x) = ((A x - 5A) x + 8A) x - 4A      for 1 < |x| < 2 */
SPEC_FN float spec_cubic_cc1(float x)
{
    SPEC_PRECISE float t = 1.25f * x;
    t = t - 2.25f;
    t = t * x;
    t = t * x;
    t = t + 1.0f;
    return t;
}

SPEC_FN float spec_cubic_cc2(float x)
{
    SPEC_PRECISE float t = -0.75f * x;
    t = t + 3.75f;
    t = t * x;
    t = t - 6.0f;
    t = t * x;
    t = t + 3.0f;
    return t;
}

/* The four upsample-bicubic coefficients of a fractional offset t (sec. 5):
 * c0 = cc2(t+1), c1 = cc1(t), c2 = cc1(1-t), c3 = cc2((1-t)+1).  (grid_sample uses 2-t for c3.) */
SPEC_FN float spec_upsample_cubic_coeff(float t, int k)
{
    SPEC_PRECISE float u = 1.0f - t;
    if (k == 0)
        return spec_cubic_cc2(t + 1.0f);
    if (k == 1)
        return spec_cubic_cc1(t);
    if (k == 2)
        return spec_cubic_cc1(u);
    return spec_cubic_cc2(u + 1.0f);
}

/* One term of a left-to-right weighted sum: f32(acc + f32(v*w)).  The cubic rows and columns
 * (sec. 5) and the antialias passes (sec. 6) accumulate with it, starting from f32(v0*w0). */
SPEC_FN float spec_madd(float acc, float v, float w)
{
    SPEC_PRECISE float p = v * w;
    SPEC_PRECISE float r = acc + p;
    return r;
}

SPEC_FN float spec_mul(float v, float w)
{
    SPEC_PRECISE float p = v * w;
    return p;
}

/* area (sec. 7): the float running sum of a window divided sequentially by each axis' extent,
 * outer axis first: f32(f32(f32(sum / kd) / kh) / kw).  Pass k = 1 for absent axes (exact).
 * This is also the rule for C == 1 and all-spatial-1 tensors: adaptive_avg_pool picks its kernel
 * by suggest_memory_format (c10's is_channels_last_strides_2d), which says Contiguous for every
 * contiguous NCHW tensor (a size-1 C keeps its stride H*W > 1, [N, C, 1, 1] its stride 1 < C), so
 * they never reach the channels-last kernel (measured: C == 1, 1-D to 3-D, bit-exact).  That
 * kernel, reached only by genuinely channels-last strided inputs, divides once by kh*kw in its
 * vector lanes and sequentially in its scalar tail. */
SPEC_FN float spec_area_mean(float sum, int kd, int kh, int kw)
{
    SPEC_PRECISE float r = sum / SPEC_FLOAT(kd);
    r = r / SPEC_FLOAT(kh);
    r = r / SPEC_FLOAT(kw);
    return r;
}

#endif /* VKR_SPEC_INTERP_RULES_H */
