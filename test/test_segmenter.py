"""Segmenter: geometry helpers, saliency prompts, fast vs thorough on known-answer models."""

import numpy as np
import pytest

from tinyvlm_ros.engine.segmenter import (SamSegmenter, box_nms, grid_points, logits_to_frame,
                                          saliency_points, stability_score)
from tinyvlm_ros.models.manifest import load_manifest
from tinyvlm_ros.testing.models import make_known_answer_set
from tinyvlm_ros.geometry import box_iou
from tinyvlm_ros.testing.scenes import make_scene


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    d = make_known_answer_set(tmp_path_factory.mktemp("ka_seg"))
    return SamSegmenter(load_manifest(d).sam, threads=2)


def test_grid_points_are_sam_cell_centres():
    pts = grid_points(640, 480, 16)
    assert pts.shape == (256, 2)
    assert pts[0].tolist() == pytest.approx([640 / 32, 480 / 32])
    assert pts[-1].tolist() == pytest.approx([640 - 640 / 32, 480 - 480 / 32])


def test_logits_to_frame_places_cells_where_they_belong():
    # a 4x4-cell square of positive logits at cells 8..11; frame scale 0.5 -> one cell = 8 px
    low = np.full((64, 64), -5.0, np.float32)
    low[8:12, 8:12] = 5.0
    m = logits_to_frame(low, 0.5, (0, 0, 200, 200)) > 0
    ys, xs = np.nonzero(m)
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (64, 96, 64, 96)
    # a sub-region gives the same pixels as the full frame
    sub = logits_to_frame(low, 0.5, (50, 60, 60, 50)) > 0
    assert (sub == m[60:110, 50:110]).all()
    # outside the low-res grid is outside the mask
    assert not (logits_to_frame(low, 0.5, (600, 600, 10, 10)) > 0).any()


def test_stability_score():
    a = np.full((2, 8, 8), -3.0, np.float32)
    a[0, :4, :4] = 3.0          # sharp: stable
    a[1, :4, :4] = 3.0
    a[1, 4:, :] = 0.5           # a soft fringe: unstable
    s = stability_score(a)
    assert s[0] == pytest.approx(1.0)
    assert s[1] == pytest.approx(16 / 48)


def test_box_nms_keeps_best_of_overlaps():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    keep = box_nms(boxes, np.array([0.5, 0.9, 0.1], np.float32), 0.7)
    assert keep == [1, 2]


def test_saliency_points_hit_every_object():
    for seed in range(4):
        scene = make_scene(seed, n_objects=5)
        pts = saliency_points(scene.image)
        assert len(pts) <= 24
        for obj in scene.objects:
            assert any(obj.mask[int(y), int(x)] for x, y in pts), obj.label


def test_saliency_points_ignore_a_plain_frame():
    rng = np.random.default_rng(0)
    plain = np.clip(150 + rng.normal(0, 4, (240, 320, 3)), 0, 255).astype(np.uint8)
    assert saliency_points(plain) == []


