"""Shared helpers of the MCU tests: random tables, frames and the bit-exact comparison."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from tinyvlm_ros.mcu.blob import Model, Table, unpack_model, unpack_table
from tinyvlm_ros.mcu.blob import table_from_embeddings
from tinyvlm_ros.mcu.random_model import DEFAULT_MODEL_PATH
from tinyvlm_ros.mcu.link import InferResult, McuLink, ram_row
from tinyvlm_ros.mcu import reference as ref

ROOT = Path(__file__).resolve().parents[1]


def default_model() -> Model:
    return unpack_model(DEFAULT_MODEL_PATH.read_bytes())


def random_table(rng: np.random.Generator, rows: int = 24, dims: int = 64) -> bytes:
    return table_from_embeddings(rng.normal(size=(rows, 128)), dims)


def random_frame(rng: np.random.Generator, model: Model, i: int) -> np.ndarray:
    """Noise, flat colour or a generated scene, so both saturated and quiet activations are covered."""
    shape = (model.in_h, model.in_w, model.in_c)
    kind = i % 3
    if kind == 0:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if kind == 1:
        base = rng.integers(0, 256, (1, 1, model.in_c))
        return np.clip(base + rng.integers(-8, 9, shape), 0, 255).astype(np.uint8)
    from tinyvlm_ros.testing.scenes import make_scene

    return make_scene(seed=int(rng.integers(1 << 30)), width=model.in_w, height=model.in_h,
                      n_objects=3).image[:, :, :model.in_c]


def box_tuples(boxes: Sequence) -> List[tuple]:
    out = []
    for b in boxes:
        if isinstance(b, dict):
            out.append((b["row"], b["score_q15"], b["x0"], b["y0"], b["x1"], b["y1"], b["cells"], b["rank"]))
        else:
            out.append((b.row, b.score_q15, b.x0, b.y0, b.x1, b.y1, b.cells, b.rank))
    return out


def check_bit_exact(link: McuLink, model: Model, table_blob: Optional[bytes], rng: np.random.Generator,
                    n: int, rows: Sequence[int], read_embed_every: int = 1,
                    vocab_blob: Optional[bytes] = None, vocab_rows: Sequence[int] = ()) -> int:
    """Run n frames on the device and the reference; assert scores, boxes (and embeddings) are equal.

    ``rows`` are RAM table rows, ``vocab_rows`` flash vocabulary rows; the query names both.
    """
    table: Optional[Table] = unpack_table(table_blob) if table_blob is not None else None
    vocab: Optional[Table] = unpack_table(vocab_blob) if vocab_blob is not None else None
    ids = [ram_row(r) for r in rows] + list(vocab_rows)
    checked = 0
    for i in range(n):
        thr = float(rng.uniform(-0.05, 0.3))
        max_boxes = int(rng.integers(1, 17))
        link.set_query(ids, threshold=thr, max_boxes=max_boxes)
        img = random_frame(rng, model, i)
        res: InferResult = link.infer(img, want_scores=True)
        thr_q = int(round(thr * 32768))
        emb, scores, boxes = ref.infer(model, table, img, ids, thr_q, max_boxes, vocab=vocab)
        np.testing.assert_array_equal(res.scores, scores, err_msg=f"scores differ on frame {i}")
        assert box_tuples(res.boxes) == box_tuples(boxes), f"boxes differ on frame {i}"
        if read_embed_every and i % read_embed_every == 0:
            np.testing.assert_array_equal(link.read_embed(), emb, err_msg=f"embeddings differ on frame {i}")
        checked += 1
    return checked


def make_model_dir(root: Path, teacher: Path, seed: int = 7) -> Path:
    """A trained-model directory in the format `tinyvlm mcu distill` writes, with random weights.

    The firmware and the runtime cannot tell it from a trained one (its blob is not flagged random), so it
    exercises the plumbing (text ids, vocabularies, model-id checks) in seconds; it detects nothing.
    """
    import json

    from tinyvlm_ros.mcu.blob import pack_model
    from tinyvlm_ros.mcu.random_model import random_model
    from tinyvlm_ros.models.manifest import load_manifest

    root.mkdir(parents=True, exist_ok=True)
    model = random_model(seed=seed, n_calib=2)
    model.flags = 0
    (root / "model.tvm").write_bytes(pack_model(model))
    teacher_dim = load_manifest(teacher).clip.embed_dim
    proj = np.random.default_rng(seed).normal(size=(teacher_dim, model.embed_dim)).astype(np.float32)
    np.save(root / "text_projection.npy", proj)
    (root / "distill.json").write_text(json.dumps({
        "model_id": model.model_id, "dims": [16, 32, 64, 128], "default_dim": 32,
        "embed_dim": model.embed_dim, "teacher_dim": teacher_dim, "teacher": str(teacher),
        "thresholds": {"16": 0.3, "32": 0.3, "64": 0.3, "128": 0.3}}))
    return root
