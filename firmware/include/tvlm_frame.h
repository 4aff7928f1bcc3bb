/* Frame receive state machine and frame encoder of the wire protocol (see tvlm_protocol.h). */
#ifndef TVLM_FRAME_H
#define TVLM_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "tvlm_protocol.h"

typedef enum {
    TVLM_RX_NONE = 0,      /* byte consumed, nothing complete yet */
    TVLM_RX_FRAME = 1,     /* a frame with a valid header and payload CRC is in the parser */
    TVLM_RX_BAD_CRC = 2,   /* a valid header arrived but the payload CRC failed: NAK it */
    TVLM_RX_TOO_LARGE = 3, /* a valid header announced more than TVLM_MAX_PAYLOAD bytes: NAK it */
} tvlm_rx_event_t;

typedef struct {
    uint8_t state;
    uint16_t fill;               /* bytes of the current section received */
    uint8_t hdr[TVLM_HEADER_SIZE];
    uint8_t crc[TVLM_TRAILER_SIZE];
    /* decoded header of the frame being received / just completed */
    uint8_t version, opcode, flags, status;
    uint16_t seq, length;
    uint8_t payload[TVLM_MAX_PAYLOAD];
    /* counters for STATS */
    uint32_t frames, crc_errors, resyncs, bytes;
} tvlm_parser_t;

void tvlm_parser_reset(tvlm_parser_t *p);
/* True while a frame is partly received. */
int tvlm_parser_busy(const tvlm_parser_t *p);
/* Feed one byte; returns an event. After TVLM_RX_FRAME the frame stays valid until the next feed. */
tvlm_rx_event_t tvlm_parser_feed(tvlm_parser_t *p, uint8_t byte);

/* Write header + CRCs around a payload already placed at buf + TVLM_HEADER_SIZE.
 * Returns the frame size, or 0 when cap is too small or len > TVLM_MAX_PAYLOAD. */
size_t tvlm_frame_finish(uint8_t *buf, size_t cap, uint8_t opcode, uint16_t seq, uint8_t flags,
                         uint8_t status, size_t len);

#endif
