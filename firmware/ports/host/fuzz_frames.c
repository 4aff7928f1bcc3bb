/* libFuzzer target: arbitrary bytes into the frame parser and the command dispatcher of a device with
 * the default model, a flash vocabulary, a writable flash slot, a clock and the generated-scene camera.
 * Replies go to a sink that checks each is a well-formed frame. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scene_camera.h"
#include "tvlm_crc.h"
#include "tvlm_device.h"

extern const uint8_t tvlm_default_model[];
extern const uint8_t tvlm_default_model_end[];

#define VOCAB_ROWS 8u
#define VOCAB_DIMS 32u

static _Alignas(8) uint8_t arena[400u * 1024u];
static _Alignas(8) uint8_t vocab[TVLM_TABLE_HEADER_SIZE + VOCAB_ROWS * (8u + VOCAB_DIMS)];
static _Alignas(8) uint8_t slot[16u * 1024u];
static tvlm_device_t dev;
static uint64_t now_us;
static int ready;

static void sink(void *ctx, const uint8_t *buf, size_t len)
{
    (void)ctx;
    if (len < TVLM_HEADER_SIZE + TVLM_TRAILER_SIZE || buf[0] != TVLM_SYNC0 || buf[1] != TVLM_SYNC1) abort();
    size_t plen = (size_t)(buf[8] | (buf[9] << 8));
    if (plen + TVLM_HEADER_SIZE + TVLM_TRAILER_SIZE != len || plen > TVLM_MAX_PAYLOAD) abort();
    uint16_t crc = tvlm_crc16(TVLM_CRC16_INIT, buf + TVLM_HEADER_SIZE, plen);
    if ((crc & 0xffu) != buf[len - 2] || (crc >> 8) != buf[len - 1]) abort();
}

static uint64_t clock_us(void *ctx)
{
    (void)ctx;
    return now_us += 1000u;
}

static int flash_erase(void *ctx)
{
    (void)ctx;
    memset(slot, 0xff, sizeof slot);
    return 0;
}

static int flash_program(void *ctx, uint32_t off, const uint8_t *data, uint32_t len)
{
    (void)ctx;
    if (off > sizeof slot || len > sizeof slot - off) abort(); /* the device must never ask for that */
    for (uint32_t i = 0; i < len; i++) {
        if (slot[off + i] != 0xffu) abort(); /* flash programs erased bytes only: no double writes */
        slot[off + i] = data[i];
    }
    return 0;
}

static const tvlm_port_t port = {sink, NULL, NULL, TVLM_PORT_HOST, TVLM_WORK_NONE, 0, 0, 0,
                                 clock_us, tvlm_scene_capture, TVLM_CAMERA_GENERATED,
                                 slot, sizeof slot, flash_erase, flash_program};

/* a valid built-in vocabulary for the default model, so SET_QUERY/LOOKUP/LIST/CAPTURE reach their flash paths */
static void make_vocab(void)
{
    tvlm_table_header_t h;
    memset(&h, 0, sizeof h);
    h.magic = TVLM_TABLE_MAGIC;
    h.version = TVLM_TABLE_VERSION;
    h.header_size = TVLM_TABLE_HEADER_SIZE;
    h.rows = VOCAB_ROWS;
    h.dims = VOCAB_DIMS;
    memcpy(&h.model_id, tvlm_default_model + 8, 4);
    uint8_t *body = vocab + TVLM_TABLE_HEADER_SIZE;
    for (uint32_t i = 0; i < VOCAB_ROWS; i++) {
        const int32_t scale = 1 << 17;
        const uint32_t hash = 0x1000u + i;
        memcpy(body + 4u * i, &scale, 4);
        memcpy(body + 4u * VOCAB_ROWS + 4u * i, &hash, 4);
        for (uint32_t k = 0; k < VOCAB_DIMS; k++) body[8u * VOCAB_ROWS + i * VOCAB_DIMS + k] = (uint8_t)(i * 7u + k);
    }
    h.body_crc32 = tvlm_crc32(0, body, sizeof vocab - TVLM_TABLE_HEADER_SIZE);
    memcpy(vocab, &h, sizeof h);
}

