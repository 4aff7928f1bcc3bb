/* Command dispatch. Every request gets exactly one reply with the request's seq and opcode; a request
 * that repeats the previous seq and opcode (a host retry after a lost reply) gets the cached reply
 * without running twice. */
#include "tvlm_device.h"

#include <string.h>

#define ALIGN4(x) (((x) + 3u) & ~3u)
#define DEFAULT_THRESHOLD_Q15 8192 /* cosine 0.25 */
#define DEFAULT_MAX_BOXES 8u

static uint32_t staging_size(const tvlm_model_header_t *h, int model_ok, uint16_t rows, uint16_t dims)
{
    uint32_t img = model_ok ? (uint32_t)h->in_w * h->in_h * h->in_c : 0u;
    uint32_t tab = tvlm_table_blob_size(rows, dims);
    return ALIGN4(img > tab ? img : tab);
}

uint32_t tvlm_device_arena_size(const uint8_t *model, uint32_t model_size, uint16_t table_rows,
                                uint16_t table_dims)
{
    tvlm_model_header_t h;
    uint32_t m = tvlm_model_arena_size(model, model_size);
    if (m) memcpy(&h, model, sizeof h);
    return ALIGN4(m) + staging_size(&h, m != 0, table_rows, table_dims) +
           ALIGN4(tvlm_table_store_size(table_rows, table_dims)) +
           2u * TVLM_MAX_QUERY_ROWS * TVLM_MAX_GRID_CELLS;
}

/* The first RAM table rows; no rows (INFER answers BAD_STATE until SET_QUERY) without a RAM table. Called
 * whenever a table changes, so a query never names a row that is gone. */
static void default_query(tvlm_device_t *d)
{
    memset(&d->query, 0, sizeof d->query);
    d->query.n_rows = (uint8_t)(d->table.rows < TVLM_MAX_QUERY_ROWS ? d->table.rows : TVLM_MAX_QUERY_ROWS);
    for (uint32_t i = 0; i < d->query.n_rows; i++) d->query.rows[i] = (uint16_t)(TVLM_ROW_RAM | i);
    d->query.threshold_q15 = DEFAULT_THRESHOLD_Q15;
    d->query.max_boxes = DEFAULT_MAX_BOXES;
}

/* The written flash slot when it holds a valid table for this model, else the built-in vocabulary. */
static void select_vocab(tvlm_device_t *d)
{
    const tvlm_port_t *port = d->port;
    tvlm_table_clear(&d->vocab);
    d->vocab_source = TVLM_VOCAB_NONE;
    if (d->model_status != TVLM_STATUS_OK) return; /* no embed dim to check rows against */
    const uint16_t embed = d->model.hdr.embed_dim;
    const uint32_t model_id = d->model.hdr.model_id;
    if (port->vocab_slot != NULL && port->vocab_slot_size >= TVLM_TABLE_HEADER_SIZE) {
        tvlm_table_header_t h;
        memcpy(&h, port->vocab_slot, sizeof h);
        const uint32_t size = tvlm_table_blob_size(h.rows, h.dims);
        if (size <= port->vocab_slot_size &&
            tvlm_table_view(&d->vocab, port->vocab_slot, size, embed, model_id) == TVLM_STATUS_OK) {
            d->vocab_source = TVLM_VOCAB_FLASH;
            return;
        }
    }
    if (d->cfg.vocab != NULL &&
        tvlm_table_view(&d->vocab, d->cfg.vocab, d->cfg.vocab_size, embed, model_id) == TVLM_STATUS_OK)
        d->vocab_source = TVLM_VOCAB_BUILTIN;
}

/* a fresh id per (re)boot, from the port's seed and a counter */
static uint32_t mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x ? x : 1u;
}

