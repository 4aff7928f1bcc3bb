#include <string.h>

#include "tvlm_kernels.h"

int32_t tvlm_conv_s8_get_buffer_size(const tvlm_conv_params_t *p)
{
    return (p->k == 1 && p->stride == 1 && p->pad == 0) ? 0 : p->k * p->k * p->in_c;
}

void tvlm_conv_kernel_sum(const int8_t *w, const int32_t *bias, int32_t out_c, int32_t len, int32_t in_zp,
                          int32_t *bias_eff)
{
    for (int32_t c = 0; c < out_c; c++) {
        int32_t s = 0;
        for (int32_t i = 0; i < len; i++) s += w[c * len + i];
        bias_eff[c] = bias[c] - in_zp * s;
    }
}

/* im2col of one output pixel; outside the image the zero point, i.e. a real zero */
static const int8_t *gather(const tvlm_conv_params_t *p, const int8_t *in, int32_t oy, int32_t ox,
                            int8_t *col)
{
    const int32_t y0 = oy * p->stride - p->pad, x0 = ox * p->stride - p->pad;
    int8_t *dst = col;
    for (int32_t ky = 0; ky < p->k; ky++) {
        const int32_t y = y0 + ky;
        for (int32_t kx = 0; kx < p->k; kx++) {
            const int32_t x = x0 + kx;
            if (y < 0 || y >= p->in_h || x < 0 || x >= p->in_w) {
                memset(dst, p->in_zp, (size_t)p->in_c);
            } else {
                memcpy(dst, in + (y * p->in_w + x) * p->in_c, (size_t)p->in_c);
            }
            dst += p->in_c;
        }
    }
    return col;
}

tvlm_status_t tvlm_conv_s8(tvlm_path_t path, const tvlm_conv_params_t *p, const int8_t *in,
                           const int8_t *w, const int32_t *bias_eff, const int32_t *mult,
                           const int32_t *shift, int8_t *scratch, int8_t *out)
{
    const int32_t len = p->k * p->k * p->in_c;
    const int pointwise = tvlm_conv_s8_get_buffer_size(p) == 0;
    void (*dot2)(const int8_t *, const int8_t *, const int8_t *, int32_t, int32_t *) =
        path == TVLM_PATH_PLAIN ? tvlm_dot2_s8_plain : tvlm_dot2_s8_dsp;
    int32_t (*dot)(const int8_t *, const int8_t *, int32_t, int32_t) =
        path == TVLM_PATH_PLAIN ? tvlm_dot_s8_plain : tvlm_dot_s8_dsp;
    for (int32_t oy = 0; oy < p->out_h; oy++) {
        for (int32_t ox = 0; ox < p->out_w; ox++) {
            const int8_t *col = pointwise ? in + (oy * p->in_w + ox) * p->in_c : gather(p, in, oy, ox, scratch);
            int8_t *o = out + (oy * p->out_w + ox) * p->out_c;
            int32_t c = 0;
            for (; c + 2 <= p->out_c; c += 2) {
                int32_t acc[2] = {bias_eff[c], bias_eff[c + 1]};
                dot2(col, w + c * len, w + (c + 1) * len, len, acc);
                o[c] = tvlm_requant(acc[0], mult[c], shift[c], p->out_zp, p->act_min, p->act_max);
                o[c + 1] = tvlm_requant(acc[1], mult[c + 1], shift[c + 1], p->out_zp, p->act_min, p->act_max);
            }
            for (; c < p->out_c; c++) {
                int32_t acc = dot(col, w + c * len, len, bias_eff[c]);
                o[c] = tvlm_requant(acc, mult[c], shift[c], p->out_zp, p->act_min, p->act_max);
            }
        }
    }
    return TVLM_STATUS_OK;
}
