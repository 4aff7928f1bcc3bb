#include "scene_camera.h"

#include <stddef.h>

static uint64_t (*camera_clock)(void *ctx);
static uint32_t camera_frames;

void tvlm_scene_camera_init(uint64_t (*clock_us)(void *ctx))
{
    camera_clock = clock_us;
    camera_frames = 0;
}

tvlm_status_t tvlm_scene_capture(void *ctx, uint8_t *pixels, uint16_t w, uint16_t h, uint8_t c, uint64_t *t_us)
{
    if (camera_clock == NULL) return TVLM_STATUS_INTERNAL;
    *t_us = camera_clock(ctx);
    tvlm_scene_render(pixels, w, h, c, camera_frames++);
    return TVLM_STATUS_OK;
}

/* sine of phase / 1024 turns, times 256, from two parabolas (a few % off the real sine: shading only) */
static int32_t isin(uint32_t phase)
{
    const int32_t p = (int32_t)(phase & 511u);
    const int32_t s = (p * (512 - p)) >> 8;
    return (phase & 512u) ? -s : s;
}

static uint32_t lcg(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 24;
}

typedef struct {
    uint8_t r, g, b;
    uint8_t shape; /* 0 block, 1 ball, 2 triangle */
    int32_t x0, y0, size;
} scene_object_t;

/* 1 when pixel (x, y) lies on the object; the shapes of scenes.py's _shape_mask, in integers */
static int covers(const scene_object_t *o, int32_t x, int32_t y)
{
    const int32_t dx = x - o->x0, dy = y - o->y0, s = o->size;
    if (dx < 0 || dy < 0 || dx >= s || dy >= s) return 0;
    if (o->shape == 0) return 1;
    if (o->shape == 1) {
        /* (x + 0.5 - centre)^2 + ... <= r^2, doubled to stay in integers */
        const int32_t ex = 2 * dx + 1 - s, ey = 2 * dy + 1 - s;
        return ex * ex + ey * ey <= s * s;
    }
    /* apex at the top centre: half width at row dy is (dy + 0.5) / 2 */
    const int32_t ex = 2 * dx + 1 - s;
    const int32_t half2 = 2 * dy + 1; /* 2 * (2 * half) */
    return 2 * (ex < 0 ? -ex : ex) <= half2;
}

void tvlm_scene_render(uint8_t *pixels, uint16_t w, uint16_t h, uint8_t c, uint32_t frame_no)
{
    const int32_t short_side = w < h ? w : h;
    const int32_t size = short_side / 6 > 4 ? short_side / 6 : 4;
    const int32_t margin = short_side / 12;
    const int32_t travel = (int32_t)w - size - 2 * margin > 1 ? (int32_t)w - size - 2 * margin : 1;
    const int32_t step = (int32_t)w * 3 / 100 > 1 ? (int32_t)w * 3 / 100 : 1;
    scene_object_t objs[3] = {
        {220, 30, 30, 0, margin + (int32_t)((frame_no * (uint32_t)step) % (uint32_t)travel), h / 10, size},
        {30, 60, 220, 1, (int32_t)w * 6 / 10, (int32_t)h * 42 / 100, size},
        {30, 180, 40, 2, (int32_t)w * 15 / 100, (int32_t)h * 66 / 100, size},
    };
    uint32_t noise = 0x9e3779b9u ^ frame_no;
    for (int32_t y = 0; y < h; y++) {
        /* the table's low-frequency shading: 150 + 20 sin(x / 14.5) cos(y / 14.2) at 96 pixels */
        const int32_t cy = isin((uint32_t)(y * 1024 * 96 / (89 * short_side)) + 256u);
        for (int32_t x = 0; x < w; x++) {
            const int32_t sx = isin((uint32_t)(x * 1024 * 96 / (91 * short_side)) + 100u);
            int32_t rgb[3];
            const int32_t grey = 150 + (20 * sx * cy) / 65536;
            rgb[0] = rgb[1] = rgb[2] = grey;
            for (uint32_t i = 0; i < 3; i++) {
                if (covers(&objs[i], x, y)) {
                    rgb[0] = objs[i].r;
                    rgb[1] = objs[i].g;
                    rgb[2] = objs[i].b;
                }
            }
            uint8_t *px = pixels + ((uint32_t)y * w + (uint32_t)x) * c;
            for (uint32_t k = 0; k < c; k++) {
                int32_t v = k < 3 ? rgb[k] : 0;
                if (c == 1) v = (rgb[0] * 77 + rgb[1] * 150 + rgb[2] * 29) >> 8;
                v += (int32_t)(lcg(&noise) % 5u) - 2; /* sensor noise, +-2 */
                px[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
}
