/* Region scorer: cosine of each region embedding prefix against query rows, in Q15, then grouping of
 * 4-connected hot cells (score >= threshold) into boxes.
 *
 * A query row is a row id: TVLM_ROW_RAM | i names row i of the RAM table, a plain i row i of the flash
 * vocabulary. Each row is scored over its own table's dims:
 *
 *   dot = sum_i e[i] * t[i] over the row's table's dims (a Matryoshka prefix of the embedding)
 *   n   = isqrt(sum_i e[i]^2)
 *   score = clamp(trunc(((dot * scale_q24 + 2^8) >> 9) / n), -32768, 32767), 0 when n == 0
 * Boxes are ranked by score (desc), then query index, then first cell in raster order.
 */
#ifndef TVLM_SCORER_H
#define TVLM_SCORER_H

#include <stdint.h>

#include "tvlm_kernels.h"
#include "tvlm_protocol.h"
#include "tvlm_table.h"

typedef struct {
    uint8_t n_rows;
    uint8_t max_boxes;
    int16_t threshold_q15;
    uint16_t rows[TVLM_MAX_QUERY_ROWS]; /* row ids */
} tvlm_scorer_query_t;

typedef struct {
    uint16_t row, rank;   /* row id, index in the query */
    int16_t score;
    uint8_t x0, y0, x1, y1;
    uint16_t cells, first;
} tvlm_scorer_box_t;

/* The table and the row in it that a row id names; NULL when the id names no row. */
const tvlm_table_t *tvlm_scorer_row(const tvlm_table_t *vocab, const tvlm_table_t *ram, uint16_t id,
                                    uint32_t *row);

/* scores[q * cells + r] for every query row q and region r; BAD_STATE when a row id names no row. */
tvlm_status_t tvlm_score_regions(tvlm_path_t path, const int8_t *embed, uint32_t cells, uint32_t embed_dim,
                                 const tvlm_table_t *vocab, const tvlm_table_t *ram, const tvlm_scorer_query_t *q,
                                 int16_t *scores);

/* Multiply-accumulates tvlm_score_regions spends on one frame (dot products and norms). */
uint32_t tvlm_score_macs(uint32_t cells, const tvlm_table_t *vocab, const tvlm_table_t *ram,
                         const tvlm_scorer_query_t *q);
/* Group hot cells into at most q->max_boxes boxes, best first; returns the number of boxes. */
uint32_t tvlm_group_boxes(const int16_t *scores, uint32_t grid_w, uint32_t grid_h, const tvlm_scorer_query_t *q,
                          tvlm_scorer_box_t *boxes);

#endif
