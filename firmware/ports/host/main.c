/* Host port: the firmware core as a POSIX process behind a pseudo-terminal.
 * Prints "TVLM_PTY <slave path>" on stdout, then serves the protocol on the pty until killed.
 * Options: --model FILE (default: the built-in model), --kernel plain|dsp, --table-rows N,
 *          --boot-seed N (default: from time and pid), --link PATH (a symlink to the pty that stays the same
 *          across restarts, like a /dev/ttyACM0 that comes back after a reset),
 *          --flash FILE (the vocabulary flash slot, kept in FILE across restarts; without it the port has no
 *          writable flash). The camera is the generated scene of ports/common/scene_camera.c. */
#define _DEFAULT_SOURCE
#define _XOPEN_SOURCE 600
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "scene_camera.h"
#include "tvlm_device.h"

extern const uint8_t tvlm_default_model[];
extern const uint8_t tvlm_default_model_end[];
extern const uint8_t tvlm_builtin_vocab[];
extern const uint8_t tvlm_builtin_vocab_end[];

#define ARENA_BYTES (1u << 20)
#define MODEL_MAX (1u << 20)
#define VOCAB_SLOT_BYTES (256u * 1024u)

static _Alignas(8) uint8_t arena[ARENA_BYTES];
static _Alignas(8) uint8_t model_buf[MODEL_MAX];
static _Alignas(8) uint8_t vocab_slot[VOCAB_SLOT_BYTES];
static int flash_fd = -1;
static uint64_t boot_ns;
static tvlm_device_t dev;

static void pty_write(void *ctx, const uint8_t *buf, size_t len)
{
    int fd = *(int *)ctx;
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) {
                struct pollfd pfd = {fd, POLLOUT, 0};
                (void)poll(&pfd, 1, 100);
                continue;
            }
            return; /* nobody listening: the reply is lost, the host will retry */
        }
        buf += n;
        len -= (size_t)n;
    }
}

static uint32_t ns_ticks(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t clock_us(void *ctx)
{
    (void)ctx;
    return (mono_ns() - boot_ns) / 1000u;
}

/* The flash slot lives in RAM and in the --flash file: erase empties the file, program writes through. */
static int flash_erase(void *ctx)
{
    (void)ctx;
    memset(vocab_slot, 0xff, sizeof vocab_slot);
    return ftruncate(flash_fd, 0) == 0 ? 0 : -1;
}

static int flash_program(void *ctx, uint32_t off, const uint8_t *data, uint32_t len)
{
    (void)ctx;
    if (off > sizeof vocab_slot || len > sizeof vocab_slot - off) return -1;
    memcpy(vocab_slot + off, data, len);
    return pwrite(flash_fd, data, len, (off_t)off) == (ssize_t)len ? 0 : -1;
}

static int open_flash(const char *path)
{
    memset(vocab_slot, 0xff, sizeof vocab_slot);
    flash_fd = open(path, O_RDWR | O_CREAT, 0644);
    if (flash_fd < 0) return -1;
    ssize_t n = read(flash_fd, vocab_slot, sizeof vocab_slot);
    return n < 0 ? -1 : 0;
}

static int usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--model FILE] [--kernel plain|dsp] [--table-rows N] [--boot-seed N] [--link PATH] "
                    "[--flash FILE]\n", argv0);
    return 2;
}

