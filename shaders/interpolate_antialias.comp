#version 450
// antialias interpolate (bilinear and bicubic, 4-D), one pass of PyTorch 1.13's separable
// filter: VERTICAL false: along W, input N*C*H*W -> intermediate N*C*H*OW; VERTICAL true: along
// H, intermediate -> output N*C*OH*OW.  One invocation per output element of the chunk:
// spec_mul(x[xmin], w0), then spec_madd with x[xmin + j], w_j for j < xsize (0.0 when xsize is
// 0), as the CPU backend's aa_pass; more than term1 - term0 taps take several dispatches, the
// partial sum kept in the output.  Extents in the push constants are the pass's own.
#include "spec/interp_rules.h"
#include "interpolate_params.glsl"

layout(local_size_x_id = 0) in;             // workgroup size: the host's VKR_VK_LOCAL_SIZE
layout(constant_id = 1) const bool VERTICAL = false;

layout(std430, set = 0, binding = 0) readonly buffer In { float x[]; };
layout(std430, set = 0, binding = 1) buffer Out { float y[]; };   // also holds partial sums
// Filter per output index, 2 + aux words: xmin, xsize, then the bits of aux weights
// (vkr_spec_aa_taps).  H's entries are in TabA (vertical pass), W's in TabB (horizontal pass).
layout(std430, set = 0, binding = 2) readonly buffer TabA { uint ta[]; };
layout(std430, set = 0, binding = 3) readonly buffer TabB { uint tb[]; };

uint tab(uint k)
{
    return VERTICAL ? ta[k] : tb[k];
}

void main()
{
    uint e, plane, od, oh, ow;
    if (!chunk_element(e))
        return;
    decompose(e, plane, od, oh, ow);
    uint in_w = uint(pc.in_w);
    uint k = VERTICAL ? pc.tab_h + (2u + pc.aux) * oh : pc.tab_w + (2u + pc.aux) * ow;
    uint xmin = tab(k), xsize = tab(k + 1u);
    uint step = VERTICAL ? in_w : 1u;
    uint src = pc.in_base + plane * uint(pc.in_h) * in_w + (VERTICAL ? xmin * in_w + ow : oh * in_w + xmin);
    uint dst = pc.out_base + e;
    if (pc.term0 != 0u && xsize <= pc.term0)
        return;   // finished in an earlier dispatch
    uint j = pc.term0, end = min(pc.term1, xsize);
    float acc;
    if (j == 0u) {
        acc = 0.0;
        if (xsize > 0u)
            acc = spec_mul(x[src], uintBitsToFloat(tab(k + 2u)));
        j = 1u;
    } else {
        acc = y[dst];
    }
    for (; j < end; j++)
        acc = spec_madd(acc, x[src + j * step], uintBitsToFloat(tab(k + 2u + j)));
    y[dst] = acc;
}