tvlm_status_t tvlm_device_init(tvlm_device_t *d, const tvlm_port_t *port, const tvlm_device_config_t *cfg,
                               const uint8_t *model, uint32_t model_size, uint8_t *arena, uint32_t arena_size)
{
    memset(d, 0, sizeof *d);
    d->port = port;
    d->cfg = *cfg;
    d->boot_id = mix32(cfg->boot_id);
    tvlm_parser_reset(&d->rx);
    if (((uintptr_t)arena & 3u) != 0) return TVLM_STATUS_NO_MEMORY;
    /* table + staging + scores first, so a bad model still leaves a talking device */
    uint32_t store = ALIGN4(tvlm_table_store_size(cfg->table_rows, cfg->table_dims));
    uint32_t scores = 2u * TVLM_MAX_QUERY_ROWS * TVLM_MAX_GRID_CELLS;
    uint32_t m_need = tvlm_model_arena_size(model, model_size);
    tvlm_model_header_t h;
    if (m_need) memcpy(&h, model, sizeof h);
    uint32_t staging = staging_size(&h, m_need != 0, cfg->table_rows, cfg->table_dims);
    if (arena_size < store + scores + staging) return TVLM_STATUS_NO_MEMORY;
    tvlm_table_init(&d->table, arena, cfg->table_rows, cfg->table_dims);
    d->scores = (int16_t *)(void *)(arena + store);
    d->staging = arena + store + scores;
    d->staging_cap = staging;
    uint32_t used = store + scores + staging;
    d->model_status = tvlm_model_prepare(&d->model, model, model_size, arena + used, arena_size - used);
    select_vocab(d);
    default_query(d);
    return TVLM_STATUS_OK;
}

static void put16(uint8_t *b, uint16_t v) { b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *b, uint32_t v) { put16(b, (uint16_t)v); put16(b + 2, (uint16_t)(v >> 16)); }
static uint16_t get16(const uint8_t *b) { return (uint16_t)(b[0] | (b[1] << 8)); }
static uint32_t get32(const uint8_t *b) { return (uint32_t)get16(b) | ((uint32_t)get16(b + 2) << 16); }

static uint8_t *reply_payload(tvlm_device_t *d) { return d->tx + TVLM_HEADER_SIZE; }

static void send(tvlm_device_t *d, uint8_t opcode, uint16_t seq, uint8_t status, size_t len, int cache)
{
    d->tx_len = tvlm_frame_finish(d->tx, sizeof d->tx, opcode, seq, TVLM_FLAG_RESPONSE, status, len);
    if (status != TVLM_STATUS_OK && status != TVLM_STATUS_MORE) d->stats.naks++;
    d->last_valid = (uint8_t)cache;
    d->last_seq = seq;
    d->last_opcode = opcode;
    d->port->write(d->port->ctx, d->tx, d->tx_len);
}

/* Header-only NAK from its own small buffer, so the cached reply survives for the retry that follows. */
static void send_nak(tvlm_device_t *d, uint8_t opcode, uint16_t seq, uint8_t status)
{
    uint8_t buf[TVLM_HEADER_SIZE + TVLM_TRAILER_SIZE];
    size_t n = tvlm_frame_finish(buf, sizeof buf, opcode, seq, TVLM_FLAG_RESPONSE, status, 0);
    d->stats.naks++;
    d->port->write(d->port->ctx, buf, n);
}

