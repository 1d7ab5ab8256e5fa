#version 450
// bicubic interpolate (4-D input, H and W) from the host's per-axis tables.  One invocation per
// output position (oh, ow) of the chunk for each group of PLANES planes: the position's taps are
// loaded once and applied to each of the group's planes.  Combination order is the CPU backend's
// run_cubic (PyTorch's): each of the 4 source rows is combined along W, then the 4 row values
// along H, every sum spec_mul for the first term and spec_madd for the next three.
#include "spec/interp_rules.h"
#include "interpolate_params.glsl"

layout(local_size_x_id = 0) in;             // workgroup size: the host's VKR_VK_LOCAL_SIZE
layout(constant_id = 3) const uint PLANES = 4u;  // planes per invocation: VKR_VK_PLANES_PER_INV

layout(std430, set = 0, binding = 0) readonly buffer In { float x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Out { float y[]; };
// Taps per output index, 8 words: 4 clamped source indices, then the bits of the 4 coefficients
// (vkr_spec_cubic_taps).  H's entries are in TabA, W's in TabB.
layout(std430, set = 0, binding = 2) readonly buffer TabA { uint ta[]; };
layout(std430, set = 0, binding = 3) readonly buffer TabB { uint tb[]; };

uvec4 wi;   // W's 4 source indices and coefficients (bits)
vec4 wc;

// One source row combined along W.
float cubic_row(uint row)
{
    float acc = spec_mul(x[row + wi[0]], wc[0]);
    for (int j = 1; j < 4; j++)
        acc = spec_madd(acc, x[row + wi[j]], wc[j]);
    return acc;
}

void main()
{
    uint e, p0, od, oh, ow;
    if (!chunk_group(PLANES, e, p0))
        return;
    decompose_in_plane(e, od, oh, ow);
    uint in_w = uint(pc.in_w);
    uint in_plane = uint(pc.in_h) * in_w;
    uint out_plane = uint(pc.out_h) * uint(pc.out_w);
    uint kh = pc.tab_h + 8u * oh, kw = pc.tab_w + 8u * ow;
    wi = uvec4(tb[kw], tb[kw + 1u], tb[kw + 2u], tb[kw + 3u]);
    wc = uintBitsToFloat(uvec4(tb[kw + 4u], tb[kw + 5u], tb[kw + 6u], tb[kw + 7u]));
    // H's 4 source rows as offsets within a plane, and their coefficients
    uvec4 hr = uvec4(ta[kh], ta[kh + 1u], ta[kh + 2u], ta[kh + 3u]) * in_w;
    vec4 hc = uintBitsToFloat(uvec4(ta[kh + 4u], ta[kh + 5u], ta[kh + 6u], ta[kh + 7u]));
    uint src = pc.in_base + p0 * in_plane, dst = pc.out_base + p0 * out_plane + e;
    // A loop of a uniform trip count, not one unrolled to PLANES with a break: llvmpipe would run
    // every unrolled step (masked) whatever the chunk's plane count.
    uint n = min(PLANES, pc.planes - p0);
    for (uint j = 0u; j < n; j++) {
        float acc = spec_mul(cubic_row(src + hr[0]), hc[0]);
        for (int t = 1; t < 4; t++)
            acc = spec_madd(acc, cubic_row(src + hr[t]), hc[t]);
        y[dst] = acc;
        src += in_plane;
        dst += out_plane;
    }
}
