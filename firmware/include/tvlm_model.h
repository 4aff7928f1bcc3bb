/* Model runtime: validates a versioned int8 model blob once (prepare), then runs it per frame (eval).
 *
 * Blob: tvlm_model_header_t, n_layers tvlm_layer_t records, then weights/bias/mult/shift arrays at the
 * 4-byte aligned offsets the records name. The last layer's output (grid_h x grid_w x embed_dim, HWC) is
 * the region embedding grid; it must be symmetric (out_zp 0) so the scorer can take plain dot products.
 */
#ifndef TVLM_MODEL_H
#define TVLM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "tvlm_kernels.h"
#include "tvlm_protocol.h"

#define TVLM_MAX_LAYERS 32

typedef struct {
    tvlm_layer_t rec;
    tvlm_conv_params_t p;
    const int8_t *w;
    const int32_t *bias;  /* as stored */
    const int32_t *mult;
    const int32_t *shift;
    int32_t *bias_eff;    /* conv: bias - in_zp * sum(w); computed at prepare, lives in the arena */
} tvlm_model_layer_t;

typedef struct {
    const uint8_t *blob;
    uint32_t blob_size;
    uint32_t hash;            /* CRC-32 of the whole blob */
    tvlm_model_header_t hdr;
    uint32_t n_layers;
    tvlm_model_layer_t layers[TVLM_MAX_LAYERS];
    int8_t *act[2];           /* ping-pong activations */
    int8_t *scratch;          /* im2col / depthwise accumulators */
    int8_t *embed;            /* where the last frame's embeddings are */
    uint32_t act_bytes, scratch_bytes;
    uint32_t macs;            /* multiply-accumulates per frame, from the layer shapes */
} tvlm_model_t;

/* Arena bytes tvlm_model_prepare will take for this blob (0 if the blob is invalid). */
uint32_t tvlm_model_arena_size(const uint8_t *blob, uint32_t size);
/* Validate the blob and carve bias_eff, activations and scratch out of the arena. */
tvlm_status_t tvlm_model_prepare(tvlm_model_t *m, const uint8_t *blob, uint32_t size, uint8_t *arena,
                                 uint32_t arena_size);
/* Run one frame: input is in_h x in_w x in_c int8 (pixel - 128). Sets m->embed. */
tvlm_status_t tvlm_model_eval(tvlm_model_t *m, tvlm_path_t path, const int8_t *input);

#endif
