#version 450
// bicubic interpolate (4-D input, H and W) from the host's per-axis tables.  One invocation per
// output element of the chunk.  Combination order is the CPU backend's run_cubic (PyTorch's):
// each of the 4 source rows is combined along W, then the 4 row values along H, every sum
// spec_mul for the first term and spec_madd for the next three.
#include "spec/interp_rules.h"
#include "interpolate_params.glsl"

layout(local_size_x_id = 0) in;             // workgroup size: the host's VKR_VK_LOCAL_SIZE

layout(std430, set = 0, binding = 0) readonly buffer In { float x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Out { float y[]; };
// Taps per output index, 8 words: 4 clamped source indices, then the bits of the 4 coefficients
// (vkr_spec_cubic_taps).  H's entries are in TabA, W's in TabB.
layout(std430, set = 0, binding = 2) readonly buffer TabA { uint ta[]; };
layout(std430, set = 0, binding = 3) readonly buffer TabB { uint tb[]; };

// One source row combined along W; k: W's entry in tb.
float cubic_row(uint row, uint k)
{
    float acc = spec_mul(x[row + tb[k]], uintBitsToFloat(tb[k + 4u]));
    for (uint j = 1u; j < 4u; j++)
        acc = spec_madd(acc, x[row + tb[k + j]], uintBitsToFloat(tb[k + 4u + j]));
    return acc;
}

void main()
{
    uint e, plane, od, oh, ow;
    if (!chunk_element(e))
        return;
    decompose(e, plane, od, oh, ow);
    uint in_w = uint(pc.in_w);
    uint src = pc.in_base + plane * uint(pc.in_h) * in_w;
    uint kh = pc.tab_h + 8u * oh, kw = pc.tab_w + 8u * ow;
    float acc = spec_mul(cubic_row(src + ta[kh] * in_w, kw), uintBitsToFloat(ta[kh + 4u]));
    for (uint j = 1u; j < 4u; j++)
        acc = spec_madd(acc, cubic_row(src + ta[kh + j] * in_w, kw), uintBitsToFloat(ta[kh + 4u + j]));
    y[pc.out_base + e] = acc;
}
