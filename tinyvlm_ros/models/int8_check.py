"""Does an int8 graph still give its fp32 twin's answers?  Measured on calibration images.

Dynamic int8 quantization can change what a graph decides, not just its
numbers: on MobileSAM/TinyCLIP weights built from the upstream code, the int8
decoder agreed with fp32 on only 89-93 % of mask-logit signs, and the int8
visual tower flipped some best-text choices.  So the exporter measures each
int8 graph against its fp32 twin on real inputs and keeps fp32 for a graph
whose agreement is below :data:`INT8_BOUNDS`:

* ``sam_decoder``: the fp32 encoder's embedding of each calibration image, a
  4 x 4 grid of point prompts; ``sign_agreement`` = share of low-res mask
  logits with the same sign, ``mask_iou`` = mean IoU of the int8 and fp32
  masks (every multimask output), ``best_mask_agreement`` = share of prompts
  whose highest predicted-IoU output is the same.
* ``sam_decoder_window``: the same on 16-cell windows of the embedding centred on
  the same prompts (the windowed decoder's own input).
* ``clip_visual``: ten square crops per image (the whole frame and a 3 x 3
  grid of half-size windows); ``cosine`` = mean cosine of the int8 and fp32
  embeddings (``min_cosine`` the worst), ``top1_agreement`` = share of crops
  whose best phrase among :data:`PHRASES` is the same.

Only ONNX Runtime and numpy: the check runs on any exported set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

#: A graph keeps its int8 variant only when every metric is at least its bound.  Masks: one pixel in
#: fifty may flip and a mask may lose a tenth of its area to the int8 rounding; crops: the embedding
#: stays within cosine 0.99 and the best phrase almost never changes.
INT8_BOUNDS: Dict[str, Dict[str, float]] = {
    "sam_decoder": {"sign_agreement": 0.98, "mask_iou": 0.90},
    "sam_decoder_window": {"sign_agreement": 0.98, "mask_iou": 0.90},
    "clip_visual": {"cosine": 0.99, "top1_agreement": 0.95},
}

#: Window side (embedding cells) the windowed decoder is checked on: the segmenter's first window.
WINDOW = 16

#: Phrases the visual check ranks (objects a robot is asked for, plus the matcher's generic prompts).
PHRASES: Tuple[str, ...] = (
    "cup", "mug", "bottle", "bowl", "plate", "spoon", "fork", "knife", "pen", "scissors",
    "screwdriver", "tape measure", "keys", "phone", "apple", "orange", "banana", "book", "box",
    "red block", "blue ball", "green triangle", "cat", "person",
    "object", "background", "table surface", "something",
)


def default_calibration() -> Tuple[List[np.ndarray], str]:
    """Calibration frames: the package's real photos when shipped, else generated table-top scenes.

    Returns:
        (HxWx3 uint8 RGB images, a description for the manifest).
    """
    photos = Path(__file__).resolve().parents[1] / "data" / "photos"
    files = sorted(p for p in photos.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) \
        if photos.is_dir() else []
    if files:
        return [load_rgb(p) for p in files[:6]], f"{min(len(files), 6)} photos of tinyvlm_ros/data/photos"
    from tinyvlm_ros.testing.scenes import make_scene

    return [make_scene(seed, n_objects=5).image for seed in range(4)], "4 generated table-top scenes"


def load_rgb(path: Path) -> np.ndarray:
    """Read an image file as HxWx3 uint8 RGB (ValueError when it is not an image)."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read calibration image {path}")
    return np.ascontiguousarray(bgr[:, :, ::-1])


def calibration_from_dir(directory: Path) -> Tuple[List[np.ndarray], str]:
    """Every PNG/JPEG of a directory as calibration frames (ValueError when there are none)."""
    d = Path(directory)
    files = sorted(p for p in d.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) \
        if d.is_dir() else []
    if not files:
        raise ValueError(f"--calibration {d}: no PNG or JPEG images there")
    return [load_rgb(p) for p in files], f"{len(files)} images of {d}"


def _session(path: Path, threads: int):
    from tinyvlm_ros.engine.session import open_session

    return open_session(path, [], [], threads)