static size_t fill_info(tvlm_device_t *d, uint8_t *out)
{
    tvlm_info_t in;
    memset(&in, 0, sizeof in);
    int ok = d->model_status == TVLM_STATUS_OK;
    in.fw_version = TVLM_FW_VERSION;
    in.proto_version = TVLM_PROTOCOL_VERSION;
    in.port = d->port->port_id;
    in.kernel_path = (uint8_t)d->cfg.path;
    in.work_unit = d->port->work_unit;
    in.boot_id = d->boot_id;
    in.model_ok = (uint8_t)ok;
    if (ok) {
        in.model_id = d->model.hdr.model_id;
        in.model_hash = d->model.hash;
        in.input_w = d->model.hdr.in_w;
        in.input_h = d->model.hdr.in_h;
        in.input_c = d->model.hdr.in_c;
        in.grid_w = d->model.hdr.grid_w;
        in.grid_h = d->model.hdr.grid_h;
        in.embed_dim = d->model.hdr.embed_dim;
    }
    in.table_capacity_rows = d->table.cap_rows;
    in.table_max_dims = d->table.cap_dims;
    in.table_rows = d->table.rows;
    in.table_dims = d->table.dims;
    in.table_hash = d->table.hash;
    in.max_payload = TVLM_MAX_PAYLOAD;
    in.max_query_rows = TVLM_MAX_QUERY_ROWS;
    in.max_boxes = TVLM_MAX_BOXES;
    in.flash_bytes = d->port->flash_bytes;
    in.ram_bytes = d->port->ram_bytes;
    in.ticks_per_kinstr = d->port->ticks_per_kinstr;
    if (ok) in.model_flags = d->model.hdr.flags;
    in.vocab_hash = d->vocab.hash;
    in.vocab_text_id = d->vocab.text_id;
    in.vocab_rows = d->vocab.rows;
    in.vocab_dims = d->vocab.dims;
    in.vocab_source = d->vocab_source;
    in.vocab_slot_bytes = (d->port->flash_program != NULL && d->port->flash_erase != NULL) ? d->port->vocab_slot_size
                                                                                       : 0u;
    in.camera = d->port->capture != NULL ? d->port->camera : (uint8_t)TVLM_CAMERA_NONE;
    memcpy(out, &in, sizeof in); /* the wire is little endian, like every supported core */
    return sizeof in;
}

/* Encode the uint8 frame in staging, score the query rows and group boxes. The result is written to the reply
 * payload after `head` bytes the caller fills; `tail` more bytes must fit after it. *len = head + result. */
static uint8_t run_infer(tvlm_device_t *d, uint8_t flags, size_t head, size_t tail, size_t *len)
{
    tvlm_model_t *m = &d->model;
    const uint32_t cells = (uint32_t)m->hdr.grid_w * m->hdr.grid_h;
    if (d->model_status != TVLM_STATUS_OK) return TVLM_STATUS_BAD_MODEL;
    if (d->query.n_rows == 0) return TVLM_STATUS_BAD_STATE;
    const uint32_t score_bytes = (flags & TVLM_FLAG_WANT_SCORES) ? 2u * cells * d->query.n_rows : 0u;
    if (head + TVLM_RESULT_SIZE + TVLM_BOX_SIZE * (uint32_t)d->query.max_boxes + score_bytes + tail >
        TVLM_MAX_PAYLOAD)
        return TVLM_STATUS_TOO_LARGE;
    /* pixels arrive as uint8; the model takes pixel - 128, which is flipping the top bit */
    const uint32_t n = (uint32_t)m->hdr.in_w * m->hdr.in_h * m->hdr.in_c;
    for (uint32_t i = 0; i < n; i++) d->staging[i] ^= 0x80u;
    const uint32_t t0 = d->port->ticks ? d->port->ticks(d->port->ctx) : 0u;
    tvlm_status_t st = tvlm_model_eval(m, d->cfg.path, (const int8_t *)d->staging);
    if (st == TVLM_STATUS_OK)
        st = tvlm_score_regions(d->cfg.path, m->embed, cells, m->hdr.embed_dim, &d->vocab, &d->table, &d->query,
                                d->scores);
    tvlm_scorer_box_t boxes[TVLM_MAX_BOXES];
    uint32_t nb = st == TVLM_STATUS_OK ? tvlm_group_boxes(d->scores, m->hdr.grid_w, m->hdr.grid_h, &d->query,
                                                          boxes) : 0u;
    const uint32_t t1 = d->port->ticks ? d->port->ticks(d->port->ctx) : 0u;
    if (st != TVLM_STATUS_OK) return (uint8_t)st;
    d->stats.frames++;
    d->stats.last_ticks = t1 - t0;
    d->stats.last_macs = m->macs + tvlm_score_macs(cells, &d->vocab, &d->table, &d->query);
    uint8_t *out = reply_payload(d) + head;
    tvlm_result_t r = {d->stats.frames, d->stats.last_macs, d->stats.last_ticks, (uint8_t)nb,
                       m->hdr.grid_w, m->hdr.grid_h, d->query.n_rows};
    memcpy(out, &r, sizeof r);
    size_t off = sizeof r;
    for (uint32_t i = 0; i < nb; i++) {
        uint8_t *b = out + off;
        put16(b, boxes[i].row);
        put16(b + 2, (uint16_t)boxes[i].score);
        b[4] = boxes[i].x0;
        b[5] = boxes[i].y0;
        b[6] = boxes[i].x1;
        b[7] = boxes[i].y1;
        put16(b + 8, boxes[i].cells);
        put16(b + 10, boxes[i].rank);
        off += TVLM_BOX_SIZE;
    }
    if (score_bytes) {
        memcpy(out + off, d->scores, score_bytes);
        off += score_bytes;
    }
    *len = head + off;
    return TVLM_STATUS_OK;
}

