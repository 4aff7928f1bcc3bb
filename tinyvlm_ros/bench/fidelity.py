"""Fidelity to upstream: our exported ONNX pipeline against the upstream code, figure by figure.

``python -m tinyvlm_ros.bench.fidelity`` (``make fidelity``) builds MobileSAM and
TinyCLIP from the upstream code with random weights, writes them as upstream
checkpoints, exports them with ``tinyvlm models export --int8`` (our loader, our
graphs), and measures on real photos (scikit-image's bundled ones):

* checkpoint keys missing/unexpected against the upstream architectures;
* encoder and decoder: max abs difference from upstream's torch modules on the
  same input, and end to end (our preprocessing + ONNX vs upstream's predictor):
  image-embedding cosine (overall and worst location) and low-res mask IoU;
* TinyCLIP image and text embeddings: same input, and end to end (our crop +
  tokenizer vs open_clip's transform + tokenizer);
* tokenizer agreement with open_clip on the corpus of
  :mod:`tinyvlm_ros.testing.phrases`;
* preprocessing: our Pillow path and the OpenCV path it replaced, each against
  upstream's, as input difference and embedding cosine, and their time on a
  640x480 frame;
* int8 agreement per graph, as the exporter recorded it in the manifest.

The upstream code: TinyCLIP is open_clip with TinyCLIP's configs (the fork's
architecture is open_clip's).  MobileSAM's own package is not on PyPI: with
``--mobile-sam-src DIR`` (a checkout of ChaoningZhang/MobileSAM) its ``mobile_sam``
package is the reference; without it the reference is segment-anything's modules
with the package's TinyViT (``tinyvlm_ros/models/tinyvit.py``), i.e. the export's
own architecture, and the report says so.

Random weights get a wider spread first (norm-layer gains log-normal with
sigma 0.5, biases and BatchNorm statistics shifted by N(0, 0.1)): torch's
default initialisation leaves every gain at 1.  Random networks are still far
less sensitive to their input than trained ones, so the input differences are
the figures that carry over to real weights.  Results go to ``docs/bench/fidelity.json``
and the fidelity section of ``docs/eval.md``; every figure there comes from the
run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tinyvlm_ros.engine.preprocess import clip_fill, clip_pixel_values, mask_crop, sam_input, square_region

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- fidelity:begin -->", "<!-- fidelity:end -->"
#: Crops scored per photo, as fractions of the frame (x0, y0, x1, y1).
CROP_BOXES = ((0.0, 0.0, 1.0, 1.0), (0.2, 0.15, 0.8, 0.85), (0.05, 0.05, 0.45, 0.5), (0.5, 0.4, 0.95, 0.95))
#: Prompt grid per side on each photo (decoder comparisons).
GRID = 4


# -- inputs --------------------------------------------------------------------------------------

def photos() -> List[Tuple[str, np.ndarray]]:
    """Real photos bundled with scikit-image (public domain / CC0, see skimage.data)."""
    try:
        import skimage.data as sk
    except ImportError as exc:
        raise ImportError("the fidelity report runs on scikit-image's photos: "
                          "pip install scikit-image") from exc
    return [(name, np.ascontiguousarray(getattr(sk, name)()[:, :, :3]))
            for name in ("coffee", "chelsea", "astronaut")]


def _opencv_sam_input(image: np.ndarray, size: int, mean, std) -> np.ndarray:
    """Resize as the segmenter did before (OpenCV area/bilinear): kept only to show what the change bought."""
    import cv2

    h, w = image.shape[:2]
    scale = size / float(max(h, w))
    nw, nh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp).astype(np.float32)
    x = np.zeros((size, size, 3), np.float32)
    x[:nh, :nw] = (resized - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def _opencv_crop(image: np.ndarray, box, size: int, fill: np.ndarray) -> np.ndarray:
    """Crop as the matcher did before (OpenCV area/bilinear), for the same comparison."""
    import cv2

    h, w = image.shape[:2]
    sx0, sy0, side = square_region(box, 0.1)
    canvas = np.empty((side, side, 3), np.uint8)
    canvas[:] = fill
    ix0, iy0, ix1, iy1 = max(0, sx0), max(0, sy0), min(w, sx0 + side), min(h, sy0 + side)
    canvas[iy0 - sy0:iy1 - sy0, ix0 - sx0:ix1 - sx0] = image[iy0:iy1, ix0:ix1]
    return cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)


def _square_canvas(image: np.ndarray, box, fill: np.ndarray) -> np.ndarray:
    """Cut the square around ``box`` from the frame padded with ``fill``: upstream transform's input."""
    sx0, sy0, side = square_region(box, 0.1)
    h, w = image.shape[:2]
    padded = np.empty((h + 2 * side, w + 2 * side, 3), np.uint8)
    padded[:] = fill
    padded[side:side + h, side:side + w] = image
    return np.ascontiguousarray(padded[sy0 + side:sy0 + 2 * side, sx0 + side:sx0 + 2 * side])


