#version 450
// linear / bilinear / trilinear interpolate (RANK 1, 2, 3) from the host's per-axis tables.  One
// invocation per output element of N*C*D*H*W, flattened.  Combination order is PyTorch's
// separable recursion: W first, then H, then D, each step the kernel spec's spec_lerp.
#include "spec/interp_rules.h"

layout(local_size_x_id = 0) in;             // workgroup size: the host's VKR_VK_LOCAL_SIZE
layout(constant_id = 1) const int RANK = 2; // spatial axes

layout(std430, set = 0, binding = 0) readonly buffer In { float x[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Out { float y[]; };
// Taps of every axis: (i0, i1, bits of l0, bits of l1) per output index, from vkr_spec_linear_taps.
layout(std430, set = 0, binding = 2) readonly buffer Tab { uvec4 tab[]; };

// Mirrors vkr_vk_push_t in daemon/backend_vulkan.c (68 bytes).
layout(push_constant) uniform Params {
    uint in_base, out_base; // element offsets of this chunk within the bound ranges
    uint count;             // output elements of this chunk
    uint first, row;        // first element of this dispatch; elements per grid row
    int in_d, in_h, in_w, out_d, out_h, out_w;
    float scale_d, scale_h, scale_w;
    uint tab_d, tab_h, tab_w;  // first entry of each axis in tab[]
} pc;

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

void main()
{
    uint e = pc.first + gl_GlobalInvocationID.y * pc.row + gl_GlobalInvocationID.x;
    if (e >= pc.count)
        return;
    uint ow = e % uint(pc.out_w), t = e / uint(pc.out_w);
    uint oh = t % uint(pc.out_h);
    t /= uint(pc.out_h);
    uint od = t % uint(pc.out_d), plane = t / uint(pc.out_d);
    uint hw = uint(pc.in_h) * uint(pc.in_w);
    uint src = pc.in_base + plane * uint(pc.in_d) * hw;
    uvec4 w = tab[pc.tab_w + ow];
    float v;
    if (RANK == 1) {
        v = lerp_w(src, w);
    } else if (RANK == 2) {
        v = lerp_hw(src, tab[pc.tab_h + oh], w);
    } else {
        uvec4 h = tab[pc.tab_h + oh], d = tab[pc.tab_d + od];
        v = spec_lerp(lerp_hw(src + d.x * hw, h, w), lerp_hw(src + d.y * hw, h, w),
                      uintBitsToFloat(d.z), uintBitsToFloat(d.w));
    }
    y[pc.out_base + e] = v;
}