/* CAPTURE: the port's camera fills staging, then INFER's path; capture time first, thumbnail last. */
static uint8_t on_capture(tvlm_device_t *d, const tvlm_parser_t *p, size_t *len)
{
    const tvlm_model_header_t *h = &d->model.hdr;
    if (p->length != TVLM_CAPTURE_SIZE) return TVLM_STATUS_BAD_LENGTH;
    if (d->port->capture == NULL) return TVLM_STATUS_NOT_SUPPORTED;
    if (d->model_status != TVLM_STATUS_OK) return TVLM_STATUS_BAD_MODEL;
    const uint32_t div = p->payload[0];
    uint32_t tw = 0, th = 0;
    if (p->flags & TVLM_FLAG_WANT_THUMB) {
        if (div == 0 || div > h->in_w || div > h->in_h) return TVLM_STATUS_BAD_ARG;
        tw = h->in_w / div;
        th = h->in_h / div;
    }
    const uint32_t thumb_bytes = tw * th * h->in_c;
    if (thumb_bytes > TVLM_MAX_PAYLOAD) return TVLM_STATUS_TOO_LARGE;
    /* refuse before capturing, so a refused request leaves no trace */
    if (d->query.n_rows == 0) return TVLM_STATUS_BAD_STATE;
    d->xfer_op = 0; /* the frame overwrites staging: a half-received transfer there is gone */
    uint64_t t_us = 0;
    tvlm_status_t st = d->port->capture(d->port->ctx, d->staging, h->in_w, h->in_h, h->in_c, &t_us);
    if (st != TVLM_STATUS_OK) return (uint8_t)st;
    size_t n = 0;
    uint8_t r = run_infer(d, p->flags, TVLM_CAPTURE_RESULT_SIZE, thumb_bytes, &n);
    if (r != TVLM_STATUS_OK) return r;
    tvlm_capture_result_t cr = {(uint32_t)t_us, (uint32_t)(t_us >> 32), (uint16_t)tw, (uint16_t)th};
    memcpy(reply_payload(d), &cr, sizeof cr);
    /* box-filter thumbnail of the captured frame; staging now holds pixel ^ 0x80 */
    uint8_t *out = reply_payload(d) + n;
    for (uint32_t y = 0; y < th; y++) {
        for (uint32_t x = 0; x < tw; x++) {
            for (uint32_t c = 0; c < h->in_c; c++) {
                uint32_t sum = 0;
                for (uint32_t dy = 0; dy < div; dy++)
                    for (uint32_t dx = 0; dx < div; dx++)
                        sum += d->staging[((y * div + dy) * h->in_w + x * div + dx) * h->in_c + c] ^ 0x80u;
                *out++ = (uint8_t)((sum + div * div / 2u) / (div * div));
            }
        }
    }
    *len = n + thumb_bytes;
    return TVLM_STATUS_OK;
}

/* Order of a chunked transfer (LOAD_TABLE, VOCAB_WRITE, INFER): offset 0 starts one, every later chunk must
 * continue it (same opcode and total, offset = bytes received so far) and stay inside the total. */
