// Shared by grid_sample.comp and affine_grid.comp: the push-constant block (mirrors
// vkr_vk_grid_push_t in daemon/backend_vulkan.c, 124 bytes) and the invocation's point.
//
// A dispatch covers one chunk: whole batches [n0, n0 + nb) (all channels, all points), or within
// one batch a group of channels, or one channel's range of output points [p0, p0 + count) of its
// (D,) H, W output.  A chunk's points are counted from point 0 of its first batch (pg below), so
// batch n0 + nl's point p is pg = nl * out_plane + p.  Offsets into the bound ranges are uint
// arithmetic modulo 2^32: the host folds the chunk's first batch, channel, point and table entry
// into them, so a shader indexes with plane-global point indices and lands inside the bound range.
#ifndef VKR_GRID_PARAMS_GLSL
#define VKR_GRID_PARAMS_GLSL

layout(push_constant) uniform GridParams {
    uint in_base;       // binding 0: element 0 of this dispatch's first input plane
    uint out_base;      // binding 1: point 0 of this dispatch's first output plane (affine_grid:
                        // word 0 of the first batch's point 0)
    uint crd_base;      // binding 2: grid_sample, word 0 of the first batch's point 0 in the grid;
                        // affine ops, the W base table's entry 0
    uint row_base;      // binding 3, affine ops: word 0 of row 0's entry in the row table (2-D: y;
                        // 3-D: y, z of row d * H + h)
    uint theta_base;    // binding 3, affine ops: word 0 of the first batch's theta, or THETA_PUSHED
    uint count;         // points of the chunk (all its batches')
    uint first, row;    // first point of this dispatch (chunk-relative); points per grid row
    uint p0;            // the chunk's first point (pg of its first invocation)
    uint channels;      // channels this dispatch writes (a shader invocation loops over them)
    uint in_plane;      // elements per input plane: the channel stride of binding 0
    uint out_plane;     // points per output plane: the channel stride of binding 1
    uint in_batch;      // the batch strides of bindings 0 and 1: C planes (mod 2^32)
    uint out_batch;
    int in_d, in_h, in_w;   // the input's extents (2-D: in_d = 1)
    int out_w;          // the output's W (affine ops: point -> W entry, row)
    uint align_corners; // 0 or 1
    float theta[12];    // affine ops, with THETA_PUSHED: the one batch's theta, R x (R + 1) row-major
} pc;

const uint THETA_PUSHED = 0xffffffffu;

// This invocation's point pg (counted from the chunk's first batch), its batch nl within the
// chunk and its point p within that batch's plane; false past the chunk's end.
bool chunk_point(out uint pg, out uint nl, out uint p)
{
    uint i = pc.first + gl_GlobalInvocationID.y * pc.row + gl_GlobalInvocationID.x;
    pg = pc.p0 + i;
    nl = pg / pc.out_plane;
    p = pg - nl * pc.out_plane;
    return i < pc.count;
}

#endif