# -- upstream models -----------------------------------------------------------------------------

def realistic_spread(model, seed: int) -> None:
    """Widen the spread of random weights: norm gains log-normal, shifted biases and BatchNorm statistics."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    norm_types = (nn.LayerNorm, nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm)
    with torch.no_grad():
        for m in model.modules():
            if not (isinstance(m, norm_types) or type(m).__name__ == "LayerNorm2d"):
                continue
            if getattr(m, "weight", None) is not None:
                m.weight.mul_(torch.exp(0.5 * torch.randn(m.weight.shape, generator=gen)))
            if getattr(m, "bias", None) is not None:
                m.bias.add_(0.1 * torch.randn(m.bias.shape, generator=gen))
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                m.running_mean.add_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.mul_(torch.exp(0.5 * torch.randn(m.running_var.shape, generator=gen)))


def upstream_sam(sam_input_size: int, mobile_sam_src: Optional[Path]):
    """(MobileSAM in eval mode, its SamPredictor class, a description of where the code came from)."""
    from tinyvlm_ros.models import export

    if mobile_sam_src is not None:
        if sam_input_size != 1024:
            raise ValueError("MobileSAM's own code builds the 1024 input only; use --sam-input 1024")
        export.import_open_clip()  # torchvision workaround before mobile_sam imports it
        sys.path.insert(0, str(Path(mobile_sam_src).resolve()))
        try:
            import mobile_sam
        except ImportError as exc:
            raise ValueError(f"--mobile-sam-src {mobile_sam_src}: no importable mobile_sam package there "
                             f"({exc})") from exc
        model = mobile_sam.sam_model_registry["vit_t"]()
        return (model.eval(), mobile_sam.SamPredictor,
                "MobileSAM's own mobile_sam package (vit_t, from a checkout given with --mobile-sam-src)")
    export.import_segment_anything()
    from segment_anything import SamPredictor

    return (export.build_sam(sam_input_size), SamPredictor,
            "segment-anything 1.0 modules + tinyvlm_ros TinyViT (MobileSAM's package is not on PyPI; "
            "pass --mobile-sam-src for its own code)")


def tinyclip_release_layout(state: Dict[str, Any]) -> Dict[str, Any]:
    """Open_clip keys -> TinyCLIP's released checkpoint layout (``_image_encoder.module.visual.*``, ...)."""
    out = {}
    for k, v in state.items():
        if k == "attn_mask":
            continue  # a derived buffer TinyCLIP does not save
        if k.startswith("visual."):
            out["_image_encoder.module." + k] = v
        elif k == "logit_scale":
            out["_logit_scale.module.logit_scale"] = v
        else:
            out["_text_encoder.module." + k] = v
    return {"epoch": 1, "state_dict": out}


# -- measures ------------------------------------------------------------------------------------

def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


