#include "tvlm_kernels.h"

#include "tvlm_dot_impl.h"
#include "tvlm_simd.h"

int32_t tvlm_dot_s8_plain(const int8_t *a, const int8_t *b, int32_t n, int32_t acc)
{
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        acc += a[i] * b[i];
        acc += a[i + 1] * b[i + 1];
        acc += a[i + 2] * b[i + 2];
        acc += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) acc += a[i] * b[i];
    return acc;
}

int32_t tvlm_dot_s8_dsp(const int8_t *a, const int8_t *b, int32_t n, int32_t acc)
{
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t x = tvlm_read_u32(a + i), y = tvlm_read_u32(b + i);
        /* bytes 0,2 and bytes 1,3 as int16 pairs; the pairing is the same on both sides */
        acc = tvlm_smlad(tvlm_sxtb16(x), tvlm_sxtb16(y), acc);
        acc = tvlm_smlad(tvlm_sxtb16_ror8((x)), tvlm_sxtb16_ror8((y)), acc);
    }
    for (; i < n; i++) acc += a[i] * b[i];
    return acc;
}

void tvlm_dot2_s8_plain(const int8_t *a, const int8_t *b0, const int8_t *b1, int32_t n, int32_t out[2])
{
    int32_t s0 = out[0], s1 = out[1];
    for (int32_t i = 0; i < n; i++) {
        s0 += a[i] * b0[i];
        s1 += a[i] * b1[i];
    }
    out[0] = s0;
    out[1] = s1;
}

void tvlm_dot2_s8_dsp(const int8_t *a, const int8_t *b0, const int8_t *b1, int32_t n, int32_t out[2])
{
    int32_t s0 = out[0], s1 = out[1];
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t x = tvlm_read_u32(a + i);
        uint32_t xe = tvlm_sxtb16(x), xo = tvlm_sxtb16_ror8((x));
        uint32_t y0 = tvlm_read_u32(b0 + i), y1 = tvlm_read_u32(b1 + i);
        s0 = tvlm_smlad(xe, tvlm_sxtb16(y0), s0);
        s0 = tvlm_smlad(xo, tvlm_sxtb16_ror8((y0)), s0);
        s1 = tvlm_smlad(xe, tvlm_sxtb16(y1), s1);
        s1 = tvlm_smlad(xo, tvlm_sxtb16_ror8((y1)), s1);
    }
    for (; i < n; i++) {
        s0 += a[i] * b0[i];
        s1 += a[i] * b1[i];
    }
    out[0] = s0;
    out[1] = s1;
}

uint32_t tvlm_isqrt(uint32_t x)
{
    uint32_t res = 0, bit = 1u << 30;
    while (bit > x) bit >>= 2;
    while (bit) {
        if (x >= res + bit) {
            x -= res + bit;
            res = (res >> 1) + bit;
        } else {
            res >>= 1;
        }
        bit >>= 2;
    }
    return res;
}

void tvlm_dot2x2_s8_plain(const int8_t *a0, const int8_t *a1, const int8_t *b0, const int8_t *b1, int32_t n,
                          int32_t out[4])
{
    tvlm_dot2x2_s8_plain_impl(a0, a1, b0, b1, n, out);
}

void tvlm_dot2x2_s8_dsp(const int8_t *a0, const int8_t *a1, const int8_t *b0, const int8_t *b1, int32_t n,
                        int32_t out[4])
{
    tvlm_dot2x2_s8_dsp_impl(a0, a1, b0, b1, n, out);
}

int32_t tvlm_dot_s8_mve(const int8_t *a, const int8_t *b, int32_t n, int32_t acc)
{
#if TVLM_HAVE_MVE
    return tvlm_dot_s8_mve_impl(a, b, n, acc);
#else
    return tvlm_dot_s8_dsp(a, b, n, acc); /* no Helium on this core */
#endif
}

int32_t tvlm_requant_hi_ok(const int32_t *shift, int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        if (shift[i] < 32 || shift[i] > 62) return 0;
    }
    return 1;
}
