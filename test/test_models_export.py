"""ONNX export of the real architectures: interfaces, torch agreement, checkpoint loading.

Needs the export extra (torch, open_clip_torch, segment-anything); skipped with
the reason when it is absent.  Uses the smallest variants (SAM input 512,
TinyCLIP 8M-16) to stay fast; the graphs are the same code as the 1024/61M ones.
"""

import hashlib
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="export tests need torch (the export extra)")
try:
    from tinyvlm_ros.models import export
    export.import_open_clip()
    export.import_segment_anything()
except ImportError as exc:  # pragma: no cover - depends on the environment
    pytest.skip(f"export extra incomplete: {exc}", allow_module_level=True)

import onnxruntime as ort  # noqa: E402

from tinyvlm_ros import cli  # noqa: E402


@pytest.fixture(scope="module")
def random_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("random512")
    rc = cli.main(["models", "make-test", str(out), "--random", "--clip", "8m-16", "--sam-input", "512",
                   "--int8"])
    assert rc == 0
    return out


def test_manifest_follows_the_contract(random_set):
    m = json.loads((random_set / "manifest.json").read_text())
    assert m["format"] == 1 and m["kind"] == "random"
    assert m["sam"]["input_size"] == 512 and m["sam"]["embed_size"] == 32
    assert m["sam"]["decoder"] == "sam_decoder.int8.onnx" and m["sam"]["encoder"] == "sam_encoder.onnx"
    assert m["clip"]["visual"] == "clip_visual.int8.onnx" and m["clip"]["text"] == "clip_text.onnx"
    assert m["clip"]["embed_dim"] == 512 and m["clip"]["context_length"] == 77
    assert m["clip"]["tokenizer"] == "bpe_vocab.txt.gz"
    for name, digest in m["files"].items():
        assert hashlib.sha256((random_set / name).read_bytes()).hexdigest() == digest
    for name in ("sam_encoder.onnx", "sam_decoder.onnx", "clip_visual.onnx", "clip_text.onnx",
                 "bpe_vocab.txt.gz"):
        assert name in m["files"]
    diffs = m["source"]["max_abs_diff_vs_torch"]
    assert diffs["sam_encoder.onnx"] < 1e-3 and diffs["clip_text.onnx"] < 1e-3


def _session(path):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def test_graphs_have_the_documented_io(random_set):
    rng = np.random.default_rng(0)
    enc = _session(random_set / "sam_encoder.onnx")
    assert [i.name for i in enc.get_inputs()] == ["image"]
    (emb,) = enc.run(["image_embeddings"], {"image": rng.standard_normal((1, 3, 512, 512), np.float32)})
    assert emb.shape == (1, 256, 32, 32) and emb.dtype == np.float32
    for name in ("sam_decoder.onnx", "sam_decoder.int8.onnx"):
        dec = _session(random_set / name)
        b, n = 4, 3
        masks, iou = dec.run(["low_res_masks", "iou_predictions"], {
            "image_embeddings": emb,
            "point_coords": rng.uniform(0, 512, (b, n, 2)).astype(np.float32),
            "point_labels": np.array([[1, 0, -1]] * b, np.float32),
            "mask_input": np.zeros((b, 1, 128, 128), np.float32),
            "has_mask_input": np.zeros(1, np.float32)})
        assert masks.shape == (b, 3, 128, 128) and iou.shape == (b, 3)
    for name in ("clip_visual.onnx", "clip_visual.int8.onnx"):
        (img,) = _session(random_set / name).run(
            ["image_embeds"], {"pixel_values": rng.standard_normal((5, 3, 224, 224), np.float32)})
        assert img.shape == (5, 512)
    ids = np.zeros((3, 77), np.int64)
    ids[:, 0], ids[:, 1], ids[:, 2] = 49406, 320, 49407
    (txt,) = _session(random_set / "clip_text.onnx").run(["text_embeds"], {"input_ids": ids})
    assert txt.shape == (3, 512) and np.isfinite(txt).all()


def test_checkpoints_round_trip_through_the_loaders(tmp_path):
    # Self-made checkpoints in the upstream layouts: SAM keys flat (with the derived buffer older
    # TinyViT code saved), TinyCLIP keys wrapped in "state_dict" with a DDP "module." prefix.
    torch.manual_seed(1)
    sam = export.build_sam(512)
    state = dict(sam.state_dict())
    state["image_encoder.layers.1.blocks.0.attn.attention_bias_idxs"] = torch.zeros(49, 49, dtype=torch.long)
    torch.save(state, tmp_path / "mobile_sam.pt")
    torch.manual_seed(2)
    loaded = export.build_sam(512, tmp_path / "mobile_sam.pt")
    key = "mask_decoder.iou_prediction_head.layers.0.weight"
    assert torch.equal(loaded.state_dict()[key], sam.state_dict()[key])

    clip_model, _ = export.build_clip("8m-16")
    torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in clip_model.state_dict().items()}},
               tmp_path / "tinyclip.pt")
    again, spec = export.build_clip("8m-16", tmp_path / "tinyclip.pt")
    assert spec.name == "tinyclip-8m-16"
    assert torch.equal(again.state_dict()["visual.proj"], clip_model.state_dict()["visual.proj"])

    with pytest.raises(ValueError, match="tinyclip.pt.*does not fit"):
        export.build_sam(512, tmp_path / "tinyclip.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt.pt"):
        export.build_clip("8m-16", tmp_path / "corrupt.pt")
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        export.build_sam(512, tmp_path / "absent.pt")


def test_export_needs_both_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="both"):
        export.export_model_set(tmp_path, sam_ckpt=tmp_path / "mobile_sam.pt")
    assert cli.main(["models", "export", "--sam", str(tmp_path / "nope.pt"), "--clip-ckpt",
                     str(tmp_path / "nope2.pt"), "--out", str(tmp_path / "o")]) == 2


def test_check_catches_a_wrong_graph(tmp_path):
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    x = torch.randn(2, 4)
    export._export_graph(torch, a, (x,), tmp_path / "a.onnx", ["x"], ["y"], {})
    assert export._check_graph(torch, a, (x,), tmp_path / "a.onnx", ["x"], 1e-3, lambda *_: None) < 1e-5
    with pytest.raises(export.ExportCheckError, match="a.onnx"):
        export._check_graph(torch, b, (x,), tmp_path / "a.onnx", ["x"], 1e-3, lambda *_: None)
