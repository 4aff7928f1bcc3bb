"""Measured agreement and cost of the speed-ups that claim to keep answers, graph by graph.

* **Windowed decoder vs whole grid.**  For fast mode's candidate prompts on a
  frame (saliency seeds + the coverage grid), every output of the windowed
  decoder is compared with the whole-grid decoder's on the window: IoU of the
  mask (logits > 0) and agreement of the logit signs, and the change of the
  predicted IoU.  This is the real graphs' own output (never the oracle's).
* **Runtimes and int8.**  Each graph of the set is run as fp32 on ONNX Runtime
  (the reference), as its int8 variant on ONNX Runtime where the set has one,
  and as fp32 on OpenVINO where it is installed, on the same inputs: time per
  call (wall and CPU) and agreement with the reference (cosine of embeddings,
  mask IoU and sign agreement of decoder logits).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from tinyvlm_ros.engine.segmenter import SamSegmenter, grid_points, saliency_points, window_origins
from tinyvlm_ros.engine.session import fp32_twin, open_session

#: Window prompts per call in the runtime comparison (fast mode's saliency batch is ~10-24).
WINDOW_BATCH = 16
#: Whole-grid prompts per call (fast mode's coverage batch).
FULL_BATCH = 4
#: Crops per visual-tower call.
CROP_BATCH = 16


def _mask_agreement(a: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per [..., H, W] pair of logit maps: IoU of the positive sets (1 when both empty) and sign agreement."""
    pa, pb = a > 0, b > 0
    inter = (pa & pb).sum(axis=(-1, -2)).astype(np.float64)
    union = (pa | pb).sum(axis=(-1, -2)).astype(np.float64)
    iou = np.where(union > 0, inter / np.maximum(union, 1.0), 1.0)
    sign = (pa == pb).mean(axis=(-1, -2))
    return iou, sign


def _stats(values: Sequence[float]) -> Dict[str, float]:
    v = np.asarray(values, np.float64)
    if not len(v):
        return {}
    return {"median": round(float(np.median(v)), 4), "p5": round(float(np.percentile(v, 5)), 4),
            "min": round(float(v.min()), 4), "max": round(float(v.max()), 4), "n": int(len(v))}


def _prompts(image: np.ndarray, scale: float) -> np.ndarray:
    """Fast mode's candidate prompts of a frame (saliency seeds + 4x4 grid) in the S frame."""
    h, w = image.shape[:2]
    seeds = np.asarray(saliency_points(image), np.float32).reshape(-1, 2)
    return np.concatenate([seeds, grid_points(w, h, 4)]) * scale


def window_agreement(seg: SamSegmenter, images: Sequence[np.ndarray]) -> Dict[str, Any]:
    """Windowed vs whole-grid decoding of fast mode's candidate prompts, per window side."""
    out: Dict[str, Any] = {}
    e = seg.embed_size
    for w in seg.window_sides:
        ious: List[float] = []
        signs: List[float] = []
        iou_pred: List[float] = []
        for image in images:
            emb, scale, _ = seg.embed(image)
            pts = _prompts(image, scale)
            # the class's methods: the real graphs even when a benchmark oracle shadows the instance's
            full_m, full_q = SamSegmenter.run_decoder(seg, emb, pts)
            origins = window_origins(pts, w, e)
            windows = np.stack([emb[0, :, oy:oy + w, ox:ox + w] for ox, oy in origins])
            win_m, win_q = SamSegmenter.run_window_decoder(seg, windows, origins.astype(np.float32), pts)
            for k, (ox, oy) in enumerate(origins):
                ref = full_m[k, :, 4 * oy:4 * (oy + w), 4 * ox:4 * (ox + w)]
                iou, sign = _mask_agreement(win_m[k], ref)
                ious.extend(iou.tolist())
                signs.extend(sign.tolist())
                iou_pred.extend(np.abs(win_q[k] - full_q[k]).tolist())
        out[str(w)] = {"mask_iou": _stats(ious), "sign_agreement": _stats(signs),
                       "iou_pred_abs_diff": _stats(iou_pred)}
    return out


def _time(fn: Callable[[], Any], repeats: int = 2) -> Tuple[float, float, Any]:
    """(median wall s, median CPU s, last output) of ``fn`` after one untimed call."""
    out = fn()
    walls, cpus = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return float(np.median(walls)), float(np.median(cpus)), out


def _variants(path: Path) -> List[Tuple[str, Path, str]]:
    """(label, file, runtime) of a graph to compare: fp32 ORT first (the reference)."""
    fp32 = fp32_twin(path)
    out = [("fp32 onnxruntime", fp32, "cpu")]
    int8 = fp32.with_name(fp32.name[:-len(".onnx")] + ".int8.onnx")
    if int8.is_file():
        out.append(("int8 onnxruntime", int8, "cpu"))
    try:
        import openvino  # noqa: F401

        out += [("fp32 openvino", fp32, "openvino"), ("bf16 openvino", fp32, "openvino-bf16")]
    except ImportError:
        pass
    return out