def _location_cos(a: np.ndarray, b: np.ndarray) -> float:
    """Worst cosine over the spatial locations of two [1, C, H, W] embeddings."""
    a, b = a[0].reshape(a.shape[1], -1).astype(np.float64), b[0].reshape(b.shape[1], -1).astype(np.float64)
    num = (a * b).sum(axis=0)
    den = np.maximum(np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0), 1e-30)
    return float((num / den).min())


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    inter, union = (a & b).sum(axis=(-1, -2)), (a | b).sum(axis=(-1, -2))
    return float(np.mean(inter[union > 0] / union[union > 0])) if (union > 0).any() else 1.0


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def measure_sam(model, predictor_cls, sets, images, log) -> Dict[str, Any]:
    """Encoder/decoder of the exported set against upstream MobileSAM on the photos."""
    import torch

    from tinyvlm_ros.engine.segmenter import grid_points
    from tinyvlm_ros.engine.session import open_session

    sam = sets.sam
    enc = open_session(sam.encoder, ["image"], ["image_embeddings"], 2)
    dec = open_session(sets.root / "sam_decoder.onnx", [], [], 2)
    predictor = predictor_cls(model)
    rows: Dict[str, List[float]] = {k: [] for k in (
        "encoder_max_abs_diff_same_input", "decoder_max_abs_diff_same_input",
        "input_max_abs_diff_ours", "input_max_abs_diff_opencv",
        "embedding_cosine_ours", "embedding_worst_location_cosine_ours",
        "embedding_cosine_opencv", "embedding_worst_location_cosine_opencv",
        "mask_iou_end_to_end", "mask_iou_end_to_end_opencv")}
    for name, image in images:
        log(f"  SAM on {name} {image.shape[1]}x{image.shape[0]}")
        with torch.no_grad():
            predictor.set_image(image)
            ref_emb = predictor.features.numpy()
            h, w = image.shape[:2]
            up_in = model.preprocess(
                torch.as_tensor(predictor.transform.apply_image(image)).permute(2, 0, 1).contiguous()[None]
            ).numpy()
        ours_in, scale = sam_input(image, sam.input_size, sam.pixel_mean, sam.pixel_std)
        cv_in = _opencv_sam_input(image, sam.input_size, sam.pixel_mean, sam.pixel_std)
        (same,) = enc.run(["image_embeddings"], {"image": up_in})
        (ours,) = enc.run(["image_embeddings"], {"image": ours_in})
        (cv,) = enc.run(["image_embeddings"], {"image": cv_in})
        rows["encoder_max_abs_diff_same_input"].append(float(np.abs(same - ref_emb).max()))
        rows["input_max_abs_diff_ours"].append(float(np.abs(ours_in - up_in).max()))
        rows["input_max_abs_diff_opencv"].append(float(np.abs(cv_in - up_in).max()))
        for tag, emb in (("ours", ours), ("opencv", cv)):
            rows[f"embedding_cosine_{tag}"].append(_cos(emb, ref_emb))
            rows[f"embedding_worst_location_cosine_{tag}"].append(_location_cos(emb, ref_emb))
        # decoder: upstream's predictor with frame coordinates vs ours (one scale, as the segmenter does)
        pts = grid_points(w, h, GRID)
        up_coords = predictor.transform.apply_coords(pts, (h, w))
        b = len(pts)
        labels = torch.ones(b, 1)
        with torch.no_grad():
            _, _, ref_low = predictor.predict_torch(torch.as_tensor(up_coords[:, None], dtype=torch.float32),
                                                    labels, multimask_output=True, return_logits=True)
        ref_low = ref_low.numpy()

        def run(emb, coords):
            c = np.zeros((b, 2, 2), np.float32)
            c[:, 0] = coords
            low = ref_low.shape[-1]
            return dec.run(["low_res_masks"], {
                "image_embeddings": emb, "point_coords": c,
                "point_labels": np.tile(np.array([[1.0, -1.0]], np.float32), (b, 1)),
                "mask_input": np.zeros((b, 1, low, low), np.float32),
                "has_mask_input": np.zeros((1,), np.float32)})[0]

        rows["decoder_max_abs_diff_same_input"].append(
            float(np.abs(run(ref_emb, up_coords.astype(np.float32)) - ref_low).max()))
        rows["mask_iou_end_to_end"].append(_mask_iou(run(ours, pts * scale) > 0, ref_low > 0))
        rows["mask_iou_end_to_end_opencv"].append(_mask_iou(run(cv, pts * scale) > 0, ref_low > 0))
    out = {k: (max(v) if "diff" in k else min(v)) for k, v in rows.items()}
    out["per_photo"] = {k: v for k, v in rows.items()}
    out["photos"] = [n for n, _ in images]
    out["prompts_per_photo"] = GRID * GRID
    return out


