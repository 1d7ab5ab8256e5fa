/* The CPU backend's vector kernels (see cpu_kernels.h).  Written with GCC/Clang vector extensions
 * (8 lanes; a baseline x86-64 build runs them as pairs of SSE operations) plus SSE 4x4 transposes;
 * each exported kernel is cloned for AVX2 where the compiler can (target_clones; the loader picks
 * the clone).  Every lane does the scalar spec's multiplications and additions, one rounding each,
 * in the spec's order: -ffp-contract=off and no FMA in any clone keep them unfused. */
#include "cpu_kernels.h"

#include <stdint.h>
#include <string.h>
#define CPU_PF 128 /* floats: software prefetch distance along each of the 8 rows */


#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_X86 1
#else
#define CPU_X86 0
#endif

/* -DVKR_CPU_BASELINE builds only the baseline x86-64 code (to test it on an AVX2 machine).  GCC
 * only: clang 14 emits a cloned function's resolver under a suffixed name and never defines the
 * plain one, so callers in other files fail to link (the clang builds are the fuzzing ones). */
#if CPU_X86 && defined(__ELF__) && defined(__has_attribute) && !defined(VKR_CPU_BASELINE) && !defined(__clang__)
#if __has_attribute(target_clones)
#define CPU_CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef CPU_CLONES
#define CPU_CLONES
#endif

#define CPU_INLINE static inline __attribute__((always_inline))

typedef float v8f __attribute__((vector_size(32)));
typedef float v8fu __attribute__((vector_size(32), aligned(4), may_alias));
/* Unaligned loads and stores as macros: a v8f passed by value would change the ABI without AVX. */
#define LD(p) (*(const v8fu *)(const void *)(p))
#define ST(p, v) (*(v8fu *)(void *)(p) = (v))

/* ------------------------------------------------------------------ transposes */
#if CPU_X86
/* out[r0 + i][j0 .. j0 + 4) = buf[(j0 + k) * 8 + r0 + i] for the 4x4 block at (r0, j0). */
CPU_INLINE void store_block4(const float *buf, int r0, int j0, int64_t ox, float *const out[8])
{
    __m128 a = _mm_load_ps(buf + (j0 + 0) * 8 + r0), b = _mm_load_ps(buf + (j0 + 1) * 8 + r0);
    __m128 c = _mm_load_ps(buf + (j0 + 2) * 8 + r0), d = _mm_load_ps(buf + (j0 + 3) * 8 + r0);
    _MM_TRANSPOSE4_PS(a, b, c, d);
    if (out[r0 + 0])
        _mm_storeu_ps(out[r0 + 0] + ox + j0, a);
    if (out[r0 + 1])
        _mm_storeu_ps(out[r0 + 1] + ox + j0, b);
    if (out[r0 + 2])
        _mm_storeu_ps(out[r0 + 2] + ox + j0, c);
    if (out[r0 + 3])
        _mm_storeu_ps(out[r0 + 3] + ox + j0, d);
}
#endif

/* out[r][ox + j] = buf[j * 8 + r] for j < m (buf 32-byte aligned). */
CPU_INLINE void store_cols(const float *buf, int m, int64_t ox, float *const out[8])
{
#if CPU_X86
    if (m == 8) {
        store_block4(buf, 0, 0, ox, out);
        store_block4(buf, 0, 4, ox, out);
        store_block4(buf, 4, 0, ox, out);
        store_block4(buf, 4, 4, ox, out);
        return;
    }
#endif
    for (int r = 0; r < 8; r++)
        if (out[r])
            for (int j = 0; j < m; j++)
                out[r][ox + j] = buf[j * 8 + r];
}

/* (The row pointers are copied to locals throughout: the may_alias stores would otherwise make
 * the compiler reload them after every store.) */
CPU_CLONES void cpu_interleave8(const float *const rows[8], int64_t n, float *T)
{
    const float *r0 = rows[0], *r1 = rows[1], *r2 = rows[2], *r3 = rows[3];
    const float *r4 = rows[4], *r5 = rows[5], *r6 = rows[6], *r7 = rows[7];
    int64_t x = 0;
#if CPU_X86
    for (; x + 4 <= n; x += 4) {
#if CPU_PF
        if ((x & 15) == 0) {
            _mm_prefetch((const char *)(r0 + x + CPU_PF), _MM_HINT_T0);
            _mm_prefetch((const char *)(r1 + x + CPU_PF), _MM_HINT_T0);
            _mm_prefetch((const char *)(r2 + x + CPU_PF), _MM_HINT_T0);
            _mm_prefetch((const char *)(r3 + x + CPU_PF), _MM_HINT_T0);
            _mm_prefetch((const char *)(r4 + x + CPU_PF), _MM_HINT_T0);
            _mm_prefetch((const char *)(r5 + x + CPU_PF), _MM_HINT_T0);
            _mm_prefetch((const char *)(r6 + x + CPU_PF), _MM_HINT_T0);
            _mm_prefetch((const char *)(r7 + x + CPU_PF), _MM_HINT_T0);
        }
#endif
        __m128 a = _mm_loadu_ps(r0 + x), b = _mm_loadu_ps(r1 + x), c = _mm_loadu_ps(r2 + x), d = _mm_loadu_ps(r3 + x);
        __m128 e = _mm_loadu_ps(r4 + x), f = _mm_loadu_ps(r5 + x), g = _mm_loadu_ps(r6 + x), h = _mm_loadu_ps(r7 + x);
        _MM_TRANSPOSE4_PS(a, b, c, d);
        _MM_TRANSPOSE4_PS(e, f, g, h);
        float *t = T + x * 8;
        _mm_storeu_ps(t, a);
        _mm_storeu_ps(t + 4, e);
        _mm_storeu_ps(t + 8, b);
        _mm_storeu_ps(t + 12, f);
        _mm_storeu_ps(t + 16, c);
        _mm_storeu_ps(t + 20, g);
        _mm_storeu_ps(t + 24, d);
        _mm_storeu_ps(t + 28, h);
    }
#endif
    for (; x < n; x++) {
        float *t = T + x * 8;
        t[0] = r0[x], t[1] = r1[x], t[2] = r2[x], t[3] = r3[x];
        t[4] = r4[x], t[5] = r5[x], t[6] = r6[x], t[7] = r7[x];
    }
}

