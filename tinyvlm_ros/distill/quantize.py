"""Coordinated int8 quantization of a trained student, evaluation, and export of a distill directory.

First the float network's channel ranges are equalized (:func:`equalize_ranges`: ReLU commutes
with positive scaling, so this changes no float output but gives every channel its share of the
int8 levels).  Then CFQ, stage by stage (µVLM's coordinated quantization): each layer is
calibrated on the int8 outputs of the layers before it *as quantized*, computed with the
bit-exact firmware reference (:mod:`tinyvlm_ros.mcu.reference`), never on the float activations.  Per layer:

1. weights int8, symmetric per output channel; bias int32 in the accumulator's scale;
2. bias correction: the mean per-channel difference between the quantized path's accumulator
   (in real units) and the float layer's output on the float path is removed, so upstream
   rounding does not pile up as a drift;
3. the output scale comes from the quantized path's own accumulators (a high percentile, so a
   few outliers do not waste the int8 range); ReLU layers map [0, p] onto [-128, 127].

The text side is coordinated with the quantized image side: the projection is refitted against
the int8 region embeddings (the image side is frozen), then the table is the firmware's per-row
int8 quantization of the projected prefixes.  Torch is used only here and in training.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tinyvlm_ros.mcu.blob import Layer, Model, pack_model, quantize_table, unpack_model
from tinyvlm_ros.distill.objective import matryoshka_loss, prefix_scores, region_accuracy
from tinyvlm_ros.distill.student import student_embeddings
from tinyvlm_ros.distill.data import LABELS, resize_input
from tinyvlm_ros.distill.queries import Query, query_set, summarize
from tinyvlm_ros.mcu.trained_model import META_FILE, MODEL_FILE, PROJECTION_FILE, boxes_from_scores
from tinyvlm_ros.mcu.blob import quantize_multiplier
from tinyvlm_ros.mcu.spec import COVER_WEIGHT, DEFAULT_INPUT
from tinyvlm_ros.mcu.reference import image_to_input, layer_acc, run_layer, run_model, score_regions
from tinyvlm_ros.testing.scenes import COLOURS, SHAPES, Scene, make_scene

RELU_PERCENTILE = 99.99
EMBED_PERCENTILE = 99.99
BIAS_LIMIT = 1 << 24


def _float_layer(x: np.ndarray, w: np.ndarray, b: np.ndarray, op: str, k: int, stride: int) -> np.ndarray:
    """Run a float conv/depthwise layer on NHWC (zero padding (k-1)//2, blob weight layout), before ReLU."""
    import torch
    import torch.nn.functional as F

    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).double()
    if op == "conv":
        wt = torch.from_numpy(np.ascontiguousarray(w.transpose(0, 3, 1, 2)))
        groups = 1
    else:
        wt = torch.from_numpy(np.ascontiguousarray(w.transpose(2, 0, 1)[:, None]))
        groups = w.shape[2]
    y = F.conv2d(xt, wt, torch.from_numpy(b), stride=stride, padding=(k - 1) // 2, groups=groups)
    return y.numpy().transpose(0, 2, 3, 1)


def equalize_ranges(layers: List[Tuple[np.ndarray, np.ndarray]],
                    arch: Sequence[Tuple[str, int, int, int, bool]], calib: np.ndarray,
                    strength: float = 1.0) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Rescale the channels between ReLU layers so their activation ranges match (float function unchanged).

    One int8 scale serves a whole activation tensor, so a channel that peaks at a tenth of
    another gets a tenth of the levels.  ReLU commutes with positive scaling, so dividing channel c
    of layer i (weights and bias) by ``s_c`` and multiplying the next layer's input channel c by
    ``s_c`` leaves the network's output as it was (cross-layer equalization).  ``s_c`` is
    ``(p_c / median p) ** strength`` of the channel's 99.9th percentile ``p_c`` (strength 1: full
    equalization; it measured best here, the next layers' per-channel weight scales absorb it).
    """
    out = [(w.copy(), b.copy()) for w, b in layers]
    x = calib.astype(np.float64) / 255.0
    for i in range(len(arch) - 1):
        op, k, stride, _c, relu = arch[i]
        w, b = out[i]
        y = np.maximum(_float_layer(x, w, b, op, k, stride), 0.0) if relu else None
        if relu:
            p = np.percentile(y.reshape(-1, y.shape[-1]), RELU_PERCENTILE, axis=0)
            ok = p > 1e-6
            s = np.ones_like(p)
            s[ok] = (p[ok] / np.median(p[ok])) ** strength
            w = w / (s[:, None, None, None] if op == "conv" else s)
            out[i] = (w, b / s)
            nw, nb = out[i + 1]
            nxt = arch[i + 1][0]
            out[i + 1] = (nw * (s[None, None, None, :] if nxt == "conv" else s), nb)
            y = y / s
        x = y if y is not None else _float_layer(x, w, b, op, k, stride)
    return out


def quantize_student(student, calib: np.ndarray, model_id: int = 0,
                     equalize: float = 1.0) -> Tuple[Model, List[Dict[str, float]]]:
    """CFQ: float student -> int8 :class:`Model`, calibrated layer by layer on quantized activations.

    Args:
        student: a trained :class:`~tinyvlm_ros.distill.student.Student`.
        calib: uint8 [N, H, W, 3] calibration frames at the MCU input size.
        model_id: id written into the blob.
        equalize: strength of :func:`equalize_ranges` (0 turns it off).

    Returns:
        (model, per-layer stats: output scale, saturation fraction, bias-correction size).
    """
    n, height, width, channels = calib.shape
    model = Model(model_id=model_id, in_w=width, in_h=height, in_c=channels)
    xq = [image_to_input(img) for img in calib]            # quantized path (int8)
    xf = calib.astype(np.float64) / 255.0                   # float path (real values)
    s_in, zp = 1.0 / 255.0, -128
    h, w, c = height, width, channels
    stats = []
    layers = student.numpy_layers()
    if equalize > 0:
        layers = equalize_ranges(layers, student.arch, calib, equalize)
    for (wf, bf), (op, k, stride, out_c, relu) in zip(layers, student.arch):
        axes = (1, 2, 3) if op == "conv" else (0, 1)
        peak = np.max(np.abs(wf), axis=axes)
        s_w = np.maximum(peak, 1e-12) / 127.0
        wq = np.clip(np.rint(wf / (s_w[:, None, None, None] if op == "conv" else s_w)), -127, 127)
        acc_scale = s_in * s_w
        bq = np.rint(bf / acc_scale)
        layer = Layer(op, k, stride, (k - 1) // 2, c, out_c, h, w, zp, -128 if relu else 0, -128, 127,
                      wq.astype(np.int8), np.zeros(out_c, np.int32), np.ones(out_c, np.int32),
                      np.ones(out_c, np.int32))
        acc = np.stack([layer_acc(layer, a) for a in xq]).astype(np.float64)  # without bias yet
        yf = _float_layer(xf, wf, bf, op, k, stride)
        # bias correction: make the quantized path's mean per channel equal the float path's
        drift = (acc * acc_scale + bq * acc_scale - yf).reshape(-1, out_c).mean(axis=0)
        bq = np.clip(bq - np.rint(drift / acc_scale), -BIAS_LIMIT, BIAS_LIMIT)
        layer.bias = bq.astype(np.int32)
        real = (acc + bq) * acc_scale
        if relu:
            top = np.percentile(np.maximum(real, 0.0), RELU_PERCENTILE)
            s_out = max(float(top), 1e-6) / 255.0
        else:
            top = np.percentile(np.abs(real), EMBED_PERCENTILE)
            s_out = max(float(top), 1e-6) / 127.0
        ms = [quantize_multiplier(float(r)) for r in acc_scale / s_out]
        layer.mult = np.array([m for m, _ in ms], np.int32)
        layer.shift = np.array([s for _, s in ms], np.int32)
        if relu:
            layer.act_min, layer.act_max = -128, 127
        else:  # symmetric embedding (out_zp 0), -127 so that +-x are both representable
            layer.act_min, layer.act_max = -127, 127
        model.layers.append(layer)
        xq = [run_layer(layer, a) for a in xq]
        q = np.stack(xq).astype(np.int64)
        sat = float(np.mean((q == layer.act_max) | ((q == layer.act_min) & (not relu))))
        stats.append({"op": op, "out_c": out_c, "scale": s_out, "saturated": sat,
                      "bias_correction_lsb": float(np.abs(np.rint(drift / acc_scale)).mean())})
        xf = np.maximum(yf, 0.0) if relu else yf
        s_in, zp = s_out, layer.out_zp
        h, w, c = layer.out_h, layer.out_w, out_c
    return model, stats


def int8_embeddings(model: Model, images: np.ndarray) -> np.ndarray:
    """Int8 region embeddings [N, gh, gw, E] of uint8 frames, exactly as the firmware computes them."""
    return np.stack([run_model(model, img) for img in images])


def refit_projection(proj, emb_q: np.ndarray, data: Dict[str, np.ndarray], idx: np.ndarray,
                     dims: Sequence[int], steps: int = 150, lr: float = 1e-3) -> None:
    """Tune the text projection against the frozen int8 image side (same loss, student replaced by int8)."""
    import torch

    e = torch.from_numpy(emb_q.astype(np.float32)).permute(0, 3, 1, 2)
    e = e / e.flatten(1).norm(dim=1).clamp_min(1e-6)[:, None, None, None] * 10.0  # scale is irrelevant
    t = torch.from_numpy(data["target"][idx]).float()
    c = torch.from_numpy(data["cover"][idx]).float()
    pc = torch.from_numpy(data["phrase_cover"][idx].astype(np.float32))
    text = torch.from_numpy(data["text"]).float()
    opt = torch.optim.Adam(proj.parameters(), lr=lr)
    torch.manual_seed(0)
    for _ in range(steps):
        loss, _ = matryoshka_loss(e, t, c, text, proj, dims, pc)
        opt.zero_grad()
        loss.backward()
        opt.step()


# ---------------------------------------------------------------------------------------------- scenes
def benchmark_scene(seed: int, target: Optional[str] = "red block", n_objects: int = 4) -> Tuple[Scene, str]:
    """Draw a 640x480 generated scene holding ``target`` plus other objects; (scene, target label).

    ``target=None`` draws ``n_objects`` at random and names the first one.
    """
    if target is None:
        scene = make_scene(seed=seed, n_objects=n_objects)
        return scene, scene.objects[0].label
    rng = np.random.default_rng(seed)
    others = [f"{c} {s}" for c in COLOURS for s in SHAPES if f"{c} {s}" != target]
    labels = [target] + [str(x) for x in rng.choice(others, n_objects - 1, replace=False)]
    rng.shuffle(labels)
    return make_scene(seed=seed, labels=labels), target


def query_boxes(embeddings: Sequence[np.ndarray], queries: Sequence[Query], rows: Dict[str, np.ndarray],
                dims: int, threshold: float, int8: bool, refine: bool = True,
                cover_weight: float = COVER_WEIGHT) -> List[Optional[Tuple[float, float, float, float]]]:
    """Find the best box (frame pixels) per query, or None where no region passes the threshold.

    Args:
        embeddings: per query region embeddings [gh, gw, E] (int8 from the firmware reference, or float).
        queries: the queries (:mod:`tinyvlm_ros.distill.queries`).
        rows: projected text embedding per phrase.
        dims: prefix length.
        threshold: cosine threshold of a hot region.
        int8: score exactly as the firmware (int8 table, Q15 integer cosine) or in float.
        refine: sub-cell box refinement from the score map.
        cover_weight: score -> coverage inversion of the refinement (:func:`trained_model.refine_box`).
    """
    out = []
    for emb, q in zip(embeddings, queries):
        gh, gw = emb.shape[:2]
        if int8:
            table = quantize_table(rows[q.phrase][None, :], dims)
            sc = score_regions(emb, table, [0])
        else:
            sc = np.clip(np.rint(prefix_scores(emb, rows[q.phrase][None, :], dims).T * 32768), -32768, 32767)
        found = boxes_from_scores(sc, [0], gw, gh, threshold, 1, refine, cover_weight)
        if not found:
            out.append(None)
            continue
        h, w = q.scene.image.shape[:2]
        x0, y0, x1, y1 = found[0][1]
        out.append((x0 * w / gw, y0 * h / gh, x1 * w / gw, y1 * h / gh))
    return out


def calibrate_thresholds(emb_q: Sequence[np.ndarray], queries: Sequence[Query], rows: Dict[str, np.ndarray],
                         dims: Sequence[int],
                         cover_weights: Sequence[float] = (2.0, 4.0, 8.0)) -> Tuple[Dict, Dict]:
    """Pick per prefix the threshold and coverage inversion that answer calibration queries best.

    Right answers are true positives minus false positives (a box for an absent phrase, or a wrong
    box, costs as much as a right box gains).  Int8 path, refined boxes, seen phrases only.
    Returns (thresholds, cover weights) keyed by prefix length.
    """
    grid = np.round(np.arange(0.2, 0.96, 0.025), 3)
    thresholds, weights = {}, {}
    for m in dims:
        best_rate, best_w, best_rates = -np.inf, COVER_WEIGHT, None
        for cw in cover_weights:
            rates = []
            for t in grid:
                r = summarize(query_boxes(emb_q, queries, rows, m, float(t), True, cover_weight=cw), queries)
                rates.append(r["tp"] - r["fp"])
            rates = np.array(rates, float)
            if rates.max() > best_rate + 1e-9:
                best_rate, best_w, best_rates = float(rates.max()), float(cw), rates
        # the middle of the best plateau is the least sensitive to a shift between sets
        cands = grid[best_rates >= best_rate - 1e-9]
        thresholds[m] = float(cands[len(cands) // 2])
        weights[m] = best_w
    return thresholds, weights


# ---------------------------------------------------------------------------------------------- export
def export_distilled(student, proj, data: Dict[str, np.ndarray], out: Path, dims: Sequence[int],
                     teacher_dir: Path, default_dim: int = 64, history: Optional[List[dict]] = None,
                     n_calib: int = 64, n_scenes: int = 200, seed: int = 7, refit_steps: int = 150) -> dict:
    """Quantize (CFQ), refit the text projection, calibrate thresholds, evaluate and write the directory.

    Returns the report (also written into ``distill.json``).
    """
    import torch

    from tinyvlm_ros.distill.data import Teacher

    if default_dim not in dims:
        raise ValueError(f"--default-dim {default_dim} is not one of the trained prefixes {list(dims)}")
    train_idx = np.nonzero(~data["is_val"])[0]
    val_idx = np.nonzero(data["is_val"])[0]
    calib_idx = train_idx[np.linspace(0, len(train_idx) - 1, min(n_calib, len(train_idx))).astype(int)]
    digest = zlib.crc32(b"".join(p.detach().numpy().tobytes() for p in student.parameters()))
    model, layer_stats = quantize_student(student, data["image"][calib_idx], model_id=digest)
    blob = pack_model(model)
    model = unpack_model(blob)  # evaluate exactly what was written

    emb_f_val = student_embeddings(student, data["image"][val_idx])
    emb_q_val = int8_embeddings(model, data["image"][val_idx])
    with torch.no_grad():
        rows_before = proj(torch.from_numpy(data["text"]).float()).numpy()
    acc_before = {m: region_accuracy(emb_q_val, rows_before, data["label"][val_idx], m) for m in dims}
    proj_float = {k: v.clone() for k, v in proj.state_dict().items()}
    refit_projection(proj, int8_embeddings(model, data["image"][calib_idx]), data, calib_idx, dims,
                     steps=refit_steps)
    with torch.no_grad():
        rows_after = proj(torch.from_numpy(data["text"]).float()).numpy()
    acc_after = {m: region_accuracy(emb_q_val, rows_after, data["label"][val_idx], m) for m in dims}
    rows_q = rows_after

    # prefix report: float vs int8 on held-out frames
    prefix: Dict[str, dict] = {}
    for m in dims:
        ef = emb_f_val.reshape(-1, emb_f_val.shape[-1])[:, :m].astype(np.float64)
        eq = emb_q_val.reshape(-1, emb_q_val.shape[-1])[:, :m].astype(np.float64)
        cos = np.sum(ef * eq, 1) / np.maximum(np.linalg.norm(ef, axis=1) * np.linalg.norm(eq, axis=1), 1e-12)
        objects = data["label"][val_idx].reshape(-1) >= 0  # on bare table the top label is noise
        top_f = np.argmax(prefix_scores(ef[objects], rows_before, m), axis=1)
        top_q = np.argmax(prefix_scores(eq[objects], rows_q, m), axis=1)
        prefix[str(m)] = {
            "float_int8_cosine": float(cos.mean()),
            "top1_agreement": float(np.mean(top_f == top_q)),
            "region_acc_float": region_accuracy(emb_f_val, rows_before, data["label"][val_idx], m),
            "region_acc_int8": region_accuracy(emb_q_val, rows_q, data["label"][val_idx], m),
            "table_bytes_per_row": m + 4,
        }

    # detection queries (seen phrases only): calibrate thresholds on one set, measure on another
    teacher = Teacher(teacher_dir)
    proj_np_q = proj.weight.detach().numpy().astype(np.float32)
    proj.load_state_dict(proj_float)
    proj_np_f = proj.weight.detach().numpy().astype(np.float32)
    phrases = [str(p) for p in data["phrases"]] if "phrases" in data else list(LABELS)
    world = str(data["world"]) if "world" in data else "basic"
    phrase_emb = dict(zip(phrases, teacher.embed_phrases(phrases)))
    rows_q_d = {k: v @ proj_np_q for k, v in phrase_emb.items()}
    rows_f_d = {k: v @ proj_np_f for k, v in phrase_emb.items()}
    in_size = (model.in_w, model.in_h)

    calib_q = query_set(seed * 1000, n_scenes, phrases, world)
    emb_cal = list(int8_embeddings(model, np.stack([resize_input(q.scene.image, *in_size) for q in calib_q])))
    thresholds, cover_weights = calibrate_thresholds(emb_cal, calib_q, rows_q_d, dims)
    test_q = query_set(seed * 1000 + 500, n_scenes, phrases, world)
    small = np.stack([resize_input(q.scene.image, *in_size) for q in test_q])
    emb_t_q = list(int8_embeddings(model, small))
    emb_t_f = list(student_embeddings(student, small))
    detection = {}
    for m in dims:
        thr, cw = thresholds[m], cover_weights[m]
        detection[str(m)] = {
            "threshold": thr, "cover_weight": cw,
            "int8": summarize(query_boxes(emb_t_q, test_q, rows_q_d, m, thr, True, cover_weight=cw), test_q),
            "float": summarize(query_boxes(emb_t_f, test_q, rows_f_d, m, thr, False, cover_weight=cw),
                               test_q),
            "int8_cell_boxes": summarize(query_boxes(emb_t_q, test_q, rows_q_d, m, thr, True, refine=False),
                                         test_q),
        }

    out.mkdir(parents=True, exist_ok=True)
    (out / MODEL_FILE).write_bytes(blob)
    np.save(out / PROJECTION_FILE, proj_np_q)
    report = {
        "model_id": int(model.model_id), "model_bytes": len(blob), "dims": list(dims),
        "default_dim": default_dim,
        "embed_dim": int(model.embed_dim), "teacher_dim": int(data["teacher_dim"]),
        "teacher": str(Path(teacher_dir).resolve()), "input": list(DEFAULT_INPUT),
        "grid": [model.grid_w, model.grid_h], "macs": int(model.macs),
        "thresholds": {str(m): thresholds[m] for m in dims},
        "cover_weights": {str(m): cover_weights[m] for m in dims},
        "region_acc_int8_before_refit": {str(m): acc_before[m] for m in dims},
        "region_acc_int8_after_refit": {str(m): acc_after[m] for m in dims},
        "prefix": prefix, "detection_host_reference": detection, "layers": layer_stats,
        "n_train": int(len(train_idx)), "n_val": int(len(val_idx)), "n_scenes": n_scenes,
        "world": world, "seen_phrases": phrases, "teacher_name": teacher.models.name,
        "history_last": history[-1] if history else None,
    }
    (out / META_FILE).write_text(json.dumps(report, indent=1))
    return report
