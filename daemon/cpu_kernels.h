/* The CPU backend's inner loops (cpu_kernels.c), vectorised ACROSS independent outputs: every
 * lane of a vector is one output element and gets exactly the scalar operations of the spec
 * (shaders/spec/interp_rules.h) in the spec's order, so the results are bit-identical whatever the
 * vector width.  x86-64 builds carry an AVX2 clone of each kernel chosen at load time; no FMA is
 * ever used (the project builds with -ffp-contract=off and the clones do not enable FMA).
 *
 * "Row blocks" are 8 rows processed together: cpu_interleave8 lays 8 rows side by side
 * (T[x * 8 + r] = rows[r][x]) so that a pass along the rows becomes vector work over the 8 rows,
 * each row keeping its own left-to-right sum. */
#ifndef VKR_CPU_KERNELS_H
#define VKR_CPU_KERNELS_H

#include <stdint.h>

#define CPU_BLOCK 8 /* rows per row block (vector lanes) */

/* T[x * 8 + r] = rows[r][x] for x in [0, n).  All 8 pointers must be readable over [0, n). */
void cpu_interleave8(const float *const rows[8], int64_t n, float *T);

/* Indexed taps along the rows (linear K = 2, bicubic K = 4, 1 <= K <= 4): for ox in [ox0, ox1),
 * each of the 8 rows gets acc = v(off[0]) * w[0]; acc = acc + v(off[k]) * w[k] for k = 1..K-1,
 * v(f) = T[f + r] (off[k][ox]: the tap's column relative to T's first column, times 8).
 * out[r][ox] = acc; rows with out[r] == NULL are skipped. */
void cpu_wpass8_idx(const float *T, int K, const int32_t *const off[4], const float *const w[4], int64_t ox0, int64_t ox1,
                    float *const out[8]);

/* Antialias taps along the rows: xsize[ox] taps, the first at T[xoff[ox]] (column times 8, as
 * above), weights w[ox * mt + j]; no taps gives 0. */
void cpu_wpass8_aa(const float *T, const int32_t *xoff, const int32_t *xsize, const float *w, int mt, int64_t ox0, int64_t ox1,
                   float *const out[8]);

/* Weighted sum of K >= 1 rows, vectorised along the row: dst[x] = rows[0][x] * w[0], then
 * + rows[k][x] * w[k] for k = 1..K-1 (spec_mul, spec_madd).  K == 0 gives 0.  stream != 0: write
 * dst with non-temporal stores (an output too large for the caches: no read for ownership). */
void cpu_wsum_rows(const float *const rows[], const float *w, int K, int64_t n, float *dst, int stream);

/* The same with rows[k] = base + k * stride. */
void cpu_wsum_strided(const float *base, int64_t stride, const float *w, int K, int64_t n, float *dst);

/* area, 8 output rows as lanes: A[j * 8 + r] += v(start[ow] + i) for i in [0, len[ow]), left to
 * right, for ow = ow0 + j, j < m; v(i) = T[(i - x0) * 8 + r]. */
void cpu_area_acc8(const float *T, int64_t x0, const int32_t *start, const int32_t *len, int64_t ow0, int m, float *A);

/* out[r][ow0 + j] = spec_area_mean(A[j * 8 + r], kd[r], kh[r], len[ow0 + j]) for j < m; rows with
 * out[r] == NULL are skipped. */
void cpu_area_finish8(const float *A, const float kd[8], const float kh[8], const int32_t *len, int64_t ow0, int m,
                      float *const out[8]);