def measure_clip(model, sets, images, log) -> Dict[str, Any]:
    """Visual and text towers of the exported set against open_clip's TinyCLIP."""
    import torch
    from PIL import Image

    from tinyvlm_ros.engine.matcher import TEMPLATE
    from tinyvlm_ros.engine.session import open_session
    from tinyvlm_ros.engine.tokenizer import ClipTokenizer
    from tinyvlm_ros.models import export
    from tinyvlm_ros.testing.phrases import COMMANDS

    open_clip = export.import_open_clip()
    clip = sets.clip
    vis = open_session(sets.root / "clip_visual.onnx", ["pixel_values"], ["image_embeds"], 2)
    txt = open_session(clip.text, ["input_ids"], ["text_embeds"], 2)
    transform = open_clip.image_transform(clip.image_size, is_train=False, mean=clip.mean, std=clip.std)
    fill = clip_fill(clip.mean)
    same_cos, same_diff, ours_cos, cv_cos, px_ours, px_cv = [], [], [], [], [], []
    for name, image in images:
        log(f"  CLIP on {name}")
        h, w = image.shape[:2]
        for fx0, fy0, fx1, fy1 in CROP_BOXES:
            box = (fx0 * w, fy0 * h, fx1 * w, fy1 * h)
            up_px = transform(Image.fromarray(_square_canvas(image, box, fill)))[None]
            with torch.no_grad():
                ref = model.encode_image(up_px).numpy()
            up_px = up_px.numpy()
            ours_px = clip_pixel_values(mask_crop(image, box, clip.image_size, fill)[None],
                                        clip.mean, clip.std)
            cv_px = clip_pixel_values(_opencv_crop(image, box, clip.image_size, fill)[None],
                                      clip.mean, clip.std)
            (same,) = vis.run(["image_embeds"], {"pixel_values": up_px})
            (ours,) = vis.run(["image_embeds"], {"pixel_values": ours_px})
            (cv,) = vis.run(["image_embeds"], {"pixel_values": cv_px})
            same_cos.append(_cos(same, ref))
            same_diff.append(float(np.abs(same - ref).max()))
            ours_cos.append(_cos(ours, ref))
            cv_cos.append(_cos(cv, ref))
            px_ours.append(float(np.abs(ours_px - up_px).max()))
            px_cv.append(float(np.abs(cv_px - up_px).max()))
    prompts = [TEMPLATE.format(c) for c in COMMANDS]
    from open_clip.tokenizer import SimpleTokenizer

    ids_up = SimpleTokenizer(context_length=clip.context_length)(prompts)  # TinyCLIP's tokenizer is CLIP's
    with torch.no_grad():
        ref_t = model.encode_text(ids_up).numpy()
    (same_t,) = txt.run(["text_embeds"], {"input_ids": ids_up.numpy()})
    ours_ids = ClipTokenizer(clip.tokenizer, clip.context_length)(prompts)
    (ours_t,) = txt.run(["text_embeds"], {"input_ids": ours_ids})
    return {
        "image_cosine_same_input": min(same_cos), "image_max_abs_diff_same_input": max(same_diff),
        "image_cosine_end_to_end": min(ours_cos), "image_cosine_end_to_end_opencv": min(cv_cos),
        "crop_pixel_max_abs_diff_ours": max(px_ours), "crop_pixel_max_abs_diff_opencv": max(px_cv),
        "text_cosine_same_input": min(_cos(a, b) for a, b in zip(same_t, ref_t)),
        "text_max_abs_diff_same_input": float(np.abs(same_t - ref_t).max()),
        "text_cosine_end_to_end": min(_cos(a, b) for a, b in zip(ours_t, ref_t)),
        "crops": len(same_cos), "text_prompts": len(prompts),
    }


