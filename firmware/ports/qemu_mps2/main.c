/* Cortex-M port under QEMU: polled UART receive (QEMU 7.2's interrupt-driven RX stalls), SysTick work
 * counter and clock, model from the external model slot when one was loaded there, else the built-in one,
 * the generated-scene camera, and the vocabulary flash slot.
 *
 * QEMU's MPS2/MPS3 boards have no persistent flash: the slot is memory that the emulator resets at every
 * start. With `--flash PATH` on the semihosting command line (emulate.py passes it) the port keeps the
 * slot's contents in the host file PATH: it reads the file into the slot at boot and writes every erase and
 * program through to it, so a written vocabulary survives an emulator restart as it would a power cycle.
 * Without it the port has no writable flash. */
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "scene_camera.h"
#include "semihost.h"
#include "tvlm_device.h"

extern const uint8_t tvlm_default_model[];
extern const uint8_t tvlm_default_model_end[];
extern const uint8_t tvlm_builtin_vocab[];
extern const uint8_t tvlm_builtin_vocab_end[];
extern const uint8_t __model_slot_start[], __model_slot_end[];
extern const uint8_t __vocab_slot_start[], __vocab_slot_end[];
extern uint32_t __boot_seed; /* NOLOAD word; emulate.py writes a fresh seed with -device loader */

#define SH_MODE_RB 1u
#define SH_MODE_RPLUSB 3u
#define SH_MODE_WB 5u

#ifndef TVLM_ARENA_BYTES
#define TVLM_ARENA_BYTES (176u * 1024u)
#endif

static _Alignas(8) uint8_t arena[TVLM_ARENA_BYTES];
static tvlm_device_t dev;
static volatile uint32_t systick_wraps;
static char flash_path[256];

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

/* SysTick ticks since boot, 64 bits (the 32-bit work counter wraps after minutes) */
static uint64_t systick_ticks64(void)
{
    uint32_t w, v;
    do {
        w = systick_wraps;
        v = SYST_CVR;
    } while (w != systick_wraps);
    return ((uint64_t)w << 24) + (0xFFFFFFu - v);
}

static uint64_t clock_us(void *ctx)
{
    (void)ctx;
    return systick_ticks64() / (BOARD_SYSTICK_HZ / 1000000u);
}

static uint8_t *slot(void) { return (uint8_t *)(uintptr_t)__vocab_slot_start; }
static uint32_t vocab_slot_size(void) { return (uint32_t)(__vocab_slot_end - __vocab_slot_start); }

static int flash_erase(void *ctx)
{
    (void)ctx;
    memset(slot(), 0xff, vocab_slot_size());
    const int32_t fd = tvlm_semihost_open(flash_path, SH_MODE_WB); /* truncates: an erased slot */
    if (fd < 0) return -1;
    (void)tvlm_semihost_close(fd);
    return 0;
}

static int flash_program(void *ctx, uint32_t off, const uint8_t *data, uint32_t len)
{
    (void)ctx;
    if (off > vocab_slot_size() || len > vocab_slot_size() - off) return -1;
    memcpy(slot() + off, data, len);
    const int32_t fd = tvlm_semihost_open(flash_path, SH_MODE_RPLUSB);
    if (fd < 0) return -1;
    int ok = tvlm_semihost_seek(fd, off) == 0 && tvlm_semihost_write(fd, data, len) == 0;
    (void)tvlm_semihost_close(fd);
    return ok ? 0 : -1;
}

/* "--flash PATH" from the semihosting command line; 1 when found (then the slot holds the file's bytes) */
static int flash_attach(void)
{
    static char cmdline[320];
    if (!tvlm_semihost_cmdline(cmdline, sizeof cmdline)) return 0;
    const char *arg = strstr(cmdline, "--flash ");
    if (arg == NULL) return 0;
    arg += 8;
    size_t n = 0;
    while (arg[n] != '\0' && arg[n] != ' ' && n + 1 < sizeof flash_path) {
        flash_path[n] = arg[n];
        n++;
    }
    flash_path[n] = '\0';
    if (n == 0) return 0;
    memset(slot(), 0xff, vocab_slot_size());
    const int32_t fd = tvlm_semihost_open(flash_path, SH_MODE_RB);
    if (fd >= 0) { /* a missing file is a never-written (erased) slot */
        (void)tvlm_semihost_read(fd, slot(), vocab_slot_size());
        (void)tvlm_semihost_close(fd);
    }
    return 1;
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
    port.clock_us = clock_us;
    tvlm_scene_camera_init(clock_us);
    port.capture = tvlm_scene_capture;
    port.camera = TVLM_CAMERA_GENERATED;
    if (flash_attach()) {
        port.vocab_slot = __vocab_slot_start;
        port.vocab_slot_size = vocab_slot_size();
        port.flash_erase = flash_erase;
        port.flash_program = flash_program;
    }
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1) && !defined(TVLM_KERNEL_PLAIN) && \
    !defined(TVLM_KERNEL_DSP)
    tvlm_device_config_t cfg = {256, 128, TVLM_PATH_MVE, __boot_seed, NULL, 0};
#elif defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(TVLM_KERNEL_PLAIN)
    tvlm_device_config_t cfg = {256, 128, TVLM_PATH_DSP, __boot_seed, NULL, 0};
#else
    tvlm_device_config_t cfg = {256, 128, TVLM_PATH_PLAIN, __boot_seed, NULL, 0};
#endif
    const uint32_t vocab_size = (uint32_t)(tvlm_builtin_vocab_end - tvlm_builtin_vocab);
    if (vocab_size != 0) {
        cfg.vocab = tvlm_builtin_vocab;
        cfg.vocab_size = vocab_size;
    }
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
