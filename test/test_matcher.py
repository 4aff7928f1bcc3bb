"""Matcher: mask-aware crops, one visual batch per frame, text cache, Matryoshka, calibration."""

import numpy as np
import pytest

from tinyvlm_ros.engine.matcher import ClipMatcher
from tinyvlm_ros.engine.segmenter import SamSegmenter
from tinyvlm_ros.models.manifest import load_manifest
from tinyvlm_ros.testing.models import make_known_answer_set
from tinyvlm_ros.geometry import box_iou
from tinyvlm_ros.testing.scenes import make_scene


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return load_manifest(make_known_answer_set(tmp_path_factory.mktemp("ka_match")))


@pytest.fixture(scope="module")
def frame(models):
    scene = make_scene(11, labels=["red block", "blue ball", "green triangle", "red ball"])
    seg = SamSegmenter(models.sam).generate(scene.image, "fast")
    by_label = {}
    for obj in scene.objects:
        by_label[obj.label] = max(seg.candidates, key=lambda c: box_iou(c.box, obj.box_xyxy))
    return scene, seg, by_label


class _CountingSession:
    """Wraps an ORT session to count run() calls and batch sizes."""

    def __init__(self, sess):
        self.sess = sess
        self.calls = []

    def run(self, names, feeds):
        self.calls.append({k: v.shape for k, v in feeds.items()})
        return self.sess.run(names, feeds)


def test_mask_aware_crop_fills_background_with_the_mean(models, frame):
    scene, seg, by_label = frame
    m = ClipMatcher(models.clip)
    crop = m.crop(scene.image, by_label["red ball"], seg.scale)
    r = models.clip.image_size
    assert crop.shape == (r, r, 3) and crop.dtype == np.uint8
    fill = np.round(np.array(models.clip.mean) * 255).astype(np.uint8)
    corners = crop[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners == fill).all()                  # a disc's crop corners are outside the mask
    centre = crop[r // 2, r // 2].astype(int)
    assert centre[0] > 180 and centre[1] < 80       # and its centre is red
    # the background is exactly zero after CLIP normalisation
    px = m.to_pixel_values(crop[None])
    assert px.shape == (1, 3, r, r)
    assert np.abs(px[0, :, 0, 0]).max() < 0.02


def test_all_crops_in_one_batch_and_text_is_cached(models, frame):
    scene, seg, _ = frame
    m = ClipMatcher(models.clip)
    m.visual = _CountingSession(m.visual)
    crops = np.stack([m.crop(scene.image, c, seg.scale) for c in seg.candidates])
    emb = m.embed_crops(crops)
    assert len(m.visual.calls) == 1
    assert m.visual.calls[0]["pixel_values"][0] == len(seg.candidates)
    assert emb.shape == (len(seg.candidates), models.clip.embed_dim)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    m.scores(emb, "red block")
    first = m.text_calls
    assert first == 1 + len(m.negatives)
    m.scores(emb, "red block")
    m.scores(emb, "blue ball")
    assert m.text_calls == first + 1  # only the new phrase; the generic prompts are cached


def test_calibrated_scores_separate_match_partial_and_absent(models, frame):
    scene, seg, by_label = frame
    m = ClipMatcher(models.clip)
    keys = list(by_label)
    emb = m.embed_crops(np.stack([m.crop(scene.image, by_label[k], seg.scale) for k in keys]))
    for i, label in enumerate(keys):
        p = m.scores(emb, label)
        assert p[i] > 0.9, label
        others = [j for j, k in enumerate(keys) if k != label]
        assert (p[others] < 0.5).all(), label
    assert (m.scores(emb, "pink elephant") < 0.5).all()
    assert (m.scores(emb, "red cup") < 0.5).all()     # right colour, unknown object
    p_ball = m.scores(emb, "ball")
    assert p_ball[keys.index("blue ball")] > 0.9 and p_ball[keys.index("red ball")] > 0.9
    assert p_ball[keys.index("red block")] < 0.5


def test_negative_margin_makes_the_matcher_stricter(models, frame):
    scene, seg, by_label = frame
    loose = ClipMatcher(models.clip)
    strict = ClipMatcher(models.clip, negative_margin=20.0)
    crop = loose.crop(scene.image, by_label["red block"], seg.scale)[None]
    p_strict = strict.scores(strict.embed_crops(crop), "red block")[0]
    p_loose = loose.scores(loose.embed_crops(crop), "red block")[0]
    assert p_strict < p_loose


def test_matryoshka_prefix(models, frame):
    scene, seg, by_label = frame
    m = ClipMatcher(models.clip, matryoshka_dim=11)
    crop = m.crop(scene.image, by_label["green triangle"], seg.scale)[None]
    emb = m.embed_crops(crop)
    assert emb.shape == (1, 11)
    assert np.linalg.norm(emb[0]) == pytest.approx(1.0, abs=1e-5)
    assert m.scores(emb, "green triangle")[0] > 0.9
    for bad in (0, models.clip.embed_dim + 1):
        with pytest.raises(ValueError, match="matryoshka_dim"):
            ClipMatcher(models.clip, matryoshka_dim=bad)


def test_empty_batch(models):
    m = ClipMatcher(models.clip)
    r = models.clip.image_size
    emb = m.embed_crops(np.zeros((0, r, r, 3), np.uint8))
    assert emb.shape == (0, models.clip.embed_dim)
    assert m.scores(emb, "red block").shape == (0,)