def test_preprocess_resizes_longest_side_and_pads(segmenter):
    x, scale = segmenter.preprocess(np.full((100, 200, 3), 255, np.uint8))
    s = segmenter.input_size
    assert x.shape == (1, 3, s, s) and x.dtype == np.float32
    assert scale == pytest.approx(s / 200)
    assert (x[0, :, s // 2 + 1:, :] == 0).all()      # zero padding below the image
    assert (x[0, :, : s // 2 - 1, :] > 0).all()      # white is above the mean


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_mode_finds_every_object_with_few_decoder_calls(segmenter, seed):
    scene = make_scene(seed, n_objects=5)
    seg = segmenter.generate(scene.image, "fast")
    for obj in scene.objects:
        best = max(box_iou(c.box, obj.box_xyxy) for c in seg.candidates)
        assert best >= 0.7, obj.label
    # saliency prompts (<= 24), the 4x4 grid and the 8x8 grid where a 4x4 point found something on
    # the table: a small fraction of the reference recipe's 256
    assert 0 < seg.decoder_calls <= 256 // 5
    for c in seg.candidates:
        assert c.logits.shape == (segmenter.low_size, segmenter.low_size)


def test_fast_mode_skips_grid_points_inside_accepted_masks(segmenter):
    # one big block covering most of the frame: once a prompt found it, no later prompt lands on it
    scene = make_scene(3, labels=["red block"], min_size=300, max_size=320)
    block = scene.objects[0].mask
    prompts = []

    def recording_decode(emb, points_s):
        prompts.extend(tuple(p) for p in np.asarray(points_s) / (segmenter.input_size / 640.0))
        return SamSegmenter.decode(segmenter, emb, points_s)

    segmenter.decode = recording_decode
    try:
        seg = segmenter.generate(scene.image, "fast")
    finally:
        del segmenter.decode
    on_block = [i for i, (x, y) in enumerate(prompts) if block[int(y), int(x)]]
    grids = np.concatenate([grid_points(640, 480, 4), grid_points(640, 480, 8)])
    grid_on_block = sum(block[int(y), int(x)] for x, y in grids)
    assert grid_on_block >= 20           # without skipping these would all be decoded
    assert 1 <= len(on_block) <= 4       # the first batch that reached the block, nothing after it
    assert max(on_block) < 4
    assert seg.decoder_calls == len(prompts)
    assert max(box_iou(c.box, scene.objects[0].box_xyxy) for c in seg.candidates) >= 0.9


def test_saliency_gives_a_thin_part_of_a_merged_blob_its_own_point():
    # a bright disc with a thin bar standing on it (a rocket on a floodlit pad): one blob
    img = np.full((240, 320, 3), 30, np.uint8)
    yy, xx = np.mgrid[0:240, 0:320]
    img[(xx - 160) ** 2 + (yy - 200) ** 2 < 30 ** 2] = 250
    img[40:190, 152:168] = 230
    bar = np.zeros((240, 320), bool)
    bar[40:170, 150:170] = True
    on_bar = [p for p in saliency_points(img) if bar[int(p[1]), int(p[0])]]
    assert on_bar
    # one point per blob lands in the disc, so the bar gets none
    assert not [p for p in saliency_points(img, per_blob=1) if bar[int(p[1]), int(p[0])]]


def test_thorough_mode_is_the_reference_grid(segmenter):
    scene = make_scene(5, n_objects=4, min_size=70, max_size=110)
    seg = segmenter.generate(scene.image, "thorough")
    assert seg.decoder_calls == 256
    for obj in scene.objects:
        assert max(box_iou(c.box, obj.box_xyxy) for c in seg.candidates) >= 0.7, obj.label
    for c in seg.candidates:
        assert c.iou_pred > 0.8 and c.stability >= 0.85 and c.area >= 200


def test_embedding_is_reused_for_the_same_key(segmenter):
    scene = make_scene(0)
    a = segmenter.generate(scene.image, "fast", key=b"frame-a")
    b = segmenter.generate(scene.image, "fast", key=b"frame-a")
    c = segmenter.generate(scene.image, "fast", key=b"frame-b")
    assert (a.encoder_reused, b.encoder_reused, c.encoder_reused) == (False, True, False)


def test_bad_mode(segmenter):
    with pytest.raises(ValueError, match="mode"):
        segmenter.generate(make_scene(0).image, "quick")


def test_fast_mode_caps_the_number_of_masks(segmenter):
    scene = make_scene(6, n_objects=6)
    full = segmenter.generate(scene.image, "fast")
    capped = segmenter.generate(scene.image, "fast", fast_max_masks=3)
    assert len(full.candidates) >= 6
    assert len(capped.candidates) == 3
    assert [c.box for c in capped.candidates] == [c.box for c in full.candidates[:3]]