def measure_tokenizer(sets) -> Dict[str, Any]:
    """Our tokenizer against open_clip's, live, on the golden corpus."""
    from tinyvlm_ros.engine.tokenizer import ClipTokenizer
    from tinyvlm_ros.models import export
    from tinyvlm_ros.testing.phrases import corpus

    export.import_open_clip()
    from open_clip.tokenizer import SimpleTokenizer

    phrases = corpus()
    ours = ClipTokenizer(sets.clip.tokenizer, sets.clip.context_length)(phrases)
    ref = SimpleTokenizer(str(sets.clip.tokenizer), context_length=sets.clip.context_length)(phrases).numpy()
    same = (ours == ref).all(axis=1)
    return {"phrases": len(phrases), "identical": int(same.sum()),
            "differing_examples": [p for p, ok in zip(phrases, same) if not ok][:5]}


def measure_speed(sets, repeats: int) -> Dict[str, Any]:
    """Preprocessing time of a 640x480 frame: SAM input and 24 CLIP crops, ours vs the OpenCV path."""
    from PIL import Image

    frame = np.asarray(Image.fromarray(photos()[0][1]).resize((640, 480), Image.BICUBIC))
    sam, clip = sets.sam, sets.clip
    fill = clip_fill(clip.mean)
    rng = np.random.default_rng(0)
    xs, ys, sides = rng.integers(0, 500, 24), rng.integers(0, 350, 24), rng.integers(30, 200, 24)
    boxes = [(float(x), float(y), float(x + s), float(y + s)) for x, y, s in zip(xs, ys, sides)]
    inside = np.ones((clip.image_size, clip.image_size), bool)
    return {
        "sam_input_ms_ours": _median_ms(
            lambda: sam_input(frame, sam.input_size, sam.pixel_mean, sam.pixel_std), repeats),
        "sam_input_ms_opencv": _median_ms(lambda: _opencv_sam_input(frame, sam.input_size, sam.pixel_mean,
                                                                    sam.pixel_std), repeats),
        "crops24_ms_ours": _median_ms(lambda: [mask_crop(frame, b, clip.image_size, fill, lambda r, s: inside)
                                               for b in boxes], repeats),
        "crops24_ms_opencv": _median_ms(
            lambda: [_opencv_crop(frame, b, clip.image_size, fill) for b in boxes], repeats),
        "load_avg_1min": os.getloadavg()[0], "cpus": os.cpu_count(),
    }


# -- report --------------------------------------------------------------------------------------

