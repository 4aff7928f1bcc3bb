"""Bit-exact numpy reference of the firmware's integer arithmetic.

Every function mirrors one C kernel in ``firmware/core`` and computes in int64, so
its results equal the firmware's byte for byte (the firmware's int32 accumulators
never overflow for blobs that pass its validation).  Tests compare the real
firmware against these; the exporter calibrates random models with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from tinyvlm_ros.mcu import protocol_constants as pc
from tinyvlm_ros.mcu.blob import Layer, Model, Table


def image_to_input(image: np.ndarray) -> np.ndarray:
    """Convert HxWxC uint8 pixels to the int8 model input (pixel - 128)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {img.dtype}")
    return (img.astype(np.int16) - 128).astype(np.int8)


def _patches(x: np.ndarray, k: int, stride: int, pad: int, out_h: int, out_w: int) -> np.ndarray:
    """[H, W, C] int64 (zero point already subtracted) -> [out_h, out_w, k, k, C] with zero padding."""
    h, w, c = x.shape
    xp = np.zeros((h + 2 * pad + stride * k, w + 2 * pad + stride * k, c), np.int64)
    xp[pad:pad + h, pad:pad + w] = x
    out = np.empty((out_h, out_w, k, k, c), np.int64)
    for ky in range(k):
        for kx in range(k):
            out[:, :, ky, kx, :] = xp[ky:ky + stride * out_h:stride, kx:kx + stride * out_w:stride, :]
    return out


def layer_acc(layer: Layer, x: np.ndarray) -> np.ndarray:
    """int32 accumulators [out_h, out_w, out_c] of one layer before requantization."""
    xs = x.astype(np.int64) - layer.in_zp
    pt = _patches(xs, layer.k, layer.stride, layer.pad, layer.out_h, layer.out_w)
    w = layer.weights.astype(np.int64)
    if layer.op == "conv":
        acc = np.tensordot(pt, w, axes=([2, 3, 4], [1, 2, 3]))
    else:
        acc = np.einsum("hwijc,ijc->hwc", pt, w)
    return acc + layer.bias.astype(np.int64)


def requantize(acc: np.ndarray, mult: np.ndarray, shift: np.ndarray, out_zp: int, act_min: int,
               act_max: int) -> np.ndarray:
    """Per-channel (last axis) requantization to int8, as ``tvlm_requant`` in tvlm_kernels.h.

    shift >= 32: ``v = (acc*mult + 2^31) >> 32`` (SMMULR), then ``(v + 2^(s-1)) >> s`` with s = shift - 32;
    shift < 32: ``(acc*mult + 2^(shift-1)) >> shift`` clamped to +-10^6.  Then + out_zp, clamp.
    """
    a = np.asarray(acc, np.int64)
    m = np.broadcast_to(np.asarray(mult, np.int64), a.shape)
    s = np.broadcast_to(np.asarray(shift, np.int64), a.shape)
    prod = a * m
    hi = (prod + (np.int64(1) << 31)) >> 32
    s2 = np.maximum(s - 32, 0)
    rnd = np.where(s2 > 0, np.int64(1) << np.maximum(s2 - 1, 0), 0)
    fast = (hi + rnd) >> s2
    sl = np.clip(s, 1, 62)
    slow = np.clip((prod + (np.int64(1) << (sl - 1))) >> sl, -1000000, 1000000)
    v = np.where(s >= 32, fast, slow)
    return np.clip(v + out_zp, act_min, act_max).astype(np.int8)


def run_layer(layer: Layer, x: np.ndarray) -> np.ndarray:
    """One layer, int8 HWC in -> int8 HWC out."""
    return requantize(layer_acc(layer, x), layer.mult, layer.shift, layer.out_zp, layer.act_min,
                      layer.act_max)


def run_model(model: Model, image: np.ndarray) -> np.ndarray:
    """uint8 [in_h, in_w, in_c] image -> int8 region embeddings [grid_h, grid_w, embed_dim]."""
    if image.shape != (model.in_h, model.in_w, model.in_c):
        raise ValueError(f"image shape {image.shape}, model wants {(model.in_h, model.in_w, model.in_c)}")
    x = image_to_input(image)
    for layer in model.layers:
        x = run_layer(layer, x)
    return x


def isqrt(x: np.ndarray) -> np.ndarray:
    """floor(sqrt(x)) for non-negative integers below 2^32, exactly."""
    x = np.asarray(x, np.int64)
    r = np.floor(np.sqrt(x.astype(np.float64))).astype(np.int64)
    r = np.where(r * r > x, r - 1, r)
    r = np.where((r + 1) * (r + 1) <= x, r + 1, r)
    return r


