/* Prepare validates everything a frame will rely on, so eval only computes. */
#include "tvlm_model.h"

#include <string.h>

#include "tvlm_crc.h"

#define ALIGN4(x) (((x) + 3u) & ~3u)

static int in_blob(uint32_t off, uint32_t bytes, uint32_t size)
{
    return (off & 3u) == 0 && off <= size && bytes <= size - off;
}

/* Checks the blob and fills m (when not NULL); returns the arena bytes needed through *arena. */
static tvlm_status_t parse(tvlm_model_t *m, const uint8_t *blob, uint32_t size, uint32_t *arena)
{
    tvlm_model_header_t h;
    if (blob == NULL || size < TVLM_MODEL_HEADER_SIZE) return TVLM_STATUS_BAD_MODEL;
    memcpy(&h, blob, sizeof h);
    if (h.magic != TVLM_MODEL_MAGIC || h.version != TVLM_MODEL_VERSION ||
        h.header_size != TVLM_MODEL_HEADER_SIZE || h.total_size != size)
        return TVLM_STATUS_BAD_MODEL;
    if (tvlm_crc32(0, blob + TVLM_MODEL_HEADER_SIZE, size - TVLM_MODEL_HEADER_SIZE) != h.payload_crc32)
        return TVLM_STATUS_BAD_MODEL;
    if (h.n_layers == 0 || h.n_layers > TVLM_MAX_LAYERS || h.in_c == 0 || h.in_w == 0 || h.in_h == 0 ||
        (uint32_t)h.grid_w * h.grid_h > TVLM_MAX_GRID_CELLS || h.embed_dim == 0 || h.embed_dim > 512)
        return TVLM_STATUS_BAD_MODEL;
    if (!in_blob(TVLM_MODEL_HEADER_SIZE, (uint32_t)h.n_layers * TVLM_MODEL_LAYER_SIZE, size))
        return TVLM_STATUS_BAD_MODEL;

    uint32_t cur_h = h.in_h, cur_w = h.in_w, cur_c = h.in_c;
    uint32_t act_max = 0, scratch = 0, bias_words = 0, macs = 0;
    for (uint32_t i = 0; i < h.n_layers; i++) {
        tvlm_layer_t L;
        memcpy(&L, blob + TVLM_MODEL_HEADER_SIZE + i * TVLM_MODEL_LAYER_SIZE, sizeof L);
        if (L.op != TVLM_LAYER_CONV && L.op != TVLM_LAYER_DWCONV) return TVLM_STATUS_BAD_MODEL;
        if (L.k == 0 || L.k > 7 || L.stride == 0 || L.stride > 4 || L.pad >= L.k) return TVLM_STATUS_BAD_MODEL;
        if (L.in_c != cur_c || L.in_h != cur_h || L.in_w != cur_w || L.out_c == 0 || L.out_c > 512)
            return TVLM_STATUS_BAD_MODEL;
        if (L.op == TVLM_LAYER_DWCONV && L.out_c != L.in_c) return TVLM_STATUS_BAD_MODEL;
        if (L.act_min > L.act_max || L.in_h + 2u * L.pad < L.k || L.in_w + 2u * L.pad < L.k)
            return TVLM_STATUS_BAD_MODEL;
        uint32_t oh = (L.in_h + 2u * L.pad - L.k) / L.stride + 1u;
        uint32_t ow = (L.in_w + 2u * L.pad - L.k) / L.stride + 1u;
        if (L.out_h != oh || L.out_w != ow) return TVLM_STATUS_BAD_MODEL;
        uint32_t len = (L.op == TVLM_LAYER_CONV) ? (uint32_t)L.k * L.k * L.in_c : (uint32_t)L.k * L.k;
        uint32_t wbytes = (L.op == TVLM_LAYER_CONV) ? L.out_c * len : len * L.out_c;
        if (len > 4096) return TVLM_STATUS_BAD_MODEL; /* keeps every accumulator inside int32 */
        if (!in_blob(L.w_off, wbytes, size) || !in_blob(L.b_off, 4u * L.out_c, size) ||
            !in_blob(L.m_off, 4u * L.out_c, size) || !in_blob(L.s_off, 4u * L.out_c, size))
            return TVLM_STATUS_BAD_MODEL;
        for (uint32_t c = 0; c < L.out_c; c++) {
            int32_t b, s;
            memcpy(&b, blob + L.b_off + 4u * c, 4);
            memcpy(&s, blob + L.s_off + 4u * c, 4);
            if (b > (1 << 24) || b < -(1 << 24) || s < 1 || s > 62) return TVLM_STATUS_BAD_MODEL;
        }
        if (i + 1 == h.n_layers && (L.out_zp != 0 || L.out_c != h.embed_dim || oh != h.grid_h ||
                                    ow != h.grid_w))
            return TVLM_STATUS_BAD_MODEL;
        uint32_t out_bytes = oh * ow * L.out_c;
        if (out_bytes > act_max) act_max = out_bytes;
        if (i > 0 && L.in_h * L.in_w * L.in_c > act_max) act_max = L.in_h * L.in_w * L.in_c;
        tvlm_conv_params_t p = {(int32_t)L.in_h, (int32_t)L.in_w, (int32_t)L.in_c, (int32_t)oh, (int32_t)ow,
                                (int32_t)L.out_c, L.k, L.stride, L.pad, L.in_zp, L.out_zp, L.act_min,
                                L.act_max, 0};
        uint32_t sb = (L.op == TVLM_LAYER_CONV) ? (uint32_t)tvlm_conv_s8_get_buffer_size(&p)
                                                : (uint32_t)tvlm_dwconv_s8_get_buffer_size(&p);
        if (sb > scratch) scratch = sb;
        if (L.op == TVLM_LAYER_CONV) bias_words += L.out_c;
        macs += oh * ow * L.out_c * len;
        if (m != NULL) {
            tvlm_model_layer_t *ml = &m->layers[i];
            ml->rec = L;
            ml->p = p;
            ml->w = (const int8_t *)(blob + L.w_off);
            ml->bias = (const int32_t *)(const void *)(blob + L.b_off);
            ml->mult = (const int32_t *)(const void *)(blob + L.m_off);
            ml->shift = (const int32_t *)(const void *)(blob + L.s_off);
            ml->p.requant_hi = tvlm_requant_hi_ok(ml->shift, (int32_t)L.out_c);
        }
        cur_h = oh;
        cur_w = ow;
        cur_c = L.out_c;
    }
    act_max = ALIGN4(act_max);
    scratch = ALIGN4(scratch);
    *arena = 4u * bias_words + 2u * act_max + scratch;
    if (m != NULL) {
        m->blob = blob;
        m->blob_size = size;
        m->hdr = h;
        m->n_layers = h.n_layers;
        m->act_bytes = act_max;
        m->scratch_bytes = scratch;
        m->macs = macs;
        m->hash = tvlm_crc32(0, blob, size);
    }
    return TVLM_STATUS_OK;
}

