#include "tvlm_kernels.h"
#include "tvlm_simd.h"

int32_t tvlm_dwconv_s8_get_buffer_size(const tvlm_conv_params_t *p)
{
    return p->in_c * (int32_t)sizeof(int32_t);
}

/* Padding is skipped, which is a real zero because the zero point is subtracted from each input. */
static void dw_pixel_plain(const tvlm_conv_params_t *p, const int8_t *in, const int8_t *w, int32_t oy,
                           int32_t ox, int32_t c0, int32_t *acc)
{
    const int32_t c_n = p->in_c;
    const int32_t y0 = oy * p->stride - p->pad, x0 = ox * p->stride - p->pad;
    for (int32_t ky = 0; ky < p->k; ky++) {
        const int32_t y = y0 + ky;
        if (y < 0 || y >= p->in_h) continue;
        for (int32_t kx = 0; kx < p->k; kx++) {
            const int32_t x = x0 + kx;
            if (x < 0 || x >= p->in_w) continue;
            const int8_t *src = in + (y * p->in_w + x) * c_n;
            const int8_t *wk = w + (ky * p->k + kx) * c_n;
            for (int32_t c = c0; c < c_n; c++) acc[c] += (src[c] - p->in_zp) * wk[c];
        }
    }
}

/* Four channels per word: inputs and weights widened to int16 pairs, the zero point subtracted on both
 * lanes at once, and one 16x16+32 multiply-accumulate per channel (SMLABB/SMLATT), accumulators in
 * registers across the kernel window. */
static int32_t dw_pixel_dsp(const tvlm_conv_params_t *p, const int8_t *in, const int8_t *w, int32_t oy,
                            int32_t ox, int32_t *acc)
{
    const int32_t c_n = p->in_c;
    const int32_t y0 = oy * p->stride - p->pad, x0 = ox * p->stride - p->pad;
    const uint32_t zp2 = ((uint32_t)(uint16_t)(int16_t)p->in_zp) * 0x00010001u;
    int32_t c = 0;
    for (; c + 4 <= c_n; c += 4) {
        int32_t a0 = acc[c], a1 = acc[c + 1], a2 = acc[c + 2], a3 = acc[c + 3];
        for (int32_t ky = 0; ky < p->k; ky++) {
            const int32_t y = y0 + ky;
            if (y < 0 || y >= p->in_h) continue;
            for (int32_t kx = 0; kx < p->k; kx++) {
                const int32_t x = x0 + kx;
                if (x < 0 || x >= p->in_w) continue;
                const uint32_t xv = tvlm_read_u32(in + (y * p->in_w + x) * c_n + c);
                const uint32_t wv = tvlm_read_u32(w + (ky * p->k + kx) * c_n + c);
                const uint32_t xe = tvlm_ssub16(tvlm_sxtb16(xv), zp2), xo = tvlm_ssub16(tvlm_sxtb16_ror8(xv), zp2);
                const uint32_t we = tvlm_sxtb16(wv), wo = tvlm_sxtb16_ror8(wv);
                a0 = tvlm_smlabb(xe, we, a0);
                a2 = tvlm_smlatt(xe, we, a2);
                a1 = tvlm_smlabb(xo, wo, a1);
                a3 = tvlm_smlatt(xo, wo, a3);
            }
        }
        acc[c] = a0;
        acc[c + 1] = a1;
        acc[c + 2] = a2;
        acc[c + 3] = a3;
    }
    return c;
}

#if TVLM_HAVE_MVE
/* Helium: four channels per vector, int8 loads widened to int32 lanes (MVE has no vector-by-vector
 * integer VMLA, so VMUL + VADD) */
static int32_t dw_pixel_mve(const tvlm_conv_params_t *p, const int8_t *in, const int8_t *w, int32_t oy,
                            int32_t ox, int32_t *acc)
{
    const int32_t c_n = p->in_c;
    const int32_t y0 = oy * p->stride - p->pad, x0 = ox * p->stride - p->pad;
    const int32x4_t zp = vdupq_n_s32(p->in_zp);
    int32_t c = 0;
    for (; c + 4 <= c_n; c += 4) {
        int32x4_t a = vldrwq_s32(acc + c);
        for (int32_t ky = 0; ky < p->k; ky++) {
            const int32_t y = y0 + ky;
            if (y < 0 || y >= p->in_h) continue;
            for (int32_t kx = 0; kx < p->k; kx++) {
                const int32_t x = x0 + kx;
                if (x < 0 || x >= p->in_w) continue;
                const int32x4_t xv = vsubq_s32(vldrbq_s32(in + (y * p->in_w + x) * c_n + c), zp);
                a = vaddq_s32(a, vmulq_s32(xv, vldrbq_s32(w + (ky * p->k + kx) * c_n + c)));
            }
        }
        vstrwq_s32(acc + c, a);
    }
    return c;
}
#endif

tvlm_status_t tvlm_dwconv_s8(tvlm_path_t path, const tvlm_conv_params_t *p, const int8_t *in,
                             const int8_t *w, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                             int32_t *acc, int8_t *out)
{
    const int32_t c_n = p->in_c;
    for (int32_t oy = 0; oy < p->out_h; oy++) {
        for (int32_t ox = 0; ox < p->out_w; ox++) {
            for (int32_t c = 0; c < c_n; c++) acc[c] = bias[c];
            int32_t done;
#if TVLM_HAVE_MVE
            if (path == TVLM_PATH_MVE) done = dw_pixel_mve(p, in, w, oy, ox, acc);
            else
#endif
            done = path == TVLM_PATH_PLAIN ? 0 : dw_pixel_dsp(p, in, w, oy, ox, acc);
            if (done < c_n) dw_pixel_plain(p, in, w, oy, ox, done, acc);
            int8_t *o = out + (oy * p->out_w + ox) * c_n;
            for (int32_t c = 0; c < c_n; c++) {
                o[c] = tvlm_requant(acc[c], mult[c], shift[c], p->out_zp, p->act_min, p->act_max);
            }
        }
    }
    return TVLM_STATUS_OK;
}
