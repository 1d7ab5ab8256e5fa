/* Kernel spec, host side: per-axis scales and index/weight tables, built once per job in C and
 * read by both backends (the Vulkan backend uploads them, the CPU backend loops over them).  This
 * is where PyTorch's double-precision and dividing arithmetic happens (§2, §4.1), so the devices
 * only gather and sum. */
#ifndef VKR_SPEC_AXIS_TABLES_H
#define VKR_SPEC_AXIS_TABLES_H

#include <stdbool.h>
#include <stdint.h>

/* area_pixel_compute_scale<float> (§2).  has_scale: the user's scale_factor reaches the kernel. */
float vkr_spec_area_pixel_scale(int64_t n, int64_t o, bool align_corners, bool has_scale, double scale);

/* Linear taps of one axis (§4.1).  Arrays of length o; i0/i1 are source indices. */
typedef struct {
    int32_t *i0, *i1;
    float *l0, *l1;
} vkr_linear_taps_t;

/* Fill taps for an axis of input length n and output length o. */
void vkr_spec_linear_taps(int64_t n, int64_t o, bool align_corners, bool has_scale, double scale,
                          vkr_linear_taps_t taps);

/* Nearest / nearest-exact source index of every output position (§3): idx[o]. */
void vkr_spec_nearest_indices(int64_t n, int64_t o, bool exact, bool has_scale, double scale, int32_t *idx);

#endif
