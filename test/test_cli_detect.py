"""``tinyvlm detect``: JSON on stdout, annotated PNG, clear errors with exit code 2."""

import json

import cv2
import pytest

from tinyvlm_ros.cli import main
from tinyvlm_ros.testing.models import make_known_answer_set
from tinyvlm_ros.geometry import box_iou
from tinyvlm_ros.testing.scenes import make_scene


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_known_answer_set(tmp_path_factory.mktemp("ka_cli"))


@pytest.fixture(scope="module")
def scene_png(tmp_path_factory):
    scene = make_scene(31, labels=["red block", "blue ball", "green ball"])
    path = tmp_path_factory.mktemp("img") / "scene.png"
    cv2.imwrite(str(path), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
    return scene, path


def test_detect_prints_json_and_writes_png(model_dir, scene_png, tmp_path, capsys):
    scene, path = scene_png
    out = tmp_path / "annotated.png"
    rc = main(["detect", str(path), "-c", "pick the red block and the ball on the left", "--models",
               str(model_dir), "--out", str(out)])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["targets"] == ["red block", "ball"]
    assert [(d["label"], d["role"]) for d in doc["detections"]] == [
        ("red block", "target"), ("ball", "target"), ("ball", "candidate")]  # the other ball follows
    assert doc["understood"] == "red block; ball (leftmost)" and doc["not_understood"] == []
    assert doc["failure"] == ""
    assert box_iou(doc["detections"][0]["box_xyxy"], scene.find("red block")[0].box_xyxy) >= 0.7
    balls = [o for o in scene.objects if o.shape == "ball"]
    leftmost = min(balls, key=lambda o: o.box_xyxy[0] + o.box_xyxy[2])
    assert box_iou(doc["detections"][1]["box_xyxy"], leftmost.box_xyxy) >= 0.7
    assert doc["work"]["decoder_calls"] > 0 and "total" in doc["timings"]
    img = cv2.imread(str(out))
    assert img is not None and img.shape == scene.image.shape
    assert (img != cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR)).any()


def test_models_from_the_cache_default_set_and_options(model_dir, scene_png, tmp_path, monkeypatch, capsys):
    import shutil

    from tinyvlm_ros.models.registry import default_model_set_dir

    _, path = scene_png
    monkeypatch.setenv("TINYVLM_MODELS", str(tmp_path / "cache"))   # the cache; its default set is used
    shutil.copytree(model_dir, default_model_set_dir())
    rc = main(["detect", str(path), "-c", "pick a ball", "--mode", "thorough", "--max", "1",
               "--threshold", "0.6", "--providers", "tensorrt,cpu", "--decoder-window", "0"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "thorough" and doc["work"]["decoder_calls"] == 256
    assert doc["work"]["decoder_full"] == 256  # no window: every prompt on the whole grid
    assert "sam_encoder.onnx on " in doc["runtimes"]
    assert len(doc["detections"]) == 1 and doc["detections"][0]["score"] >= 0.6


def test_absent_object_prints_empty_list(model_dir, scene_png, capsys):
    _, path = scene_png
    assert main(["detect", str(path), "-c", "pick the pink elephant", "--models", str(model_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["detections"] == []


@pytest.mark.parametrize("args, message", [
    (["-c", "pick the"], "names no object"),
    (["-c", "pick the pen", "--models", "/nonexistent/models"], "models fetch"),
])
def test_user_errors_exit_2(model_dir, scene_png, capsys, args, message):
    _, path = scene_png
    if "--models" not in args:
        args = args + ["--models", str(model_dir)]
    assert main(["detect", str(path)] + args) == 2
    assert message in capsys.readouterr().err


def test_missing_models_and_bad_image(model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TINYVLM_MODELS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # an empty cache: no default set
    png = tmp_path / "x.png"
    cv2.imwrite(str(png), make_scene(0).image)
    assert main(["detect", str(png), "-c", "pen"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "cache" / "tinyvlm_ros" / "sets") in err and "models fetch" in err
    assert main(["detect", str(tmp_path / "missing.png"), "-c", "pen", "--models", str(model_dir)]) == 2
    assert "not found" in capsys.readouterr().err
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    assert main(["detect", str(junk), "-c", "pen", "--models", str(model_dir)]) == 2
    assert "cannot be read" in capsys.readouterr().err


def _detect_process(png, command, models):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "tinyvlm_ros.cli", "detect", str(png), "-c", command,
                           "--models", str(models)], capture_output=True, text=True, timeout=120)


def test_prints_the_model_kind_and_warns_on_words_outside_the_known_answer_vocabulary(
        model_dir, scene_png, tmp_path):
    import shutil

    _, path = scene_png
    done = _detect_process(path, "take the scissors and the red block", model_dir)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["model_kind"] == "known-answer"
    first = done.stderr.splitlines()[0]
    assert "KNOWN-ANSWER" in first and doc["models"] in first
    assert "'scissors'" in done.stderr and "vocabulary" in done.stderr
    assert "'red'" not in done.stderr and "'block'" not in done.stderr
    assert [d["label"] for d in doc["detections"]] == ["red block"]

    done = _detect_process(path, "pick the red block", model_dir)
    assert done.returncode == 0 and "vocabulary" not in done.stderr

    # the kind comes from the manifest: the same graphs declared random-weight are said to be so
    other = tmp_path / "declared_random"
    shutil.copytree(model_dir, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["kind"] = "random"
    (other / "manifest.json").write_text(json.dumps(manifest))
    done = _detect_process(path, "take the scissors", other)
    assert done.returncode == 0 and json.loads(done.stdout)["model_kind"] == "random"
    assert "RANDOM-WEIGHT" in done.stderr and "vocabulary" not in done.stderr