/* ------------------------------------------------------------------ passes along the rows */
CPU_INLINE void wpass_idx_body(const float *T, const int K, const int32_t *const idx[4], const float *const w[4], int64_t ox0,
                               int64_t ox1, float *const out[8])
{
    float buf[64] __attribute__((aligned(32)));
    const int32_t *i0 = idx[0], *i1 = idx[K > 1 ? 1 : 0], *i2 = idx[K > 2 ? 2 : 0], *i3 = idx[K > 3 ? 3 : 0];
    const float *w0 = w[0], *w1 = w[K > 1 ? 1 : 0], *w2 = w[K > 2 ? 2 : 0], *w3 = w[K > 3 ? 3 : 0];
    for (int64_t ox = ox0; ox < ox1; ox += 8) {
        const int m = ox1 - ox < 8 ? (int)(ox1 - ox) : 8;
#define WPASS_ONE(j)                                                                                                                   \
    do {                                                                                                                               \
        const int64_t o = ox + (j);                                                                                                    \
        v8f acc = LD(T + i0[o]) * w0[o];                                                                                 \
        if (K > 1)                                                                                                                     \
            acc = acc + LD(T + i1[o]) * w1[o];                                                                           \
        if (K > 2)                                                                                                                     \
            acc = acc + LD(T + i2[o]) * w2[o];                                                                           \
        if (K > 3)                                                                                                                     \
            acc = acc + LD(T + i3[o]) * w3[o];                                                                           \
        ST(buf + (j) * 8, acc);                                                                                                        \
    } while (0)
        if (m == 8) {
            WPASS_ONE(0);
            WPASS_ONE(1);
            WPASS_ONE(2);
            WPASS_ONE(3);
            WPASS_ONE(4);
            WPASS_ONE(5);
            WPASS_ONE(6);
            WPASS_ONE(7);
        } else {
            for (int j = 0; j < m; j++)
                WPASS_ONE(j);
        }
#undef WPASS_ONE
        store_cols(buf, m, ox, out);
    }
}

CPU_CLONES void cpu_wpass8_idx(const float *T, int K, const int32_t *const idx[4], const float *const w[4], int64_t ox0, int64_t ox1,
                               float *const out[8])
{
    switch (K) {
    case 1: wpass_idx_body(T, 1, idx, w, ox0, ox1, out); break;
    case 2: wpass_idx_body(T, 2, idx, w, ox0, ox1, out); break;
    case 3: wpass_idx_body(T, 3, idx, w, ox0, ox1, out); break;
    default: wpass_idx_body(T, 4, idx, w, ox0, ox1, out); break;
    }
}

CPU_CLONES void cpu_wpass8_aa(const float *T, const int32_t *xoff, const int32_t *xsize, const float *w, int mt,
                              int64_t ox0, int64_t ox1, float *const out[8])
{
    float buf[64] __attribute__((aligned(32)));
    for (int64_t ox = ox0; ox < ox1; ox += 8) {
        const int m = ox1 - ox < 8 ? (int)(ox1 - ox) : 8;
        for (int j = 0; j < m; j++) {
            const int64_t o = ox + j;
            const int32_t n = xsize[o];
            const float *ww = w + o * mt;
            v8f acc = {0};
            if (n > 0) {
                const float *s = T + xoff[o];
                acc = LD(s) * ww[0];
                for (int32_t t = 1; t < n; t++)
                    acc = acc + LD(s + t * 8) * ww[t];
            }
            ST(buf + j * 8, acc);
        }
        store_cols(buf, m, ox, out);
    }
}

/* ------------------------------------------------------------------ passes across rows */
CPU_INLINE float wsum_one(const float *const rows[], const float *w, int K, int64_t x)
{
    float a = rows[0][x] * w[0];
    for (int k = 1; k < K; k++) {
        float p = rows[k][x] * w[k];
        a = a + p;
    }
    return a;
}

