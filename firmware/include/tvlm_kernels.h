/* int8 kernels of the encoder and the scorer, CMSIS-NN style.
 *
 * Each kernel has a plain-C path, a DSP path (SXTB16 + SMLAD, two 16-bit MACs per instruction) and, on
 * cores with Helium (Cortex-M55), an MVE path (16 int8 lanes per instruction).
 * On Arm cores with the DSP extension the DSP path uses the real instructions; elsewhere (host build)
 * it uses exact C emulations, so the host tests compare both paths bit for bit.
 * Requantization (tvlm_requant below) is per output channel with (mult, shift) computed offline by the
 * exporter; the hot loops only multiply, shift and clamp.
 */
#ifndef TVLM_KERNELS_H
#define TVLM_KERNELS_H

#include <stdint.h>

#include "tvlm_protocol.h"

typedef enum { TVLM_PATH_PLAIN = 0, TVLM_PATH_DSP = 1, TVLM_PATH_MVE = 2 } tvlm_path_t;

typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k, stride, pad;
    int32_t in_zp, out_zp, act_min, act_max;
    int32_t requant_hi; /* 1 when every channel's shift >= 32: the branch-free tvlm_requant_hi applies */
} tvlm_conv_params_t;

/* (a * b + 2^31) >> 32: SMMULR, one instruction on cores with the DSP extension */
static inline int32_t tvlm_smmulr(int32_t a, int32_t b)
{
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
#endif
}

/* shift >= 32 (every layer of a usual model): rounding high multiply, then a rounding shift by shift - 32.
 * shift < 32: one rounding 64-bit shift. */
static inline int8_t tvlm_requant(int32_t acc, int32_t mult, int32_t shift, int32_t out_zp,
                                  int32_t act_min, int32_t act_max)
{
    int32_t v;
    if (shift >= 32) {
        v = tvlm_smmulr(acc, mult);
        const int32_t s2 = shift - 32;
        if (s2 > 0) v = (v + (1 << (s2 - 1))) >> s2;
    } else {
        int64_t w = ((int64_t)acc * mult + ((int64_t)1 << (shift - 1))) >> shift;
        if (w > 1000000) w = 1000000;
        if (w < -1000000) w = -1000000;
        v = (int32_t)w;
    }
    v += out_zp;
    if (v < act_min) v = act_min;
    if (v > act_max) v = act_max;
    return (int8_t)v;
}

/* tvlm_requant for shift >= 32 without the range branch; the same result */
static inline int8_t tvlm_requant_hi(int32_t acc, int32_t mult, int32_t shift, int32_t out_zp,
                                     int32_t act_min, int32_t act_max)
{
    const int32_t s2 = shift - 32;
    int32_t v = tvlm_smmulr(acc, mult);
    v = ((v + ((1 << s2) >> 1)) >> s2) + out_zp;
    v = v < act_min ? act_min : v;
    return (int8_t)(v > act_max ? act_max : v);
}

/* Scan per-channel shifts once (prepare): 1 when tvlm_requant_hi can be used for the whole layer. */
int32_t tvlm_requant_hi_ok(const int32_t *shift, int32_t n);

/* sum(a[i] * b[i]) + acc over n int8 pairs */
int32_t tvlm_dot_s8_plain(const int8_t *a, const int8_t *b, int32_t n, int32_t acc);
int32_t tvlm_dot_s8_dsp(const int8_t *a, const int8_t *b, int32_t n, int32_t acc);
/* Helium (MVE) path on cores that have it (Cortex-M55); the DSP path elsewhere */
int32_t tvlm_dot_s8_mve(const int8_t *a, const int8_t *b, int32_t n, int32_t acc);
/* the same for two weight rows sharing one input: out[0] += a.b0, out[1] += a.b1 */
void tvlm_dot2_s8_plain(const int8_t *a, const int8_t *b0, const int8_t *b1, int32_t n, int32_t out[2]);
void tvlm_dot2_s8_dsp(const int8_t *a, const int8_t *b0, const int8_t *b1, int32_t n, int32_t out[2]);
/* two inputs x two weight rows: out = {a0.b0, a0.b1, a1.b0, a1.b1} (accumulated) */
void tvlm_dot2x2_s8_plain(const int8_t *a0, const int8_t *a1, const int8_t *b0, const int8_t *b1, int32_t n,
                          int32_t out[4]);
void tvlm_dot2x2_s8_dsp(const int8_t *a0, const int8_t *a1, const int8_t *b0, const int8_t *b1, int32_t n,
                        int32_t out[4]);

/* Scratch bytes tvlm_conv_s8 needs (im2col of two output pixels). */
int32_t tvlm_conv_s8_get_buffer_size(const tvlm_conv_params_t *p);
/* Full convolution, HWC input, weights [out_c][k][k][in_c], bias_eff = bias - in_zp * sum(w) per channel
 * (computed once by tvlm_conv_kernel_sum), pad positions read as in_zp (a real zero). */
tvlm_status_t tvlm_conv_s8(tvlm_path_t path, const tvlm_conv_params_t *p, const int8_t *in,
                           const int8_t *w, const int32_t *bias_eff, const int32_t *mult,
                           const int32_t *shift, int8_t *scratch, int8_t *out);
/* bias_eff[c] = bias[c] - in_zp * sum of weight row c (row length len) */
void tvlm_conv_kernel_sum(const int8_t *w, const int32_t *bias, int32_t out_c, int32_t len, int32_t in_zp,
                          int32_t *bias_eff);
/* Scratch bytes tvlm_dwconv_s8 needs (one int32 accumulator per channel). */
int32_t tvlm_dwconv_s8_get_buffer_size(const tvlm_conv_params_t *p);
/* Depthwise convolution, weights [k][k][c], padding skipped (a real zero). */
tvlm_status_t tvlm_dwconv_s8(tvlm_path_t path, const tvlm_conv_params_t *p, const int8_t *in,
                             const int8_t *w, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                             int32_t *scratch, int8_t *out);

/* floor(sqrt(x)) */
uint32_t tvlm_isqrt(uint32_t x);

#endif