def run(out_dir: Path, *, sam_input_size: int = 1024, clip: str = "61m-32", seed: int = 0,
        mobile_sam_src: Optional[Path] = None, repeats: int = 10, log=print) -> Dict[str, Any]:
    """Build upstream models, export them, measure; return the report dict."""
    import torch

    from tinyvlm_ros.models import checkpoint, export
    from tinyvlm_ros.models.manifest import load_manifest

    out_dir.mkdir(parents=True, exist_ok=True)
    images = photos()
    torch.manual_seed(seed)
    log("building upstream MobileSAM and TinyCLIP with random weights")
    sam_model, predictor_cls, sam_source = upstream_sam(sam_input_size, mobile_sam_src)
    realistic_spread(sam_model, seed)
    clip_model, spec = export.build_clip(clip)
    realistic_spread(clip_model, seed + 1)
    sam_ckpt, clip_ckpt = out_dir / "mobile_sam.pt", out_dir / "tinyclip_release_layout.pt"
    torch.save(sam_model.state_dict(), sam_ckpt)
    torch.save(tinyclip_release_layout(clip_model.state_dict()), clip_ckpt)

    ours_sam = export.build_sam(sam_input_size)
    ours_clip, _ = export.build_clip(clip)
    keys = {
        "sam": checkpoint.key_report(ours_sam, checkpoint.sam_state_dict(checkpoint.load_tensors(sam_ckpt)),
                                     ("attention_bias_idxs",)),
        "clip": checkpoint.key_report(
            ours_clip, checkpoint.clip_state_dict(checkpoint.load_tensors(clip_ckpt), clip_ckpt),
            ("attn_mask",)),
    }
    keys = {k: {"missing": len(v["missing"]), "unexpected": len(v["unexpected"]),
                "examples": (v["missing"] + v["unexpected"])[:3]} for k, v in keys.items()}
    del ours_sam, ours_clip

    set_dir = out_dir / "set"
    log(f"exporting with tinyvlm models export --int8 into {set_dir}")
    t0 = time.perf_counter()
    export.export_model_set(set_dir, sam_ckpt=sam_ckpt, clip=clip, clip_ckpt=clip_ckpt,
                            sam_input=sam_input_size, int8=True, kind="random",
                            calibration=([im for _, im in images], "3 scikit-image photos"))
    export_s = time.perf_counter() - t0
    sets = load_manifest(set_dir)
    manifest = json.loads((set_dir / "manifest.json").read_text())
    log("measuring against upstream")
    report = {
        "kind": "random",
        "weights": f"random, seed {seed}, spread widened: norm gains log-normal sigma 0.5, "
                   "biases and BatchNorm statistics shifted N(0, 0.1)",
        "models": {"sam": f"MobileSAM, input {sam_input_size}",
                   "clip": f"{spec.name} ({spec.open_clip_name})"},
        "upstream": {"sam": sam_source,
                     "clip": "open_clip with TinyCLIP's model config (the fork's architecture)",
                     "checkpoints": "mobile_sam.pt (flat keys), TinyCLIP release layout (state_dict, "
                                    "_image_encoder.module.visual.*)"},
        "photos": "scikit-image coffee, chelsea, astronaut",
        "keys": keys,
        "export_onnx_vs_torch_max_abs_diff": manifest["source"]["max_abs_diff_vs_torch"],
        "sam": measure_sam(sam_model, predictor_cls, sets, images, log),
        "clip": measure_clip(clip_model, sets, images, log),
        "tokenizer": measure_tokenizer(sets),
        "int8": manifest.get("int8", {}),
        "preprocessing_time": measure_speed(sets, repeats),
        "export_seconds": export_s,
    }
    return report