CPU_INLINE void wsum_body(const float *const rows[], const float *w, const int K, int64_t n, float *dst, int stream)
{
    const float *r0 = rows[0], *r1 = rows[K > 1 ? 1 : 0], *r2 = rows[K > 2 ? 2 : 0], *r3 = rows[K > 3 ? 3 : 0];
    const float w0 = w[0], w1 = w[K > 1 ? 1 : 0], w2 = w[K > 2 ? 2 : 0], w3 = w[K > 3 ? 3 : 0];
#define WP_(r, wk, x) (LD((r) + (x)) * (wk))
#define WSUM8(x)                                                                                                                       \
    (K == 1   ? WP_(r0, w0, x)                                                                                                         \
     : K == 2 ? WP_(r0, w0, x) + WP_(r1, w1, x)                                                                                        \
     : K == 3 ? (WP_(r0, w0, x) + WP_(r1, w1, x)) + WP_(r2, w2, x)                                                                     \
              : ((WP_(r0, w0, x) + WP_(r1, w1, x)) + WP_(r2, w2, x)) + WP_(r3, w3, x))
    int64_t x = 0;
#if CPU_X86
    if (stream && n >= 64) {   /* non-temporal stores from the first 32-byte boundary */
        for (; ((uintptr_t)(dst + x) & 31) != 0; x++)
            dst[x] = wsum_one(rows, w, K, x);
        for (; x + 8 <= n; x += 8) {
            const v8f a = WSUM8(x);
            __m128 lo, hi;
            memcpy(&lo, &a, sizeof lo);
            memcpy(&hi, (const char *)&a + sizeof lo, sizeof hi);
            _mm_stream_ps(dst + x, lo);
            _mm_stream_ps(dst + x + 4, hi);
        }
        _mm_sfence();
    }
#endif
    for (; x + 16 <= n; x += 16) {
        const v8f a = WSUM8(x), b = WSUM8(x + 8);
        ST(dst + x, a);
        ST(dst + x + 8, b);
    }
    for (; x + 8 <= n; x += 8)
        ST(dst + x, WSUM8(x));
#undef WSUM8
#undef WP_
    for (; x < n; x++)
        dst[x] = wsum_one(rows, w, K, x);
}

CPU_CLONES void cpu_wsum_rows(const float *const rows[], const float *w, int K, int64_t n, float *dst, int stream)
{
    switch (K) {
    case 1: wsum_body(rows, w, 1, n, dst, stream); return;
    case 2: wsum_body(rows, w, 2, n, dst, stream); return;
    case 3: wsum_body(rows, w, 3, n, dst, stream); return;
    case 4: wsum_body(rows, w, 4, n, dst, stream); return;
    default: break;
    }
    if (K <= 0) {
        memset(dst, 0, (size_t)n * sizeof(float));
        return;
    }
    int64_t x = 0;
    for (; x + 8 <= n; x += 8) {
        v8f a = LD(rows[0] + x) * w[0];
        for (int k = 1; k < K; k++)
            a = a + LD(rows[k] + x) * w[k];
        ST(dst + x, a);
    }
    for (; x < n; x++)
        dst[x] = wsum_one(rows, w, K, x);
}

CPU_CLONES void cpu_wsum_strided(const float *base, int64_t stride, const float *w, int K, int64_t n, float *dst)
{
    if (K <= 0) {
        memset(dst, 0, (size_t)n * sizeof(float));
        return;
    }
    int64_t x = 0;
    for (; x + 32 <= n; x += 32) {
        const float *r = base + x;
        const float w0 = w[0];
        v8f a0 = LD(r) * w0, a1 = LD(r + 8) * w0, a2 = LD(r + 16) * w0, a3 = LD(r + 24) * w0;
        for (int k = 1; k < K; k++) {
            r += stride;
            const float wk = w[k];
            a0 = a0 + LD(r) * wk;
            a1 = a1 + LD(r + 8) * wk;
            a2 = a2 + LD(r + 16) * wk;
            a3 = a3 + LD(r + 24) * wk;
        }
        ST(dst + x, a0);
        ST(dst + x + 8, a1);
        ST(dst + x + 16, a2);
        ST(dst + x + 24, a3);
    }
    for (; x + 8 <= n; x += 8) {
        v8f a = LD(base + x) * w[0];
        for (int k = 1; k < K; k++)
            a = a + LD(base + k * stride + x) * w[k];
        ST(dst + x, a);
    }
    for (; x < n; x++) {
        float a = base[x] * w[0];
        for (int k = 1; k < K; k++) {
            float p = base[k * stride + x] * w[k];
            a = a + p;
        }
        dst[x] = a;
    }
}

/* ------------------------------------------------------------------ area */
CPU_CLONES void cpu_area_acc8(const float *T, int64_t x0, const int32_t *start, const int32_t *len, int64_t ow0, int m, float *A)
{
    for (int j = 0; j < m; j++) {
        const int64_t o = ow0 + j;
        const float *s = T + ((int64_t)start[o] - x0) * 8;
        const int32_t n = len[o];
        v8f acc = LD(A + j * 8);
        for (int32_t i = 0; i < n; i++)
            acc = acc + LD(s + i * 8);
        ST(A + j * 8, acc);
    }
}

CPU_CLONES void cpu_area_finish8(const float *A, const float kd[8], const float kh[8], const int32_t *len, int64_t ow0, int m,
                                 float *const out[8])
{
    float buf[64] __attribute__((aligned(32)));
    const v8f d = LD(kd), h = LD(kh);
    for (int j0 = 0; j0 < m; j0 += 8) {
        const int mm = m - j0 < 8 ? m - j0 : 8;
        for (int j = 0; j < mm; j++) {
            v8f r = LD(A + (j0 + j) * 8) / d;
            r = r / h;
            r = r / (float)len[ow0 + j0 + j];
            ST(buf + j * 8, r);
        }
        store_cols(buf, mm, ow0 + j0, out);
    }
}