static uint8_t chunk_order(tvlm_device_t *d, uint8_t opcode, uint32_t off, uint32_t total, uint32_t n)
{
    if (off == 0) {
        d->xfer_op = opcode;
        d->xfer_total = total;
        d->xfer_received = 0;
    } else if (d->xfer_op != opcode || off != d->xfer_received || total != d->xfer_total) {
        return TVLM_STATUS_BAD_OFFSET;
    }
    if (n > total - off) return TVLM_STATUS_BAD_LENGTH;
    return TVLM_STATUS_OK;
}

/* After a chunk's bytes are stored: MORE with the byte count, or the transfer is complete (OK). */
static uint8_t chunk_done(tvlm_device_t *d, uint32_t off, uint32_t n, size_t *len)
{
    d->xfer_received = off + n;
    if (d->xfer_received < d->xfer_total) {
        put32(reply_payload(d), d->xfer_received);
        *len = 4;
        return TVLM_STATUS_MORE;
    }
    d->xfer_op = 0;
    return TVLM_STATUS_OK;
}

/* LOAD_TABLE and INFER: chunks of (offset, total, data) appended to the staging buffer in order */
static uint8_t on_chunk(tvlm_device_t *d, const tvlm_parser_t *p, size_t *len)
{
    if (p->length < TVLM_CHUNK_HEADER_SIZE) return TVLM_STATUS_BAD_LENGTH;
    const uint32_t off = get32(p->payload), total = get32(p->payload + 4);
    const uint32_t n = p->length - TVLM_CHUNK_HEADER_SIZE;
    if (p->opcode == TVLM_OP_INFER) {
        if (d->model_status != TVLM_STATUS_OK) return TVLM_STATUS_BAD_MODEL;
        if (total != (uint32_t)d->model.hdr.in_w * d->model.hdr.in_h * d->model.hdr.in_c)
            return TVLM_STATUS_BAD_LENGTH;
    }
    if (total == 0) return TVLM_STATUS_BAD_LENGTH;
    if (total > d->staging_cap) return TVLM_STATUS_TOO_LARGE;
    uint8_t st = chunk_order(d, p->opcode, off, total, n);
    if (st != TVLM_STATUS_OK) return st;
    memcpy(d->staging + off, p->payload + TVLM_CHUNK_HEADER_SIZE, n);
    if ((st = chunk_done(d, off, n, len)) != TVLM_STATUS_OK) return st;
    if (p->opcode == TVLM_OP_INFER) return run_infer(d, p->flags, 0, 0, len);
    const uint16_t embed = d->model_status == TVLM_STATUS_OK ? d->model.hdr.embed_dim : d->table.cap_dims;
    const uint32_t model_id = d->model_status == TVLM_STATUS_OK ? d->model.hdr.model_id : 0u;
    st = (uint8_t)tvlm_table_load(&d->table, d->staging, total, embed, model_id);
    if (st != TVLM_STATUS_OK) return st;
    default_query(d);
    *len = fill_info(d, reply_payload(d));
    return TVLM_STATUS_OK;
}

static uint8_t on_query(tvlm_device_t *d, const tvlm_parser_t *p)
{
    if (p->length < TVLM_QUERY_SIZE) return TVLM_STATUS_BAD_LENGTH;
    tvlm_scorer_query_t q;
    memset(&q, 0, sizeof q);
    q.n_rows = p->payload[0];
    q.max_boxes = p->payload[1];
    q.threshold_q15 = (int16_t)get16(p->payload + 2);
    if (p->length != TVLM_QUERY_SIZE + 2u * q.n_rows) return TVLM_STATUS_BAD_LENGTH;
    if (q.n_rows == 0 || q.n_rows > TVLM_MAX_QUERY_ROWS || q.max_boxes == 0 || q.max_boxes > TVLM_MAX_BOXES)
        return TVLM_STATUS_BAD_ARG;
    for (uint32_t i = 0; i < q.n_rows; i++) {
        uint32_t row;
        q.rows[i] = get16(p->payload + TVLM_QUERY_SIZE + 2u * i);
        if (tvlm_scorer_row(&d->vocab, &d->table, q.rows[i], &row) == NULL) return TVLM_STATUS_BAD_ARG;
    }
    d->query = q;
    return TVLM_STATUS_OK;
}

