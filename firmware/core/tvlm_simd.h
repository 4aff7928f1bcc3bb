/* The two DSP-extension instructions the kernels use. On Arm cores with the DSP extension they are the
 * real instructions (ACLE intrinsics); elsewhere exact C emulations, so the DSP path can be tested on
 * the host against the plain path. Internal to the core. */
#ifndef TVLM_SIMD_H
#define TVLM_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define TVLM_HAVE_DSP 1
static inline uint32_t tvlm_sxtb16(uint32_t x) { return (uint32_t)__sxtb16((int8x4_t)x); }
static inline int32_t tvlm_smlad(uint32_t x, uint32_t y, int32_t acc)
{
    return __smlad((int16x2_t)x, (int16x2_t)y, acc);
}
static inline int32_t tvlm_smlabb(uint32_t x, uint32_t y, int32_t acc) { return __smlabb((int32_t)x, (int32_t)y, acc); }
static inline int32_t tvlm_smlatt(uint32_t x, uint32_t y, int32_t acc) { return __smlatt((int32_t)x, (int32_t)y, acc); }
static inline uint32_t tvlm_ssub16(uint32_t x, uint32_t y) { return (uint32_t)__ssub16((int16x2_t)x, (int16x2_t)y); }
#else
#define TVLM_HAVE_DSP 0
/* lanes: bits 0..15 = sign-extended byte 0, bits 16..31 = sign-extended byte 2 */
static inline uint32_t tvlm_sxtb16(uint32_t x)
{
    uint32_t lo = (uint32_t)(uint16_t)(int16_t)(int8_t)(x & 0xffu);
    uint32_t hi = (uint32_t)(uint16_t)(int16_t)(int8_t)((x >> 16) & 0xffu);
    return lo | (hi << 16);
}
static inline int32_t tvlm_smlad(uint32_t x, uint32_t y, int32_t acc)
{
    int32_t p0 = (int32_t)(int16_t)(x & 0xffffu) * (int32_t)(int16_t)(y & 0xffffu);
    int32_t p1 = (int32_t)(int16_t)(x >> 16) * (int32_t)(int16_t)(y >> 16);
    return (int32_t)((uint32_t)acc + (uint32_t)p0 + (uint32_t)p1);
}
static inline int32_t tvlm_smlabb(uint32_t x, uint32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)(int16_t)(x & 0xffffu) * (int32_t)(int16_t)(y & 0xffffu)));
}
static inline int32_t tvlm_smlatt(uint32_t x, uint32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)(int16_t)(x >> 16) * (int32_t)(int16_t)(y >> 16)));
}
/* lane-wise 16-bit subtraction, wrapping (the operands here never overflow) */
static inline uint32_t tvlm_ssub16(uint32_t x, uint32_t y)
{
    uint32_t lo = (x - y) & 0xffffu;
    uint32_t hi = ((x >> 16) - (y >> 16)) & 0xffffu;
    return lo | (hi << 16);
}
#endif

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#include <arm_mve.h>
#define TVLM_HAVE_MVE 1
#else
#define TVLM_HAVE_MVE 0
#endif

/* GCC 12's arm_acle.h has no __ror; this pattern compiles to one ROR */
static inline uint32_t tvlm_ror8(uint32_t x) { return (x >> 8) | (x << 24); }

/* sxtb16 of bytes 1 and 3: one SXTB16 with its built-in rotation on Arm (the intrinsic cannot express it) */
#if TVLM_HAVE_DSP
static inline uint32_t tvlm_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
#else
static inline uint32_t tvlm_sxtb16_ror8(uint32_t x) { return tvlm_sxtb16(tvlm_ror8(x)); }
#endif

static inline uint32_t tvlm_read_u32(const int8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4); /* one LDR on cores with unaligned access */
    return v;
}

#endif