/* grid_sample 2-D over nc channels, 8 points per vector.  The prepared points are interleaved in
 * groups of 8: point p's entry k is off[k][(p / 8) * G + p % 8] (off[k] = base + 8 k; the same for
 * w), so a group's whole record is one contiguous read.
 *
 * Bilinear: dst[c][p] = ((v0 * w0 + v1 * w1) + v2 * w2) + v3 * w3 with vk = off_k >= 0 ?
 * src[c][off_k] : 0 (spec_gs_apply_2d, 4 taps); off_1 is off_0 + 1 and off_3 is off_2 + 1 where
 * both are >= 0; planes have `plane` elements.  (A point with a non-finite grid value comes with
 * offsets -1 and NaN weights: NaN, nothing read.) */
void cpu_gs_bilinear(int nc, const float *const src[], const int32_t *const off[4], const float *const w[4], int64_t G, int64_t plane,
                     int64_t n, float *const dst[]);

/* Bicubic (spec_gs_apply_2d, 16 taps): tap (i, j) is src[c][rc_i + rc_4+j] where both are >= 0,
 * else 0 (rc_0..3: row offsets y * W, rc_4..7: columns x); x weights w_0..3, y weights w_4..7:
 * row_i = ((t_i0 wx0 + t_i1 wx1) + t_i2 wx2) + t_i3 wx3, dst = ((row_0 wy0 + row_1 wy1) +
 * row_2 wy2) + row_3 wy3. */
void cpu_gs_bicubic(int nc, const float *const src[], const int32_t *const rc[8], const float *const w[8], int64_t G, int64_t n,
                    float *const dst[]);

/* The same two sums with the channels as lanes, for nc >= 1 channels read from a blocked copy of
 * the batch: channel 8 b + r of pixel i is blocks[b * bstride + i * 8 + r] (b < ceil(nc / 8)), and
 * pixel `zero` of every block holds 0s, read for every outside tap (off < 0; bicubic: a row or a
 * column < 0), so that it enters the sum as the spec's 0.  The prepared points as above (G, AT);
 * the output of channel c, point p at dst[c * dstride + p], for c < nc, p < n. */
void cpu_gs_bilinear_cb(int nc, const float *blocks, int64_t bstride, int64_t zero, const int32_t *const off[4],
                        const float *const w[4], int64_t G, int64_t n, float *dst, int64_t dstride);
void cpu_gs_bicubic_cb(int nc, const float *blocks, int64_t bstride, int64_t zero, const int32_t *const rc[8],
                       const float *const w[8], int64_t G, int64_t n, float *dst, int64_t dstride);

/* Linear taps along one row by permutes (AVX2; cpu_wlin_perm_available() says whether the fast
 * kernel is there - without it cpu_wlin_perm runs scalar): for block b of 8 outputs, tap k's value
 * for output 8 b + j is in[base[2 b + k] + rel[16 b + 8 k + j]] (0 <= rel < 8, base + 8 <= the row's
 * length); out[8 b + j] = v0 * w0[8 b + j] + v1 * w1[8 b + j] (spec_mul, spec_madd). */
int cpu_wlin_perm_available(void);
void cpu_wlin_perm(const float *in, const int32_t *base, const int32_t *rel, const float *w0, const float *w1, int64_t nblocks,
                   float *out);

/* cpu_wsum_rows with K = 2 (AVX2 where there is one: 32-byte stores).  With stream != 0 its
 * non-temporal stores are not fenced: call cpu_store_fence after the last one, before the output
 * is handed to another thread. */
void cpu_wsum2(const float *r0, const float *r1, float w0, float w1, int64_t n, float *dst, int stream);
void cpu_store_fence(void);

/* torch's channels-last linear scalar tail (spec_cl_tail_step) along one output row: dst[x] =
 * f32(((double(v_0) * w_0 + double(v_1) * w_1) + ...) + double(v_T-1) * w_T-1), v_k =
 * rows[k][idx[k][x]], w_k = w[k][x], T = 4 or 8 terms, every product exact and every sum one
 * double rounding (AVX2: 8 outputs per step, gathers). */
void cpu_cl_dsum_row(int T, const float *const rows[8], const int32_t *const idx[8], const float *const w[8], int64_t n,
                     float *dst);

#endif