/* VOCAB_WRITE: a table blob into the port's flash slot, in chunks like LOAD_TABLE. The first chunk erases the
 * slot (the built-in vocabulary, if any, answers meanwhile). Body bytes are programmed as they come; the
 * header is kept in RAM and programmed last, after the whole body arrived, so a write cut short by a reset
 * or a pulled cable leaves a slot without a valid header, which the device ignores. */
static uint8_t on_vocab_write(tvlm_device_t *d, const tvlm_parser_t *p, size_t *len)
{
    const tvlm_port_t *port = d->port;
    if (port->flash_erase == NULL || port->flash_program == NULL || port->vocab_slot == NULL)
        return TVLM_STATUS_NOT_SUPPORTED;
    if (p->length < TVLM_CHUNK_HEADER_SIZE) return TVLM_STATUS_BAD_LENGTH;
    if (d->model_status != TVLM_STATUS_OK) return TVLM_STATUS_BAD_MODEL;
    const uint32_t off = get32(p->payload), total = get32(p->payload + 4);
    const uint32_t n = p->length - TVLM_CHUNK_HEADER_SIZE;
    if (total < TVLM_TABLE_HEADER_SIZE) return TVLM_STATUS_BAD_LENGTH;
    if (total > port->vocab_slot_size) return TVLM_STATUS_TOO_LARGE;
    uint8_t st = chunk_order(d, p->opcode, off, total, n);
    if (st != TVLM_STATUS_OK) return st;
    if (off == 0) {
        if (port->flash_erase(port->ctx) != 0) {
            d->xfer_op = 0;
            return TVLM_STATUS_FLASH_ERROR;
        }
        select_vocab(d);
        default_query(d);
    }
    const uint8_t *src = p->payload + TVLM_CHUNK_HEADER_SIZE;
    uint32_t pos = off, left = n;
    if (pos < TVLM_TABLE_HEADER_SIZE) {
        const uint32_t k = left < TVLM_TABLE_HEADER_SIZE - pos ? left : TVLM_TABLE_HEADER_SIZE - pos;
        memcpy(d->vocab_hdr + pos, src, k);
        pos += k;
        src += k;
        left -= k;
    }
    if (left && port->flash_program(port->ctx, pos, src, left) != 0) {
        d->xfer_op = 0;
        return TVLM_STATUS_FLASH_ERROR;
    }
    if ((st = chunk_done(d, off, n, len)) != TVLM_STATUS_OK) return st;
    tvlm_table_header_t h;
    memcpy(&h, d->vocab_hdr, sizeof h);
    /* the header must describe exactly what was written before it may make the slot valid */
    if (tvlm_table_blob_size(h.rows, h.dims) != total) return TVLM_STATUS_BAD_LENGTH;
    if (port->flash_program(port->ctx, 0, d->vocab_hdr, TVLM_TABLE_HEADER_SIZE) != 0)
        return TVLM_STATUS_FLASH_ERROR;
    select_vocab(d);
    if (d->vocab_source != TVLM_VOCAB_FLASH) {
        st = (uint8_t)tvlm_table_check(port->vocab_slot, total, d->model.hdr.embed_dim, d->model.hdr.model_id,
                                       NULL);
        (void)port->flash_erase(port->ctx); /* never leave a slot that the next boot would look at twice */
        select_vocab(d);
        return st != TVLM_STATUS_OK ? st : (uint8_t)TVLM_STATUS_BAD_TABLE;
    }
    default_query(d);
    *len = fill_info(d, reply_payload(d));
    return TVLM_STATUS_OK;
}

