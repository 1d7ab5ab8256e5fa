// Shared by every interpolate_*.comp: the push-constant block (mirrors vkr_vk_push_t in
// daemon/backend_vulkan.c, 84 bytes) and the mapping of an invocation to its output element.
//
// A dispatch covers one chunk: whole N*C planes, or one plane's range of indices along its
// outermost spatial axis (the split axis).  Offsets into the bound ranges are uint arithmetic
// modulo 2^32: the host folds the chunk's start (and the first source row it bound) into them, so
// a shader indexes with plane-global coordinates and lands inside the bound range.
#ifndef VKR_INTERPOLATE_PARAMS_GLSL
#define VKR_INTERPOLATE_PARAMS_GLSL

layout(push_constant) uniform Params {
    uint in_base, out_base; // element 0 of the chunk's first plane in the bound input / output ranges
    uint count;             // output elements (area mean: planes) of this chunk
    uint first, row;        // first element of this dispatch; elements per grid row
    uint e_off;             // flat index of the chunk's first output element within its plane
    int in_d, in_h, in_w, out_d, out_h, out_w;  // extents of a whole plane; absent outer axes: 1
    float scale_d, scale_h, scale_w;            // nearest: vkr_spec_area_pixel_scale
    uint tab_d, tab_h, tab_w;  // uint offset of entry 0 of each axis's table in its binding: the
                               // outermost spatial axis in binding 2, the others in binding 3
    uint aux;               // antialias: weights per table entry; area mean: elements per input
                            // binding (0: the plane is in binding 0 alone)
    uint term0, term1;      // area, antialias: this dispatch adds terms [term0, term1) of each
                            // output's sequential sum, the partial sum kept in the output between
                            // dispatches (lavapipe ends any loop after 65535 iterations)
} pc;

// The chunk-relative output element of this invocation, offset by e_off (so that it decomposes
// into plane-global coordinates); false past the chunk's end.
bool chunk_element(out uint e)
{
    uint i = pc.first + gl_GlobalInvocationID.y * pc.row + gl_GlobalInvocationID.x;
    e = pc.e_off + i;
    return i < pc.count;
}

// e -> (plane within the chunk, od, oh, ow).
void decompose(uint e, out uint plane, out uint od, out uint oh, out uint ow)
{
    ow = e % uint(pc.out_w);
    uint t = e / uint(pc.out_w);
    oh = t % uint(pc.out_h);
    t /= uint(pc.out_h);
    od = t % uint(pc.out_d);
    plane = t / uint(pc.out_d);
}

#endif