/* ------------------------------------------------------------------ grid_sample */
/* Point p's entry k: off[k][AT(p)] (the points' arrays interleaved in groups of 8, G apart). */
#define AT(p) (((p) >> 3) * G + ((p) & 7))

static void gs_bilinear_scalar(int nc, const float *const src[], const int32_t *const off[4], const float *const w[4], int64_t G,
                               int64_t p0, int64_t n, float *const dst[])
{
    const int32_t *o0 = off[0], *o1 = off[1], *o2 = off[2], *o3 = off[3];
    const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
    for (int64_t p = p0; p < n; p++) {
        /* branch-free: read element 0 for an outside tap and replace it by 0 */
        const int64_t a = AT(p);
        const int32_t i0 = o0[a] >= 0 ? o0[a] : 0, i1 = o1[a] >= 0 ? o1[a] : 0;
        const int32_t i2 = o2[a] >= 0 ? o2[a] : 0, i3 = o3[a] >= 0 ? o3[a] : 0;
        for (int c = 0; c < nc; c++) {
            const float *s = src[c];
            const float v0 = o0[a] >= 0 ? s[i0] : 0.0f, v1 = o1[a] >= 0 ? s[i1] : 0.0f;
            const float v2 = o2[a] >= 0 ? s[i2] : 0.0f, v3 = o3[a] >= 0 ? s[i3] : 0.0f;
            float acc = v0 * w0[a];
            float t = v1 * w1[a];
            acc = acc + t;
            t = v2 * w2[a];
            acc = acc + t;
            t = v3 * w3[a];
            acc = acc + t;
            dst[c][p] = acc;
        }
    }
}

#if CPU_X86 && defined(__GNUC__) && !defined(VKR_CPU_BASELINE)
/* AVX2: 8 points per vector.  The two taps of a row (nw, ne and sw, se) are adjacent in the plane,
 * so each row of 8 points is two 64-bit gathers of pairs (element e and e + 1, e the left tap or
 * the right tap - 1), the pairs split into left and right values and the outside taps zeroed.
 * A group where a pair would reach outside the plane (only at its first or last element) takes
 * 32-bit masked gathers instead. */
#define GS_SPLIT(lo, hi, even, odd)                                                                                                    \
    do {                                                                                                                               \
        even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xd8));                      \
        odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xdd)), 0xd8));                       \
    } while (0)

__attribute__((target("avx2"))) static void gs_bilinear_avx2(int nc, const float *const src[], const int32_t *const off[4],
                                                              const float *const w[4], int64_t G, int64_t plane, int64_t n,
                                                              float *const dst[])
{
    const __m256i minus1 = _mm256_set1_epi32(-1);
    const __m256i last = _mm256_set1_epi32((int)(plane - 1 < INT32_MAX ? plane - 1 : INT32_MAX));
    int64_t p = 0;
    for (; p + 8 <= n; p += 8) {
        __m256i o[4];
        __m256 inside[4], wk[4];
        for (int k = 0; k < 4; k++) {
            o[k] = _mm256_loadu_si256((const __m256i *)(const void *)(off[k] + AT(p)));
            inside[k] = _mm256_castsi256_ps(_mm256_cmpgt_epi32(o[k], minus1));
            wk[k] = _mm256_loadu_ps(w[k] + AT(p));
        }
        /* pair starts of the top (nw, ne) and bottom (sw, se) rows, and the lanes that read them */
        const __m256i et = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(_mm256_add_epi32(o[1], minus1)),
                                                                 _mm256_castsi256_ps(o[0]), inside[0]));
        const __m256i eb = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(_mm256_add_epi32(o[3], minus1)),
                                                                 _mm256_castsi256_ps(o[2]), inside[2]));
        const __m256i mt = _mm256_castps_si256(_mm256_or_ps(inside[0], inside[1]));
        const __m256i mb = _mm256_castps_si256(_mm256_or_ps(inside[2], inside[3]));
        /* a read lane must have 0 <= e and e + 1 <= plane - 1 */
        const __m256i bad = _mm256_or_si256(_mm256_and_si256(mt, _mm256_or_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), et),
                                                                                 _mm256_cmpgt_epi32(_mm256_add_epi32(et, _mm256_set1_epi32(1)), last))),
                                            _mm256_and_si256(mb, _mm256_or_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), eb),
                                                                                 _mm256_cmpgt_epi32(_mm256_add_epi32(eb, _mm256_set1_epi32(1)), last))));
        if (_mm256_testz_si256(bad, bad)) {
            const __m128i et0 = _mm256_castsi256_si128(et), et1 = _mm256_extracti128_si256(et, 1);
            const __m128i eb0 = _mm256_castsi256_si128(eb), eb1 = _mm256_extracti128_si256(eb, 1);
            const __m256d mt0 = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(mt)));
            const __m256d mt1 = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(mt, 1)));
            const __m256d mb0 = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(mb)));
            const __m256d mb1 = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(mb, 1)));
            for (int c = 0; c < nc; c++) {
                const double *s = (const double *)(const void *)src[c];
                const __m256d z = _mm256_setzero_pd();
                const __m256 t0 = _mm256_castpd_ps(_mm256_mask_i32gather_pd(z, s, et0, mt0, 4));
                const __m256 t1 = _mm256_castpd_ps(_mm256_mask_i32gather_pd(z, s, et1, mt1, 4));
                const __m256 b0 = _mm256_castpd_ps(_mm256_mask_i32gather_pd(z, s, eb0, mb0, 4));
                const __m256 b1 = _mm256_castpd_ps(_mm256_mask_i32gather_pd(z, s, eb1, mb1, 4));
                __m256 nw, ne, sw, se;
                GS_SPLIT(t0, t1, nw, ne);
                GS_SPLIT(b0, b1, sw, se);
                __m256 acc = _mm256_mul_ps(_mm256_and_ps(nw, inside[0]), wk[0]);
                acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_and_ps(ne, inside[1]), wk[1]));
                acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_and_ps(sw, inside[2]), wk[2]));
                acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_and_ps(se, inside[3]), wk[3]));
                _mm256_storeu_ps(dst[c] + p, acc);
            }
            continue;
        }
        for (int c = 0; c < nc; c++) {
            __m256 acc = _mm256_mul_ps(_mm256_mask_i32gather_ps(_mm256_setzero_ps(), src[c], o[0], inside[0], 4), wk[0]);
            for (int k = 1; k < 4; k++)
                acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_mask_i32gather_ps(_mm256_setzero_ps(), src[c], o[k], inside[k], 4), wk[k]));
            _mm256_storeu_ps(dst[c] + p, acc);
        }
    }
    _mm256_zeroupper();   /* no dirty upper halves into SSE code (GCC puts none here by itself) */
    gs_bilinear_scalar(nc, src, off, w, G, p, n, dst);
}
#define CPU_HAVE_AVX2_GATHER 1
#endif