static uint8_t on_vocab_erase(tvlm_device_t *d, size_t *len)
{
    const tvlm_port_t *port = d->port;
    if (port->flash_erase == NULL || port->vocab_slot == NULL) return TVLM_STATUS_NOT_SUPPORTED;
    d->xfer_op = 0;
    if (port->flash_erase(port->ctx) != 0) return TVLM_STATUS_FLASH_ERROR;
    select_vocab(d);
    default_query(d);
    *len = fill_info(d, reply_payload(d));
    return TVLM_STATUS_OK;
}

/* VOCAB_LOOKUP: phrase hashes -> row ids (vocabulary first, then the RAM table, else ROW_NONE). */
static uint8_t on_vocab_lookup(tvlm_device_t *d, const tvlm_parser_t *p, size_t *len)
{
    const uint32_t n = p->length / 4u;
    if (p->length == 0 || (p->length & 3u) != 0 || n > TVLM_MAX_LOOKUP) return TVLM_STATUS_BAD_LENGTH;
    uint8_t *out = reply_payload(d);
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t hash = get32(p->payload + 4u * i);
        int32_t r = tvlm_table_find(&d->vocab, hash);
        uint16_t id = (uint16_t)TVLM_ROW_NONE;
        if (r >= 0) {
            id = (uint16_t)r;
        } else if ((r = tvlm_table_find(&d->table, hash)) >= 0) {
            id = (uint16_t)(TVLM_ROW_RAM | (uint32_t)r);
        }
        put16(out + 2u * i, id);
    }
    *len = 2u * n;
    return TVLM_STATUS_OK;
}

/* VOCAB_LIST: the phrase hashes of the flash vocabulary's rows [start, start + count), as many as fit. */
static uint8_t on_vocab_list(tvlm_device_t *d, const tvlm_parser_t *p, size_t *len)
{
    if (p->length != TVLM_VOCAB_LIST_SIZE) return TVLM_STATUS_BAD_LENGTH;
    const uint32_t start = get16(p->payload), want = get16(p->payload + 2);
    const uint32_t rows = d->vocab.rows;
    if (start > rows) return TVLM_STATUS_BAD_ARG;
    uint32_t count = rows - start;
    if (count > want) count = want;
    const uint32_t fit = (TVLM_MAX_PAYLOAD - TVLM_VOCAB_LIST_REPLY_SIZE) / 4u;
    if (count > fit) count = fit;
    uint8_t *out = reply_payload(d);
    tvlm_vocab_list_reply_t r = {(uint16_t)rows, (uint16_t)start, (uint16_t)count, d->vocab.dims};
    memcpy(out, &r, sizeof r);
    for (uint32_t i = 0; i < count; i++) put32(out + sizeof r + 4u * i, d->vocab.phrase_hash[start + i]);
    *len = sizeof r + 4u * count;
    return TVLM_STATUS_OK;
}

