"""Known-answer end-to-end detection on generated scenes."""

import shutil

import cv2
import numpy as np
import pytest

from tinyvlm_ros.engine.detector import Detector
from tinyvlm_ros.testing.models import make_known_answer_set
from tinyvlm_ros.geometry import box_iou
from tinyvlm_ros.testing.scenes import make_scene
from tinyvlm_ros.types import DetectionResult

#: The known-answer segmenter works on 5 px cells (S = 512 for 640 px), so a
#: triangle's thin apex and corners are partly lost; blocks and balls are tight.
MIN_IOU = {"block": 0.7, "ball": 0.7, "triangle": 0.6}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_known_answer_set(tmp_path_factory.mktemp("ka_det"))


@pytest.fixture(scope="module")
def det(model_dir):
    return Detector.from_dir(model_dir)


def _mask_iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_pick_the_red_block(det):
    scene = make_scene(21, labels=["blue ball", "red block", "green triangle", "yellow block"])
    truth = scene.find("red block")[0]
    r = det.detect(scene.image, "pick the red block")
    assert isinstance(r, DetectionResult)
    assert r.targets == ["red block"]
    assert len(r.detections) == 1
    d = r.detections[0]
    assert d.label == "red block" and 0.5 <= d.score <= 1.0 and d.target_index == 0
    assert box_iou(d.box_xyxy, truth.box_xyxy) >= 0.7
    assert d.mask.shape == scene.image.shape[:2] and d.mask.dtype == bool
    assert _mask_iou(d.mask, truth.mask) >= 0.7
    for key in ("decoder_calls", "crops", "masks"):
        assert r.work[key] > 0
    assert r.timings["total"] >= r.timings["match"] >= 0.0


@pytest.mark.parametrize("seed", range(6))
def test_every_object_of_random_scenes(det, seed):
    scene = make_scene(seed, n_objects=5)
    for obj in scene.objects:
        r = det.detect(scene.image, f"take the {obj.label}")
        assert len(r.detections) == 1, obj.label
        assert box_iou(r.detections[0].box_xyxy, obj.box_xyxy) >= MIN_IOU[obj.shape], obj.label


@pytest.mark.parametrize("command", ["pick the pink elephant", "grab the red cup", "find a screwdriver"])
def test_absent_objects_give_no_detection(det, command):
    scene = make_scene(2, n_objects=5)
    r = det.detect(scene.image, command)
    assert r.detections == []
    assert r.work["masks"] > 0  # there were candidates; they were rejected, not missing


def test_present_colour_absent_combination(det):
    scene = make_scene(4, labels=["red ball", "blue block"])
    assert det.detect(scene.image, "pick the red block").detections == []
    assert len(det.detect(scene.image, "pick the red ball").detections) == 1


def test_multi_target_command(det):
    scene = make_scene(7, labels=["green block", "orange ball", "purple block", "yellow triangle"])
    r = det.detect(scene.image, "find the orange ball and the purple block")
    assert r.targets == ["orange ball", "purple block"]
    assert [d.label for d in r.detections] == ["orange ball", "purple block"]
    assert [d.target_index for d in r.detections] == [0, 1]
    for d in r.detections:
        assert box_iou(d.box_xyxy, scene.find(d.label)[0].box_xyxy) >= 0.7
    assert len(det.detect(scene.image, "find the orange ball and the purple block",
                          max_detections=1).detections) == 1


def test_several_instances_without_qualifier(det):
    scene = make_scene(8, labels=["red ball", "blue ball", "green ball", "red block"])
    r = det.detect(scene.image, "pick a ball")
    found = sorted(d.box_xyxy for d in r.detections)
    assert len(found) == 3
    for obj in scene.objects[:3]:
        assert max(box_iou(b, obj.box_xyxy) for b in found) >= 0.7


@pytest.mark.parametrize("qualifier, key", [
    ("on the left", lambda o: (o.box_xyxy[0] + o.box_xyxy[2])),
    ("on the right", lambda o: -(o.box_xyxy[0] + o.box_xyxy[2])),
    ("at the top", lambda o: (o.box_xyxy[1] + o.box_xyxy[3])),
    ("at the bottom", lambda o: -(o.box_xyxy[1] + o.box_xyxy[3])),
    ("that is largest", lambda o: -o.mask.sum()),
    ("that is smallest", lambda o: o.mask.sum()),
])
def test_spatial_and_size_qualifiers(det, qualifier, key):
    scene = make_scene(9, labels=["red ball", "blue ball", "green ball", "yellow block"], min_size=40,
                       max_size=120)
    balls = [o for o in scene.objects if o.shape == "ball"]
    want = min(balls, key=key)
    r = det.detect(scene.image, f"the ball {qualifier}")
    assert [d.role for d in r.detections] == ["target", "candidate", "candidate"]  # the other balls follow
    assert box_iou(r.detections[0].box_xyxy, want.box_xyxy) >= 0.7


