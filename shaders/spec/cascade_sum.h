/* Kernel spec: PyTorch 1.13's float sum of a contiguous run of n elements (cascade_sum in
 * SumKernel.cpp, DEFAULT capability: Vectorized<float> has 8 lanes).  area mode needs it because
 * adaptive_avg_pool with an all-ones output size is computed by torch as mean() = sum / n.
 *
 * Order: n >= 8: the n/8 whole vectors are summed lane-wise by row_sum (4 interleaved partial
 * sums, each a 4-level cascade of blocks of 2^max(4, ceil(log2(rows))/4) rows), the scalar tail
 * is summed into 0, then the 8 lanes are added to it in order; n < 8: the same row_sum on
 * scalars.  The result is stored as 0 + sum.  (torch with several threads splits a single plane
 * of >= 32768 elements across them; this is its one-thread order.)
 *
 * The includer provides the element access: define SPEC_SUM_PARAM (a leading parameter, with its
 * comma, or nothing) and SPEC_SUM_LOAD(i) (element i of the run, i in [0, n)) before including;
 * the C default reads a float pointer.  Verified against torch.sum for n = 1..32767. */
#ifndef VKR_SPEC_CASCADE_SUM_H
#define VKR_SPEC_CASCADE_SUM_H

#include "spec_common.h"

#ifndef SPEC_SUM_LOAD
#define SPEC_SUM_PARAM const float *spec_sum_src,
#define SPEC_SUM_LOAD(i) spec_sum_src[i]
#endif

/* utils::CeilLog2: 1 for x <= 2, else the bit length of x - 1. */
SPEC_FN int spec_ceil_log2(int x)
{
    if (x <= 2)
        return 1;
    int bits = 0;
    for (int v = x - 1; v != 0; v = v / 2)
        bits++;
    return bits;
}

SPEC_FN float spec_cascade_sum(SPEC_SUM_PARAM int n)
{
    SPEC_PRECISE float acc[4][4][8];   /* level, interleaved partial k, lane */
    int lanes = n >= 8 ? 8 : 1;
    int size = n / lanes;         /* whole vectors (or scalars) */
    int rows = size / 4;          /* rows of 4 interleaved entries */
    for (int j = 0; j < 4; j++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 8; l++)
                acc[j][k][l] = 0.0f;
    int lp = spec_ceil_log2(rows) / 4 > 4 ? spec_ceil_log2(rows) / 4 : 4;
    int step = 1 << lp;
    int mask = step - 1;
    int i = 0;
    while (i + step <= rows) {
        for (int r = 0; r < step; r++) {
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < lanes; l++)
                    acc[0][k][l] = acc[0][k][l] + SPEC_SUM_LOAD((4 * i + k) * lanes + l);
            i++;
        }
        for (int j = 1; j < 4; j++) {
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < lanes; l++) {
                    acc[j][k][l] = acc[j][k][l] + acc[j - 1][k][l];
                    acc[j - 1][k][l] = 0.0f;
                }
            if ((i & (mask << (j * lp))) != 0)
                break;
        }
    }
    for (; i < rows; i++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < lanes; l++)
                acc[0][k][l] = acc[0][k][l] + SPEC_SUM_LOAD((4 * i + k) * lanes + l);
    for (int j = 1; j < 4; j++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < lanes; l++)
                acc[0][k][l] = acc[0][k][l] + acc[j][k][l];
    for (int e = rows * 4; e < size; e++)             /* row_sum's leftover entries */
        for (int l = 0; l < lanes; l++)
            acc[0][0][l] = acc[0][0][l] + SPEC_SUM_LOAD(e * lanes + l);
    for (int k = 1; k < 4; k++)
        for (int l = 0; l < lanes; l++)
            acc[0][0][l] = acc[0][0][l] + acc[0][k][l];
    SPEC_PRECISE float total = 0.0f;
    if (lanes == 8) {
        for (int e = size * 8; e < n; e++)            /* vectorized_inner_sum's scalar tail */
            total = total + SPEC_SUM_LOAD(e);
        for (int l = 0; l < 8; l++)
            total = total + acc[0][0][l];
    } else {
        total = acc[0][0][0];
    }
    SPEC_PRECISE float stored = 0.0f + total;       /* the output starts at 0 and accumulates */
    return stored;
}

#endif /* VKR_SPEC_CASCADE_SUM_H */