int main(int argc, char **argv)
{
    const char *model_path = NULL, *link_path = NULL, *flash_path = NULL;
    tvlm_device_config_t cfg = {256, 128, TVLM_PATH_DSP, 0, NULL, 0};
    boot_ns = mono_ns();
    int seeded = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            model_path = argv[++i];
        } else if (!strcmp(argv[i], "--kernel") && i + 1 < argc) {
            i++;
            if (!strcmp(argv[i], "plain")) cfg.path = TVLM_PATH_PLAIN;
            else if (!strcmp(argv[i], "dsp")) cfg.path = TVLM_PATH_DSP;
            else return usage(argv[0]);
        } else if (!strcmp(argv[i], "--table-rows") && i + 1 < argc) {
            long v = strtol(argv[++i], NULL, 0);
            if (v < 1 || v > 4096) return usage(argv[0]);
            cfg.table_rows = (uint16_t)v;
        } else if (!strcmp(argv[i], "--link") && i + 1 < argc) {
            link_path = argv[++i];
        } else if (!strcmp(argv[i], "--flash") && i + 1 < argc) {
            flash_path = argv[++i];
        } else if (!strcmp(argv[i], "--boot-seed") && i + 1 < argc) {
            cfg.boot_id = (uint32_t)strtoul(argv[++i], NULL, 0);
            seeded = 1;
        } else {
            return usage(argv[0]);
        }
    }
    if (!seeded) cfg.boot_id = ns_ticks(NULL) ^ ((uint32_t)getpid() << 16);
    const uint32_t vocab_size = (uint32_t)(tvlm_builtin_vocab_end - tvlm_builtin_vocab);
    if (vocab_size != 0) {
        cfg.vocab = tvlm_builtin_vocab;
        cfg.vocab_size = vocab_size;
    }
    if (flash_path && open_flash(flash_path) != 0) {
        fprintf(stderr, "tvlm-host: cannot open flash file %s: %s\n", flash_path, strerror(errno));
        return 1;
    }

    const uint8_t *model = tvlm_default_model;
    uint32_t model_size = (uint32_t)(tvlm_default_model_end - tvlm_default_model);
    if (model_path) {
        FILE *f = fopen(model_path, "rb");
        if (!f) {
            fprintf(stderr, "tvlm-host: cannot open model %s: %s\n", model_path, strerror(errno));
            return 1;
        }
        size_t n = fread(model_buf, 1, MODEL_MAX, f);
        fclose(f);
        model = model_buf;
        model_size = (uint32_t)n;
    }

    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) || unlockpt(master)) {
        perror("tvlm-host: pty");
        return 1;
    }
    const char *slave = ptsname(master);
    /* keep our own handle on the slave: the master then never reads EIO while no host is attached */
    int keep = open(slave, O_RDWR | O_NOCTTY);
    struct termios tio;
    if (keep < 0 || tcgetattr(keep, &tio)) {
        perror("tvlm-host: slave");
        return 1;
    }
    cfmakeraw(&tio);
    tcsetattr(keep, TCSANOW, &tio);
    signal(SIGPIPE, SIG_IGN);

    static tvlm_port_t port;
    port.write = pty_write;
    port.ticks = ns_ticks;
    port.ctx = &master;
    port.port_id = TVLM_PORT_HOST;
    port.work_unit = TVLM_WORK_NANOSECONDS;
    port.clock_us = clock_us;
    tvlm_scene_camera_init(clock_us);
    port.capture = tvlm_scene_capture;
    port.camera = TVLM_CAMERA_GENERATED;
    if (flash_fd >= 0) {
        port.vocab_slot = vocab_slot;
        port.vocab_slot_size = sizeof vocab_slot;
        port.flash_erase = flash_erase;
        port.flash_program = flash_program;
    }
    tvlm_status_t st = tvlm_device_init(&dev, &port, &cfg, model, model_size, arena, sizeof arena);
    if (st != TVLM_STATUS_OK) {
        fprintf(stderr, "tvlm-host: device init failed: status %d\n", (int)st);
        return 1;
    }
    if (dev.model_status != TVLM_STATUS_OK)
        fprintf(stderr, "tvlm-host: model rejected (status %d); serving without a model\n", (int)dev.model_status);
    if (link_path) {
        (void)unlink(link_path);
        if (symlink(slave, link_path) != 0) {
            fprintf(stderr, "tvlm-host: cannot link %s -> %s: %s\n", link_path, slave, strerror(errno));
            return 1;
        }
    }
    printf("TVLM_PTY %s\n", slave);
    fflush(stdout);

    uint8_t buf[4096];
    for (;;) {
        struct pollfd pfd = {master, POLLIN, 0};
        int r = poll(&pfd, 1, (int)TVLM_RX_IDLE_MS);
        if (r == 0) {
            tvlm_device_rx_idle(&dev);
            continue;
        }
        ssize_t n = read(master, buf, sizeof buf);
        if (n > 0) {
            tvlm_device_rx(&dev, buf, (size_t)n);
        } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
            usleep(1000);
        }
    }
}