def test_requery_on_the_same_frame_reuses_masks_and_crops(model_dir):
    det = Detector.from_dir(model_dir)
    scene = make_scene(12, n_objects=5)
    first = det.detect(scene.image, "pick the " + scene.objects[0].label)
    assert first.work["cache_hit"] == 0 and first.work["encoder_calls"] == 1
    assert first.work["decoder_calls"] > 0 and first.work["crops"] > 0
    again = det.detect(scene.image.copy(), "pick the " + scene.objects[1].label)
    assert again.work["cache_hit"] == 1
    assert (again.work["decoder_calls"], again.work["crops"], again.work["encoder_calls"]) == (0, 0, 0)
    assert again.work["masks"] == first.work["masks"]
    assert box_iou(again.detections[0].box_xyxy, scene.objects[1].box_xyxy) >= MIN_IOU[scene.objects[1].shape]
    det.clear_cache()
    cleared = det.detect(scene.image, "pick the " + scene.objects[1].label)
    assert cleared.work["cache_hit"] == 0 and cleared.work["encoder_calls"] == 1
    # a changed frame is computed afresh
    other = make_scene(13, n_objects=5)
    fresh = det.detect(other.image, "pick the " + other.objects[0].label)
    assert fresh.work["cache_hit"] == 0 and fresh.work["decoder_calls"] > 0


def test_thorough_mode_end_to_end(model_dir):
    det = Detector.from_dir(model_dir, mode="thorough")
    scene = make_scene(5, n_objects=4, min_size=70, max_size=110)
    obj = scene.objects[0]
    r = det.detect(scene.image, f"pick the {obj.label}")
    assert r.work["decoder_calls"] == 256
    assert len(r.detections) == 1
    assert box_iou(r.detections[0].box_xyxy, obj.box_xyxy) >= MIN_IOU[obj.shape]
    assert det.detect(scene.image, "pick the pink elephant").detections == []


def test_fast_mode_needs_far_fewer_decoder_calls(det, model_dir):
    scene = make_scene(5, n_objects=4, min_size=70, max_size=110)
    fast = det.detect(scene.image, "pick the block", mode="fast")
    assert fast.work["decoder_calls"] * 6 <= 256


def test_huge_frame_is_downscaled_early(det):
    scene = make_scene(14, labels=["blue block", "red ball"])
    big = cv2.resize(scene.image, (7680, 5760), interpolation=cv2.INTER_NEAREST)  # 12x, 8K-wide
    r = det.detect(big, "pick the blue block")
    assert len(r.detections) == 1
    truth = [v * 12 for v in scene.find("blue block")[0].box_xyxy]
    assert box_iou(r.detections[0].box_xyxy, truth) >= 0.7
    assert r.detections[0].mask.shape == big.shape[:2]
    assert r.work["masks"] >= 2


def test_list_of_targets_and_matryoshka(model_dir):
    det = Detector.from_dir(model_dir, matryoshka_dim=11)
    scene = make_scene(15, labels=["yellow block", "purple ball"])
    r = det.detect(scene.image, ["purple ball", "yellow block"])
    assert [d.label for d in r.detections] == ["purple ball", "yellow block"]
    assert det.describe()["clip_dim"] == "11"


@pytest.mark.parametrize("image, match", [
    (np.zeros((48, 64, 3), np.float32), "uint8"),
    (np.zeros((48, 64), np.uint8), "HxWx3"),
    (np.zeros((48, 64, 4), np.uint8), "HxWx3"),
    (np.zeros((0, 64, 3), np.uint8), "empty"),
    ([[1, 2, 3]], "numpy array"),
])
def test_bad_images(det, image, match):
    with pytest.raises(ValueError, match=match):
        det.detect(image, "pick the pen")


@pytest.mark.parametrize("command", ["", "pick the", "   "])
def test_empty_commands(det, command):
    with pytest.raises(ValueError):
        det.detect(make_scene(0).image, command)


def test_bad_options(det, model_dir):
    img = make_scene(0).image
    with pytest.raises(ValueError, match="score_threshold"):
        det.detect(img, "pen", score_threshold=1.5)
    with pytest.raises(ValueError, match="mode"):
        det.detect(img, "pen", mode="turbo")
    with pytest.raises(ValueError, match="mode"):
        Detector.from_dir(model_dir, mode="turbo")


