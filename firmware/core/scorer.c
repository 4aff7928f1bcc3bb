#include "tvlm_scorer.h"

#include <string.h>

const tvlm_table_t *tvlm_scorer_row(const tvlm_table_t *vocab, const tvlm_table_t *ram, uint16_t id,
                                    uint32_t *row)
{
    const tvlm_table_t *t = (id & TVLM_ROW_RAM) ? ram : vocab;
    const uint32_t r = id & (TVLM_ROW_RAM - 1u);
    if (t == NULL || r >= t->rows) return NULL;
    *row = r;
    return t;
}

uint32_t tvlm_score_macs(uint32_t cells, const tvlm_table_t *vocab, const tvlm_table_t *ram,
                         const tvlm_scorer_query_t *q)
{
    uint32_t per_cell = 0, norm_v = 0, norm_r = 0;
    for (uint32_t k = 0; k < q->n_rows; k++) {
        uint32_t row;
        const tvlm_table_t *t = tvlm_scorer_row(vocab, ram, q->rows[k], &row);
        if (t == NULL) continue;
        per_cell += t->dims;
        if (t == vocab) norm_v = t->dims;
        else norm_r = t->dims;
    }
    return cells * (per_cell + norm_v + norm_r);
}

tvlm_status_t tvlm_score_regions(tvlm_path_t path, const int8_t *embed, uint32_t cells, uint32_t embed_dim,
                                 const tvlm_table_t *vocab, const tvlm_table_t *ram, const tvlm_scorer_query_t *q,
                                 int16_t *scores)
{
    int32_t (*dot)(const int8_t *, const int8_t *, int32_t, int32_t) =
        path == TVLM_PATH_PLAIN ? tvlm_dot_s8_plain : path == TVLM_PATH_MVE ? tvlm_dot_s8_mve : tvlm_dot_s8_dsp;
    const tvlm_table_t *tab[TVLM_MAX_QUERY_ROWS];
    uint32_t rowix[TVLM_MAX_QUERY_ROWS];
    if (cells > TVLM_MAX_GRID_CELLS || q->n_rows > TVLM_MAX_QUERY_ROWS) return TVLM_STATUS_BAD_ARG;
    for (uint32_t k = 0; k < q->n_rows; k++) {
        tab[k] = tvlm_scorer_row(vocab, ram, q->rows[k], &rowix[k]);
        if (tab[k] == NULL) return TVLM_STATUS_BAD_STATE;
        if (tab[k]->dims > embed_dim) return TVLM_STATUS_BAD_TABLE;
    }
    for (uint32_t r = 0; r < cells; r++) {
        const int8_t *e = embed + r * embed_dim;
        /* the norm of the region's prefix, once per table (the two tables may keep different prefixes) */
        uint32_t n_v = 0, n_r = 0;
        int have_v = 0, have_r = 0;
        for (uint32_t k = 0; k < q->n_rows; k++) {
            const tvlm_table_t *t = tab[k];
            const int32_t d = t->dims;
            uint32_t n;
            if (t == vocab) {
                if (!have_v) {
                    n_v = tvlm_isqrt((uint32_t)dot(e, e, d, 0));
                    have_v = 1;
                }
                n = n_v;
            } else {
                if (!have_r) {
                    n_r = tvlm_isqrt((uint32_t)dot(e, e, d, 0));
                    have_r = 1;
                }
                n = n_r;
            }
            const uint32_t row = rowix[k];
            const int32_t dp = dot(e, t->data + row * (uint32_t)d, d, 0);
            int64_t s = 0;
            if (n != 0) {
                /* Q24 scale * dot -> Q15 with rounding; the embedding's own scale cancels in the cosine */
                int64_t num = ((int64_t)dp * t->scale_q24[row] + (1 << (TVLM_TABLE_SCALE_Q - TVLM_SCORE_Q - 1)))
                              >> (TVLM_TABLE_SCALE_Q - TVLM_SCORE_Q);
                s = num / (int64_t)n;
            }
            if (s > 32767) s = 32767;
            if (s < -32768) s = -32768;
            scores[k * cells + r] = (int16_t)s;
        }
    }
    return TVLM_STATUS_OK;
}

/* better: higher score, then lower query index, then earlier first cell */
static int better(const tvlm_scorer_box_t *a, const tvlm_scorer_box_t *b)
{
    if (a->score != b->score) return a->score > b->score;
    if (a->rank != b->rank) return a->rank < b->rank;
    return a->first < b->first;
}

uint32_t tvlm_group_boxes(const int16_t *scores, uint32_t grid_w, uint32_t grid_h, const tvlm_scorer_query_t *q,
                          tvlm_scorer_box_t *boxes)
{
    const uint32_t cells = grid_w * grid_h;
    uint8_t seen[TVLM_MAX_GRID_CELLS];
    uint16_t stack[TVLM_MAX_GRID_CELLS];
    uint32_t n_boxes = 0;
    const uint32_t max_boxes = q->max_boxes > TVLM_MAX_BOXES ? TVLM_MAX_BOXES : q->max_boxes;
    if (cells > TVLM_MAX_GRID_CELLS || max_boxes == 0) return 0;
    for (uint32_t k = 0; k < q->n_rows; k++) {
        const int16_t *s = scores + k * cells;
        memset(seen, 0, cells);
        for (uint32_t start = 0; start < cells; start++) {
            if (seen[start] || s[start] < q->threshold_q15) continue;
            tvlm_scorer_box_t b = {q->rows[k], (uint16_t)k, s[start], (uint8_t)(start % grid_w),
                            (uint8_t)(start / grid_w), 0, 0, 0, (uint16_t)start};
            uint32_t x1 = b.x0, y1 = b.y0, sp = 0;
            stack[sp++] = (uint16_t)start;
            seen[start] = 1;
            while (sp) {
                const uint32_t c = stack[--sp], x = c % grid_w, y = c / grid_w;
                b.cells++;
                if (s[c] > b.score) b.score = s[c];
                if (x < b.x0) b.x0 = (uint8_t)x;
                if (y < b.y0) b.y0 = (uint8_t)y;
                if (x > x1) x1 = x;
                if (y > y1) y1 = y;
                uint32_t nb[4], nn = 0;
                if (x > 0) nb[nn++] = c - 1;
                if (x + 1 < grid_w) nb[nn++] = c + 1;
                if (y > 0) nb[nn++] = c - grid_w;
                if (y + 1 < grid_h) nb[nn++] = c + grid_w;
                for (uint32_t j = 0; j < nn; j++) {
                    if (!seen[nb[j]] && s[nb[j]] >= q->threshold_q15) {
                        seen[nb[j]] = 1;
                        stack[sp++] = (uint16_t)nb[j];
                    }
                }
            }
            b.x1 = (uint8_t)(x1 + 1);
            b.y1 = (uint8_t)(y1 + 1);
            /* insertion into the ranked list, dropping the worst when full */
            uint32_t pos = n_boxes;
            while (pos > 0 && better(&b, &boxes[pos - 1])) pos--;
            if (pos >= max_boxes) continue;
            uint32_t last = n_boxes < max_boxes ? n_boxes : max_boxes - 1;
            for (uint32_t j = last; j > pos; j--) boxes[j] = boxes[j - 1];
            boxes[pos] = b;
            if (n_boxes < max_boxes) n_boxes++;
        }
    }
    return n_boxes;
}
