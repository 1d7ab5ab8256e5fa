/* Kernel spec, common layer: the few macros that let one source text be both C11 (CPU backend,
 * host table builders) and GLSL 450 (compute shaders).  Everything in shaders/spec/ is written in
 * the subset both languages accept: scalar int/float functions, ternaries, no pointers, no
 * structs, no division on the device side.  GLSL targeting Vulkan defines VULKAN. */
#ifndef VKR_SPEC_COMMON_H
#define VKR_SPEC_COMMON_H

#ifdef VULKAN
/* ---- GLSL 450 ---- */
#define SPEC_FN
#define SPEC_PRECISE precise
#define SPEC_FLOAT(x) float(x)
#define SPEC_INT(x) int(x)
#define SPEC_FLOORF(x) floor(x)
#define SPEC_REAL float          /* host-only maps run in double on the CPU, float on a GPU */
#define SPEC_REAL_OF(x) float(x)
#else
/* ---- C11 ---- */
#include <math.h>
#include <stdbool.h>
#define SPEC_FN static inline
#define SPEC_PRECISE             /* C side is built with -ffp-contract=off */
#define SPEC_FLOAT(x) ((float)(x))
#define SPEC_INT(x) ((int)(x))
#define SPEC_FLOORF(x) floorf(x)
#define SPEC_REAL double
#define SPEC_REAL_OF(x) ((double)(x))
#endif

#endif /* VKR_SPEC_COMMON_H */
