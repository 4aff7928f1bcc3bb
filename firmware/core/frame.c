/* Receive state machine: SYNC0 -> SYNC1 -> HEADER -> PAYLOAD -> CRC.
 * A header whose CRC fails is rescanned from its second byte, so a sync pattern hidden in garbage or in
 * a damaged header never costs a real frame that starts inside it. The announced length is checked
 * against TVLM_MAX_PAYLOAD before a single payload byte is stored. */
#include "tvlm_frame.h"

#include <string.h>

#include "tvlm_crc.h"

enum { ST_SYNC0 = 0, ST_SYNC1, ST_HEADER, ST_PAYLOAD, ST_CRC };

static uint16_t rd16(const uint8_t *b) { return (uint16_t)(b[0] | (b[1] << 8)); }

void tvlm_parser_reset(tvlm_parser_t *p)
{
    p->state = ST_SYNC0;
    p->fill = 0;
}

int tvlm_parser_busy(const tvlm_parser_t *p) { return p->state != ST_SYNC0; }

static tvlm_rx_event_t header_done(tvlm_parser_t *p);

static tvlm_rx_event_t feed(tvlm_parser_t *p, uint8_t byte)
{
    switch (p->state) {
    case ST_SYNC0:
        if (byte == TVLM_SYNC0) {
            p->hdr[0] = byte;
            p->state = ST_SYNC1;
        }
        return TVLM_RX_NONE;
    case ST_SYNC1:
        if (byte == TVLM_SYNC1) {
            p->hdr[1] = byte;
            p->fill = 2;
            p->state = ST_HEADER;
        } else if (byte != TVLM_SYNC0) {
            p->state = ST_SYNC0;
        }
        return TVLM_RX_NONE;
    case ST_HEADER:
        p->hdr[p->fill++] = byte;
        if (p->fill < TVLM_HEADER_SIZE) return TVLM_RX_NONE;
        return header_done(p);
    case ST_PAYLOAD:
        p->payload[p->fill++] = byte;
        if (p->fill == p->length) {
            p->fill = 0;
            p->state = ST_CRC;
        }
        return TVLM_RX_NONE;
    case ST_CRC:
    default:
        p->crc[p->fill++] = byte;
        if (p->fill < TVLM_TRAILER_SIZE) return TVLM_RX_NONE;
        p->state = ST_SYNC0;
        p->fill = 0;
        if (tvlm_crc16(TVLM_CRC16_INIT, p->payload, p->length) != rd16(p->crc)) {
            p->crc_errors++;
            return TVLM_RX_BAD_CRC;
        }
        p->frames++;
        return TVLM_RX_FRAME;
    }
}

static tvlm_rx_event_t header_done(tvlm_parser_t *p)
{
    const uint8_t *h = p->hdr;
    if (tvlm_crc16(TVLM_CRC16_INIT, h + 2, 8) != rd16(h + 10)) {
        /* Not a header: rescan bytes 1..11. They are 11 bytes, fewer than a header, so this inner
         * feed can never complete another header and the recursion stops at depth one. */
        uint8_t rest[TVLM_HEADER_SIZE - 1];
        memcpy(rest, h + 1, sizeof rest);
        p->state = ST_SYNC0;
        p->fill = 0;
        p->resyncs++;
        for (size_t i = 0; i < sizeof rest; i++) (void)feed(p, rest[i]);
        return TVLM_RX_NONE;
    }
    p->version = h[2];
    p->opcode = h[3];
    p->seq = rd16(h + 4);
    p->flags = h[6];
    p->status = h[7];
    p->length = rd16(h + 8);
    p->fill = 0;
    if (p->length > TVLM_MAX_PAYLOAD) {
        p->state = ST_SYNC0;
        return TVLM_RX_TOO_LARGE;
    }
    p->state = p->length ? ST_PAYLOAD : ST_CRC;
    return TVLM_RX_NONE;
}

tvlm_rx_event_t tvlm_parser_feed(tvlm_parser_t *p, uint8_t byte)
{
    p->bytes++;
    return feed(p, byte);
}

size_t tvlm_frame_finish(uint8_t *buf, size_t cap, uint8_t opcode, uint16_t seq, uint8_t flags,
                         uint8_t status, size_t len)
{
    if (len > TVLM_MAX_PAYLOAD || cap < TVLM_HEADER_SIZE + len + TVLM_TRAILER_SIZE) return 0;
    buf[0] = TVLM_SYNC0;
    buf[1] = TVLM_SYNC1;
    buf[2] = TVLM_PROTOCOL_VERSION;
    buf[3] = opcode;
    buf[4] = (uint8_t)seq;
    buf[5] = (uint8_t)(seq >> 8);
    buf[6] = flags;
    buf[7] = status;
    buf[8] = (uint8_t)len;
    buf[9] = (uint8_t)(len >> 8);
    uint16_t hcrc = tvlm_crc16(TVLM_CRC16_INIT, buf + 2, 8);
    buf[10] = (uint8_t)hcrc;
    buf[11] = (uint8_t)(hcrc >> 8);
    uint16_t pcrc = tvlm_crc16(TVLM_CRC16_INIT, buf + TVLM_HEADER_SIZE, len);
    buf[TVLM_HEADER_SIZE + len] = (uint8_t)pcrc;
    buf[TVLM_HEADER_SIZE + len + 1] = (uint8_t)(pcrc >> 8);
    return TVLM_HEADER_SIZE + len + TVLM_TRAILER_SIZE;
}
