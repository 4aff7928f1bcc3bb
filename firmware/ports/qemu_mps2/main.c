/* Cortex-M port under QEMU: polled UART receive (QEMU 7.2's interrupt-driven RX stalls), SysTick work
 * counter, model from the external model slot when one was loaded there, else the built-in one. */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "tvlm_device.h"

extern const uint8_t tvlm_default_model[];
extern const uint8_t tvlm_default_model_end[];
extern const uint8_t __model_slot_start[], __model_slot_end[];
extern uint32_t __boot_seed; /* NOLOAD word; emulate.py writes a fresh seed with -device loader */

#ifndef TVLM_ARENA_BYTES
#define TVLM_ARENA_BYTES (176u * 1024u)
#endif

static _Alignas(8) uint8_t arena[TVLM_ARENA_BYTES];
static tvlm_device_t dev;
static volatile uint32_t systick_wraps;

void SysTick_Handler(void);
void SysTick_Handler(void) { systick_wraps++; }

static uint32_t systick_ticks(void *ctx)
{
    (void)ctx;
    uint32_t w, v;
    do {
        w = systick_wraps;
        v = SYST_CVR;
    } while (w != systick_wraps);
    return (w << 24) + (0xFFFFFFu - v);
}

static void uart_write(void *ctx, const uint8_t *buf, size_t len)
{
    (void)ctx;
    for (size_t i = 0; i < len; i++) {
        while (UART_STATE & 1u) {
        }
        UART_DATA = buf[i];
    }
}

/* Ticks per 1000 instructions from a loop of exactly two instructions per turn. Under QEMU -icount this
 * turns SysTick ticks into instruction counts whatever the board's clock. */
static uint16_t calibrate(void)
{
    uint32_t n = 50000u;
    const uint32_t t0 = systick_ticks(NULL);
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
    const uint32_t t1 = systick_ticks(NULL);
    return (uint16_t)((t1 - t0) * 10u / 1000u); /* 100000 instructions */
}

int main(void)
{
    UART_BAUDDIV = 16u;
    UART_CTRL = 3u;
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0u;
    SYST_CSR = 7u; /* processor clock, interrupt, enable */

    const uint8_t *model = tvlm_default_model;
    uint32_t model_size = (uint32_t)(tvlm_default_model_end - tvlm_default_model);
    uint32_t slot_magic, slot_size;
    memcpy(&slot_magic, __model_slot_start, 4);
    memcpy(&slot_size, __model_slot_start + 16, 4); /* tvlm_model_header_t.total_size */
    if (slot_magic == TVLM_MODEL_MAGIC && slot_size <= (uint32_t)(__model_slot_end - __model_slot_start)) {
        model = __model_slot_start;
        model_size = slot_size;
    }

    static tvlm_port_t port;
    port.write = uart_write;
    port.ticks = systick_ticks;
    port.ctx = NULL;
    port.port_id = BOARD_PORT_ID;
    port.work_unit = TVLM_WORK_SYSTICK_25MHZ;
    port.flash_bytes = BOARD_FLASH_BYTES;
    port.ram_bytes = BOARD_RAM_BYTES;
    port.ticks_per_kinstr = calibrate();
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1) && !defined(TVLM_KERNEL_PLAIN) && \
    !defined(TVLM_KERNEL_DSP)
    tvlm_device_config_t cfg = {256, 128, TVLM_PATH_MVE, __boot_seed};
#elif defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TVLM_KERNEL_PLAIN)
    tvlm_device_config_t cfg = {256, 128, TVLM_PATH_DSP, __boot_seed};
#else
    tvlm_device_config_t cfg = {256, 128, TVLM_PATH_PLAIN, __boot_seed};
#endif
    if (tvlm_device_init(&dev, &port, &cfg, model, model_size, arena, sizeof arena) != TVLM_STATUS_OK)
        return 1;
    /* SysTick ticks of the receive idle timeout; under -icount virtual time runs with the polling loop */
    const uint32_t idle_ticks = TVLM_RX_IDLE_MS * (BOARD_SYSTICK_HZ / 1000u);
    uint32_t last_rx = systick_ticks(NULL);
    for (;;) {
        if (UART_STATE & 2u) {
            uint8_t b = (uint8_t)UART_DATA;
            tvlm_device_rx(&dev, &b, 1);
            last_rx = systick_ticks(NULL);
        } else if (systick_ticks(NULL) - last_rx > idle_ticks) {
            tvlm_device_rx_idle(&dev);
            last_rx = systick_ticks(NULL);
        }
    }
}
