/* The firmware's command side: feeds received bytes to the frame parser, runs commands, writes replies
 * through the port. Portable: everything target specific comes in through tvlm_port_t. */
#ifndef TVLM_DEVICE_H
#define TVLM_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "tvlm_frame.h"
#include "tvlm_kernels.h"
#include "tvlm_model.h"
#include "tvlm_protocol.h"
#include "tvlm_scorer.h"
#include "tvlm_table.h"

#define TVLM_FW_VERSION ((0u << 16) | (2u << 8) | 0u)

/* What a board provides. Every optional part may be NULL / 0: the commands that need it answer
 * NOT_SUPPORTED. */
typedef struct {
    void (*write)(void *ctx, const uint8_t *buf, size_t len);
    uint32_t (*ticks)(void *ctx);   /* work counter; may be NULL */
    void *ctx;
    uint8_t port_id;                /* TVLM_PORT_* */
    uint8_t work_unit;              /* TVLM_WORK_* */
    uint32_t flash_bytes, ram_bytes;
    uint16_t ticks_per_kinstr;      /* work-counter ticks per 1000 instructions, measured at boot; 0 unknown */
    /* device clock, microseconds since boot: capture stamps and CLOCK */
    uint64_t (*clock_us)(void *ctx);
    /* camera: fill w x h x c uint8 pixels (HWC, RGB) with a new frame; *t_us = its capture time on clock_us */
    tvlm_status_t (*capture)(void *ctx, uint8_t *pixels, uint16_t w, uint16_t h, uint8_t c, uint64_t *t_us);
    uint8_t camera;                 /* TVLM_CAMERA_* */
    /* writable flash slot of the vocabulary (survives a reboot): readable in place at vocab_slot; erase sets
     * the slot to 0xFF, program writes bytes into an erased part; both return 0 on success */
    const uint8_t *vocab_slot;
    uint32_t vocab_slot_size;
    int (*flash_erase)(void *ctx);
    int (*flash_program)(void *ctx, uint32_t offset, const uint8_t *data, uint32_t len);
} tvlm_port_t;

typedef struct {
    uint16_t table_rows, table_dims; /* RAM table capacity */
    tvlm_path_t path;                /* kernel path */
    uint32_t boot_id;
    const uint8_t *vocab;            /* vocabulary built into the image (4-byte aligned table blob) or NULL */
    uint32_t vocab_size;
} tvlm_device_config_t;

typedef struct {
    const tvlm_port_t *port;
    tvlm_device_config_t cfg;
    tvlm_parser_t rx;
    tvlm_model_t model;
    tvlm_status_t model_status;
    tvlm_table_t table;              /* RAM table (LOAD_TABLE) */
    tvlm_table_t vocab;              /* flash vocabulary: the written slot if valid, else the built-in one */
    uint8_t vocab_source;            /* TVLM_VOCAB_* */
    uint8_t vocab_hdr[TVLM_TABLE_HEADER_SIZE]; /* a VOCAB_WRITE's header, programmed last */
    tvlm_scorer_query_t query;
    uint8_t *staging;
    uint32_t staging_cap;
    int16_t *scores;
    /* chunked transfer in progress */
    uint8_t xfer_op;
    uint32_t xfer_total, xfer_received;
    /* last reply, resent for a repeated seq */
    uint8_t last_valid, last_opcode;
    uint16_t last_seq;
    size_t tx_len;
    uint8_t tx[TVLM_MAX_FRAME];
    uint32_t boot_id;
    tvlm_stats_t stats;
} tvlm_device_t;

/* Bytes of arena the device needs for this model and RAM table capacity (the flash vocabulary needs none). */
uint32_t tvlm_device_arena_size(const uint8_t *model, uint32_t model_size, uint16_t table_rows,
                                uint16_t table_dims);
/* Set up the device; a bad model is reported by HELLO (model_ok 0) and INFER (BAD_MODEL), not here. The
 * vocabulary is the port's flash slot when it holds a valid table for this model, else cfg->vocab. */
tvlm_status_t tvlm_device_init(tvlm_device_t *d, const tvlm_port_t *port, const tvlm_device_config_t *cfg,
                               const uint8_t *model, uint32_t model_size, uint8_t *arena, uint32_t arena_size);
/* Feed received bytes; complete frames are executed and answered at once. */
void tvlm_device_rx(tvlm_device_t *d, const uint8_t *buf, size_t len);
/* The port calls this after a receive gap (no byte for TVLM_RX_IDLE_MS): a frame cut short by a crash or a
 * pulled cable is dropped, so the next frame is not swallowed as its payload. */
void tvlm_device_rx_idle(tvlm_device_t *d);
#define TVLM_RX_IDLE_MS 100u

#endif