void cpu_gs_bilinear(int nc, const float *const src[], const int32_t *const off[4], const float *const w[4], int64_t G, int64_t plane,
                     int64_t n, float *const dst[])
{
#ifdef CPU_HAVE_AVX2_GATHER
    if (__builtin_cpu_supports("avx2")) {
        gs_bilinear_avx2(nc, src, off, w, G, plane, n, dst);
        return;
    }
#endif
    gs_bilinear_scalar(nc, src, off, w, G, 0, n, dst);
}

static void gs_bicubic_scalar(int nc, const float *const src[], const int32_t *const rc[8], const float *const w[8], int64_t G,
                              int64_t p0, int64_t n, float *const dst[])
{
    for (int64_t p = p0; p < n; p++) {
        const int64_t a = AT(p);
        int32_t off[16];
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                off[4 * i + j] = rc[i][a] >= 0 && rc[4 + j][a] >= 0 ? rc[i][a] + rc[4 + j][a] : -1;
        for (int c = 0; c < nc; c++) {
            const float *s = src[c];
            float acc = 0.0f;
            for (int i = 0; i < 4; i++) {
                float row = (off[4 * i] >= 0 ? s[off[4 * i]] : 0.0f) * w[0][a];
                for (int j = 1; j < 4; j++) {
                    const float t = (off[4 * i + j] >= 0 ? s[off[4 * i + j]] : 0.0f) * w[j][a];
                    row = row + t;
                }
                const float r = row * w[4 + i][a];
                acc = i == 0 ? r : acc + r;
            }
            dst[c][p] = acc;
        }
    }
}

#ifdef CPU_HAVE_AVX2_GATHER
/* AVX2, 8 points per vector, no gathers: each point's 4 rows of 4 taps are read as 4-float
 * vectors (one unaligned load per row where the 4 columns are consecutive, ascending or
 * descending (reflected), and every tap is inside, else assembled tap by tap), then transposed so that each of the 16 taps is a vector
 * over the 8 points. */
/* Row i of point p tap by tap (an outside tap reads as 0). */
__attribute__((noinline, target("avx2"))) static __m128 gs_bicubic_row_slow(const float *s, const int32_t *const rc[8], int64_t a, int32_t ro)
{
    float v[4];
    for (int j = 0; j < 4; j++) {
        const int32_t cl = rc[4 + j][a];
        v[j] = ro >= 0 && cl >= 0 ? s[ro + cl] : 0.0f;
    }
    return _mm_loadu_ps(v);
}

