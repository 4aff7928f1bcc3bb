/* Table store: int8 text-embedding rows with a per-row scale, loaded from a versioned table blob. */
#ifndef TVLM_TABLE_H
#define TVLM_TABLE_H

#include <stdint.h>

#include "tvlm_protocol.h"

typedef struct {
    uint16_t rows, dims;          /* 0 rows: no table */
    uint16_t cap_rows, cap_dims;
    uint32_t hash;                /* CRC-32 of the blob it came from */
    uint32_t model_id;
    int32_t *scale_q24;           /* [cap_rows] */
    int8_t *data;                 /* [cap_rows * cap_dims], rows stored with stride dims */
} tvlm_table_t;

/* Bytes of arena a table of this capacity needs. */
uint32_t tvlm_table_store_size(uint16_t cap_rows, uint16_t cap_dims);
/* Largest table blob of this capacity. */
uint32_t tvlm_table_blob_max(uint16_t cap_rows, uint16_t cap_dims);
void tvlm_table_init(tvlm_table_t *t, uint8_t *store, uint16_t cap_rows, uint16_t cap_dims);
void tvlm_table_clear(tvlm_table_t *t);
/* Validate a blob (magic, version, sizes, CRC, dims a multiple of 4 and <= embed_dim, model id 0 or equal
 * to model_id) and copy it in. On error the previous table is left untouched. */
tvlm_status_t tvlm_table_load(tvlm_table_t *t, const uint8_t *blob, uint32_t size, uint16_t embed_dim,
                              uint32_t model_id);

#endif
