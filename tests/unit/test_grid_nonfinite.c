/* The kernel spec's grid_sample on non-finite and huge grid values (README "Non-finite grid
 * values"): every tap it prepares lies inside the plane or is a zero / skip tap, for every mode,
 * padding, align_corners and small extent; and a point with one special component, the others at
 * a pixel centre, gives the value 1.13 gives (NaN, 0, or the pixel its padding picks), read from
 * a plane of distinct non-zero values. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "spec/grid_rules.h"
#include "tap.h"

static const float specials[] = {NAN, INFINITY, -INFINITY, 1e30f, -1e30f, 3e9f, -3e9f, 1e38f, -1e38f, FLT_MAX, -FLT_MAX, 0.0f, 1.0f, -1.0f, 0.3f};
#define N_SPECIALS ((int)(sizeof specials / sizeof specials[0]))

static bool taps_inside(int taps, const int tap[16], int plane)
{
    for (int k = 0; k < taps; k++)
        if (tap[k] != SPEC_TAP_ZERO && tap[k] != SPEC_TAP_SKIP && (tap[k] < 0 || tap[k] >= plane))
            return false;
    return true;
}

/* Every pair (2-D) or triple (3-D) of specials, extents 1..4 on each axis. */
static void bounds(int rank, int mode, int padding, bool ac)
{
    long points = 0, bad = 0;
    int tap[16];
    float w[8];
    for (int D = 1; D <= (rank == 3 ? 4 : 1); D++)
        for (int H = 1; H <= 4; H++)
            for (int W = 1; W <= 4; W++)
                for (int a = 0; a < N_SPECIALS; a++)
                    for (int b = 0; b < N_SPECIALS; b++)
                        for (int c = 0; c < (rank == 3 ? N_SPECIALS : 1); c++) {
                            int taps = rank == 2 ? spec_gs_prepare_2d(H, W, specials[a], specials[b], mode, padding, ac, tap, w)
                                                 : spec_gs_prepare_3d(D, H, W, specials[a], specials[b], specials[c], mode, padding, ac,
                                                                      tap, w);
                            points++;
                            bad += !taps_inside(taps, tap, D * H * W);
                        }
    tap_check(bad == 0, "%d-D mode %d padding %d align_corners %d: taps of %ld special points inside the plane (%ld outside)", rank,
              mode, padding, ac, points, bad);
}

enum { WANT_NAN = -1, WANT_ZERO = -2 };

/* Expected element for a special value v on axis k of extent n (the other axes at their centre):
 * the index along k, or WANT_NAN / WANT_ZERO. */
static int expect(int rank, int mode, int padding, float v, int n)
{
    bool nan = isnan(v), pos = v > 0.0f;
    if (rank == 2 && mode == SPEC_GS_BICUBIC)
        return WANT_NAN;
    if (padding == SPEC_PAD_ZEROS)
        return rank == 2 && mode == SPEC_GS_BILINEAR ? WANT_NAN : WANT_ZERO;
    if (padding == SPEC_PAD_REFLECTION)
        return rank == 2 ? 0 : n - 1;
    if (nan)
        return rank == 2 ? 0 : n - 1;
    return pos ? n - 1 : 0;
}

static void values(int rank, int mode, int padding, bool ac)
{
    const int ext[3] = {5, 3, 3};   /* W, H, D: odd, so grid value 0 is a pixel centre */
    float plane[45];
    for (int i = 0; i < 45; i++)
        plane[i] = (float)(i + 1);
    const float vals[3] = {NAN, INFINITY, -INFINITY};
    int fails = 0, cases = 0;
    for (int k = 0; k < rank; k++)
        for (int j = 0; j < 3; j++) {
            float g[3] = {0.0f, 0.0f, 0.0f};
            g[k] = vals[j];
            int e = expect(rank, mode, padding, vals[j], ext[k]);
            int idx[3] = {ext[0] / 2, ext[1] / 2, rank == 3 ? ext[2] / 2 : 0};
            idx[k] = e;
            float want = e == WANT_NAN ? NAN : e == WANT_ZERO ? 0.0f : plane[(idx[2] * ext[1] + idx[1]) * ext[0] + idx[0]];
            float got = rank == 2 ? spec_grid_sample_2d(plane, ext[1], ext[0], g[0], g[1], mode, padding, ac)
                                  : spec_grid_sample_3d(plane, ext[2], ext[1], ext[0], g[0], g[1], g[2], mode, padding, ac);
            bool ok = isnan(want) ? isnan(got) : spec_float_bits(got) == spec_float_bits(want);
            cases++;
            if (!ok) {
                fails++;
                printf("# %d-D mode %d padding %d ac %d: component %d = %g gives %g, want %g\n", rank, mode, padding, ac, k, (double)vals[j],
                       (double)got, (double)want);
            }
        }
    tap_check(fails == 0, "%d-D mode %d padding %d align_corners %d: NaN / +-inf components give torch 1.13's value (%d of %d wrong)", rank,
              mode, padding, ac, fails, cases);
}

int main(void)
{
    for (int rank = 2; rank <= 3; rank++)
        for (int mode = SPEC_GS_BILINEAR; mode <= (rank == 2 ? SPEC_GS_BICUBIC : SPEC_GS_NEAREST); mode++)
            for (int padding = SPEC_PAD_ZEROS; padding <= SPEC_PAD_REFLECTION; padding++)
                for (int ac = 0; ac < 2; ac++) {
                    bounds(rank, mode, padding, ac);
                    values(rank, mode, padding, ac);
                }
    return tap_done();
}
