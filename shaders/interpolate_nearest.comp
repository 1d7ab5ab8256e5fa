#version 450
// nearest / nearest-exact interpolate, 1-3 spatial axes (absent outer axes have extent 1, whose
// index is always 0).  One invocation per output element of the chunk.  The index rules are the
// kernel spec's; the scales come from the host.  Values are copied as raw bits.
#include "spec/interp_rules.h"
#include "interpolate_params.glsl"

layout(local_size_x_id = 0) in;             // workgroup size: the host's VKR_VK_LOCAL_SIZE
layout(constant_id = 1) const bool EXACT = false;  // nearest-exact instead of nearest

layout(std430, set = 0, binding = 0) readonly buffer In { uint x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Out { uint y[]; };

int nearest(uint i, float scale, int n)
{
    return EXACT ? spec_nearest_exact_index(int(i), scale, n) : spec_nearest_index(int(i), scale, n);
}

void main()
{
    uint e, plane, od, oh, ow;
    if (!chunk_element(e))
        return;
    decompose(e, plane, od, oh, ow);
    uint id = uint(nearest(od, pc.scale_d, pc.in_d));
    uint ih = uint(nearest(oh, pc.scale_h, pc.in_h));
    uint iw = uint(nearest(ow, pc.scale_w, pc.in_w));
    uint src = ((plane * uint(pc.in_d) + id) * uint(pc.in_h) + ih) * uint(pc.in_w) + iw;
    y[pc.out_base + e] = x[pc.in_base + src];
}