__attribute__((target("avx2"))) static void gs_bicubic_avx2(int nc, const float *const src[], const int32_t *const rc[8],
                                                             const float *const w[8], int64_t G, int64_t n, float *const dst[])
{
    const __m256i minus1 = _mm256_set1_epi32(-1);
    int64_t p = 0;
    for (; p + 8 <= n; p += 8) {
        __m256 wv[8];
        for (int k = 0; k < 8; k++)
            wv[k] = _mm256_loadu_ps(w[k] + AT(p));
        __m256i ok = _mm256_cmpgt_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(rc[4] + AT(p))), minus1);
        const __m256i c0 = _mm256_loadu_si256((const __m256i *)(const void *)(rc[4] + AT(p)));
        for (int k = 0; k < 4; k++) {
            ok = _mm256_and_si256(ok, _mm256_cmpgt_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(rc[k] + AT(p))), minus1));
            if (k > 0)
                ok = _mm256_and_si256(ok, _mm256_cmpeq_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(rc[4 + k] + AT(p))),
                                                             _mm256_add_epi32(c0, _mm256_set1_epi32(k))));
        }
        const int fast = _mm256_movemask_ps(_mm256_castsi256_ps(ok));
        /* columns c0, c0 - 1, c0 - 2, c0 - 3 (reflected past the right or left edge) */
        __m256i okr = _mm256_cmpgt_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(rc[7] + AT(p))), minus1);
        for (int k = 0; k < 4; k++) {
            okr = _mm256_and_si256(okr, _mm256_cmpgt_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(rc[k] + AT(p))), minus1));
            if (k > 0)
                okr = _mm256_and_si256(okr, _mm256_cmpeq_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(rc[4 + k] + AT(p))),
                                                               _mm256_sub_epi32(c0, _mm256_set1_epi32(k))));
        }
        const int rev = _mm256_movemask_ps(_mm256_castsi256_ps(okr)) & ~fast;
        for (int c = 0; c < nc; c++) {
            const float *s = src[c];
            __m256 acc = _mm256_setzero_ps();
            for (int i = 0; i < 4; i++) {
                const int32_t *ri = rc[i] + AT(p), *c0p = rc[4] + AT(p);
#define ROWQ(q)                                                                                                                        \
    ((fast >> (q) & 1)  ? _mm_loadu_ps(s + ri[q] + c0p[q])                                                                             \
     : (rev >> (q) & 1) ? _mm_shuffle_ps(_mm_loadu_ps(s + ri[q] + c0p[q] - 3), _mm_loadu_ps(s + ri[q] + c0p[q] - 3), 0x1b)            \
                        : gs_bicubic_row_slow(s, rc, AT(p) + (q), ri[q]))
                __m128 r0 = ROWQ(0), r1 = ROWQ(1), r2 = ROWQ(2), r3 = ROWQ(3), r4 = ROWQ(4), r5 = ROWQ(5), r6 = ROWQ(6), r7 = ROWQ(7);
#undef ROWQ
                _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
                _MM_TRANSPOSE4_PS(r4, r5, r6, r7);
                __m256 row = _mm256_mul_ps(_mm256_set_m128(r4, r0), wv[0]);
                row = _mm256_add_ps(row, _mm256_mul_ps(_mm256_set_m128(r5, r1), wv[1]));
                row = _mm256_add_ps(row, _mm256_mul_ps(_mm256_set_m128(r6, r2), wv[2]));
                row = _mm256_add_ps(row, _mm256_mul_ps(_mm256_set_m128(r7, r3), wv[3]));
                const __m256 t = _mm256_mul_ps(row, wv[4 + i]);
                acc = i == 0 ? t : _mm256_add_ps(acc, t);
            }
            _mm256_storeu_ps(dst[c] + p, acc);
        }
    }
    _mm256_zeroupper();
    gs_bicubic_scalar(nc, src, rc, w, G, p, n, dst);
}
#endif

void cpu_gs_bicubic(int nc, const float *const src[], const int32_t *const rc[8], const float *const w[8], int64_t G, int64_t n,
                    float *const dst[])
{
#ifdef CPU_HAVE_AVX2_GATHER
    if (__builtin_cpu_supports("avx2")) {
        gs_bicubic_avx2(nc, src, rc, w, G, n, dst);
        return;
    }
#endif
    gs_bicubic_scalar(nc, src, rc, w, G, 0, n, dst);
}

/* ------------------------------------------------------------------ grid_sample over channel blocks */
/* The channels as lanes: 8 channels of a point at a time from the blocked copy of the batch (see
 * cpu_kernels.h), each lane the scalar spec's sum; the 8 points x 8 channels of a step are
 * transposed into the 8 output planes. */
CPU_INLINE void gs_cb_store(const float *buf, int nc, int b, int m, int64_t p, float *dst, int64_t dstride)
{
    float *outp[8];
    for (int r = 0; r < 8; r++)
        outp[r] = 8 * b + r < nc ? dst + (8 * b + r) * dstride : NULL;
    store_cols(buf, m, p, outp);
}

/* The random reads of the points GS_CB_AHEAD groups on, asked for early (the taps' addresses are
 * known from the prepared points; the hardware prefetchers cannot guess them). */
#define GS_CB_AHEAD 2

CPU_INLINE void gs_cb_prefetch_span(const float *blocks, int64_t bstride, int nb, int64_t first, int64_t last)
{
    for (int b = 0; b < nb; b++) {
        const float *q = blocks + b * bstride;
        for (int64_t f = first * 8; f < last * 8 + 8; f += 16)
            __builtin_prefetch(q + f);
        __builtin_prefetch(q + last * 8 + 7);
    }
}

CPU_INLINE void gs_cb_prefetch_bilinear(const float *blocks, int64_t bstride, int nb, const int32_t *const off[4], int64_t G, int64_t p,
                                        int64_t n)
{
    for (int64_t q = p; q < n && q < p + 8; q++) {
        const int64_t a = AT(q);
        for (int k = 0; k < 4; k += 2) {
            const int32_t u = off[k][a], v = off[k + 1][a];
            if (u >= 0 || v >= 0)
                gs_cb_prefetch_span(blocks, bstride, nb, u >= 0 ? u : v, v >= 0 ? v : u);
        }
    }
}

CPU_INLINE void gs_cb_prefetch_bicubic(const float *blocks, int64_t bstride, int nb, const int32_t *const rc[8], int64_t G, int64_t p,
                                       int64_t n)
{
    for (int64_t q = p; q < n && q < p + 8; q++) {
        const int64_t a = AT(q);
        int32_t lo = -1, hi = -1;
        for (int k = 4; k < 8; k++) {
            const int32_t c = rc[k][a];
            if (c >= 0) {
                lo = lo < 0 || c < lo ? c : lo;
                hi = c > hi ? c : hi;
            }
        }
        if (lo < 0)
            continue;
        for (int i = 0; i < 4; i++)
            if (rc[i][a] >= 0)
                gs_cb_prefetch_span(blocks, bstride, nb, (int64_t)rc[i][a] + lo, (int64_t)rc[i][a] + hi);
    }
}

