// Shared by every interpolate_*.comp: the push-constant block (mirrors vkr_vk_push_t in
// daemon/backend_vulkan.c, 128 bytes) and the mapping of an invocation to its output element.
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
    uint span;              // nearest, linear, cubic: output elements of each plane of the chunk
    uint planes;            // nearest, linear, cubic: planes of the chunk
    uint div_w_m, div_w_s;  // nearest, linear, cubic: fast_div's (magic, shifts) of out_w,
    uint div_h_m, div_h_s;  // out_h and span (the host's fast_div_magic; single words: a uvec2
    uint div_span_m, div_span_s;  // would be 8-byte aligned)
    uint cl_channels, cl_vec;     // channels-last linear: C and C - C % 8 (its vector-lane channels)
    uint cl_c0;                   // and the channel of the chunk's first plane
} pc;

// n / d for the d whose (magic, shifts) the host gave (Granlund and Montgomery's division by an
// invariant integer, exact for every 32-bit n): llvmpipe has no vector integer division and
// divides lane by lane, a GPU expands it to a long sequence; this is a multiply and shifts.
uint fast_div(uint n, uvec2 d)
{
    uint t, lo;
    umulExtended(n, d.x, t, lo);
    return (t + ((n - t) >> (d.y & 0xffu))) >> (d.y >> 8u);
}

// The chunk-relative output element of this invocation, offset by e_off (so that it decomposes
// into plane-global coordinates); false past the chunk's end.
bool chunk_element(out uint e)
{
    uint i = pc.first + gl_GlobalInvocationID.y * pc.row + gl_GlobalInvocationID.x;
    e = pc.e_off + i;
    return i < pc.count;
}

// Nearest, linear, cubic: an invocation per element of a plane's span for each group of
// `per` planes (the host dispatches ceil(planes / per) * span invocations).  e: the
// plane-relative output element (offset by e_off), p0: the group's first plane within the chunk;
// false past the chunk's end.  The caller writes planes p0 .. min(p0 + per, pc.planes) - 1.
bool chunk_group(uint per, out uint e, out uint p0)
{
    uint i = pc.first + gl_GlobalInvocationID.y * pc.row + gl_GlobalInvocationID.x;
    uint g = fast_div(i, uvec2(pc.div_span_m, pc.div_span_s));
    e = pc.e_off + (i - g * pc.span);
    p0 = g * per;
    return p0 < pc.planes;
}

// A plane-relative e (< out_d * out_h * out_w) -> (od, oh, ow).
void decompose_in_plane(uint e, out uint od, out uint oh, out uint ow)
{
    uint t = fast_div(e, uvec2(pc.div_w_m, pc.div_w_s));
    ow = e - t * uint(pc.out_w);
    od = fast_div(t, uvec2(pc.div_h_m, pc.div_h_s));
    oh = t - od * uint(pc.out_h);
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