def decoder_agreement(encoder: Path, fp32: Path, int8: Path, images: Sequence[np.ndarray], input_size: int,
                      pixel_mean: Sequence[float], pixel_std: Sequence[float], grid: int = 4,
                      threads: int = 2, window: int = 0) -> Dict[str, float]:
    """Agreement of the int8 SAM decoder with the fp32 one (see the module docstring).

    ``window`` > 0: the windowed decoders, each prompt on a ``window``-cell window around it.
    """
    from tinyvlm_ros.engine.preprocess import sam_input
    from tinyvlm_ros.engine.segmenter import grid_points, window_origins

    enc, d32, d8 = _session(encoder, threads), _session(fp32, threads), _session(int8, threads)
    same_sign, total, ious, best_same, prompts = 0, 0, [], 0, 0
    for image in images:
        x, scale = sam_input(image, input_size, pixel_mean, pixel_std)
        (emb,) = enc.run(["image_embeddings"], {"image": x})
        h, w = image.shape[:2]
        pts = grid_points(w, h, grid) * scale
        b = len(pts)
        coords = np.zeros((b, 2, 2), np.float32)
        coords[:, 0] = pts
        low = 4 * emb.shape[-1]
        labels = np.tile(np.array([[1.0, -1.0]], np.float32), (b, 1))
        if window > 0:
            origins = window_origins(pts, window, emb.shape[-1])
            feeds = {"image_embeddings": np.stack([emb[0, :, oy:oy + window, ox:ox + window]
                                                   for ox, oy in origins]),
                     "window_origin": origins.astype(np.float32), "point_coords": coords,
                     "point_labels": labels}
        else:
            feeds = {"image_embeddings": emb, "point_coords": coords, "point_labels": labels,
                     "mask_input": np.zeros((b, 1, low, low), np.float32),
                     "has_mask_input": np.zeros((1,), np.float32)}
        m32, iou32 = d32.run(["low_res_masks", "iou_predictions"], feeds)
        m8, iou8 = d8.run(["low_res_masks", "iou_predictions"], feeds)
        a, q = m32 > 0, m8 > 0
        same_sign += int((a == q).sum())
        total += a.size
        inter = (a & q).sum(axis=(-1, -2)).ravel()
        union = (a | q).sum(axis=(-1, -2)).ravel()
        ious.extend((inter[union > 0] / union[union > 0]).tolist())
        best_same += int((iou32.argmax(axis=1) == iou8.argmax(axis=1)).sum())
        prompts += b
    return {"sign_agreement": same_sign / max(total, 1),
            "mask_iou": float(np.mean(ious)) if ious else 1.0,
            "best_mask_agreement": best_same / max(prompts, 1),
            "images": len(images), "prompts": prompts}


def _crops(image: np.ndarray, size: int, fill: np.ndarray) -> List[np.ndarray]:
    from tinyvlm_ros.engine.preprocess import mask_crop

    h, w = image.shape[:2]
    boxes = [(0.0, 0.0, float(w), float(h))]
    for gy in range(3):
        for gx in range(3):
            x0, y0 = gx * w / 4.0, gy * h / 4.0
            boxes.append((x0, y0, x0 + w / 2.0, y0 + h / 2.0))
    return [mask_crop(image, b, size, fill, margin=0.0) for b in boxes]