CPU_CLONES void cpu_gs_bilinear_cb(int nc, const float *blocks, int64_t bstride, int64_t zero, const int32_t *const off[4],
                                   const float *const w[4], int64_t G, int64_t n, float *dst, int64_t dstride)
{
    float buf[64] __attribute__((aligned(32)));
    const int nb = (nc + 7) / 8;
    for (int64_t p = 0; p < n; p += 8) {
        const int m = n - p < 8 ? (int)(n - p) : 8;
        gs_cb_prefetch_bilinear(blocks, bstride, nb, off, G, p + 8 * GS_CB_AHEAD, n);
        int64_t o[8][4];
        float ww[8][4];
        for (int j = 0; j < m; j++) {
            const int64_t a = AT(p + j);
            for (int k = 0; k < 4; k++) {
                const int32_t v = off[k][a];
                o[j][k] = (v >= 0 ? (int64_t)v : zero) * 8;
                ww[j][k] = w[k][a];
            }
        }
        for (int b = 0; b < nb; b++) {
            const float *T = blocks + b * bstride;
            for (int j = 0; j < m; j++) {
                v8f acc = LD(T + o[j][0]) * ww[j][0];
                acc = acc + LD(T + o[j][1]) * ww[j][1];
                acc = acc + LD(T + o[j][2]) * ww[j][2];
                acc = acc + LD(T + o[j][3]) * ww[j][3];
                ST(buf + j * 8, acc);
            }
            gs_cb_store(buf, nc, b, m, p, dst, dstride);
        }
    }
}

CPU_CLONES void cpu_gs_bicubic_cb(int nc, const float *blocks, int64_t bstride, int64_t zero, const int32_t *const rc[8],
                                  const float *const w[8], int64_t G, int64_t n, float *dst, int64_t dstride)
{
    float buf[64] __attribute__((aligned(32)));
    const int nb = (nc + 7) / 8;
    for (int64_t p = 0; p < n; p += 8) {
        const int m = n - p < 8 ? (int)(n - p) : 8;
        gs_cb_prefetch_bicubic(blocks, bstride, nb, rc, G, p + 8 * GS_CB_AHEAD, n);
        int64_t o[8][16];
        float ww[8][8];
        for (int j = 0; j < m; j++) {
            const int64_t a = AT(p + j);
            for (int i = 0; i < 4; i++) {
                const int32_t ro = rc[i][a];
                for (int k = 0; k < 4; k++) {
                    const int32_t cl = rc[4 + k][a];
                    o[j][4 * i + k] = (ro >= 0 && cl >= 0 ? (int64_t)ro + cl : zero) * 8;
                }
            }
            for (int k = 0; k < 8; k++)
                ww[j][k] = w[k][a];
        }
        for (int b = 0; b < nb; b++) {
            const float *T = blocks + b * bstride;
            for (int j = 0; j < m; j++) {
                const int64_t *oj = o[j];
                const float *wj = ww[j];
                v8f acc = {0};
                for (int i = 0; i < 4; i++) {
                    v8f row = LD(T + oj[4 * i]) * wj[0];
                    row = row + LD(T + oj[4 * i + 1]) * wj[1];
                    row = row + LD(T + oj[4 * i + 2]) * wj[2];
                    row = row + LD(T + oj[4 * i + 3]) * wj[3];
                    const v8f t = row * wj[4 + i];
                    acc = i == 0 ? t : acc + t;
                }
                ST(buf + j * 8, acc);
            }
            gs_cb_store(buf, nc, b, m, p, dst, dstride);
        }
    }
}

/* ------------------------------------------------------------------ W step by permutes */
#if CPU_X86 && defined(__GNUC__) && !defined(VKR_CPU_BASELINE)
__attribute__((target("avx2"))) static void wlin_perm_avx2(const float *in, const int32_t *base, const int32_t *rel, const float *w0,
                                                            const float *w1, int64_t nblocks, float *out)
{
    for (int64_t b = 0; b < nblocks; b++) {
        const __m256 v0 = _mm256_permutevar8x32_ps(_mm256_loadu_ps(in + base[2 * b]),
                                                   _mm256_loadu_si256((const __m256i *)(const void *)(rel + 16 * b)));
        const __m256 v1 = _mm256_permutevar8x32_ps(_mm256_loadu_ps(in + base[2 * b + 1]),
                                                   _mm256_loadu_si256((const __m256i *)(const void *)(rel + 16 * b + 8)));
        __m256 acc = _mm256_mul_ps(v0, _mm256_loadu_ps(w0 + 8 * b));
        acc = _mm256_add_ps(acc, _mm256_mul_ps(v1, _mm256_loadu_ps(w1 + 8 * b)));
        _mm256_storeu_ps(out + 8 * b, acc);
    }
    _mm256_zeroupper();
}

/* dst[x] = r0[x] * w0 + r1[x] * w1; stream: non-temporal 32-byte stores, not fenced (the caller
 * runs cpu_store_fence before the results are read by another thread). */
