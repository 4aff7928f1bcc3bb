"""ONNX export of the real architectures: interfaces, torch agreement, checkpoint loading.

Needs the export extra (torch, open_clip_torch, segment-anything); skipped with
the reason when it is absent.  Uses the smallest variants (SAM input 512,
TinyCLIP 8M-16) to stay fast; the graphs are the same code as the 1024/61M ones.
"""

import hashlib
import json
import shutil

import numpy as np
import pytest

from export_extra import require_export_extra

torch, export = require_export_extra()

import onnxruntime as ort  # noqa: E402

from tinyvlm_ros import cli  # noqa: E402
from tinyvlm_ros.models import int8_check  # noqa: E402
from tinyvlm_ros.models.manifest import load_manifest  # noqa: E402


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
    assert m["sam"]["encoder"] == "sam_encoder.onnx" and m["clip"]["text"] == "clip_text.onnx"
    # each int8 graph was measured against fp32; the set runs it only when it met every bound
    running = {"sam_decoder": m["sam"]["decoder"], "sam_decoder_window": m["sam"]["decoder_window"],
               "clip_visual": m["clip"]["visual"]}
    for graph, entry in m["int8"].items():
        assert entry["bounds"] == int8_check.INT8_BOUNDS[graph]
        met = all(entry["metrics"][k] >= b for k, b in entry["bounds"].items())
        assert entry["used"] == met == (running[graph] == f"{graph}.int8.onnx")
        assert (random_set / entry["file"]).is_file() == met
        assert all(0.0 <= entry["metrics"][k] <= 1.0 + 1e-6 for k in entry["bounds"])
        assert entry["calibration"]
    assert set(m["int8"]) == {"sam_decoder", "sam_decoder_window", "clip_visual"}
    assert load_manifest(random_set).int8["sam_decoder"].used == m["int8"]["sam_decoder"]["used"]
    assert m["clip"]["embed_dim"] == 512 and m["clip"]["context_length"] == 77
    assert m["clip"]["tokenizer"] == "bpe_vocab.txt.gz"
    for name, digest in m["files"].items():
        assert hashlib.sha256((random_set / name).read_bytes()).hexdigest() == digest
    for name in ("sam_encoder.onnx", "sam_decoder.onnx", "sam_decoder_window.onnx", "clip_visual.onnx",
                 "clip_text.onnx", "bpe_vocab.txt.gz"):
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
        if not (random_set / name).is_file():
            continue  # the int8 variant did not agree with fp32 well enough to be kept
        dec = _session(random_set / name)
        b, n = 4, 3
        masks, iou = dec.run(["low_res_masks", "iou_predictions"], {
            "image_embeddings": emb,
            "point_coords": rng.uniform(0, 512, (b, n, 2)).astype(np.float32),
            "point_labels": np.array([[1, 0, -1]] * b, np.float32),
            "mask_input": np.zeros((b, 1, 128, 128), np.float32),
            "has_mask_input": np.zeros(1, np.float32)})
        assert masks.shape == (b, 3, 128, 128) and iou.shape == (b, 3)
    for name in [n for n in ("clip_visual.onnx", "clip_visual.int8.onnx") if (random_set / n).is_file()]:
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


def _requantized(random_set, tmp_path):
    """The fixture's fp32 graphs with fresh int8 variants, for the keep/drop decision."""
    for name in ("sam_encoder.onnx", "sam_decoder.onnx", "clip_visual.onnx", "clip_text.onnx",
                 "bpe_vocab.txt.gz"):
        shutil.copyfile(random_set / name, tmp_path / name)
    for graph in ("sam_decoder", "clip_visual"):
        export._quantize(tmp_path / f"{graph}.onnx", tmp_path / f"{graph}.int8.onnx")
    m = json.loads((random_set / "manifest.json").read_text())
    files = {g: f"{g}.onnx" for g in ("sam_encoder", "sam_decoder", "clip_visual", "clip_text")}
    images, described = int8_check.default_calibration()
    return files, m, images[:1], described


def test_int8_graphs_are_used_only_when_they_meet_the_bounds(random_set, tmp_path):
    files, m, images, described = _requantized(random_set, tmp_path)
    lax = {g: {k: 0.0 for k in b} for g, b in int8_check.INT8_BOUNDS.items()}
    chosen, report = int8_check.check_int8(tmp_path, files, images, described, sam=m["sam"], clip=m["clip"],
                                           bounds=lax, log=lambda *_: None)
    assert chosen["sam_decoder"] == "sam_decoder.int8.onnx"
    assert chosen["clip_visual"] == "clip_visual.int8.onnx"
    assert all(r["used"] for r in report.values())

    said = []
    strict = {g: {k: 1.01 for k in b} for g, b in int8_check.INT8_BOUNDS.items()}  # no graph can meet it
    chosen, report = int8_check.check_int8(tmp_path, files, images, described, sam=m["sam"], clip=m["clip"],
                                           bounds=strict, log=said.append)
    assert chosen == files                                    # fp32 everywhere
    assert not list(tmp_path.glob("*.int8.onnx"))             # and no unused int8 file left in the set
    assert [r["used"] for r in report.values()] == [False, False]
    assert sum("NOT used" in line for line in said) == 2
    assert 0.5 < report["sam_decoder"]["metrics"]["sign_agreement"] <= 1.0


def test_manifest_int8_section_is_optional_and_checked(random_set, tmp_path):
    for p in random_set.iterdir():
        shutil.copyfile(p, tmp_path / p.name)
    m = json.loads((random_set / "manifest.json").read_text())
    old = {k: v for k, v in m.items() if k != "int8"}         # a set exported before the check
    (tmp_path / "manifest.json").write_text(json.dumps(old))
    assert load_manifest(tmp_path).int8 == {}
    entry = m["int8"]["sam_decoder"]
    entry["used"] = not entry["used"]                         # disagrees with the decoder the set runs
    (tmp_path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="int8.sam_decoder.used"):
        load_manifest(tmp_path)
