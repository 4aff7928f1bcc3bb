/* CRCs of the wire protocol (CRC-16/CCITT-FALSE) and of the blobs (CRC-32/IEEE, as zlib.crc32). */
#ifndef TVLM_CRC_H
#define TVLM_CRC_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC-16/CCITT-FALSE; start with TVLM_CRC16_INIT. */
uint16_t tvlm_crc16(uint16_t crc, const uint8_t *data, size_t len);
/* Continue a CRC-32/IEEE; start with 0 (same convention as zlib.crc32). */
uint32_t tvlm_crc32(uint32_t crc, const uint8_t *data, size_t len);

#endif