__attribute__((target("avx2"))) static void wsum2_avx2(const float *r0, const float *r1, float w0, float w1, int64_t n, float *dst,
                                                        int stream)
{
    const __m256 a = _mm256_set1_ps(w0), b = _mm256_set1_ps(w1);
    int64_t x = 0;
    if (stream && n >= 64) {
        for (; ((uintptr_t)(dst + x) & 31) != 0; x++) {
            float p = r0[x] * w0;
            const float q = r1[x] * w1;
            dst[x] = p + q;
        }
        for (; x + 16 <= n; x += 16) {
            const __m256 u = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(r0 + x), a), _mm256_mul_ps(_mm256_loadu_ps(r1 + x), b));
            const __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(r0 + x + 8), a), _mm256_mul_ps(_mm256_loadu_ps(r1 + x + 8), b));
            _mm256_stream_ps(dst + x, u);
            _mm256_stream_ps(dst + x + 8, v);
        }
        for (; x + 8 <= n; x += 8)
            _mm256_stream_ps(dst + x, _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(r0 + x), a), _mm256_mul_ps(_mm256_loadu_ps(r1 + x), b)));
    }
    for (; x + 8 <= n; x += 8)
        _mm256_storeu_ps(dst + x, _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(r0 + x), a), _mm256_mul_ps(_mm256_loadu_ps(r1 + x), b)));
    _mm256_zeroupper();
    for (; x < n; x++) {
        float p = r0[x] * w0;
        const float q = r1[x] * w1;
        dst[x] = p + q;
    }
}
#define CPU_HAVE_PERM 1
#endif

void cpu_store_fence(void)
{
#if CPU_X86
    _mm_sfence();
#endif
}

void cpu_wsum2(const float *r0, const float *r1, float w0, float w1, int64_t n, float *dst, int stream)
{
#ifdef CPU_HAVE_PERM
    if (__builtin_cpu_supports("avx2")) {
        wsum2_avx2(r0, r1, w0, w1, n, dst, stream);
        return;
    }
#endif
    const float *rows[2] = {r0, r1};
    const float w[2] = {w0, w1};
    cpu_wsum_rows(rows, w, 2, n, dst, stream);
}

int cpu_wlin_perm_available(void)
{
#ifdef CPU_HAVE_PERM
    return __builtin_cpu_supports("avx2") != 0;
#else
    return 0;
#endif
}

void cpu_wlin_perm(const float *in, const int32_t *base, const int32_t *rel, const float *w0, const float *w1, int64_t nblocks,
                   float *out)
{
#ifdef CPU_HAVE_PERM
    wlin_perm_avx2(in, base, rel, w0, w1, nblocks, out);
#else
    for (int64_t b = 0; b < nblocks; b++)
        for (int j = 0; j < 8; j++) {
            float a = in[base[2 * b] + rel[16 * b + j]] * w0[8 * b + j];
            const float p = in[base[2 * b + 1] + rel[16 * b + 8 + j]] * w1[8 * b + j];
            out[8 * b + j] = a + p;
        }
#endif
}

/* ------------------------------------------------------------------ channels-last linear, double tail */
static void cl_dsum_scalar(int T, const float *const rows[8], const int32_t *const idx[8], const float *const w[8], int64_t x0,
                           int64_t n, float *dst)
{
    for (int64_t x = x0; x < n; x++) {
        double a = (double)rows[0][idx[0][x]] * (double)w[0][x];
        for (int k = 1; k < T; k++) {
            const double p = (double)rows[k][idx[k][x]] * (double)w[k][x];
            a = a + p;
        }
        dst[x] = (float)a;
    }
}

#if CPU_X86 && defined(__GNUC__) && !defined(VKR_CPU_BASELINE)
/* Explicit mul / add (no FMA in this target): the scalar code's operations, 4 doubles a vector. */
__attribute__((target("avx2"))) static void cl_dsum_avx2(int T, const float *const rows[8], const int32_t *const idx[8],
                                                          const float *const w[8], int64_t n, float *dst)
{
    int64_t x = 0;
    for (; x + 8 <= n; x += 8) {
        __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
        for (int k = 0; k < T; k++) {
            const __m256 v = _mm256_i32gather_ps(rows[k], _mm256_loadu_si256((const __m256i *)(const void *)(idx[k] + x)), 4);
            const __m256 wk = _mm256_loadu_ps(w[k] + x);
            const __m256d plo = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_castps256_ps128(wk)));
            const __m256d phi = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), _mm256_cvtps_pd(_mm256_extractf128_ps(wk, 1)));
            lo = k == 0 ? plo : _mm256_add_pd(lo, plo);
            hi = k == 0 ? phi : _mm256_add_pd(hi, phi);
        }
        _mm256_storeu_ps(dst + x, _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo)));
    }
    _mm256_zeroupper();
    cl_dsum_scalar(T, rows, idx, w, x, n, dst);
}
#define CPU_HAVE_CL_DSUM 1
#endif

void cpu_cl_dsum_row(int T, const float *const rows[8], const int32_t *const idx[8], const float *const w[8], int64_t n, float *dst)
{
#ifdef CPU_HAVE_CL_DSUM
    if (__builtin_cpu_supports("avx2")) {
        cl_dsum_avx2(T, rows, idx, w, n, dst);
        return;
    }
#endif
    cl_dsum_scalar(T, rows, idx, w, 0, n, dst);
}
