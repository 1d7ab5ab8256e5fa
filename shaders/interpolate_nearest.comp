#version 450
// nearest / nearest-exact interpolate, 1-3 spatial axes (absent outer axes have extent 1, whose
// index is always 0).  One invocation per output position (od, oh, ow) of the chunk for each
// group of PLANES planes: the source position is computed once and copied from each of the
// group's planes.  The index rules are the kernel spec's; the scales come from the host.  Values
// are copied as raw bits.
#include "spec/interp_rules.h"
#include "interpolate_params.glsl"

layout(local_size_x_id = 0) in;             // workgroup size: the host's VKR_VK_LOCAL_SIZE
layout(constant_id = 1) const bool EXACT = false;  // nearest-exact instead of nearest
layout(constant_id = 2) const bool CHANNELS_LAST = false;  // nearest: torch 1.13's channels-last
                                                           // kernel's o == n, o == 2n shortcuts
layout(constant_id = 3) const uint PLANES = 4u;    // planes per invocation: VKR_VK_PLANES_PER_INV

layout(std430, set = 0, binding = 0) readonly buffer In { uint x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Out { uint y[]; };

int nearest(uint i, float scale, int n, int o)
{
    return EXACT           ? spec_nearest_exact_index(int(i), scale, n)
           : CHANNELS_LAST ? spec_nearest_index_cl(int(i), scale, n, o)
                           : spec_nearest_index(int(i), scale, n);
}

void main()
{
    uint e, p0, od, oh, ow;
    if (!chunk_group(PLANES, e, p0))
        return;
    decompose_in_plane(e, od, oh, ow);
    uint id = uint(nearest(od, pc.scale_d, pc.in_d, pc.out_d));
    uint ih = uint(nearest(oh, pc.scale_h, pc.in_h, pc.out_h));
    uint iw = uint(nearest(ow, pc.scale_w, pc.in_w, pc.out_w));
    uint in_plane = uint(pc.in_d) * uint(pc.in_h) * uint(pc.in_w);
    uint out_plane = uint(pc.out_d) * uint(pc.out_h) * uint(pc.out_w);
    uint src = pc.in_base + p0 * in_plane + (id * uint(pc.in_h) + ih) * uint(pc.in_w) + iw;
    uint dst = pc.out_base + p0 * out_plane + e;
    // A loop of a uniform trip count, not one unrolled to PLANES with a break: llvmpipe would run
    // every unrolled step (masked) whatever the chunk's plane count.
    uint n = min(PLANES, pc.planes - p0);
    for (uint j = 0u; j < n; j++) {
        y[dst] = x[src];
        src += in_plane;
        dst += out_plane;
    }
}
