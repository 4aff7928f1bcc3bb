#include "tvlm_table.h"

#include <string.h>

#include "tvlm_crc.h"

uint32_t tvlm_table_store_size(uint16_t cap_rows, uint16_t cap_dims)
{
    return (uint32_t)cap_rows * 8u + (uint32_t)cap_rows * cap_dims;
}

uint32_t tvlm_table_blob_size(uint16_t rows, uint16_t dims)
{
    return TVLM_TABLE_HEADER_SIZE + tvlm_table_store_size(rows, dims);
}

void tvlm_table_init(tvlm_table_t *t, uint8_t *store, uint16_t cap_rows, uint16_t cap_dims)
{
    memset(t, 0, sizeof *t);
    t->cap_rows = cap_rows;
    t->cap_dims = cap_dims;
    t->store = store;
}

void tvlm_table_clear(tvlm_table_t *t)
{
    t->rows = 0;
    t->dims = 0;
    t->hash = 0;
    t->model_id = 0;
    t->text_id = 0;
    if (t->store == NULL) {
        t->scale_q24 = NULL;
        t->phrase_hash = NULL;
        t->data = NULL;
    }
}

tvlm_status_t tvlm_table_check(const uint8_t *blob, uint32_t size, uint16_t embed_dim, uint32_t model_id,
                               tvlm_table_header_t *out)
{
    tvlm_table_header_t h;
    if (blob == NULL || size < TVLM_TABLE_HEADER_SIZE) return TVLM_STATUS_BAD_TABLE;
    memcpy(&h, blob, sizeof h);
    if (h.magic != TVLM_TABLE_MAGIC || h.version != TVLM_TABLE_VERSION || h.header_size != TVLM_TABLE_HEADER_SIZE)
        return TVLM_STATUS_BAD_TABLE;
    if (h.rows == 0 || h.rows >= TVLM_ROW_RAM || h.dims == 0 || (h.dims & 3u) != 0 || h.dims > embed_dim)
        return TVLM_STATUS_BAD_TABLE;
    if (h.model_id != 0 && model_id != 0 && h.model_id != model_id) return TVLM_STATUS_BAD_TABLE;
    if (size != tvlm_table_blob_size(h.rows, h.dims)) return TVLM_STATUS_BAD_LENGTH;
    if (tvlm_crc32(0, blob + TVLM_TABLE_HEADER_SIZE, size - TVLM_TABLE_HEADER_SIZE) != h.body_crc32)
        return TVLM_STATUS_BAD_TABLE;
    if (out != NULL) *out = h;
    return TVLM_STATUS_OK;
}

static void set_header(tvlm_table_t *t, const tvlm_table_header_t *h, const uint8_t *blob, uint32_t size)
{
    t->rows = h->rows;
    t->dims = h->dims;
    t->model_id = h->model_id;
    t->text_id = h->text_id;
    t->hash = tvlm_crc32(0, blob, size);
}

tvlm_status_t tvlm_table_load(tvlm_table_t *t, const uint8_t *blob, uint32_t size, uint16_t embed_dim,
                              uint32_t model_id)
{
    tvlm_table_header_t h;
    tvlm_status_t st = tvlm_table_check(blob, size, embed_dim, model_id, &h);
    if (st != TVLM_STATUS_OK) return st;
    if (t->store == NULL || h.rows > t->cap_rows || h.dims > t->cap_dims) return TVLM_STATUS_TOO_LARGE;
    /* the store keeps the blob's body layout, so loading is one copy */
    memcpy(t->store, blob + TVLM_TABLE_HEADER_SIZE, size - TVLM_TABLE_HEADER_SIZE);
    t->scale_q24 = (const int32_t *)(const void *)t->store;
    t->phrase_hash = (const uint32_t *)(const void *)(t->store + 4u * h.rows);
    t->data = (const int8_t *)(t->store + 8u * h.rows);
    set_header(t, &h, blob, size);
    return TVLM_STATUS_OK;
}

tvlm_status_t tvlm_table_view(tvlm_table_t *t, const uint8_t *blob, uint32_t size, uint16_t embed_dim,
                              uint32_t model_id)
{
    tvlm_table_header_t h;
    if (((uintptr_t)blob & 3u) != 0) return TVLM_STATUS_BAD_TABLE;
    tvlm_status_t st = tvlm_table_check(blob, size, embed_dim, model_id, &h);
    if (st != TVLM_STATUS_OK) return st;
    memset(t, 0, sizeof *t);
    const uint8_t *body = blob + TVLM_TABLE_HEADER_SIZE;
    t->scale_q24 = (const int32_t *)(const void *)body;
    t->phrase_hash = (const uint32_t *)(const void *)(body + 4u * h.rows);
    t->data = (const int8_t *)(body + 8u * h.rows);
    set_header(t, &h, blob, size);
    return TVLM_STATUS_OK;
}

int32_t tvlm_table_find(const tvlm_table_t *t, uint32_t phrase_hash)
{
    for (uint32_t i = 0; i < t->rows; i++)
        if (t->phrase_hash[i] == phrase_hash) return (int32_t)i;
    return -1;
}
