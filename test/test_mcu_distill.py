"""Distillation on tiny data: loss and cosine move, CFQ int8 agrees, the blob is bit-exact, QEMU detects."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from mcu_helpers import check_bit_exact  # noqa: E402
from tinyvlm_ros.mcu.blob import unpack_model  # noqa: E402
from tinyvlm_ros.distill.train import DEFAULT_DIMS, build_dataset, parse_dims, train  # noqa: E402
from tinyvlm_ros.mcu.trained_model import (DistilledMcuEngine, engine_inputs, load_distilled,  # noqa: E402
                                           refine_box)
from tinyvlm_ros.mcu.emulate import Emulator, build, qemu_available  # noqa: E402
from tinyvlm_ros.mcu.blob import table_from_embeddings  # noqa: E402
from tinyvlm_ros.mcu.link import McuLink  # noqa: E402
from tinyvlm_ros.distill.quantize import benchmark_scene, export_distilled  # noqa: E402
from tinyvlm_ros.mcu.reference import Box  # noqa: E402
from tinyvlm_ros.testing.models import make_known_answer_set  # noqa: E402

DIMS = list(DEFAULT_DIMS)


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """Teacher set, 24 generated scenes, 6 epochs, CFQ export: a few seconds on two cores."""
    root = tmp_path_factory.mktemp("distill")
    teacher = make_known_answer_set(root / "teacher")
    out = root / "out"
    data = build_dataset(teacher, out, generate=24, seed=3, progress=False)
    student, proj, history = train(data, out, DIMS, epochs=6, batch=8, lr=5e-3, progress=False)
    report = export_distilled(student, proj, data, out, DIMS, teacher, default_dim=64, history=history,
                              n_calib=16, n_scenes=4, refit_steps=30)
    return {"teacher": teacher, "out": out, "data": data, "history": history, "report": report}


def test_dims_are_validated():
    assert parse_dims("16,32,64,128") == [16, 32, 64, 128]
    for bad in ("16,15", "32,16", "0", "16,256", "a"):
        with pytest.raises(ValueError):
            parse_dims(bad)


def test_loss_falls_and_student_moves_toward_teacher(distilled):
    h = distilled["history"]
    assert h[-1]["loss"] < 0.8 * h[0]["loss"]
    assert h[-1]["val_loss"] < h[0]["val_loss"]
    for m in DIMS:
        assert h[-1][f"val_cos@{m}"] > h[0][f"val_cos@{m}"], f"cosine at prefix {m} did not rise"
    assert (distilled["out"] / "curves.png").stat().st_size > 1000


def test_resume_continues_from_checkpoint(distilled, tmp_path):
    out = tmp_path / "resume"
    out.mkdir()
    data = distilled["data"]
    train(data, out, DIMS, epochs=1, batch=8, progress=False)
    _, _, history = train(data, out, DIMS, epochs=2, batch=8, progress=False, resume=True)
    assert [r["epoch"] for r in history] == [1, 2]


def test_quantization_agreement_is_reported(distilled):
    rep = distilled["report"]
    assert sorted(int(k) for k in rep["prefix"]) == DIMS
    for m in DIMS:
        p = rep["prefix"][str(m)]
        assert p["float_int8_cosine"] > 0.97, p  # CFQ keeps the int8 embeddings on the float ones
        assert 0.0 <= p["top1_agreement"] <= 1.0
    meta = json.loads((distilled["out"] / "distill.json").read_text())
    assert meta["model_bytes"] < 64 * 1024 and set(meta["thresholds"]) == {str(m) for m in DIMS}


def test_engine_inputs_without_torch_state(distilled):
    dm = load_distilled(distilled["out"])
    assert dm.projection.shape == (16, 128) and dm.default_dim == 64
    inputs = engine_inputs(distilled["out"], teacher_dir=distilled["teacher"])
    emb = inputs.text_embed(["red block", "blue ball"])
    assert emb.shape == (2, 128) and np.all(np.isfinite(emb))
    assert inputs.dims == 64 and 0.0 < inputs.score_threshold < 1.0
    with pytest.raises(ValueError):
        engine_inputs(distilled["out"], dims=30)


def test_refine_box_tracks_coverage():
    scores = np.full((12, 12), -8000, np.int16)
    scores[4, 5] = scores[4, 6] = 32767 // 1  # two fully covered cells ...
    scores[4, 7] = int(0.5 * 32768)  # ... and half of the next one (cosine 0.5 = coverage 1/2)
    x0, y0, x1, y1 = refine_box(scores.reshape(-1), Box(0, 32767, 5, 4, 7, 5, 2, 0), 12, 12, cover_weight=1.0)
    assert x0 == pytest.approx(5.0, abs=0.1) and x1 == pytest.approx(7.5, abs=0.1)
    assert y0 == pytest.approx(4.0, abs=0.1) and y1 == pytest.approx(5.0, abs=0.1)


def test_trained_blob_is_bit_exact_on_host_firmware(distilled):
    build("host")
    out = distilled["out"]
    model = unpack_model((out / "model.tvm").read_bytes())
    inputs = engine_inputs(out, teacher_dir=distilled["teacher"])
    phrases = ["red block", "blue ball", "green triangle", "yellow block"]
    table = table_from_embeddings(inputs.text_embed(phrases), 64, model.model_id)
    with Emulator("host", model=str(out / "model.tvm")) as emu, McuLink(emu.url, timeout=10.0) as link:
        assert link.info["model_ok"] == 1 and link.info["model_id"] == model.model_id
        link.load_table(table)
        assert check_bit_exact(link, model, table, np.random.default_rng(5), 12, [0, 1, 2, 3]) == 12


@pytest.mark.skipif(not qemu_available(), reason="qemu-system-arm not installed")
def test_qemu_detect_returns_boxes(distilled):
    build("qemu-m4")
    inputs = engine_inputs(distilled["out"], teacher_dir=distilled["teacher"])
    with Emulator("qemu-m4", model=str(inputs.model_path)) as emu:
        with inputs.engine(emu.url, timeout=5.0, score_threshold=0.0) as engine:
            assert isinstance(engine, DistilledMcuEngine)
            for seed in (1, 2):
                scene, target = benchmark_scene(seed)
                res = engine.detect(scene.image, f"pick the {target}")
                assert res.targets == [target] and res.detections, "the firmware found no box"
                x0, y0, x1, y1 = res.detections[0].box_xyxy
                assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
                assert res.work["mcu_macs"] >= 4446720  # the encoder alone; scoring adds a little


def test_image_directory_gives_region_targets(distilled, tmp_path):
    import cv2

    from tinyvlm_ros.testing.scenes import make_scene

    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        cv2.imwrite(str(images / f"{i}.png"), make_scene(seed=i, width=320, height=240).image[:, :, ::-1])
    (images / "notes.txt").write_text("not an image")
    data = build_dataset(distilled["teacher"], tmp_path / "out", images=images, progress=False)
    assert data["image"].shape == (2, 96, 96, 3) and data["target"].shape == (2, 12, 12, 16)
    assert np.allclose(np.linalg.norm(data["target"], axis=-1), 1.0, atol=1e-4)
    with pytest.raises(ValueError):
        build_dataset(distilled["teacher"], tmp_path / "empty", images=tmp_path / "missing", progress=False)
