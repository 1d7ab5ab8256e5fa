#version 450
// nearest / nearest-exact interpolate, 1-3 spatial axes (absent outer axes have extent 1, whose
// index is always 0).  One invocation per output element of N*C*D*H*W, flattened.  The index
// rules are the kernel spec's; the scales come from the host.  Values are copied as raw bits.
#include "spec/interp_rules.h"

layout(local_size_x_id = 0) in;             // workgroup size: the host's VKR_VK_LOCAL_SIZE
layout(constant_id = 1) const bool EXACT = false;  // nearest-exact instead of nearest

layout(std430, set = 0, binding = 0) readonly buffer In { uint x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Out { uint y[]; };

// Mirrors vkr_vk_push_t in daemon/backend_vulkan.c (68 bytes).
layout(push_constant) uniform Params {
    uint in_base, out_base; // element offsets of this chunk within the bound ranges
    uint count;             // output elements of this chunk
    uint first, row;        // first element of this dispatch; elements per grid row
    int in_d, in_h, in_w, out_d, out_h, out_w;
    float scale_d, scale_h, scale_w;
    uint tab_d, tab_h, tab_w;
} pc;

int nearest(int i, float scale, int n)
{
    return EXACT ? spec_nearest_exact_index(i, scale, n) : spec_nearest_index(i, scale, n);
}

void main()
{
    uint e = pc.first + gl_GlobalInvocationID.y * pc.row + gl_GlobalInvocationID.x;
    if (e >= pc.count)
        return;
    uint ow = e % uint(pc.out_w), t = e / uint(pc.out_w);
    uint oh = t % uint(pc.out_h);
    t /= uint(pc.out_h);
    uint od = t % uint(pc.out_d), plane = t / uint(pc.out_d);
    uint id = uint(nearest(int(od), pc.scale_d, pc.in_d));
    uint ih = uint(nearest(int(oh), pc.scale_h, pc.in_h));
    uint iw = uint(nearest(int(ow), pc.scale_w, pc.in_w));
    uint src = ((plane * uint(pc.in_d) + id) * uint(pc.in_h) + ih) * uint(pc.in_w) + iw;
    y[pc.out_base + e] = x[pc.in_base + src];
}
