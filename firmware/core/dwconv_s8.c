#include "tvlm_kernels.h"
#include "tvlm_simd.h"

int32_t tvlm_dwconv_s8_get_buffer_size(const tvlm_conv_params_t *p)
{
    return p->in_c * (int32_t)sizeof(int32_t);
}

/* The part of the k x k window of output pixel (oy, ox) that lies inside the image; padding is skipped,
 * which is a real zero because the zero point is subtracted from every input. */
typedef struct {
    int32_t ky0, ky1, kx0, kx1; /* window rows/cols [k*0, k*1) inside the image */
    const int8_t *in;           /* input at window row ky0, col kx0 */
    const int8_t *w;            /* weights at (ky0, kx0) */
} dw_window_t;

static dw_window_t window(const tvlm_conv_params_t *p, const int8_t *in, const int8_t *w, int32_t oy, int32_t ox)
{
    const int32_t y0 = oy * p->stride - p->pad, x0 = ox * p->stride - p->pad;
    dw_window_t win;
    win.ky0 = y0 < 0 ? -y0 : 0;
    win.kx0 = x0 < 0 ? -x0 : 0;
    win.ky1 = y0 + p->k > p->in_h ? p->in_h - y0 : p->k;
    win.kx1 = x0 + p->k > p->in_w ? p->in_w - x0 : p->k;
    win.in = in + ((y0 + win.ky0) * p->in_w + (x0 + win.kx0)) * p->in_c;
    win.w = w + (win.ky0 * p->k + win.kx0) * p->in_c;
    return win;
}

static void dw_pixel_plain(const tvlm_conv_params_t *p, const dw_window_t *win, int32_t c0, int32_t *acc)
{
    const int32_t c_n = p->in_c, in_row = p->in_w * c_n, w_row = p->k * c_n;
    for (int32_t ky = win->ky0; ky < win->ky1; ky++) {
        const int8_t *src = win->in + (ky - win->ky0) * in_row;
        const int8_t *wk = win->w + (ky - win->ky0) * w_row;
        for (int32_t kx = win->kx0; kx < win->kx1; kx++, src += c_n, wk += c_n) {
            for (int32_t c = c0; c < c_n; c++) acc[c] += (src[c] - p->in_zp) * wk[c];
        }
    }
}

/* Four channels per word: inputs and weights widened to int16 pairs, the zero point subtracted on both
 * lanes at once, one 16x16+32 multiply-accumulate per channel (SMLABB/SMLATT), accumulators in
 * registers across the window. */
static int32_t dw_pixel_dsp(const tvlm_conv_params_t *p, const dw_window_t *win, int32_t *acc)
{
    const int32_t c_n = p->in_c, in_row = p->in_w * c_n, w_row = p->k * c_n;
    const int32_t n_kx = win->kx1 - win->kx0;
    const uint32_t zp2 = ((uint32_t)(uint16_t)(int16_t)p->in_zp) * 0x00010001u;
    int32_t c = 0;
    for (; c + 4 <= c_n; c += 4) {
        int32_t a0 = acc[c], a1 = acc[c + 1], a2 = acc[c + 2], a3 = acc[c + 3];
        const int8_t *src_row = win->in + c, *w_row_p = win->w + c;
        for (int32_t ky = win->ky0; ky < win->ky1; ky++, src_row += in_row, w_row_p += w_row) {
            const int8_t *src = src_row, *wk = w_row_p;
            for (int32_t j = 0; j < n_kx; j++, src += c_n, wk += c_n) {
                const uint32_t xv = tvlm_read_u32(src), wv = tvlm_read_u32(wk);
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
static int32_t dw_pixel_mve(const tvlm_conv_params_t *p, const dw_window_t *win, int32_t *acc)
{
    const int32_t c_n = p->in_c, in_row = p->in_w * c_n, w_row = p->k * c_n;
    const int32_t n_kx = win->kx1 - win->kx0;
    const int32x4_t zp = vdupq_n_s32(p->in_zp);
    int32_t c = 0;
    for (; c + 4 <= c_n; c += 4) {
        int32x4_t a = vldrwq_s32(acc + c);
        const int8_t *src_row = win->in + c, *w_row_p = win->w + c;
        for (int32_t ky = win->ky0; ky < win->ky1; ky++, src_row += in_row, w_row_p += w_row) {
            const int8_t *src = src_row, *wk = w_row_p;
            for (int32_t j = 0; j < n_kx; j++, src += c_n, wk += c_n) {
                a = vaddq_s32(a, vmulq_s32(vsubq_s32(vldrbq_s32(src), zp), vldrbq_s32(wk)));
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
            const dw_window_t win = window(p, in, w, oy, ox);
            for (int32_t c = 0; c < c_n; c++) acc[c] = bias[c];
            int32_t done;
#if TVLM_HAVE_MVE
            if (path == TVLM_PATH_MVE) done = dw_pixel_mve(p, &win, acc);
            else
#endif
            done = path == TVLM_PATH_PLAIN ? 0 : dw_pixel_dsp(p, &win, acc);
            if (done < c_n) dw_pixel_plain(p, &win, done, acc);
            int8_t *o = out + (oy * p->out_w + ox) * c_n;
            if (p->requant_hi) {
                for (int32_t c = 0; c < c_n; c++)
                    o[c] = tvlm_requant_hi(acc[c], mult[c], shift[c], p->out_zp, p->act_min, p->act_max);
            } else {
                for (int32_t c = 0; c < c_n; c++)
                    o[c] = tvlm_requant(acc[c], mult[c], shift[c], p->out_zp, p->act_min, p->act_max);
            }
        }
    }
    return TVLM_STATUS_OK;
}
