"""Windowed SAM decoding against whole-grid decoding on the known-answer models.

The known-answer windowed decoder is exact wherever a region stays inside its
window, so the segmenter's edge check is what is under test: windowed decoding
(tiers 16 cells, then the whole grid at S = 512) must give the same masks, IoU
predictions and detections as whole-grid decoding.  Stated tolerance: exact
(mask IoU 1.0, predicted IoU within 1e-6, identical boxes and scores).
"""

import cv2
import numpy as np
import pytest

from tinyvlm_ros.engine.detector import Detector
from tinyvlm_ros.engine.segmenter import SamSegmenter, grid_points
from tinyvlm_ros.models.manifest import load_manifest
from tinyvlm_ros.testing.models import make_known_answer_set
from tinyvlm_ros.testing.scenes import make_scene

SCENES = (3, 11, 29)


@pytest.fixture(scope="module")
def model_set(tmp_path_factory):
    return load_manifest(make_known_answer_set(tmp_path_factory.mktemp("ka_window")))


@pytest.fixture(scope="module")
def segmenters(model_set):
    return SamSegmenter(model_set.sam, decoder_window=16), SamSegmenter(model_set.sam, decoder_window=0)


def _prompts(scene) -> np.ndarray:
    centres = [((o.box_xyxy[0] + o.box_xyxy[2]) / 2.0, (o.box_xyxy[1] + o.box_xyxy[3]) / 2.0)
               for o in scene.objects]
    h, w = scene.image.shape[:2]
    return np.concatenate([np.asarray(centres, np.float32), grid_points(w, h, 4)])


def test_windowed_decode_equals_whole_grid(segmenters):
    windowed, whole = segmenters
    assert windowed.tiers() == (16, 0) and whole.tiers() == (0,)
    stats = {}
    for seed in SCENES:
        scene = make_scene(seed=seed, width=640, height=480, n_objects=6)
        emb, scale, _ = windowed.embed(scene.image)
        pts = _prompts(scene) * scale
        m_win, q_win = windowed.decode_prompts(emb, pts, min_iou=0.0, stats=stats)
        m_all, q_all = whole.decode_prompts(emb, pts, min_iou=0.0)
        np.testing.assert_allclose(q_win, q_all, atol=1e-6)
        assert np.array_equal(m_win > 0, m_all > 0)
        # inside a fitting window the logits themselves are the whole grid's
        fit = m_win.max(axis=(1, 2, 3)) > -20.0
        assert fit.any()
    # both paths ran: objects fit their windows, the table does not
    assert stats["decoder_window_16"] > stats["decoder_full"] > 0


def test_a_mask_reaching_the_window_edge_is_decoded_again(segmenters):
    windowed, _ = segmenters
    scene = make_scene(seed=3, width=640, height=480, n_objects=6)
    emb, scale, _ = windowed.embed(scene.image)
    # the table point nearest the frame centre, well away from every object (so its window is
    # centred on it): the table's flood fill reaches the window's edges
    objects = np.any([o.mask for o in scene.objects], axis=0)
    free = np.argwhere(cv2.erode((~objects).astype(np.uint8), np.ones((81, 81), np.uint8)) > 0)
    y, x = free[np.argmin(np.hypot(free[:, 0] - 240, free[:, 1] - 320))]
    table = np.array([[x, y]], np.float32) * scale
    _, _, fits, edges = windowed.decode_tier(emb, table, 16)
    assert not fits[0] and edges[0] >= 2
    obj = scene.objects[0].box_xyxy
    centre = np.array([[(obj[0] + obj[2]) / 2.0, (obj[1] + obj[3]) / 2.0]], np.float32) * scale
    _, _, fits, edges = windowed.decode_tier(emb, centre, 16)
    assert fits[0] and edges[0] == 0


@pytest.mark.parametrize("mode", ["fast", "thorough"])
def test_detections_do_not_change(model_set, mode):
    windowed = Detector(model_set, mode=mode, decoder_window=16)
    whole = Detector(model_set, mode=mode, decoder_window=0)
    for seed in SCENES:
        scene = make_scene(seed=seed, width=640, height=480, n_objects=6)
        for k, obj in enumerate(scene.objects[:2]):
            a = windowed.detect(scene.image, f"pick the {obj.label}")
            b = whole.detect(scene.image, f"pick the {obj.label}")
            assert a.detections, (seed, obj.label)
            assert [(d.label, d.box_xyxy, round(d.score, 6)) for d in a.detections] == \
                [(d.label, d.box_xyxy, round(d.score, 6)) for d in b.detections]
            assert np.array_equal(a.detections[0].mask, b.detections[0].mask)
            if k == 0:  # the frame's first command did the decoding (the second hits the cache)
                assert a.work["decoder_window_16"] > 0 and "decoder_window_16" not in b.work


def test_bad_window_is_a_value_error(model_set):
    with pytest.raises(ValueError, match="decoder_window"):
        SamSegmenter(model_set.sam, decoder_window=-1)


def test_a_stand_in_for_the_decoder_answers_every_prompt(model_set):
    """A decoder stand-in set as the instance's ``decode`` (the eval oracle's way) sees every prompt."""
    seg = SamSegmenter(model_set.sam, decoder_window=16)
    asked = []

    def stand_in(emb, points_s):
        asked.append(len(points_s))
        return SamSegmenter.decode(seg, emb, points_s)

    seg.decode = stand_in
    scene = make_scene(seed=3, width=640, height=480, n_objects=6)
    out = seg.generate(scene.image, "fast")
    assert sum(asked) == out.decoder_calls == out.decoder_stats["decoder_full"] > 0
    assert "decoder_window_16" not in out.decoder_stats and out.candidates