def runtime_agreement(det, image: np.ndarray, threads: int = 2) -> Dict[str, Any]:
    """Per graph and variant: ms per call (wall, CPU) and agreement with fp32 ONNX Runtime."""
    seg, matcher = det.segmenter, det.matcher
    x, scale = seg.preprocess(image)
    pts = _prompts(image, scale)
    report: Dict[str, Any] = {}

    def compare(role: str, path: Path, inputs: List[str], outputs: List[str], feeds: Dict[str, np.ndarray],
                judge: Callable[[List[np.ndarray], List[np.ndarray]], Dict[str, float]],
                unit: str) -> List[np.ndarray]:
        """Time every variant of one graph on ``feeds``; return the reference's outputs."""
        rows = []
        ref: Optional[List[np.ndarray]] = None
        for label, file, runtime in _variants(path):
            sess = open_session(file, inputs, outputs, threads, runtime)
            if sess.runtime != runtime:
                continue
            wall, cpu, out = _time(lambda: sess.run(outputs, feeds))  # noqa: B023 (called at once)
            row = {"variant": label, "file": file.name, "wall_ms": round(wall * 1000, 1),
                   "cpu_ms": round(cpu * 1000, 1), "unit": unit}
            if ref is None:
                ref = out
            else:
                row.update(judge(ref, out))
            rows.append(row)
        report[role] = rows
        return ref

    def emb_judge(ref, out):
        a, b = ref[0].reshape(len(ref[0]), -1), out[0].reshape(len(out[0]), -1)
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        return {"cosine_min": round(float(cos.min()), 6), "max_abs_diff": float(np.abs(a - b).max())}

    def mask_judge(ref, out):
        iou, sign = _mask_agreement(out[0], ref[0])
        return {"mask_iou_median": round(float(np.median(iou)), 4),
                "mask_iou_min": round(float(iou.min()), 4),
                "sign_agreement_min": round(float(sign.min()), 4),
                "iou_pred_max_abs_diff": round(float(np.abs(out[1] - ref[1]).max()), 4)}

    cfg = det.model_set
    emb = compare("sam_encoder", cfg.sam.encoder, ["image"], ["image_embeddings"], {"image": x}, emb_judge,
                  "per frame")[0]
    coords = np.zeros((FULL_BATCH, 2, 2), np.float32)
    coords[:, 0] = pts[:FULL_BATCH]
    labels = np.tile(np.array([[1.0, -1.0]], np.float32), (FULL_BATCH, 1))
    low = seg.low_size
    compare("sam_decoder", cfg.sam.decoder, [], ["low_res_masks", "iou_predictions"],
            {"image_embeddings": emb, "point_coords": coords, "point_labels": labels,
             "mask_input": np.zeros((FULL_BATCH, 1, low, low), np.float32),
             "has_mask_input": np.zeros((1,), np.float32)}, mask_judge, f"per {FULL_BATCH} prompts")
    if cfg.sam.decoder_window is not None and seg.window_sides:
        w = seg.window_sides[0]
        wp = np.resize(pts, (WINDOW_BATCH, 2)).astype(np.float32)
        origins = window_origins(wp, w, seg.embed_size)
        coords = np.zeros((WINDOW_BATCH, 2, 2), np.float32)
        coords[:, 0] = wp
        compare("sam_decoder_window", cfg.sam.decoder_window, [], ["low_res_masks", "iou_predictions"],
                {"image_embeddings": np.stack([emb[0, :, oy:oy + w, ox:ox + w] for ox, oy in origins]),
                 "window_origin": origins.astype(np.float32), "point_coords": coords,
                 "point_labels": np.tile(np.array([[1.0, -1.0]], np.float32), (WINDOW_BATCH, 1))},
                mask_judge, f"per {WINDOW_BATCH} prompts, window {w}")
    r = matcher.cfg.image_size
    rng = np.random.default_rng(0)
    h, wd = image.shape[:2]
    crops = []
    for _ in range(CROP_BATCH):
        side = int(rng.integers(32, max(33, min(h, wd))))
        y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, wd - side + 1))
        crops.append(cv2.resize(image[y0:y0 + side, x0:x0 + side], (r, r), interpolation=cv2.INTER_AREA))
    compare("clip_visual", cfg.clip.visual, ["pixel_values"], ["image_embeds"],
            {"pixel_values": matcher.to_pixel_values(np.stack(crops))}, emb_judge, f"per {CROP_BATCH} crops")
    return report


def measure_agreement(det, frames: Sequence, threads: int = 2) -> Dict[str, Any]:
    """Windowed-decoder and runtime/int8 agreement on the first frames of a benchmark."""
    images = [f.image for f in frames]
    det.clear_cache()
    out = {"frames": [f.name for f in frames],
           "window_vs_whole_grid": window_agreement(det.segmenter, images),
           "runtimes": runtime_agreement(det, images[0], threads)}
    det.clear_cache()
    return out
