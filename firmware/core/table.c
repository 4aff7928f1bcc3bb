#include "tvlm_table.h"

#include <string.h>

#include "tvlm_crc.h"

uint32_t tvlm_table_store_size(uint16_t cap_rows, uint16_t cap_dims)
{
    return (uint32_t)cap_rows * 4u + (uint32_t)cap_rows * cap_dims;
}

uint32_t tvlm_table_blob_max(uint16_t cap_rows, uint16_t cap_dims)
{
    return TVLM_TABLE_HEADER_SIZE + tvlm_table_store_size(cap_rows, cap_dims);
}

void tvlm_table_init(tvlm_table_t *t, uint8_t *store, uint16_t cap_rows, uint16_t cap_dims)
{
    memset(t, 0, sizeof *t);
    t->cap_rows = cap_rows;
    t->cap_dims = cap_dims;
    t->scale_q24 = (int32_t *)(void *)store;
    t->data = (int8_t *)(store + 4u * cap_rows);
}

void tvlm_table_clear(tvlm_table_t *t)
{
    t->rows = 0;
    t->dims = 0;
    t->hash = 0;
    t->model_id = 0;
}

tvlm_status_t tvlm_table_load(tvlm_table_t *t, const uint8_t *blob, uint32_t size, uint16_t embed_dim,
                              uint32_t model_id)
{
    tvlm_table_header_t h;
    if (size < TVLM_TABLE_HEADER_SIZE) return TVLM_STATUS_BAD_TABLE;
    memcpy(&h, blob, sizeof h);
    if (h.magic != TVLM_TABLE_MAGIC || h.version != TVLM_TABLE_VERSION || h.header_size != TVLM_TABLE_HEADER_SIZE)
        return TVLM_STATUS_BAD_TABLE;
    if (h.rows == 0 || h.dims == 0 || (h.dims & 3u) != 0 || h.dims > embed_dim) return TVLM_STATUS_BAD_TABLE;
    /* rows embedded for another model's space would score garbage */
    if (h.model_id != 0 && model_id != 0 && h.model_id != model_id) return TVLM_STATUS_BAD_TABLE;
    if (h.rows > t->cap_rows || h.dims > t->cap_dims) return TVLM_STATUS_TOO_LARGE;
    uint32_t body = (uint32_t)h.rows * 4u + (uint32_t)h.rows * h.dims;
    if (size != TVLM_TABLE_HEADER_SIZE + body) return TVLM_STATUS_BAD_LENGTH;
    if (tvlm_crc32(0, blob + TVLM_TABLE_HEADER_SIZE, body) != h.body_crc32) return TVLM_STATUS_BAD_TABLE;
    memcpy(t->scale_q24, blob + TVLM_TABLE_HEADER_SIZE, 4u * h.rows);
    memcpy(t->data, blob + TVLM_TABLE_HEADER_SIZE + 4u * h.rows, (size_t)h.rows * h.dims);
    t->rows = h.rows;
    t->dims = h.dims;
    t->model_id = h.model_id;
    t->hash = tvlm_crc32(0, blob, size);
    return TVLM_STATUS_OK;
}
