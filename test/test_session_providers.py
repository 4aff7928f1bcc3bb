"""Runtime selection: provider lists, fallback to CPU with the reason, one log line, agreement.

GPU runtimes are tested where this onnxruntime build has them and skipped with
the reason otherwise; OpenVINO where the ``openvino`` package is installed.
"""

import logging

import numpy as np
import onnxruntime as ort
import pytest

from tinyvlm_ros import params
from tinyvlm_ros.engine.detector import Detector
from tinyvlm_ros.engine.session import PROVIDERS, open_session, parse_providers
from tinyvlm_ros.models.manifest import load_manifest
from tinyvlm_ros.testing.models import make_known_answer_set
from tinyvlm_ros.testing.scenes import make_scene


@pytest.fixture(scope="module")
def model_set(tmp_path_factory):
    return load_manifest(make_known_answer_set(tmp_path_factory.mktemp("ka_providers")))


def _encode(sess, image):
    return sess.run(["image_embeddings"], {"image": image})[0]


def test_provider_lists_are_checked():
    assert parse_providers("OpenVINO, cpu") == ("openvino", "cpu")
    assert parse_providers(None) == ("cpu",)
    with pytest.raises(ValueError, match="unknown provider"):
        parse_providers("cpu,gpu")
    with pytest.raises(ValueError, match="at least one"):
        parse_providers(" , ")
    assert params.validate("providers", "openvino,cpu") is None
    assert "unknown provider" in params.validate("providers", "npu")


@pytest.mark.parametrize("name", ["cuda", "tensorrt", "coreml"])
def test_missing_gpu_runtime_falls_back_to_cpu_and_says_why(model_set, name):
    provider = PROVIDERS[name]
    if provider in ort.get_available_providers():
        pytest.skip(f"this onnxruntime build has {provider}; the fallback cannot be shown here")
    sess = open_session(model_set.sam.encoder, ["image"], ["image_embeddings"], 1, f"{name},cpu")
    assert sess.runtime == "cpu"
    assert len(sess.skipped) == 1 and provider in sess.skipped[0]


@pytest.mark.parametrize("name", ["cuda", "tensorrt", "coreml"])
def test_gpu_runtime_runs_where_available(model_set, name):
    provider = PROVIDERS[name]
    if provider not in ort.get_available_providers():
        pytest.skip(f"no {provider} in onnxruntime {ort.__version__} here (has "
                    f"{', '.join(ort.get_available_providers())}); install the matching onnxruntime build")
    x = np.random.default_rng(0).standard_normal((1, 3, 512, 512)).astype(np.float32)
    sess = open_session(model_set.sam.encoder, ["image"], ["image_embeddings"], 1, name)
    assert sess.runtime == name
    ref = open_session(model_set.sam.encoder, ["image"], ["image_embeddings"], 1)
    np.testing.assert_allclose(_encode(sess, x), _encode(ref, x), atol=1e-3)


def test_openvino_runs_the_same_graphs_with_the_same_answers(model_set):
    pytest.importorskip("openvino", reason="the openvino package is not installed (pip install openvino)")
    x = np.random.default_rng(0).standard_normal((1, 3, 512, 512)).astype(np.float32)
    ov = open_session(model_set.sam.encoder, ["image"], ["image_embeddings"], 1, "openvino,cpu")
    cpu = open_session(model_set.sam.encoder, ["image"], ["image_embeddings"], 1, "cpu")
    assert ov.runtime == "openvino" and not ov.skipped
    np.testing.assert_allclose(_encode(ov, x), _encode(cpu, x), atol=1e-4)
    # the whole detector on OpenVINO finds what it finds on ONNX Runtime
    scene = make_scene(seed=5, width=640, height=480, n_objects=5)
    command = f"pick the {scene.objects[0].label}"
    a = Detector(model_set, providers="openvino").detect(scene.image, command)
    b = Detector(model_set, providers="cpu").detect(scene.image, command)
    assert a.detections and [d.label for d in a.detections] == [d.label for d in b.detections]
    assert np.allclose(a.detections[0].box_xyxy, b.detections[0].box_xyxy, atol=1.0)


def test_detector_logs_one_line_naming_each_graphs_runtime(model_set, caplog):
    with caplog.at_level(logging.INFO, logger="tinyvlm_ros.engine"):
        det = Detector(model_set, providers="cuda,cpu")
    lines = [r.getMessage() for r in caplog.records if r.name == "tinyvlm_ros.engine"]
    assert len(lines) == 1
    for graph in ("sam_encoder.onnx", "sam_decoder.onnx", "sam_decoder_window.onnx", "clip_visual.onnx",
                  "clip_text.onnx"):
        assert graph in lines[0]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert "on cpu (skipped cuda" in lines[0]
    assert det.describe()["runtimes"] == lines[0].split("graphs: ", 1)[1]