uint32_t tvlm_model_arena_size(const uint8_t *blob, uint32_t size)
{
    uint32_t need = 0;
    return parse(NULL, blob, size, &need) == TVLM_STATUS_OK ? need : 0u;
}

tvlm_status_t tvlm_model_prepare(tvlm_model_t *m, const uint8_t *blob, uint32_t size, uint8_t *arena,
                                 uint32_t arena_size)
{
    uint32_t need = 0;
    memset(m, 0, sizeof *m);
    if (((uintptr_t)blob & 3u) != 0) return TVLM_STATUS_BAD_MODEL;
    tvlm_status_t st = parse(m, blob, size, &need);
    if (st != TVLM_STATUS_OK) return st;
    if (((uintptr_t)arena & 3u) != 0 || arena_size < need) return TVLM_STATUS_NO_MEMORY;
    int32_t *words = (int32_t *)(void *)arena;
    for (uint32_t i = 0; i < m->n_layers; i++) {
        tvlm_model_layer_t *ml = &m->layers[i];
        if (ml->rec.op != TVLM_LAYER_CONV) continue;
        ml->bias_eff = words;
        tvlm_conv_kernel_sum(ml->w, ml->bias, ml->p.out_c, ml->p.k * ml->p.k * ml->p.in_c, ml->p.in_zp, words);
        words += ml->p.out_c;
    }
    uint8_t *rest = (uint8_t *)words;
    m->act[0] = (int8_t *)rest;
    m->act[1] = (int8_t *)(rest + m->act_bytes);
    m->scratch = (int8_t *)(rest + 2u * m->act_bytes);
    return TVLM_STATUS_OK;
}

tvlm_status_t tvlm_model_eval(tvlm_model_t *m, tvlm_path_t path, const int8_t *input)
{
    const int8_t *in = input;
    for (uint32_t i = 0; i < m->n_layers; i++) {
        tvlm_model_layer_t *ml = &m->layers[i];
        int8_t *out = m->act[i & 1u];
        tvlm_status_t st;
        if (ml->rec.op == TVLM_LAYER_CONV) {
            st = tvlm_conv_s8(path, &ml->p, in, ml->w, ml->bias_eff, ml->mult, ml->shift, m->scratch, out);
        } else {
            st = tvlm_dwconv_s8(path, &ml->p, in, ml->w, ml->bias, ml->mult, ml->shift,
                                (int32_t *)(void *)m->scratch, out);
        }
        if (st != TVLM_STATUS_OK) return st;
        in = out;
    }
    m->embed = (int8_t *)in;
    return TVLM_STATUS_OK;
}
