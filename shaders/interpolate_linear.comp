#version 450
// linear / bilinear / trilinear interpolate (RANK 1, 2, 3) from the host's per-axis tables.  One
// invocation per output position (od, oh, ow) of the chunk for each group of PLANES planes: the
// position's taps are loaded once and applied to each of the group's planes.  Combination order
// is PyTorch's separable recursion: W first, then H, then D, each step the kernel spec's
// spec_lerp.  CHANNELS_LAST (bilinear, trilinear): torch 1.13's channels-last kernel instead, for
// the inputs it runs on (C == 1 or all spatial extents 1, vkr_spec_channels_last_kernel): corner
// weights and sums of the kernel spec's spec_cl_* (interp_rules.h).  Its double sum needs
// shaderFloat64: the host defines VKR_FP64 where the device has it; without, the scalar-tail
// channels sum in float, left to right (the contract's tolerance, not bit-exact).
#include "spec/interp_rules.h"
#include "interpolate_params.glsl"

layout(local_size_x_id = 0) in;             // workgroup size: the host's VKR_VK_LOCAL_SIZE
layout(constant_id = 1) const int RANK = 2; // spatial axes
layout(constant_id = 2) const bool CHANNELS_LAST = false;  // the channels-last kernel's sums
layout(constant_id = 3) const uint PLANES = 4u;  // planes per invocation: VKR_VK_PLANES_PER_INV

layout(std430, set = 0, binding = 0) readonly buffer In { float x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Out { float y[]; };
// Taps per output index, 4 words: i0, i1, bits of l0, bits of l1 (vkr_spec_linear_taps).  The
// outermost spatial axis's entries are in TabA, the other axes' in TabB.
layout(std430, set = 0, binding = 2) readonly buffer TabA { uint ta[]; };
layout(std430, set = 0, binding = 3) readonly buffer TabB { uint tb[]; };

uvec4 tap_a(uint base, uint i)
{
    uint k = base + 4u * i;
    return uvec4(ta[k], ta[k + 1u], ta[k + 2u], ta[k + 3u]);
}

uvec4 tap_b(uint base, uint i)
{
    uint k = base + 4u * i;
    return uvec4(tb[k], tb[k + 1u], tb[k + 2u], tb[k + 3u]);
}

float lerp_w(uint row, uvec4 w)
{
    return spec_lerp(x[row + w.x], x[row + w.y], uintBitsToFloat(w.z), uintBitsToFloat(w.w));
}

float lerp_hw(uint slice, uvec4 h, uvec4 w)
{
    float t0 = lerp_w(slice + h.x * uint(pc.in_w), w);
    float t1 = lerp_w(slice + h.y * uint(pc.in_w), w);
    return spec_lerp(t0, t1, uintBitsToFloat(h.z), uintBitsToFloat(h.w));
}

// Channel c of a channels-last job: the vector lanes' float sum (c < C - C % 8) or the scalar
// tail's double sum, over the K corners at off[] with weights wt[].
float cl_value(uint src, uint off[8], float wt[8], int K, bool vec)
{
    if (vec) {
        float acc = spec_mul(x[src + off[K - 1]], wt[K - 1]);
        for (int k = K - 2; k >= 0; k--)
            acc = spec_cl_vec_step(acc, x[src + off[k]], wt[k]);
        return acc;
    }
#ifdef VKR_FP64
    precise double a = double(x[src + off[0]]) * double(wt[0]);
    for (int k = 1; k < K; k++)
        a = spec_cl_tail_step(a, x[src + off[k]], wt[k]);
    return float(a);
#else
    float a = spec_mul(x[src + off[0]], wt[0]);
    for (int k = 1; k < K; k++)
        a = spec_madd(a, x[src + off[k]], wt[k]);
    return a;
#endif
}

void main()
{
    uint e, p0, od, oh, ow;
    if (!chunk_group(PLANES, e, p0))
        return;
    decompose_in_plane(e, od, oh, ow);
    uint hw = uint(pc.in_h) * uint(pc.in_w);
    uint in_plane = uint(pc.in_d) * hw;
    uint out_plane = uint(pc.out_d) * uint(pc.out_h) * uint(pc.out_w);
    uvec4 d = uvec4(0u), h = uvec4(0u), w;
    if (RANK == 1) {
        w = tap_a(pc.tab_w, ow);
    } else if (RANK == 2) {
        h = tap_a(pc.tab_h, oh);
        w = tap_b(pc.tab_w, ow);
    } else {
        d = tap_a(pc.tab_d, od);
        h = tap_b(pc.tab_h, oh);
        w = tap_b(pc.tab_w, ow);
    }
    uint src = pc.in_base + p0 * in_plane, dst = pc.out_base + p0 * out_plane + e;
    // A loop of a uniform trip count, not one unrolled to PLANES with a break: llvmpipe would run
    // every unrolled step (masked) whatever the chunk's plane count.
    uint n = min(PLANES, pc.planes - p0);
    if (CHANNELS_LAST) {
        // corner k: bit 2 the D tap, bit 1 the H tap, bit 0 the W tap
        const int K = RANK == 3 ? 8 : 4;
        uint off[8];
        float wt[8];
        for (int k = 0; k < K; k++) {
            bool bd = (k & 4) != 0, bh = (k & 2) != 0, bw = (k & 1) != 0;
            off[k] = (bd ? d.y : d.x) * hw + (bh ? h.y : h.x) * uint(pc.in_w) + (bw ? w.y : w.x);
            float lh = uintBitsToFloat(bh ? h.w : h.z), lw = uintBitsToFloat(bw ? w.w : w.z);
            wt[k] = RANK == 3 ? spec_cl_weight(spec_cl_weight(uintBitsToFloat(bd ? d.w : d.z), lh), lw) : spec_cl_weight(lh, lw);
        }
        // channel of plane p0: the chunk's first plane's channel (host) plus p0, modulo C
        uint c = pc.cl_vec == 0u ? 0u : (pc.cl_c0 + p0) % pc.cl_channels;
        for (uint j = 0u; j < n; j++) {
            y[dst] = cl_value(src, off, wt, K, c < pc.cl_vec);
            c = c + 1u == pc.cl_channels ? 0u : c + 1u;
            src += in_plane;
            dst += out_plane;
        }
        return;
    }
    for (uint j = 0u; j < n; j++) {
        float v;
        if (RANK == 1)
            v = lerp_w(src, w);
        else if (RANK == 2)
            v = lerp_hw(src, h, w);
        else
            v = spec_lerp(lerp_hw(src + d.x * hw, h, w), lerp_hw(src + d.y * hw, h, w),
                          uintBitsToFloat(d.z), uintBitsToFloat(d.w));
        y[dst] = v;
        src += in_plane;
        dst += out_plane;
    }
}
