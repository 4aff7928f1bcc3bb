/* Inline bodies of the 2x2 dot kernels, shared by dot_s8.c (public entry points) and conv_s8.c (inlined
 * into the convolution loop, which saves the call and setup per output pair). Internal to the core. */
#ifndef TVLM_DOT_IMPL_H
#define TVLM_DOT_IMPL_H

#include <stdint.h>

#include "tvlm_simd.h"
static inline void tvlm_dot2x2_s8_plain_impl(const int8_t *a0, const int8_t *a1, const int8_t *b0, const int8_t *b1, int32_t n,
                          int32_t out[4])
{
    int32_t s00 = out[0], s01 = out[1], s10 = out[2], s11 = out[3];
    for (int32_t i = 0; i < n; i++) {
        s00 += a0[i] * b0[i];
        s01 += a0[i] * b1[i];
        s10 += a1[i] * b0[i];
        s11 += a1[i] * b1[i];
    }
    out[0] = s00;
    out[1] = s01;
    out[2] = s10;
    out[3] = s11;
}

/* two inputs x two weight rows: each expanded word feeds two SMLADs, about 1.5 instructions per MAC */
static inline void tvlm_dot2x2_s8_dsp_impl(const int8_t *a0, const int8_t *a1, const int8_t *b0, const int8_t *b1, int32_t n,
                        int32_t out[4])
{
    int32_t s00 = out[0], s01 = out[1], s10 = out[2], s11 = out[3];
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32_t x0 = tvlm_read_u32(a0 + i), x1 = tvlm_read_u32(a1 + i);
        const uint32_t y0 = tvlm_read_u32(b0 + i), y1 = tvlm_read_u32(b1 + i);
        const uint32_t y0e = tvlm_sxtb16(y0), y0o = tvlm_sxtb16_ror8(y0);
        const uint32_t y1e = tvlm_sxtb16(y1), y1o = tvlm_sxtb16_ror8(y1);
        uint32_t xe = tvlm_sxtb16(x0), xo = tvlm_sxtb16_ror8(x0);
        s00 = tvlm_smlad(xe, y0e, s00);
        s00 = tvlm_smlad(xo, y0o, s00);
        s01 = tvlm_smlad(xe, y1e, s01);
        s01 = tvlm_smlad(xo, y1o, s01);
        xe = tvlm_sxtb16(x1);
        xo = tvlm_sxtb16_ror8(x1);
        s10 = tvlm_smlad(xe, y0e, s10);
        s10 = tvlm_smlad(xo, y0o, s10);
        s11 = tvlm_smlad(xe, y1e, s11);
        s11 = tvlm_smlad(xo, y1o, s11);
    }
    for (; i < n; i++) {
        s00 += a0[i] * b0[i];
        s01 += a0[i] * b1[i];
        s10 += a1[i] * b0[i];
        s11 += a1[i] * b1[i];
    }
    out[0] = s00;
    out[1] = s01;
    out[2] = s10;
    out[3] = s11;
}

#if TVLM_HAVE_MVE
/* Helium: 16 int8 lanes per load, VMLADAVA sums 16 products into a scalar; tail-predicated loads zero
 * the lanes past n, so there is no scalar tail loop. */
static inline void tvlm_dot2x2_s8_mve_impl(const int8_t *a0, const int8_t *a1, const int8_t *b0,
                                           const int8_t *b1, int32_t n, int32_t out[4])
{
    int32_t s00 = out[0], s01 = out[1], s10 = out[2], s11 = out[3];
    for (int32_t i = 0; i < n; i += 16) {
        const mve_pred16_t p = vctp8q((uint32_t)(n - i));
        const int8x16_t x0 = vldrbq_z_s8(a0 + i, p), x1 = vldrbq_z_s8(a1 + i, p);
        const int8x16_t y0 = vldrbq_z_s8(b0 + i, p), y1 = vldrbq_z_s8(b1 + i, p);
        s00 = vmladavaq_s8(s00, x0, y0);
        s01 = vmladavaq_s8(s01, x0, y1);
        s10 = vmladavaq_s8(s10, x1, y0);
        s11 = vmladavaq_s8(s11, x1, y1);
    }
    out[0] = s00;
    out[1] = s01;
    out[2] = s10;
    out[3] = s11;
}

static inline int32_t tvlm_dot_s8_mve_impl(const int8_t *a, const int8_t *b, int32_t n, int32_t acc)
{
    for (int32_t i = 0; i < n; i += 16) {
        const mve_pred16_t p = vctp8q((uint32_t)(n - i));
        acc = vmladavaq_s8(acc, vldrbq_z_s8(a + i, p), vldrbq_z_s8(b + i, p));
    }
    return acc;
}
#endif

#endif
