/* Host-side table builders of the kernel spec: scales and per-axis linear taps, computed in the
 * precision PyTorch 1.13's CPU kernels use.  Built with -ffp-contract=off. */
#include "axis_tables.h"

#include "interp_rules.h"

float vkr_spec_area_pixel_scale(int64_t n, int64_t o, bool align_corners, bool has_scale, double scale)
{
    if (align_corners)
        return o > 1 ? (float)(n - 1) / (float)(o - 1) : 0.0f;
    if (has_scale && scale > 0.0)
        return (float)(1.0 / scale);          /* reciprocal in double, one rounding */
    return (float)n / (float)o;               /* float division */
}

void vkr_spec_linear_taps(int64_t n, int64_t o, bool align_corners, bool has_scale, double scale,
                          vkr_linear_taps_t taps)
{
    if (o == n) {                             /* per-axis identity: x*1 + x*0 (§4.2) */
        for (int64_t i = 0; i < o; i++) {
            taps.i0[i] = taps.i1[i] = (int32_t)i;
            taps.l0[i] = 1.0f;
            taps.l1[i] = 0.0f;
        }
        return;
    }
    double sc = (double)vkr_spec_area_pixel_scale(n, o, align_corners, has_scale, scale);
    for (int64_t i = 0; i < o; i++) {
        double real = spec_src_linear(sc, (int)i, align_corners);
        int64_t i0 = (int64_t)real;           /* truncation == floor: real >= 0 */
        float l1 = (float)(real - (double)i0);
        taps.i0[i] = (int32_t)i0;
        taps.i1[i] = (int32_t)(i0 + (i0 < n - 1 ? 1 : 0));
        taps.l1[i] = l1;
        taps.l0[i] = 1.0f - l1;
    }
}

void vkr_spec_nearest_indices(int64_t n, int64_t o, bool exact, bool has_scale, double scale, int32_t *idx)
{
    float sc = vkr_spec_area_pixel_scale(n, o, false, has_scale, scale);
    for (int64_t i = 0; i < o; i++)
        idx[i] = exact ? spec_nearest_exact_index((int)i, sc, (int)n) : spec_nearest_index((int)i, sc, (int)n);
}