def test_missing_and_corrupt_model_files(model_dir, tmp_path):
    broken = tmp_path / "set"
    shutil.copytree(model_dir, broken)
    (broken / "clip_text.onnx").unlink()
    with pytest.raises(FileNotFoundError, match=r"clip_text\.onnx.*models make-test"):
        Detector.from_dir(broken)
    shutil.copy(model_dir / "clip_text.onnx", broken / "clip_text.onnx")
    (broken / "sam_decoder.onnx").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match=r"sam_decoder\.onnx.*sha256.*models fetch"):
        Detector.from_dir(broken)
    with pytest.raises(ValueError, match=r"sam_decoder\.onnx.*cannot be loaded"):
        Detector.from_dir(broken, verify_hashes=False)
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(ValueError, match="manifest.json"):
        Detector.from_dir(broken)
    (broken / "manifest.json").unlink()
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        Detector.from_dir(broken)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Detector.from_dir(tmp_path / "nowhere")


def test_engine_protocol(det):
    assert det.name
    info = det.describe()
    assert info["kind"] == "known-answer" and info["mode"] == "fast"


def test_static_scene_reuses_the_image_embedding(model_dir):
    det = Detector.from_dir(model_dir)
    scene = make_scene(16, labels=["green block", "orange ball", "blue triangle"])
    first = det.detect(scene.image, "pick the green block")
    assert first.work["encoder_calls"] == 1
    noise = np.random.default_rng(1).integers(-2, 3, scene.image.shape)
    noisy = np.clip(scene.image.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    second = det.detect(noisy, "pick the orange ball")
    assert second.work["cache_hit"] == 0 and second.work["encoder_calls"] == 0
    assert second.work["decoder_calls"] > 0  # masks are still made for the new frame
    assert box_iou(second.detections[0].box_xyxy, scene.find("orange ball")[0].box_xyxy) >= 0.7
    moved = make_scene(17, labels=["green block", "orange ball", "blue triangle"])
    third = det.detect(moved.image, "pick the orange ball")
    assert third.work["encoder_calls"] == 1
    assert box_iou(third.detections[0].box_xyxy, moved.find("orange ball")[0].box_xyxy) >= 0.7
    strict = Detector.from_dir(model_dir, static_tolerance=None)
    strict.detect(scene.image, "pick the green block")
    assert strict.detect(noisy, "pick the green block").work["encoder_calls"] == 1


def test_graph_with_the_wrong_interface(model_dir, tmp_path):
    broken = tmp_path / "swapped"
    shutil.copytree(model_dir, broken)
    shutil.copy(model_dir / "clip_visual.onnx", broken / "clip_text.onnx")
    with pytest.raises(ValueError, match=r"clip_text\.onnx.*interface.*input_ids"):
        Detector.from_dir(broken, verify_hashes=False)


def test_segmenter_options_reach_the_segmenter(model_dir):
    scene = make_scene(18, n_objects=4)
    coarse = Detector.from_dir(model_dir, segmenter_options={"fast_grid": 2, "fast_max_salient": 2})
    r = coarse.detect(scene.image, "pick the block")
    assert r.work["decoder_calls"] <= 2 + 4
    with pytest.raises(ValueError, match="unknown segmenter_options"):
        Detector.from_dir(model_dir, segmenter_options={"grid": 3})


def test_known_answer_manifest(model_dir):
    import json

    from tinyvlm_ros.models.manifest import load_manifest, sha256_file
    doc = json.loads((model_dir / "manifest.json").read_text())
    assert doc["kind"] == "known-answer" and doc["format"] == 1
    assert set(doc["files"]) == {"sam_encoder.onnx", "sam_decoder.onnx", "sam_decoder_window.onnx",
                                 "clip_visual.onnx", "clip_text.onnx",
                                 "bpe_vocab.txt.gz"}
    for name, digest in doc["files"].items():
        assert sha256_file(model_dir / name) == digest
    ms = load_manifest(model_dir)
    assert ms.sam.input_size == 16 * ms.sam.embed_size
    assert ms.clip.context_length == 77


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 5, 3), (12, 900, 3), (900, 12, 3)])
def test_tiny_and_extreme_frames_do_not_crash(det, shape):
    img = np.full(shape, 150, np.uint8)
    img[: max(1, shape[0] // 2), : max(1, shape[1] // 2)] = (220, 30, 30)
    r = det.detect(img, "pick the red block")
    assert isinstance(r, DetectionResult) and r.targets == ["red block"]
    assert r.work["decoder_calls"] >= 1
    for d in r.detections:
        x0, y0, x1, y1 = d.box_xyxy
        assert 0 <= x0 < x1 <= shape[1] and 0 <= y0 < y1 <= shape[0]
        assert d.mask.shape == shape[:2]
