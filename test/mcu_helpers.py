"""Shared helpers of the MCU tests: random tables, frames and the bit-exact comparison."""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import numpy as np

from tinyvlm_ros.mcu.blob import Model, Table, unpack_model, unpack_table
from tinyvlm_ros.mcu.blob import table_from_embeddings
from tinyvlm_ros.mcu.random_model import DEFAULT_MODEL_PATH
from tinyvlm_ros.mcu.link import InferResult, McuLink
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


def check_bit_exact(link: McuLink, model: Model, table_blob: bytes, rng: np.random.Generator, n: int,
                    rows: Sequence[int], read_embed_every: int = 1) -> int:
    """Run n frames on the device and the reference; assert scores, boxes (and embeddings) are equal."""
    table: Table = unpack_table(table_blob)
    checked = 0
    for i in range(n):
        thr = float(rng.uniform(-0.05, 0.3))
        max_boxes = int(rng.integers(1, 17))
        link.set_query(rows, threshold=thr, max_boxes=max_boxes)
        img = random_frame(rng, model, i)
        res: InferResult = link.infer(img, want_scores=True)
        thr_q = int(round(thr * 32768))
        emb, scores, boxes = ref.infer(model, table, img, rows, thr_q, max_boxes)
        np.testing.assert_array_equal(res.scores, scores, err_msg=f"scores differ on frame {i}")
        assert box_tuples(res.boxes) == box_tuples(boxes), f"boxes differ on frame {i}"
        if read_embed_every and i % read_embed_every == 0:
            np.testing.assert_array_equal(link.read_embed(), emb, err_msg=f"embeddings differ on frame {i}")
        checked += 1
    return checked