/* Give a LOAD_TABLE / VOCAB_WRITE chunk that starts a table a consistent header and body CRC, so the fuzzer
 * gets past the CRC into table validation and use (flag 0x40 of a record asks for it). */
static void fix_table(uint8_t *payload, size_t len)
{
    if (len < TVLM_CHUNK_HEADER_SIZE + TVLM_TABLE_HEADER_SIZE) return;
    uint8_t *blob = payload + TVLM_CHUNK_HEADER_SIZE;
    const size_t n = len - TVLM_CHUNK_HEADER_SIZE;
    tvlm_table_header_t h;
    memcpy(&h, blob, sizeof h);
    h.magic = TVLM_TABLE_MAGIC;
    h.version = TVLM_TABLE_VERSION;
    h.header_size = TVLM_TABLE_HEADER_SIZE;
    h.dims = (uint16_t)((h.dims & 0x7cu) + 4u);
    h.rows = (uint16_t)((n - TVLM_TABLE_HEADER_SIZE) / (8u + h.dims));
    if (h.rows == 0) return;
    const uint32_t total = tvlm_table_blob_size(h.rows, h.dims);
    memcpy(&h.model_id, tvlm_default_model + 8, 4);
    h.body_crc32 = tvlm_crc32(0, blob + TVLM_TABLE_HEADER_SIZE, total - TVLM_TABLE_HEADER_SIZE);
    memcpy(blob, &h, sizeof h);
    const uint32_t off = 0;
    memcpy(payload, &off, 4);
    memcpy(payload + 4, &total, 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready || (size && data[0] == 0xff)) {
        /* occasionally start from a fresh device; otherwise state carries over like a long session. The
         * flash slot is kept, as flash is through a reboot. */
        if (!ready) flash_erase(NULL);
        make_vocab();
        tvlm_scene_camera_init(clock_us);
        tvlm_device_config_t cfg = {64, 128, (size > 1 && (data[1] & 1)) ? TVLM_PATH_PLAIN : TVLM_PATH_DSP, 7,
                                    vocab, sizeof vocab};
        if (tvlm_device_init(&dev, &port, &cfg, tvlm_default_model,
                             (uint32_t)(tvlm_default_model_end - tvlm_default_model), arena,
                             sizeof arena) != TVLM_STATUS_OK)
            abort();
        ready = 1;
    }
    if (size == 0 || !(data[0] & 0x80u)) {
        tvlm_device_rx(&dev, data, size); /* raw bytes: garbage, sync hunting, header CRCs */
        return 0;
    }
    /* structured: records [opcode][flags][len lo][len hi][payload] become frames with valid CRCs, so the
     * fuzzer reaches the command handlers (chunk offsets, table blobs, queries) instead of the CRC check */
    static uint8_t frame[TVLM_MAX_FRAME];
    size_t pos = 1;
    uint16_t seq = 0;
    while (pos + 4 <= size) {
        uint8_t op = data[pos], flags = data[pos + 1];
        size_t len = (size_t)(data[pos + 2] | (data[pos + 3] << 8)) % (TVLM_MAX_PAYLOAD + 1u);
        pos += 4;
        if (len > size - pos) len = size - pos;
        memcpy(frame + TVLM_HEADER_SIZE, data + pos, len);
        pos += len;
        if ((flags & 0x40u) && (op == TVLM_OP_LOAD_TABLE || op == TVLM_OP_VOCAB_WRITE))
            fix_table(frame + TVLM_HEADER_SIZE, len);
        size_t n = tvlm_frame_finish(frame, sizeof frame, op, seq++,
                                     (uint8_t)(flags & ~(TVLM_FLAG_RESPONSE | 0x40u)), 0, len);
        if (flags & TVLM_FLAG_RESPONSE) {
            n = n / 2; /* a truncated frame: the next one must still be found */
        }
        tvlm_device_rx(&dev, frame, n);
    }
    return 0;
}