static void execute(tvlm_device_t *d)
{
    const tvlm_parser_t *p = &d->rx;
    size_t len = 0;
    uint8_t st;
    int cache = 1;
    d->stats.rx_frames++;
    if (p->version != TVLM_PROTOCOL_VERSION) {
        send_nak(d, p->opcode, p->seq, TVLM_STATUS_BAD_VERSION);
        return;
    }
    if (p->flags & TVLM_FLAG_RESPONSE) return; /* our own echo or a confused peer: never answer a reply */
    if (d->last_valid && p->seq == d->last_seq && p->opcode == d->last_opcode) {
        d->stats.dup_requests++;
        d->port->write(d->port->ctx, d->tx, d->tx_len);
        return;
    }
    switch (p->opcode) {
    case TVLM_OP_HELLO:
        len = fill_info(d, reply_payload(d));
        st = TVLM_STATUS_OK;
        cache = 0;
        break;
    case TVLM_OP_PING:
        memcpy(reply_payload(d), p->payload, p->length);
        len = p->length;
        st = TVLM_STATUS_OK;
        cache = 0;
        break;
    case TVLM_OP_CLOCK: {
        st = TVLM_STATUS_NOT_SUPPORTED;
        cache = 0;
        if (d->port->clock_us == NULL) break;
        const uint64_t now = d->port->clock_us(d->port->ctx);
        tvlm_clock_t c = {(uint32_t)now, (uint32_t)(now >> 32)};
        memcpy(reply_payload(d), &c, sizeof c);
        len = sizeof c;
        st = TVLM_STATUS_OK;
        break;
    }
    case TVLM_OP_LOAD_TABLE:
    case TVLM_OP_INFER:
        st = on_chunk(d, p, &len);
        break;
    case TVLM_OP_CAPTURE:
        st = on_capture(d, p, &len);
        break;
    case TVLM_OP_SET_QUERY:
        st = on_query(d, p);
        break;
    case TVLM_OP_VOCAB_LOOKUP:
        st = on_vocab_lookup(d, p, &len);
        cache = 0;
        break;
    case TVLM_OP_VOCAB_LIST:
        st = on_vocab_list(d, p, &len);
        cache = 0;
        break;
    case TVLM_OP_VOCAB_WRITE:
        st = on_vocab_write(d, p, &len);
        break;
    case TVLM_OP_VOCAB_ERASE:
        st = on_vocab_erase(d, &len);
        break;
    case TVLM_OP_READ_EMBED: {
        const uint32_t total = d->model.embed ? (uint32_t)d->model.hdr.grid_w * d->model.hdr.grid_h *
                                                    d->model.hdr.embed_dim : 0u;
        st = TVLM_STATUS_BAD_LENGTH;
        if (p->length != TVLM_READ_EMBED_SIZE) break;
        const uint32_t off = get32(p->payload), n = get16(p->payload + 4);
        st = TVLM_STATUS_BAD_STATE;
        if (total == 0) break;
        st = TVLM_STATUS_BAD_ARG;
        if (off > total || n > total - off || n > TVLM_MAX_PAYLOAD) break;
        memcpy(reply_payload(d), d->model.embed + off, n);
        len = n;
        st = TVLM_STATUS_OK;
        cache = 0;
        break;
    }
    case TVLM_OP_STATS:
        d->stats.rx_bytes = d->rx.bytes;
        d->stats.crc_errors = d->rx.crc_errors;
        d->stats.resyncs = d->rx.resyncs;
        memcpy(reply_payload(d), &d->stats, sizeof d->stats);
        len = sizeof d->stats;
        st = TVLM_STATUS_OK;
        cache = 0;
        break;
    case TVLM_OP_RESET:
        /* a soft reboot: forget the RAM table, query, transfers and counters (the flash vocabulary stays, as
         * it would through a real reboot); announce a new boot id */
        tvlm_table_clear(&d->table);
        select_vocab(d);
        default_query(d);
        d->xfer_op = 0;
        memset(&d->stats, 0, sizeof d->stats);
        d->boot_id = mix32(d->boot_id + 0x9e3779b9u);
        len = fill_info(d, reply_payload(d));
        st = TVLM_STATUS_OK;
        break;
    default:
        st = TVLM_STATUS_BAD_OPCODE;
        break;
    }
    send(d, p->opcode, p->seq, st, (st == TVLM_STATUS_OK || st == TVLM_STATUS_MORE) ? len : 0, cache);
}

void tvlm_device_rx(tvlm_device_t *d, const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        tvlm_rx_event_t ev = tvlm_parser_feed(&d->rx, buf[i]);
        if (ev == TVLM_RX_FRAME) {
            execute(d);
        } else if (ev == TVLM_RX_BAD_CRC) {
            /* the header was sound, so the seq is real: NAK it for a quick retry; never cached */
            send_nak(d, d->rx.opcode, d->rx.seq, TVLM_STATUS_BAD_CRC);
        } else if (ev == TVLM_RX_TOO_LARGE) {
            send_nak(d, d->rx.opcode, d->rx.seq, TVLM_STATUS_TOO_LARGE);
        }
    }
}

void tvlm_device_rx_idle(tvlm_device_t *d)
{
    if (tvlm_parser_busy(&d->rx)) {
        tvlm_parser_reset(&d->rx);
        d->rx.resyncs++;
    }
}