def visual_agreement(fp32: Path, int8: Path, text: Path, tokenizer: Path, images: Sequence[np.ndarray],
                     image_size: int, context_length: int, mean: Sequence[float], std: Sequence[float],
                     phrases: Sequence[str] = PHRASES, threads: int = 2) -> Dict[str, float]:
    """Agreement of the int8 CLIP visual tower with the fp32 one (see the module docstring)."""
    from tinyvlm_ros.engine.matcher import TEMPLATE
    from tinyvlm_ros.engine.preprocess import clip_fill, clip_pixel_values
    from tinyvlm_ros.engine.tokenizer import ClipTokenizer

    v32, v8, txt = _session(fp32, threads), _session(int8, threads), _session(text, threads)
    ids = ClipTokenizer(tokenizer, context_length)([TEMPLATE.format(p) for p in phrases])
    (t,) = txt.run(["text_embeds"], {"input_ids": ids})
    t = t / np.linalg.norm(t, axis=1, keepdims=True)
    fill = clip_fill(mean)
    cos, same, n = [], 0, 0
    for image in images:
        px = clip_pixel_values(np.stack(_crops(image, image_size, fill)), mean, std)
        (e32,) = v32.run(["image_embeds"], {"pixel_values": px})
        (e8,) = v8.run(["image_embeds"], {"pixel_values": px})
        e32 = e32 / np.linalg.norm(e32, axis=1, keepdims=True)
        e8 = e8 / np.linalg.norm(e8, axis=1, keepdims=True)
        cos.extend((e32 * e8).sum(axis=1).tolist())
        same += int(((e32 @ t.T).argmax(axis=1) == (e8 @ t.T).argmax(axis=1)).sum())
        n += len(px)
    return {"cosine": float(np.mean(cos)), "min_cosine": float(np.min(cos)),
            "top1_agreement": same / max(n, 1), "images": len(images), "crops": n, "phrases": len(phrases)}


def below_bounds(metrics: Dict[str, float], bounds: Dict[str, float]) -> List[str]:
    """List the metrics under their bound as "name value < bound" strings (empty: all met)."""
    return [f"{k} {metrics[k]:.4f} < {b:g}" for k, b in bounds.items() if metrics[k] < b]


def check_int8(out: Path, files: Dict[str, str], images: Sequence[np.ndarray], calibration: str, *,
               sam: Dict[str, Any], clip: Dict[str, Any],
               bounds: Optional[Dict[str, Dict[str, float]]] = None,
               log: Callable[..., None] = print, threads: int = 2) -> Tuple[Dict[str, str], Dict[str, dict]]:
    """Measure each ``<graph>.int8.onnx`` in ``out`` against its fp32 twin; keep the int8 ones that agree.

    Args:
        out: the model set directory, holding the fp32 graphs, the int8 variants and the vocabulary.
        files: graph name -> fp32 file name (sam_encoder, sam_decoder, clip_visual, clip_text).
        images: calibration frames, HxWx3 uint8 RGB.
        calibration: what the frames are (recorded in the manifest).
        sam, clip: the manifest's preprocessing fields (input_size, pixel_mean, pixel_std;
            image_size, context_length, mean, std, tokenizer).
        bounds: per graph, per metric minimum (default :data:`INT8_BOUNDS`).
        log: where decisions are said.

    Returns:
        (graph -> file the manifest should name, graph -> the manifest's ``int8`` entry).  An int8
        file that is not used is deleted, so a set never carries a graph it does not use.
    """
    bounds = INT8_BOUNDS if bounds is None else bounds
    chosen, report = dict(files), {}
    for graph in ("sam_decoder", "sam_decoder_window", "clip_visual"):
        if graph not in files:
            continue
        q = out / files[graph].replace(".onnx", ".int8.onnx")
        if not q.is_file():
            continue
        if graph.startswith("sam_decoder"):
            window = min(WINDOW, int(sam["input_size"]) // 16) if graph == "sam_decoder_window" else 0
            metrics = decoder_agreement(out / files["sam_encoder"], out / files[graph], q, images,
                                        int(sam["input_size"]), sam["pixel_mean"], sam["pixel_std"],
                                        threads=threads, window=window)
        else:
            metrics = visual_agreement(out / files[graph], q, out / files["clip_text"],
                                       out / str(clip["tokenizer"]), images, int(clip["image_size"]),
                                       int(clip["context_length"]), clip["mean"], clip["std"],
                                       threads=threads)
        failed = below_bounds(metrics, bounds[graph])
        used = not failed
        if used:
            chosen[graph] = q.name
            log(f"  int8 {graph}: kept ({', '.join(f'{k} {metrics[k]:.4f}' for k in bounds[graph])})")
        else:
            q.unlink()
            log(f"  int8 {graph}: NOT used, the set keeps fp32 {files[graph]}: {'; '.join(failed)}")
        report[graph] = {"file": q.name, "used": used, "metrics": metrics, "bounds": dict(bounds[graph]),
                         "calibration": calibration}
    return chosen, report