def score_regions(embed: np.ndarray, table: Table, rows: Sequence[int]) -> np.ndarray:
    """Q15 cosine scores int16 [len(rows), cells] of each region's prefix against table rows."""
    d = table.dims
    e = embed.reshape(-1, embed.shape[-1])[:, :d].astype(np.int64)
    n = isqrt(np.sum(e * e, axis=1))
    t = table.data[list(rows)].astype(np.int64)
    dot = t @ e.T
    sh = pc.TABLE_SCALE_Q - pc.SCORE_Q
    num = (dot * table.scale_q24[list(rows)].astype(np.int64)[:, None] + (1 << (sh - 1))) >> sh
    safe = np.where(n == 0, 1, n)[None, :]
    q = np.sign(num) * (np.abs(num) // safe)  # C division truncates toward zero
    q = np.where(n[None, :] == 0, 0, q)
    return np.clip(q, -32768, 32767).astype(np.int16)


def resolve_row(vocab: Optional[Table], ram: Optional[Table], row_id: int) -> Tuple[Table, int]:
    """Return the table and row a row id names (``ROW_RAM | i``: RAM table row i, else vocabulary row i)."""
    table = ram if row_id & pc.ROW_RAM else vocab
    row = row_id & (pc.ROW_RAM - 1)
    if table is None or row >= table.rows:
        raise ValueError(f"row id {row_id:#06x} names no row")
    return table, row


def score_row_ids(embed: np.ndarray, vocab: Optional[Table], ram: Optional[Table],
                  row_ids: Sequence[int]) -> np.ndarray:
    """Q15 scores int16 [len(row_ids), cells], each row over its own table's prefix, as the firmware."""
    cells = int(np.prod(embed.shape[:-1]))
    out = np.empty((len(row_ids), cells), np.int16)
    for k, rid in enumerate(row_ids):
        table, row = resolve_row(vocab, ram, int(rid))
        out[k] = score_regions(embed, table, [row])[0]
    return out


@dataclass
class Box:
    """A group of hot cells, in grid cells (x1/y1 exclusive), as the firmware reports it."""

    row: int
    score_q15: int
    x0: int
    y0: int
    x1: int
    y1: int
    cells: int
    rank: int


def group_boxes(scores: np.ndarray, grid_w: int, grid_h: int, rows: Sequence[int], threshold_q15: int,
                max_boxes: int) -> List[Box]:
    """4-connected hot cells -> boxes, best first (score desc, query index, first raster cell)."""
    found: List[Tuple[Tuple[int, int, int], Box]] = []
    for qi, row in enumerate(rows):
        s = np.asarray(scores[qi]).reshape(grid_h, grid_w)
        hot = s >= threshold_q15
        seen = np.zeros_like(hot)
        for start in range(grid_w * grid_h):
            sy, sx = divmod(start, grid_w)
            if seen[sy, sx] or not hot[sy, sx]:
                continue
            stack = [(sy, sx)]
            seen[sy, sx] = True
            ys, xs, best = [], [], -32768
            while stack:
                y, x = stack.pop()
                ys.append(y)
                xs.append(x)
                best = max(best, int(s[y, x]))
                for ny, nx in ((y, x - 1), (y, x + 1), (y - 1, x), (y + 1, x)):
                    if 0 <= ny < grid_h and 0 <= nx < grid_w and hot[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
            box = Box(int(row), best, min(xs), min(ys), max(xs) + 1, max(ys) + 1, len(xs), qi)
            found.append(((-best, qi, start), box))
    found.sort(key=lambda kv: kv[0])
    return [b for _, b in found[:min(max_boxes, pc.MAX_BOXES)]]


def infer(model: Model, ram: Optional[Table], image: np.ndarray, row_ids: Sequence[int], threshold_q15: int,
          max_boxes: int, vocab: Optional[Table] = None) -> Tuple[np.ndarray, np.ndarray, List[Box]]:
    """Full frame as the firmware runs it: (embeddings, scores [len(row_ids), cells], boxes).

    ``row_ids`` name rows of the RAM table (``ROW_RAM | i``) and of the flash vocabulary (``i``).
    """
    emb = run_model(model, image)
    scores = score_row_ids(emb, vocab, ram, row_ids)
    boxes = group_boxes(scores, model.grid_w, model.grid_h, row_ids, threshold_q15, max_boxes)
    return emb, scores, boxes
