/* A camera stand-in for boards without one (the host build, QEMU): every capture renders a generated
 * table-top scene, so the device-camera mode runs end to end. Port code: the core only sees the port's
 * capture callback. */
#ifndef TVLM_SCENE_CAMERA_H
#define TVLM_SCENE_CAMERA_H

#include <stdint.h>

#include "tvlm_protocol.h"

/* Draw frame `frame_no` into w x h x c uint8 pixels (HWC, RGB; channels past 3 are 0, one channel is grey).
 * A grey shaded table with a red block, a blue ball and a green triangle, in the colours and shapes of
 * tinyvlm_ros/testing/scenes.py; the block moves right by 3 % of the width per frame and wraps, the ball and
 * the triangle stay. Objects are min(w, h) / 6 pixels wide. Integer arithmetic only: every target draws the
 * same bytes. */
void tvlm_scene_render(uint8_t *pixels, uint16_t w, uint16_t h, uint8_t c, uint32_t frame_no);

/* The camera as a port offers it (tvlm_port_t.capture): frame n of the scene, stamped with clock_us at the
 * start (standing in for the exposure start; the render stands in for the readout). Set the clock first. */
void tvlm_scene_camera_init(uint64_t (*clock_us)(void *ctx));
tvlm_status_t tvlm_scene_capture(void *ctx, uint8_t *pixels, uint16_t w, uint16_t h, uint8_t c, uint64_t *t_us);

#endif
