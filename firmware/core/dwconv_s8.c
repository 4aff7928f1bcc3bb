#include "tvlm_kernels.h"

int32_t tvlm_dwconv_s8_get_buffer_size(const tvlm_conv_params_t *p)
{
    return p->in_c * (int32_t)sizeof(int32_t);
}

/* Channels are innermost (HWC), so the loop over channels is the unit-stride one; padding is skipped,
 * which is a real zero because the zero point is subtracted from each input. A SIMD path would gain
 * little here: depthwise layers are under 10% of the encoder's multiply-accumulates. */
tvlm_status_t tvlm_dwconv_s8(tvlm_path_t path, const tvlm_conv_params_t *p, const int8_t *in,
                             const int8_t *w, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                             int32_t *acc, int8_t *out)
{
    (void)path;
    const int32_t c_n = p->in_c;
    for (int32_t oy = 0; oy < p->out_h; oy++) {
        for (int32_t ox = 0; ox < p->out_w; ox++) {
            for (int32_t c = 0; c < c_n; c++) acc[c] = bias[c];
            const int32_t y0 = oy * p->stride - p->pad, x0 = ox * p->stride - p->pad;
            for (int32_t ky = 0; ky < p->k; ky++) {
                const int32_t y = y0 + ky;
                if (y < 0 || y >= p->in_h) continue;
                for (int32_t kx = 0; kx < p->k; kx++) {
                    const int32_t x = x0 + kx;
                    if (x < 0 || x >= p->in_w) continue;
                    const int8_t *src = in + (y * p->in_w + x) * c_n;
                    const int8_t *wk = w + (ky * p->k + kx) * c_n;
                    for (int32_t c = 0; c < c_n; c++) acc[c] += (src[c] - p->in_zp) * wk[c];
                }
            }
            int8_t *o = out + (oy * p->out_w + ox) * c_n;
            for (int32_t c = 0; c < c_n; c++) {
                o[c] = tvlm_requant(acc[c], mult[c], shift[c], p->out_zp, p->act_min, p->act_max);
            }
        }
    }
    return TVLM_STATUS_OK;
}
