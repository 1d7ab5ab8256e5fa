#version 450
// grid_sample (RANK 2: bilinear, nearest, bicubic; RANK 3: bilinear, nearest) x padding (zeros,
// border, reflection), and the fused affine_sample (AFFINE: the point's grid value computed from
// theta and the host's affine base tables, never stored).  One invocation per output point of the
// chunk: the point's taps are prepared once (spec_gs_prepare_2d / 3d) and applied to each of the
// dispatch's channels in turn (spec_gs_apply_2d / 3d), the host keeping a dispatch's channels
// within the device's loop budget.  Every coordinate, tap and weight is the kernel spec's
// (spec/grid_rules.h).  On lavapipe this loop beats one invocation per (point, channel) from 3
// channels on (bicubic 3.5x at 32 channels), and with the tap count folded below, at 1 channel too.
#include "grid_params.glsl"

layout(local_size_x_id = 0) in;                     // workgroup size: the host's VKR_VK_LOCAL_SIZE
layout(constant_id = 1) const int RANK = 2;         // spatial axes: 2 or 3
layout(constant_id = 2) const int MODE = 1;         // SPEC_GS_BILINEAR, SPEC_GS_NEAREST, SPEC_GS_BICUBIC
layout(constant_id = 3) const int PADDING = 1;      // SPEC_PAD_ZEROS, SPEC_PAD_BORDER, SPEC_PAD_REFLECTION
layout(constant_id = 4) const bool AFFINE = false;  // affine_sample: points from theta

layout(std430, set = 0, binding = 0) readonly buffer In { float img[]; };
layout(std430, set = 0, binding = 1) writeonly buffer Out { float res[]; };
// grid_sample: the chunk's grid values, RANK words per point (x, y[, z]).  affine_sample: the W
// base table (one word per output W index).
layout(std430, set = 0, binding = 2) readonly buffer Crd { float crd[]; };
// affine_sample: the row table, RANK - 1 words per output row (y[, z]), then (chunks of several
// batches) every batch's theta.
layout(std430, set = 0, binding = 3) readonly buffer Rows { float rows[]; };

// The spec's element read: element i of the plane starting at word spec_gs_base of binding 0.
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
    float gx, gy, gz = 0.0;
    if (AFFINE) {
        uint ow = uint(pc.out_w);
        float bx = crd[pc.crd_base + p % ow];
        uint r = pc.row_base + (p / ow) * uint(RANK - 1);
        float by = rows[r];
        if (RANK == 2) {
            gx = spec_affine_2d(bx, by, theta(nl, 0), theta(nl, 1), theta(nl, 2));
            gy = spec_affine_2d(bx, by, theta(nl, 3), theta(nl, 4), theta(nl, 5));
        } else {
            float bz = rows[r + 1u];
            gx = spec_affine_3d(bx, by, bz, theta(nl, 0), theta(nl, 1), theta(nl, 2), theta(nl, 3));
            gy = spec_affine_3d(bx, by, bz, theta(nl, 4), theta(nl, 5), theta(nl, 6), theta(nl, 7));
            gz = spec_affine_3d(bx, by, bz, theta(nl, 8), theta(nl, 9), theta(nl, 10), theta(nl, 11));
        }
    } else {
        uint k = pc.crd_base + pg * uint(RANK);
        gx = crd[k];
        gy = crd[k + 1u];
        if (RANK == 3)
            gz = crd[k + 2u];
    }
    int tap[16];
    float w[8];
    bool ac = pc.align_corners != 0u;
    int taps = RANK == 2 ? spec_gs_prepare_2d(pc.in_h, pc.in_w, gx, gy, MODE, PADDING, ac, tap, w)
                         : spec_gs_prepare_3d(pc.in_d, pc.in_h, pc.in_w, gx, gy, gz, MODE, PADDING, ac, tap, w);
    // prepare returns 0 or this mode's tap count: saying so lets the compiler drop the other
    // modes' branches of apply (and their live arrays) from the channel loop.
    taps = taps == 0 ? 0 : MODE == SPEC_GS_NEAREST ? 1 : MODE == SPEC_GS_BICUBIC ? 16 : RANK == 2 ? 4 : 8;
    uint src = pc.in_base + nl * pc.in_batch, dst = pc.out_base + nl * pc.out_batch + p;
    for (uint c = 0u; c < pc.channels; c++) {
        float v = RANK == 2 ? spec_gs_apply_2d(src, taps, tap, w) : spec_gs_apply_3d(src, taps, tap, w);
        // The 3-D sum starts from 0.0, and llvmpipe folds its first `0.0 + p` to `p` (a constant
        // zero operand), so a -0 product came out as -0 where IEEE (and torch) give +0.  That sum
        // is never -0 in IEEE arithmetic (+0 + -0 = +0, x + -x = +0), so -0 is exactly +0 here.
        if (RANK == 3 && MODE == SPEC_GS_BILINEAR && floatBitsToUint(v) == 0x80000000u)
            v = 0.0;
        res[dst] = v;
        src += pc.in_plane;
        dst += pc.out_plane;
    }
}
