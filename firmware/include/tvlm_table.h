/* Tables of int8 text-embedding rows with a per-row scale and a phrase hash, from versioned table blobs.
 *
 * Blob: tvlm_table_header_t, then int32 scale_q24[rows], uint32 phrase_hash[rows], int8 data[rows][dims].
 * Two homes use the same format: the RAM table (LOAD_TABLE copies a blob into the arena) and the flash
 * vocabulary (a blob built into the image or written to the port's flash slot, used in place, so its rows
 * cost no RAM and survive a reboot). A phrase hash names the phrase a row embeds (CRC-32 of its normalized
 * text), so the host can find rows it does not have to upload.
 */
#ifndef TVLM_TABLE_H
#define TVLM_TABLE_H

#include <stdint.h>

#include "tvlm_protocol.h"

typedef struct {
    uint16_t rows, dims;          /* 0 rows: no table */
    uint16_t cap_rows, cap_dims;  /* capacity of the RAM store; 0 for a table used in place */
    uint32_t hash;                /* CRC-32 of the blob it came from */
    uint32_t model_id, text_id;
    const int32_t *scale_q24;     /* [rows] */
    const uint32_t *phrase_hash;  /* [rows] */
    const int8_t *data;           /* [rows][dims] */
    uint8_t *store;               /* RAM store, NULL for a table used in place */
} tvlm_table_t;

/* Bytes of arena a RAM table of this capacity needs. */
uint32_t tvlm_table_store_size(uint16_t cap_rows, uint16_t cap_dims);
/* Blob bytes of a table of this shape (also the largest blob a RAM table of this capacity takes). */
uint32_t tvlm_table_blob_size(uint16_t rows, uint16_t dims);

/* A RAM table over a store of tvlm_table_store_size() bytes (4-byte aligned). */
void tvlm_table_init(tvlm_table_t *t, uint8_t *store, uint16_t cap_rows, uint16_t cap_dims);
/* Forget the rows (a RAM table keeps its store). */
void tvlm_table_clear(tvlm_table_t *t);

/* Validate a blob: magic, version, sizes, CRC, dims a multiple of 4 and <= embed_dim, model id 0 or equal
 * to model_id (rows embedded for another model's space would score garbage). Fills *h when not NULL. */
tvlm_status_t tvlm_table_check(const uint8_t *blob, uint32_t size, uint16_t embed_dim, uint32_t model_id,
                               tvlm_table_header_t *h);
/* Validate and copy a blob into a RAM table. On error the previous rows are left untouched. */
tvlm_status_t tvlm_table_load(tvlm_table_t *t, const uint8_t *blob, uint32_t size, uint16_t embed_dim,
                              uint32_t model_id);
/* Validate a 4-byte aligned blob and use it in place (flash). The blob must outlive the table. */
tvlm_status_t tvlm_table_view(tvlm_table_t *t, const uint8_t *blob, uint32_t size, uint16_t embed_dim,
                              uint32_t model_id);
/* Row holding phrase_hash (the first one), or -1. */
int32_t tvlm_table_find(const tvlm_table_t *t, uint32_t phrase_hash);

#endif
