/* Host unit test: the plain and the DSP kernel paths give identical results on random shapes and data.
 * Exit status 0 when every case matched. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tvlm_crc.h"
#include "tvlm_kernels.h"

static uint32_t rng_state = 12345u;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}
static int8_t rnd8(void) { return (int8_t)(rnd() & 0xffu); }

static int8_t in[64 * 64 * 32], w[64 * 7 * 7 * 32], out_a[64 * 64 * 64], out_b[64 * 64 * 64], col[2 * 7 * 7 * 32];
static int32_t bias[64], mult[64], shift[64], be[64], acc[64];

int main(void)
{
    int fails = 0, cases = 0;
    for (int t = 0; t < 2000; t++) {
        int32_t n = (int32_t)(rnd() % 300);
        int8_t a[300], b[300], c[300];
        for (int i = 0; i < n; i++) { a[i] = rnd8(); b[i] = rnd8(); c[i] = rnd8(); }
        int8_t e[300];
        for (int i = 0; i < n; i++) e[i] = rnd8();
        int32_t s0 = (int32_t)(rnd() % 1000);
        int32_t p4[4] = {s0, 1, 2, 3}, d4[4] = {s0, 1, 2, 3};
        tvlm_dot2x2_s8_plain(a, e, b, c, n, p4);
        tvlm_dot2x2_s8_dsp(a, e, b, c, n, d4);
        if (memcmp(p4, d4, sizeof p4) != 0 || p4[0] != tvlm_dot_s8_plain(a, b, n, s0) ||
            p4[3] != tvlm_dot_s8_plain(e, c, n, 3)) {
            printf("dot2x2 mismatch n=%d\n", (int)n);
            fails++;
        }
        int32_t p2[2] = {s0, -s0}, d2[2] = {s0, -s0};
        tvlm_dot2_s8_plain(a, b, c, n, p2);
        tvlm_dot2_s8_dsp(a, b, c, n, d2);
        cases++;
        if (tvlm_dot_s8_plain(a, b, n, s0) != tvlm_dot_s8_dsp(a, b, n, s0) || p2[0] != d2[0] || p2[1] != d2[1]) {
            printf("dot mismatch n=%d\n", (int)n);
            fails++;
        }
    }
    for (int t = 0; t < 300; t++) {
        tvlm_conv_params_t p;
        p.k = 1 + (int32_t)(rnd() % 4);
        p.stride = 1 + (int32_t)(rnd() % 2);
        p.pad = (int32_t)(rnd() % (uint32_t)p.k);
        p.in_c = 1 + (int32_t)(rnd() % 32);
        const int dw = (int)(rnd() & 1u);
        p.out_c = dw ? p.in_c : 1 + (int32_t)(rnd() % 64);
        p.in_h = p.k + (int32_t)(rnd() % 12);
        p.in_w = p.k + (int32_t)(rnd() % 12);
        p.out_h = (p.in_h + 2 * p.pad - p.k) / p.stride + 1;
        p.out_w = (p.in_w + 2 * p.pad - p.k) / p.stride + 1;
        p.in_zp = (int32_t)rnd8();
        p.out_zp = (int32_t)rnd8();
        p.act_min = -128 + (int32_t)(rnd() % 50);
        p.act_max = 127 - (int32_t)(rnd() % 50);
        for (int i = 0; i < p.in_h * p.in_w * p.in_c; i++) in[i] = rnd8();
        for (int i = 0; i < p.out_c * p.k * p.k * p.in_c; i++) w[i] = rnd8();
        for (int c = 0; c < p.out_c; c++) {
            bias[c] = (int32_t)(rnd() % 20001) - 10000;
            mult[c] = (int32_t)(0x40000000u + (rnd() & 0x3fffffffu));
            shift[c] = 20 + (int32_t)(rnd() % 30);
        }
        p.requant_hi = 0;
        if (rnd() & 1u) { /* a layer whose shifts are all >= 32: the branch-free requantization */
            for (int c = 0; c < p.out_c; c++) shift[c] = 32 + (int32_t)(rnd() % 20);
            p.requant_hi = 1;
        }
        cases++;
        if (dw) {
            tvlm_dwconv_s8(TVLM_PATH_PLAIN, &p, in, w, bias, mult, shift, acc, out_a);
            tvlm_dwconv_s8(TVLM_PATH_DSP, &p, in, w, bias, mult, shift, acc, out_b);
        } else {
            tvlm_conv_kernel_sum(w, bias, p.out_c, p.k * p.k * p.in_c, p.in_zp, be);
            tvlm_conv_s8(TVLM_PATH_PLAIN, &p, in, w, be, mult, shift, col, out_a);
            tvlm_conv_s8(TVLM_PATH_DSP, &p, in, w, be, mult, shift, col, out_b);
        }
        if (memcmp(out_a, out_b, (size_t)(p.out_h * p.out_w * p.out_c)) != 0) {
            printf("%s mismatch k=%d s=%d in_c=%d out_c=%d\n", dw ? "dwconv" : "conv", (int)p.k, (int)p.stride,
                   (int)p.in_c, (int)p.out_c);
            fails++;
        }
    }
    for (int t = 0; t < 100000; t++) {
        int32_t a = (int32_t)rnd(), m = (int32_t)(0x40000000u + (rnd() & 0x3fffffffu));
        int32_t sh = 32 + (int32_t)(rnd() % 31), zp = (int32_t)rnd8();
        int32_t lo = -128 + (int32_t)(rnd() % 100), hi = lo + (int32_t)(rnd() % (uint32_t)(128 - lo));
        cases++;
        if (tvlm_requant(a, m, sh, zp, lo, hi) != tvlm_requant_hi(a, m, sh, zp, lo, hi)) {
            printf("requant_hi mismatch acc=%d shift=%d\n", (int)a, (int)sh);
            fails++;
            break;
        }
    }
    for (uint32_t x = 0; x < 100000u; x++) {
        uint32_t v = x * 42949u + (rnd() & 0xffu), r = tvlm_isqrt(v);
        cases++;
        if ((uint64_t)r * r > v || ((uint64_t)r + 1) * (r + 1) <= v) {
            printf("isqrt(%u) = %u wrong\n", (unsigned)v, (unsigned)r);
            fails++;
            break;
        }
    }
    /* the CRC catalogue's check values of CRC-16/CCITT-FALSE and CRC-32/IEEE */
    const uint8_t check[] = "123456789";
    cases += 2;
    if (tvlm_crc16(TVLM_CRC16_INIT, check, 9) != 0x29b1u || tvlm_crc32(0, check, 9) != 0xcbf43926u) {
        printf("CRC check values wrong\n");
        fails++;
    }
    printf("kernel test: %d cases, %d failures\n", cases, fails);
    return fails ? 1 : 0;
}
