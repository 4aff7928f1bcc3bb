/* libFuzzer target: arbitrary bytes into the frame parser and the command dispatcher of a device with
 * the default model. Replies go to a sink that checks each is a well-formed frame. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tvlm_crc.h"
#include "tvlm_device.h"

extern const uint8_t tvlm_default_model[];
extern const uint8_t tvlm_default_model_end[];

static _Alignas(8) uint8_t arena[400u * 1024u];
static tvlm_device_t dev;
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

static const tvlm_port_t port = {sink, NULL, NULL, TVLM_PORT_HOST, TVLM_WORK_NONE, 0, 0, 0};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready || (size && data[0] == 0xff)) {
        /* occasionally start from a fresh device; otherwise state carries over like a long session */
        tvlm_device_config_t cfg = {64, 128, (size > 1 && (data[1] & 1)) ? TVLM_PATH_PLAIN : TVLM_PATH_DSP, 7};
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
        size_t n = tvlm_frame_finish(frame, sizeof frame, op, seq++, (uint8_t)(flags & ~TVLM_FLAG_RESPONSE), 0, len);
        if (flags & TVLM_FLAG_RESPONSE) {
            n = n / 2; /* a truncated frame: the next one must still be found */
        }
        tvlm_device_rx(&dev, frame, n);
    }
    return 0;
}