def _f(v: float, digits: int = 7) -> str:
    if 0.9999 < v < 1.0:  # a cosine or IoU this close to 1: show how far from 1 it is
        return f"1 - {1.0 - v:.1e}"
    return f"{v:.{digits}f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def markdown(report: Dict[str, Any], command: str) -> str:
    """Write the fidelity section of docs/eval.md (between the markers) from a report dict."""
    s, c, t, k = report["sam"], report["clip"], report["tokenizer"], report["keys"]
    sp = report["preprocessing_time"]
    lines = [
        BEGIN,
        "## Fidelity to upstream",
        "",
        f"**Model set kind: {report['kind']}** ({report['weights']}); {report['models']['sam']}, "
        f"{report['models']['clip']}. These figures compare our export and runtime with the upstream code "
        "on the same weights; they say nothing about accuracy.",
        "",
        f"Measured {report['date']} on {report['machine']} with:",
        "",
        "```",
        command,
        "```",
        "",
        f"Upstream code: MobileSAM = {report['upstream']['sam']}; TinyCLIP = {report['upstream']['clip']}. "
        f"Checkpoints written as {report['upstream']['checkpoints']}, then exported with "
        "`tinyvlm models export --int8`. Photos: " + report["photos"] + ".",
        "",
        "| check | result |",
        "|---|---|",
        f"| MobileSAM checkpoint keys | {k['sam']['missing']} missing, {k['sam']['unexpected']} unexpected |",
        f"| TinyCLIP checkpoint keys (release layout) | {k['clip']['missing']} missing, "
        f"{k['clip']['unexpected']} unexpected |",
        f"| SAM encoder, same input: max abs diff vs upstream | {_f(s['encoder_max_abs_diff_same_input'])} |",
        f"| SAM decoder, same embedding and prompts: max abs diff of low-res logits | "
        f"{_f(s['decoder_max_abs_diff_same_input'])} |",
        f"| SAM input, ours vs upstream's preprocessing: max abs diff | {_f(s['input_max_abs_diff_ours'])} |",
        f"| SAM image embedding end to end: cosine (worst location) | {_f(s['embedding_cosine_ours'])} "
        f"({_f(s['embedding_worst_location_cosine_ours'])}) |",
        f"| SAM masks end to end ({s['prompts_per_photo']} prompts/photo): low-res mask IoU | "
        f"{_f(s['mask_iou_end_to_end'], 4)} |",
        f"| CLIP image embedding, same input: cosine / max abs diff | {_f(c['image_cosine_same_input'])} / "
        f"{_f(c['image_max_abs_diff_same_input'])} |",
        f"| CLIP image embedding end to end (our crop vs open_clip's transform): cosine | "
        f"{_f(c['image_cosine_end_to_end'])} |",
        "| CLIP crop pixels, ours vs open_clip's transform: max abs diff | "
        f"{_f(c['crop_pixel_max_abs_diff_ours'])} |",
        f"| CLIP text embedding, same ids: cosine / max abs diff | {_f(c['text_cosine_same_input'])} / "
        f"{_f(c['text_max_abs_diff_same_input'])} |",
        f"| CLIP text embedding end to end (our tokenizer): cosine | {_f(c['text_cosine_end_to_end'])} |",
        f"| tokenizer ids identical to open_clip's | {t['identical']} of {t['phrases']} phrases |",
        "",
        "Worst value over the photos (minimum for cosines and IoU, maximum for differences); "
        f"{len(report['sam']['photos'])} photos, {c['crops']} crops, {c['text_prompts']} text prompts.",
        "",
        "**Preprocessing.** The same comparisons for the OpenCV resizing the runtime used before. Random "
        "networks are far less sensitive to their input than trained ones, so the input differences are the "
        "figures that carry over to real weights:",
        "",
        "| | ours (Pillow, as upstream) | OpenCV (before) |",
        "|---|---|---|",
        f"| SAM input max abs diff vs upstream | {_f(s['input_max_abs_diff_ours'])} | "
        f"{_f(s['input_max_abs_diff_opencv'])} |",
        f"| SAM embedding cosine (worst location) | {_f(s['embedding_cosine_ours'])} "
        f"({_f(s['embedding_worst_location_cosine_ours'])}) | {_f(s['embedding_cosine_opencv'])} "
        f"({_f(s['embedding_worst_location_cosine_opencv'])}) |",
        f"| SAM low-res mask IoU vs upstream | {_f(s['mask_iou_end_to_end'], 4)} | "
        f"{_f(s['mask_iou_end_to_end_opencv'], 4)} |",
        f"| CLIP crop pixel max abs diff | {_f(c['crop_pixel_max_abs_diff_ours'])} | "
        f"{_f(c['crop_pixel_max_abs_diff_opencv'])} |",
        f"| CLIP image embedding cosine | {_f(c['image_cosine_end_to_end'])} | "
        f"{_f(c['image_cosine_end_to_end_opencv'])} |",
        f"| time, SAM input of a 640x480 frame (median) | {sp['sam_input_ms_ours']:.1f} ms | "
        f"{sp['sam_input_ms_opencv']:.1f} ms |",
        f"| time, 24 CLIP crops of that frame (median) | {sp['crops24_ms_ours']:.1f} ms | "
        f"{sp['crops24_ms_opencv']:.1f} ms |",
        "",
        f"Times on {sp['cpus']} CPUs at load average {sp['load_avg_1min']:.1f} "
        "(noisy when the load is high).",
        "",
        "**int8 graphs** (measured by the exporter against their fp32 twins on the photos; used only when "
        "every metric meets its bound):",
        "",
        "| graph | metrics | bounds | used |",
        "|---|---|---|---|",
    ]
    for graph, entry in report["int8"].items():
        m = ", ".join(f"{n} {v:.4f}" for n, v in entry["metrics"].items() if isinstance(v, float))
        b = ", ".join(f"{n} >= {v:g}" for n, v in entry["bounds"].items())
        lines.append(f"| {graph} | {m} | {b} | {'yes' if entry['used'] else 'no: fp32 kept'} |")
    lines += [
        "",
        "Remaining intended differences: the CLIP crop is a square around the mask with the pixels outside "
        "the mask set to CLIP's mean colour after the resize (inside the mask every pixel is open_clip's); "
        "decoder prompts are scaled by one factor S/max(H, W) where segment-anything scales x and y "
        "separately (the sides are rounded to whole pixels), a sub-pixel difference. What needs real "
        "weights: whether the int8 graphs agree on trained weights, and any accuracy figure.",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace the text between the fidelity markers of ``path`` (create the file with just the section)."""
    if not path.exists():
        path.write_text("# Evaluation\n\n" + section)
        return
    text = path.read_text()
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        path.write_text(head + section.rstrip("\n") + tail)
    else:
        path.write_text(text.rstrip("\n") + "\n\n" + section)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tinyvlm_ros.bench.fidelity",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--sam-input", type=int, default=1024, choices=(1024, 512))
    ap.add_argument("--clip", default="61m-32", help="TinyCLIP variant (default 61m-32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mobile-sam-src", type=Path, help="a checkout of ChaoningZhang/MobileSAM: its "
                    "mobile_sam package becomes the reference (default: segment-anything + our TinyViT)")
    ap.add_argument("--work", type=Path, help="directory for the checkpoints and the exported set "
                    "(default: a temporary one)")
    ap.add_argument("--repeats", type=int, default=10, help="timing repeats (default 10)")
    ap.add_argument("--json", type=Path, default=ROOT / "docs" / "bench" / "fidelity.json")
    ap.add_argument("--markdown", type=Path, default=ROOT / "docs" / "eval.md",
                    help="file whose fidelity section is rewritten (created if missing)")
    ap.add_argument("--from-json", action="store_true",
                    help="no new run: rewrite the markdown section from the report in --json")
    args = ap.parse_args(argv)
    if args.from_json:
        report = json.loads(args.json.read_text())
        write_section(args.markdown, markdown(report, report["command"]))
        print(f"rewrote the fidelity section of {args.markdown} from {args.json}")
        return 0
    given = argv if argv is not None else sys.argv[1:]
    command = "python -m tinyvlm_ros.bench.fidelity " + " ".join(shlex.quote(a) for a in given)
    with tempfile.TemporaryDirectory() as tmp:
        report = run(args.work or Path(tmp), sam_input_size=args.sam_input, clip=args.clip, seed=args.seed,
                     mobile_sam_src=args.mobile_sam_src, repeats=args.repeats)
    report["command"] = command
    report["date"] = datetime.date.today().isoformat()
    report["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs"
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    write_section(args.markdown, markdown(report, command))
    print(f"wrote {args.json} and the fidelity section of {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
