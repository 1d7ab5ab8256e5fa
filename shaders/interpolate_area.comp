#version 450
// area interpolate (adaptive average pooling), RANK 1, 2, 3, from the host's per-axis windows.
// One invocation per output element of the chunk: the float running sum of its window in
// row-major order (D, H, W innermost) from 0.0, then spec_area_mean; a window of more than
// term1 - term0 elements is summed over several dispatches, its partial sum kept in the output.  MEAN: every output extent
// is 1, which PyTorch computes as mean(): one invocation per plane, the kernel spec's cascade sum
// (spec/cascade_sum.h) over the plane divided by its size; a plane too large for one binding
// continues in bindings 2 and 3 (aux elements each).
#include "spec/interp_rules.h"
#include "interpolate_params.glsl"

layout(local_size_x_id = 0) in;             // workgroup size: the host's VKR_VK_LOCAL_SIZE
layout(constant_id = 1) const int RANK = 2; // spatial axes
layout(constant_id = 2) const bool MEAN = false;

layout(std430, set = 0, binding = 0) readonly buffer In { float x[]; };
layout(std430, set = 0, binding = 1) buffer Out { float y[]; };   // also holds partial sums
// Windows per output index, 2 words: start, length (vkr_spec_area_windows).  The outermost
// spatial axis's entries are in TabA, the other axes' in TabB.  MEAN: more of the input plane.
layout(std430, set = 0, binding = 2) readonly buffer TabA { uint ta[]; };
layout(std430, set = 0, binding = 3) readonly buffer TabB { uint tb[]; };

uint mean_plane;    // MEAN: first element of this invocation's plane, relative to in_base

float mean_load(int i)
{
    uint j = uint(i);
    if (pc.aux == 0u || j < pc.aux)
        return x[pc.in_base + mean_plane + j];
    if (j < 2u * pc.aux)
        return uintBitsToFloat(ta[pc.in_base + (j - pc.aux)]);
    return uintBitsToFloat(tb[pc.in_base + (j - 2u * pc.aux)]);
}

#define SPEC_SUM_PARAM
#define SPEC_SUM_LOAD(i) mean_load(i)
#include "spec/cascade_sum.h"

void main()
{
    uint e, plane, od, oh, ow;
    if (!chunk_element(e))
        return;
    uint in_hw = uint(pc.in_h) * uint(pc.in_w);
    uint in_plane = uint(pc.in_d) * in_hw;
    if (MEAN) {
        mean_plane = e * in_plane;
        int n = int(in_plane);
        y[pc.out_base + e] = spec_area_mean(spec_cascade_sum(n), 1, 1, n);
        return;
    }
    decompose(e, plane, od, oh, ow);
    uvec2 wd = uvec2(0u, 1u), wh = uvec2(0u, 1u), ww;
    if (RANK == 1) {
        ww = uvec2(ta[pc.tab_w + 2u * ow], ta[pc.tab_w + 2u * ow + 1u]);
    } else {
        ww = uvec2(tb[pc.tab_w + 2u * ow], tb[pc.tab_w + 2u * ow + 1u]);
        if (RANK == 2) {
            wh = uvec2(ta[pc.tab_h + 2u * oh], ta[pc.tab_h + 2u * oh + 1u]);
        } else {
            wh = uvec2(tb[pc.tab_h + 2u * oh], tb[pc.tab_h + 2u * oh + 1u]);
            wd = uvec2(ta[pc.tab_d + 2u * od], ta[pc.tab_d + 2u * od + 1u]);
        }
    }
    uint in_w = uint(pc.in_w);
    uint base = pc.in_base + plane * in_plane + wd.x * in_hw + wh.x * in_w + ww.x;
    uint dst = pc.out_base + e;
    uint total = wd.y * wh.y * ww.y;
    if (pc.term0 != 0u && total <= pc.term0)
        return;   // finished in an earlier dispatch
    // Window element t = (id * kh + ih) * kw + iw, in row-major order, from term0 on.
    uint t = pc.term0, end = min(pc.term1, total);
    uint iw = t % ww.y, r = t / ww.y;
    uint ih = r % wh.y, id = r / wh.y;
    uint at = base + id * in_hw + ih * in_w + iw;
    precise float sum = t == 0u ? 0.0 : y[dst];
    for (; t < end; t++) {
        sum = sum + x[at];
        at++;
        if (++iw == ww.y) {
            iw = 0u;
            at += in_w - ww.y;
            if (++ih == wh.y) {
                ih = 0u;
                at += in_hw - wh.y * in_w;
            }
        }
    }
    y[dst] = end == total ? spec_area_mean(sum, int(wd.y), int(wh.y), int(ww.y)) : sum;
}
