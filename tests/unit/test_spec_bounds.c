/* The kernel spec's per-axis linear taps stay inside the axis where a float32 scale rounds up
 * (n > 2^24: PyTorch issue 88939), and equal the guarded rule of PyTorch >= 2.0 there: the last
 * element, weight 1.  Host tables only: both backends read exactly these. */
#include <stdlib.h>

#include "spec/axis_tables.h"
#include "tap.h"

static void check(int64_t n, int64_t o, bool align_corners)
{
    int32_t i0[8], i1[8];
    float l0[8], l1[8];
    vkr_spec_linear_taps(n, o, align_corners, false, 0.0, (vkr_linear_taps_t){i0, i1, l0, l1});
    bool inside = true;
    for (int64_t i = 0; i < o; i++)
        inside = inside && i0[i] >= 0 && i0[i] <= n - 1 && i1[i] >= 0 && i1[i] <= n - 1 && l1[i] >= 0.0f && l1[i] <= 1.0f;
    tap_check(inside, "linear n=%lld o=%lld align_corners=%d: taps inside [0, n-1] (last: i0=%d i1=%d l0=%g l1=%g)",
              (long long)n, (long long)o, align_corners, i0[o - 1], i1[o - 1], l0[o - 1], l1[o - 1]);
}

int main(void)
{
    for (int64_t d = 0; d < 16; d++)
        for (int64_t o = 2; o <= 8; o++) {
            check((1 << 24) + d, o, true);
            check((1 << 24) + d, o, false);
        }
    int32_t i0[2], i1[2];
    float l0[2], l1[2];
    vkr_spec_linear_taps((1 << 24) + 4, 2, true, false, 0.0, (vkr_linear_taps_t){i0, i1, l0, l1});
    tap_check(i0[1] == (1 << 24) + 3 && i1[1] == (1 << 24) + 3 && l0[1] == 0.0f && l1[1] == 1.0f,
              "2^24+4 -> 2 align_corners: last output is the last element (i0=%d i1=%d l0=%g l1=%g)", i0[1], i1[1], l0[1], l1[1]);
    return tap_done();
}
