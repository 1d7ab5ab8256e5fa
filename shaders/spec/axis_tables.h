/* Kernel spec, host side: per-axis scales and index/weight tables, built once per job in C and
 * read by both backends (the Vulkan backend uploads them, the CPU backend loops over them).  This
 * is where PyTorch's double-precision and dividing arithmetic happens (sec. 2, sec. 4.1), so the devices
 * only gather and sum. */
#ifndef VKR_SPEC_AXIS_TABLES_H
#define VKR_SPEC_AXIS_TABLES_H

#include <stdbool.h>
#include <stdint.h>

/* area_pixel_compute_scale<float> (sec. 2).  has_scale: the user's scale_factor reaches the kernel. */
float vkr_spec_area_pixel_scale(int64_t n, int64_t o, bool align_corners, bool has_scale, double scale);

/* Linear taps of one axis (sec. 4.1).  Arrays of length o; i0/i1 are source indices. */
typedef struct {
    int32_t *i0, *i1;
    float *l0, *l1;
} vkr_linear_taps_t;

/* Fill taps for an axis of input length n and output length o. */
void vkr_spec_linear_taps(int64_t n, int64_t o, bool align_corners, bool has_scale, double scale,
                          vkr_linear_taps_t taps);

/* Whether torch 1.13 runs its channels-last interpolate kernels (nearest, bilinear, trilinear;
 * sec. 3.1, 4.3) on a contiguous NCHW / NCDHW input of this shape.  Those kernels are chosen by
 * input.is_contiguous(ChannelsLast / ChannelsLast3d), i.e. TensorImpl's
 * compute_channels_last_contiguous_2d/3d: walking the dimensions in the order C, W, H, (D,) N and
 * skipping those of size 1, each stride must be the product of the sizes walked before.  For
 * contiguous strides that holds exactly when C == 1 or every spatial extent is 1 (the size-1
 * dimensions' strides are ignored).  1-D (N, C, L) inputs have no channels-last kernel. */
bool vkr_spec_channels_last_kernel(int spatial_rank, int64_t channels, const int64_t *in_size);

/* Nearest / nearest-exact source index of every output position (sec. 3): idx[o].  channels_last:
 * the input takes torch's channels-last kernel (spec_nearest_index_cl's shortcuts for nearest). */
void vkr_spec_nearest_indices(int64_t n, int64_t o, bool exact, bool has_scale, double scale, bool channels_last, int32_t *idx);

/* Bicubic taps of one axis (sec. 5): source indices clamped to the border, and coefficients. */
typedef struct {
    int32_t *idx[4];
    float *coeff[4];
} vkr_cubic_taps_t;

void vkr_spec_cubic_taps(int64_t n, int64_t o, bool align_corners, bool has_scale, double scale, vkr_cubic_taps_t taps);

/* area (sec. 7): adaptive-average-pooling window [start, start + len) of every output index. */
void vkr_spec_area_windows(int64_t n, int64_t o, int32_t *start, int32_t *len);

/* Antialias (sec. 6): weights of a separable PIL-style filter.  vkr_spec_aa_max_taps gives the row
 * length of the weight table; vkr_spec_aa_taps fills xmin[o], xsize[o] and weights[o * max_taps]
 * (normalised; entries past xsize are 0).  bicubic selects Keys a = -0.5, else the triangle. */
int vkr_spec_aa_max_taps(int64_t n, int64_t o, bool align_corners, bool has_scale, double scale, bool bicubic);
void vkr_spec_aa_taps(int64_t n, int64_t o, bool align_corners, bool has_scale, double scale, bool bicubic, int max_taps,
                      int32_t *xmin, int32_t *xsize, float *weights);

/* affine_grid's base coordinates of an axis of n points (sec. 9): torch 1.13's CPU linspace(-1, 1,
 * n) (symmetric formula, 16-element vector blocks of base + k*step lanes) and, without
 * align_corners, the pixel centres f32(f32(r * (n-1)) / n).  n == 1 gives 0. */
void vkr_spec_affine_base(int64_t n, bool align_corners, float *out);

#endif
