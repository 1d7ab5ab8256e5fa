#version 450
// affine_grid (RANK 2: theta N x 2 x 3; RANK 3: N x 3 x 4): one invocation per output point of the
// chunk, writing its RANK coordinates (x, y[, z]).  The base coordinates come from the host's
// tables (vkr_spec_affine_base), the point from the kernel spec's spec_affine_2d / 3d in torch's
// bmm order.
#include "grid_params.glsl"

layout(local_size_x_id = 0) in;                     // workgroup size: the host's VKR_VK_LOCAL_SIZE
layout(constant_id = 1) const int RANK = 2;         // spatial axes: 2 or 3

// Binding 0 is grid_sample's input: declared for the spec's element read, never read here.
layout(std430, set = 0, binding = 0) readonly buffer In { float img[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Out { float res[]; };
// The W base table (one word per output W index), and the row table (RANK - 1 words per output
// row: y[, z]) followed (chunks of several batches) by every batch's theta.
layout(std430, set = 0, binding = 2) readonly buffer Crd { float crd[]; };
layout(std430, set = 0, binding = 3) readonly buffer Rows { float rows[]; };

#define SPEC_GS_PARAM uint spec_gs_base,
#define SPEC_GS_ARG spec_gs_base,
#define SPEC_GS_LOAD(i) img[spec_gs_base + uint(i)]
#include "spec/grid_rules.h"

// Element k of the theta of the chunk's batch nl.
float theta(uint nl, int k)
{
    return pc.theta_base == THETA_PUSHED ? pc.theta[k] : rows[pc.theta_base + nl * uint(RANK * (RANK + 1)) + uint(k)];
}

void main()
{
    uint pg, nl, p;
    if (!chunk_point(pg, nl, p))
        return;
    uint ow = uint(pc.out_w);
    float bx = crd[pc.crd_base + p % ow];
    uint r = pc.row_base + (p / ow) * uint(RANK - 1);
    float by = rows[r];
    uint o = pc.out_base + pg * uint(RANK);
    if (RANK == 2) {
        res[o] = spec_affine_2d(bx, by, theta(nl, 0), theta(nl, 1), theta(nl, 2));
        res[o + 1u] = spec_affine_2d(bx, by, theta(nl, 3), theta(nl, 4), theta(nl, 5));
    } else {
        float bz = rows[r + 1u];
        res[o] = spec_affine_3d(bx, by, bz, theta(nl, 0), theta(nl, 1), theta(nl, 2), theta(nl, 3));
        res[o + 1u] = spec_affine_3d(bx, by, bz, theta(nl, 4), theta(nl, 5), theta(nl, 6), theta(nl, 7));
        res[o + 2u] = spec_affine_3d(bx, by, bz, theta(nl, 8), theta(nl, 9), theta(nl, 10), theta(nl, 11));
    }
}
