#include <string.h>

#include "tvlm_dot_impl.h"
#include "tvlm_kernels.h"

int32_t tvlm_conv_s8_get_buffer_size(const tvlm_conv_params_t *p)
{
    return (p->k == 1 && p->stride == 1 && p->pad == 0) ? 0 : 2 * p->k * p->k * p->in_c;
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

/* im2col of one output pixel; outside the image the zero point, i.e. a real zero. Inside the image the
 * k positions of one kernel row are adjacent in HWC memory, so each row is one run of k * in_c bytes. */
static const int8_t *gather(const tvlm_conv_params_t *p, const int8_t *in, int32_t pix, int8_t *col)
{
    const int32_t oy = pix / p->out_w, ox = pix % p->out_w;
    const int32_t y0 = oy * p->stride - p->pad, x0 = ox * p->stride - p->pad;
    const int32_t c_n = p->in_c, run = p->k * c_n;
    const int inside_x = x0 >= 0 && x0 + p->k <= p->in_w;
    int8_t *dst = col;
    for (int32_t ky = 0; ky < p->k; ky++, dst += run) {
        const int32_t y = y0 + ky;
        if (y < 0 || y >= p->in_h) {
            memset(dst, p->in_zp, (size_t)run);
        } else if (inside_x) {
            const int8_t *src = in + (y * p->in_w + x0) * c_n;
            for (int32_t i = 0; i < run; i++) dst[i] = src[i];
        } else {
            for (int32_t kx = 0; kx < p->k; kx++) {
                const int32_t x = x0 + kx;
                int8_t *d = dst + kx * c_n;
                if (x < 0 || x >= p->in_w) {
                    memset(d, p->in_zp, (size_t)c_n);
                } else {
                    const int8_t *src = in + (y * p->in_w + x) * c_n;
                    for (int32_t c = 0; c < c_n; c++) d[c] = src[c];
                }
            }
        }
    }
    return col;
}

#define REQUANT(acc, c)                                                                                    \
    (hi ? tvlm_requant_hi((acc), mult[c], shift[c], p->out_zp, p->act_min, p->act_max)                     \
        : tvlm_requant((acc), mult[c], shift[c], p->out_zp, p->act_min, p->act_max))

/* Output pixels are taken two at a time and channels two at a time, so every loaded input word and
 * weight word feeds two multiply-accumulates (CMSIS-NN's 2x2 mat-mult blocking). */
tvlm_status_t tvlm_conv_s8(tvlm_path_t path, const tvlm_conv_params_t *p, const int8_t *in,
                           const int8_t *w, const int32_t *bias_eff, const int32_t *mult,
                           const int32_t *shift, int8_t *scratch, int8_t *out)
{
    const int32_t len = p->k * p->k * p->in_c;
    const int pointwise = tvlm_conv_s8_get_buffer_size(p) == 0;
    const int plain = path == TVLM_PATH_PLAIN;
#if TVLM_HAVE_MVE
    const int mve = path == TVLM_PATH_MVE;
#endif
    const int32_t n_pix = p->out_h * p->out_w, oc = p->out_c;
    const int hi = p->requant_hi;
    int32_t pix = 0;
    for (; pix + 2 <= n_pix; pix += 2) {
        const int8_t *a0 = pointwise ? in + pix * len : gather(p, in, pix, scratch);
        const int8_t *a1 = pointwise ? in + (pix + 1) * len : gather(p, in, pix + 1, scratch + len);
        int8_t *o0 = out + pix * oc, *o1 = o0 + oc;
        int32_t c = 0;
        for (; c + 2 <= oc; c += 2) {
            int32_t acc[4] = {bias_eff[c], bias_eff[c + 1], bias_eff[c], bias_eff[c + 1]};
#if TVLM_HAVE_MVE
            if (mve) tvlm_dot2x2_s8_mve_impl(a0, a1, w + c * len, w + (c + 1) * len, len, acc);
            else
#endif
            if (plain) tvlm_dot2x2_s8_plain_impl(a0, a1, w + c * len, w + (c + 1) * len, len, acc);
            else tvlm_dot2x2_s8_dsp_impl(a0, a1, w + c * len, w + (c + 1) * len, len, acc);
            o0[c] = REQUANT(acc[0], c);
            o0[c + 1] = REQUANT(acc[1], c + 1);
            o1[c] = REQUANT(acc[2], c);
            o1[c + 1] = REQUANT(acc[3], c + 1);
        }
        for (; c < oc; c++) {
            int32_t acc0 = plain ? tvlm_dot_s8_plain(a0, w + c * len, len, bias_eff[c])
                                 : tvlm_dot_s8_dsp(a0, w + c * len, len, bias_eff[c]);
            int32_t acc1 = plain ? tvlm_dot_s8_plain(a1, w + c * len, len, bias_eff[c])
                                 : tvlm_dot_s8_dsp(a1, w + c * len, len, bias_eff[c]);
            o0[c] = REQUANT(acc0, c);
            o1[c] = REQUANT(acc1, c);
        }
    }
    for (; pix < n_pix; pix++) {
        const int8_t *a0 = pointwise ? in + pix * len : gather(p, in, pix, scratch);
        int8_t *o0 = out + pix * oc;
        for (int32_t c = 0; c < oc; c++) {
            int32_t acc = plain ? tvlm_dot_s8_plain(a0, w + c * len, len, bias_eff[c])
                                : tvlm_dot_s8_dsp(a0, w + c * len, len, bias_eff[c]);
            o0[c] = REQUANT(acc, c);
        }
    }
    return TVLM_STATUS_OK;
}
