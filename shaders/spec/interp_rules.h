/* Kernel spec for F.interpolate (PyTorch 1.13 CPU, ATEN_CPU_CAPABILITY=default): the coordinate
 * maps, the nearest / nearest-exact index rules and the linear combination order.  Included by
 * the compute shaders, by the CPU backend and by the host table builder (axis_tables.c); no other
 * code computes a source coordinate.  See ../shared/spec/pytorch-semantics.md §2-§4. */
#ifndef VKR_SPEC_INTERP_RULES_H
#define VKR_SPEC_INTERP_RULES_H

#include "spec_common.h"

/* align_corners=True map: src = scale * i  (§2). */
SPEC_FN SPEC_REAL spec_src_align_corners(SPEC_REAL scale, int i)
{
    SPEC_PRECISE SPEC_REAL src = scale * SPEC_REAL_OF(i);
    return src;
}

/* Half-pixel map: src = scale * (i + 0.5) - 0.5; the linear modes clamp a negative source to 0,
 * cubic does not (§2, §4.1, §5). */
SPEC_FN SPEC_REAL spec_src_half_pixel(SPEC_REAL scale, int i, bool clamp_negative)
{
    SPEC_PRECISE SPEC_REAL src = scale * (SPEC_REAL_OF(i) + SPEC_REAL_OF(0.5)) - SPEC_REAL_OF(0.5);
    return (clamp_negative && src < SPEC_REAL_OF(0.0)) ? SPEC_REAL_OF(0.0) : src;
}

/* Linear-family source coordinate (§4.1): in double on the CPU, from a float scale. */
SPEC_FN SPEC_REAL spec_src_linear(SPEC_REAL scale, int i, bool align_corners)
{
    return align_corners ? spec_src_align_corners(scale, i) : spec_src_half_pixel(scale, i, true);
}

/* nearest (§3.1): idx = min(floor(f32(f32(i) * scale)), n - 1), float32 product. */
SPEC_FN int spec_nearest_index(int i, float scale, int n)
{
    SPEC_PRECISE float src = SPEC_FLOAT(i) * scale;
    int idx = SPEC_INT(SPEC_FLOORF(src));
    return idx < n - 1 ? idx : n - 1;
}

/* nearest-exact (§3.2): idx = min(floor(f32(f32(i + 0.5) * scale)), n - 1). */
SPEC_FN int spec_nearest_exact_index(int i, float scale, int n)
{
    SPEC_PRECISE float src = (SPEC_FLOAT(i) + 0.5f) * scale;
    int idx = SPEC_INT(SPEC_FLOORF(src));
    return idx < n - 1 ? idx : n - 1;
}

/* One linear step, DEFAULT capability order (§4.2): f32(f32(a*l0) + f32(b*l1)).  The separable
 * recursion applies it along W first, then H, then D. */
SPEC_FN float spec_lerp(float a, float b, float l0, float l1)
{
    SPEC_PRECISE float pa = a * l0;
    SPEC_PRECISE float pb = b * l1;
    SPEC_PRECISE float r = pa + pb;
    return r;
}

#endif /* VKR_SPEC_INTERP_RULES_H */
