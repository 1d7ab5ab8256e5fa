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
#define SPEC_UINT uint
#define SPEC_UINT_OF(x) uint(x)
#define SPEC_TRUNCF(x) trunc(x)
#define SPEC_ROUND_EVEN(x) roundEven(x)
#define SPEC_FABSF(x) abs(x)
#define SPEC_INT_MIN int(0x80000000u)
#define SPEC_OUT out            /* an array parameter the function fills */
#define SPEC_IN in              /* an array parameter the function reads */
#define spec_float_bits(x) floatBitsToUint(x)
#define spec_bits_float(u) uintBitsToFloat(u)
#ifdef VKR_FP64                 /* the host defines it where the device has shaderFloat64 */
#define SPEC_DOUBLE double
#define SPEC_DOUBLE_OF(x) double(x)
#endif
#else
/* ---- C11 ---- */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#define SPEC_FN static inline
#define SPEC_PRECISE             /* C side is built with -ffp-contract=off */
#define SPEC_FLOAT(x) ((float)(x))
#define SPEC_INT(x) ((int)(x))
#define SPEC_FLOORF(x) floorf(x)
#define SPEC_REAL double
#define SPEC_REAL_OF(x) ((double)(x))
#define SPEC_UINT uint32_t
#define SPEC_UINT_OF(x) ((uint32_t)(x))
#define SPEC_TRUNCF(x) truncf(x)
#define SPEC_ROUND_EVEN(x) rintf(x)        /* the default rounding mode: half to even */
#define SPEC_FABSF(x) fabsf(x)
#define SPEC_INT_MIN INT32_MIN
#define SPEC_OUT
#define SPEC_IN const
#define SPEC_DOUBLE double       /* PyTorch's double arithmetic, where it has some on the device side */
#define SPEC_DOUBLE_OF(x) ((double)(x))
static inline uint32_t spec_float_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static inline float spec_bits_float(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}
#endif

#endif /* VKR_SPEC_COMMON_H */
