"""Class-agnostic mask proposals from MobileSAM's ONNX encoder and decoder.

Two modes share one encoder pass per frame:

``thorough``
    The reference recipe (SAM's automatic mask generator with
    ``points_per_side=16, pred_iou_thresh=0.8, stability_score_thresh=0.85,
    min_mask_region_area=200``, box NMS 0.7): 256 point prompts, all three
    multimask outputs kept as candidates, then filtered.

``fast`` (default)
    Prompts where something is likely to be: one per blob of a cheap
    colour-contrast saliency map (computed on a ~128 px thumbnail, < 2 ms),
    decoded as one batch; then a coarse grid (4x4) for coverage, decoded in
    small batches and *skipping every grid point that already lies inside an
    accepted mask*.  Each prompt keeps only its best multimask output.  A
    typical table-top frame needs 10-25 decoder prompts instead of 256.

Both modes keep masks as low-resolution logits (4E x 4E, the decoder's native
output); only the masks that win the match are upsampled to the frame (see
:func:`logits_to_frame`).  Deviations from SAM's generator, for speed: the
stability score and the small-region clean-up are computed on the low-res
logits (areas scaled accordingly), not on full-resolution masks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from tinyvlm_ros.engine.preprocess import sam_input
from tinyvlm_ros.engine.session import open_session
from tinyvlm_ros.models.manifest import SamConfig

MODES = ("fast", "thorough")
#: Logit value used outside the valid frame when warping masks.
_OUTSIDE = -20.0


@dataclass
class MaskCandidate:
    """One proposed mask.

    Attributes:
        logits: float32 [4E, 4E] low-res mask logits (> 0 inside) on SAM's padded square.
        box: (x0, y0, x1, y1) float, in pixels of the frame given to the segmenter, x1/y1 exclusive.
        area: mask area in pixels of that frame (estimated from the low-res mask).
        iou_pred: the decoder's predicted IoU.
        stability: stability score (IoU of the mask at logit thresholds +1 and -1).
        point: the prompt (x, y) in frame pixels that produced it.
    """

    logits: np.ndarray
    box: Tuple[float, float, float, float]
    area: float
    iou_pred: float
    stability: float
    point: Tuple[float, float]


@dataclass
class Segmentation:
    """All candidates of one frame and what they cost."""

    candidates: List[MaskCandidate]
    frame_shape: Tuple[int, int]
    scale: float  # S-frame pixels per frame pixel
    decoder_calls: int = 0
    encoder_reused: bool = False
    timings: Dict[str, float] = field(default_factory=dict)


def logits_to_frame(logits: np.ndarray, scale: float, region: Tuple[int, int, int, int],
                    out_size: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Bilinearly sample low-res logits onto a rectangle of the frame.

    The low-res grid has 4 S-frame pixels per cell and the S frame is the
    frame scaled by ``scale`` (SAM's resize-longest-side), so frame pixel
    centre ``x + 0.5`` sits at low-res coordinate ``(x + 0.5) * scale / 4 - 0.5``.

    Args:
        logits: float32 [L, L].
        scale: S / max(frame height, width).
        region: (x0, y0, width, height) in frame pixels.
        out_size: (width, height) of the output grid; defaults to the region size.

    Returns:
        float32 [out_h, out_w] logits; outside the low-res grid they are strongly negative.
    """
    x0, y0, w, h = region
    ow, oh = out_size if out_size is not None else (w, h)
    sx, sy = w / float(ow), h / float(oh)
    k = scale / 4.0
    m = np.array([[sx * k, 0.0, (x0 + 0.5 * sx) * k - 0.5],
                  [0.0, sy * k, (y0 + 0.5 * sy) * k - 0.5]], np.float64)
    return cv2.warpAffine(np.ascontiguousarray(logits, np.float32), m, (int(ow), int(oh)),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=_OUTSIDE)


def stability_score(logits: np.ndarray, offset: float = 1.0) -> np.ndarray:
    """Compute SAM's stability score of [..., L, L] logits: IoU of the masks at +offset and -offset."""
    inter = (logits > offset).sum(axis=(-1, -2)).astype(np.float32)
    union = (logits > -offset).sum(axis=(-1, -2)).astype(np.float32)
    return np.where(union > 0, inter / np.maximum(union, 1.0), 0.0)


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_thresh: float) -> List[int]:
    """Greedy NMS over [N, 4] xyxy boxes; returns kept indices, best score first."""
    order = np.argsort(-scores, kind="stable")
    keep: List[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    suppressed = np.zeros(len(boxes), bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        xx0 = np.maximum(boxes[i, 0], boxes[:, 0])
        yy0 = np.maximum(boxes[i, 1], boxes[:, 1])
        xx1 = np.minimum(boxes[i, 2], boxes[:, 2])
        yy1 = np.minimum(boxes[i, 3], boxes[:, 3])
        inter = np.clip(xx1 - xx0, 0, None) * np.clip(yy1 - yy0, 0, None)
        iou = inter / np.maximum(areas[i] + areas - inter, 1e-9)
        suppressed |= iou > iou_thresh
    return keep


def saliency_points(image: np.ndarray, max_points: int = 24, thumb: int = 128,
                    min_blob_frac: float = 0.0015) -> List[Tuple[float, float]]:
    """Prompt points at the blobs of a colour-contrast saliency map.

    Saliency of a thumbnail pixel is its Lab distance to a heavily blurred
    copy (centre-surround) averaged with its distance to the frame's median
    colour; Otsu's threshold (floored so a plain frame yields nothing) splits
    it into blobs, and each blob gets one point at its most interior pixel.

    Args:
        image: HxWx3 uint8 RGB.
        max_points: most points returned (largest salient mass first).
        thumb: thumbnail longest side in pixels.
        min_blob_frac: smallest blob, as a fraction of the thumbnail area.

    Returns:
        (x, y) points in pixels of ``image``.
    """
    h, w = image.shape[:2]
    s = thumb / float(max(h, w))
    tw, th = max(8, int(round(w * s))), max(8, int(round(h * s)))
    small = cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    sigma = 0.12 * max(tw, th)
    surround = cv2.GaussianBlur(lab, (0, 0), sigma)
    centre = cv2.GaussianBlur(lab, (0, 0), 1.0)
    cs = np.linalg.norm(centre - surround, axis=2)
    glob = np.linalg.norm(centre - np.median(lab.reshape(-1, 3), axis=0), axis=2)
    sal = 0.5 * (cs + glob)
    sal8 = np.clip(sal * (255.0 / max(float(sal.max()), 1e-6)), 0, 255).astype(np.uint8)
    otsu, _ = cv2.threshold(sal8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # a floor in Lab units keeps sensor noise on a plain frame from becoming blobs
    thr = max(otsu * max(float(sal.max()), 1e-6) / 255.0, 12.0)
    binary = (sal > thr).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    min_area = max(4, int(min_blob_frac * tw * th))
    blobs = []
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] < min_area:
            continue
        comp = (labels == i).astype(np.uint8)
        dist = cv2.distanceTransform(np.pad(comp, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        mass = float(sal[labels == i].sum())
        blobs.append((mass, (x + 0.5) / s, (y + 0.5) / s))
    blobs.sort(key=lambda b: -b[0])
    return [(min(bx, w - 1.0), min(by, h - 1.0)) for _, bx, by in blobs[:max_points]]


def grid_points(width: int, height: int, n_per_side: int) -> np.ndarray:
    """Make SAM's point grid: cell centres of an n x n grid over the frame, [n*n, 2] (x, y) pixels."""
    offset = 1.0 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs, ys = np.meshgrid(side * width, side * height)
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


def _remove_small_regions(mask: np.ndarray, area_thresh: float) -> np.ndarray:
    """Drop islands and fill holes smaller than ``area_thresh`` cells in a bool [L, L] mask."""
    out = mask.copy()
    for fill_holes in (True, False):
        work = (~out if fill_holes else out).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(work, connectivity=8)
        small = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] < area_thresh]
        if not small:
            continue
        sel = np.isin(labels, small)
        out = out | sel if fill_holes else out & ~sel
    return out


class SamSegmenter:
    """MobileSAM encoder + decoder behind a frame -> candidates call.

    Args:
        cfg: the ``sam`` part of a loaded model set.
        threads: ONNX Runtime intra-op threads.

    Raises:
        FileNotFoundError, ValueError: a model file is missing or not the right graph.
    """

    def __init__(self, cfg: SamConfig, threads: int = 2):
        self.cfg = cfg
        self.encoder = open_session(cfg.encoder, ["image"], ["image_embeddings"], threads)
        self.decoder = open_session(cfg.decoder,
                                    ["image_embeddings", "point_coords", "point_labels", "mask_input",
                                     "has_mask_input"],
                                    ["low_res_masks", "iou_predictions"], threads)
        self.input_size = cfg.input_size
        self.low_size = 4 * cfg.embed_size
        self._mean = np.array(cfg.pixel_mean, np.float32)
        self._std = np.array(cfg.pixel_std, np.float32)
        self._emb_key: Optional[bytes] = None
        self._emb: Optional[np.ndarray] = None

    # -- encoder --------------------------------------------------------------------------------
    def preprocess(self, image: np.ndarray) -> Tuple[np.ndarray, float]:
        """HxWx3 uint8 RGB -> (float32 [1,3,S,S] normalised and zero padded, scale S/max(H,W)).

        Resized exactly as MobileSAM's predictor resizes (see :mod:`tinyvlm_ros.engine.preprocess`).
        """
        return sam_input(image, self.input_size, self._mean, self._std)

    def embed(self, image: np.ndarray, key: Optional[bytes] = None) -> Tuple[np.ndarray, float, bool]:
        """Image embedding [1,256,E,E], the scale, and whether it was reused.

        ``key`` identifies the frame (e.g. a hash); the last frame's embedding
        is kept and reused while the key repeats (a static scene).
        """
        _, scale = self._geometry(image.shape[:2])
        if key is not None and key == self._emb_key and self._emb is not None:
            return self._emb, scale, True
        x, scale = self.preprocess(image)
        emb = self.encoder.run(["image_embeddings"], {"image": x})[0]
        self._emb_key, self._emb = key, emb
        return emb, scale, False

    @property
    def embedding_key(self) -> Optional[bytes]:
        """Key of the frame whose image embedding is held (None: none held)."""
        return self._emb_key if self._emb is not None else None

    def forget_embedding(self) -> None:
        """Drop the held image embedding; the next frame is encoded."""
        self._emb_key, self._emb = None, None

    def _geometry(self, shape: Tuple[int, int]) -> Tuple[Tuple[int, int], float]:
        h, w = shape
        return (h, w), self.input_size / float(max(h, w))

    # -- decoder --------------------------------------------------------------------------------
    def decode(self, emb: np.ndarray, points_s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Decode single-point prompts.

        Args:
            emb: float32 [1,256,E,E].
            points_s: float32 [B, 2] (x, y) in the S frame.

        Returns:
            (low_res_masks float32 [B,3,4E,4E], iou_predictions float32 [B,3]).
        """
        b = len(points_s)
        # SAM's ONNX convention: without a box prompt, add a padding point labelled -1
        coords = np.zeros((b, 2, 2), np.float32)
        coords[:, 0] = points_s
        labels = np.tile(np.array([[1.0, -1.0]], np.float32), (b, 1))
        feeds = {"image_embeddings": emb, "point_coords": coords, "point_labels": labels,
                 "mask_input": np.zeros((b, 1, self.low_size, self.low_size), np.float32),
                 "has_mask_input": np.zeros((1,), np.float32)}
        masks, iou = self.decoder.run(["low_res_masks", "iou_predictions"], feeds)
        return masks, iou

    def _candidate(self, logits: np.ndarray, iou: float, stab: float, scale: float,
                   frame_hw: Tuple[int, int], point: Tuple[float, float]) -> Optional[MaskCandidate]:
        """Box and area of one low-res mask in frame pixels (None if empty inside the frame)."""
        on = logits > 0
        if not on.any():
            return None
        ys, xs = np.nonzero(on)
        cell = 4.0 / scale  # frame pixels per low-res cell
        h, w = frame_hw
        x0 = int(max(0, np.floor((xs.min() - 1) * cell)))
        y0 = int(max(0, np.floor((ys.min() - 1) * cell)))
        x1 = int(min(w, np.ceil((xs.max() + 2) * cell)))
        y1 = int(min(h, np.ceil((ys.max() + 2) * cell)))
        if x1 <= x0 or y1 <= y0:
            return None
        # the box is measured on the upsampled logits at up to ~1 px per S-frame pixel
        rw, rh = x1 - x0, y1 - y0
        # big regions of frames larger than S: measuring at S-frame resolution is as exact and cheaper
        f = scale if (scale < 1.0 and max(rw, rh) * scale > 64) else 1.0
        ow, oh = max(1, int(round(rw * f))), max(1, int(round(rh * f)))
        fine = logits_to_frame(logits, scale, (x0, y0, rw, rh), (ow, oh)) > 0
        if not fine.any():
            return None
        fy, fx = np.nonzero(fine)
        sx, sy = rw / float(ow), rh / float(oh)
        box = (x0 + fx.min() * sx, y0 + fy.min() * sy, x0 + (fx.max() + 1) * sx, y0 + (fy.max() + 1) * sy)
        area = float(fine.sum()) * sx * sy
        return MaskCandidate(logits=logits, box=tuple(float(v) for v in box), area=area, iou_pred=float(iou),
                             stability=float(stab), point=point)

    # -- mask generation ------------------------------------------------------------------------
    def generate(self, image: np.ndarray, mode: str = "fast", key: Optional[bytes] = None, *,
                 points_per_side: int = 16, points_per_batch: int = 64, pred_iou_thresh: float = 0.8,
                 stability_score_thresh: float = 0.85, min_mask_region_area: float = 200.0,
                 box_nms_thresh: float = 0.7, fast_grid: int = 4, fast_max_salient: int = 24,
                 fast_iou_thresh: float = 0.7, fast_stability_thresh: float = 0.8,
                 fast_batch: int = 4, fast_max_masks: int = 24) -> Segmentation:
        """Propose masks for an HxWx3 uint8 RGB frame.

        Args:
            image: HxWx3 uint8 RGB (already validated and downscaled by the caller).
            mode: ``"fast"`` or ``"thorough"`` (see the module docstring).
            key: frame identity for embedding reuse (None: always encode).
            points_per_side .. box_nms_thresh: the reference recipe's settings (thorough mode;
                ``min_mask_region_area`` and ``box_nms_thresh`` also apply to fast mode).
            fast_grid: coverage grid per side in fast mode.
            fast_max_salient: most saliency prompts in fast mode.
            fast_iou_thresh, fast_stability_thresh: fast mode's mask filters (one mask per prompt,
                chosen by predicted IoU, so they are looser than the grid recipe's).
            fast_batch: grid prompts per decoder batch in fast mode (smaller = more skipping).
            fast_max_masks: most candidates fast mode returns (best predicted IoU first); each
                costs one CLIP crop (~15-33 ms on the 2-core CPU), so this bounds the matcher.

        Returns:
            A :class:`Segmentation` with candidates best first (by predicted IoU).
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        timings: Dict[str, float] = {}
        t0 = time.perf_counter()
        emb, scale, reused = self.embed(image, key)
        timings["encoder"] = 0.0 if reused else time.perf_counter() - t0
        frame_hw = image.shape[:2]
        # min_mask_region_area is in frame pixels; the clean-up runs on low-res cells
        cell_area = (4.0 / scale) ** 2
        small_cells = min_mask_region_area / cell_area
        t1 = time.perf_counter()
        if mode == "thorough":
            cands, calls = self._thorough(emb, scale, frame_hw, points_per_side, points_per_batch,
                                          pred_iou_thresh, stability_score_thresh, small_cells)
        else:
            t_sal = time.perf_counter()
            seeds = saliency_points(image, max_points=fast_max_salient)
            timings["saliency"] = time.perf_counter() - t_sal
            cands, calls = self._fast(emb, scale, frame_hw, seeds, fast_grid, fast_iou_thresh,
                                      fast_stability_thresh, small_cells, fast_batch)
        cands = [c for c in cands if c.area >= min_mask_region_area]
        if cands:
            boxes = np.array([c.box for c in cands], np.float32)
            scores = np.array([c.iou_pred for c in cands], np.float32)
            cands = [cands[i] for i in box_nms(boxes, scores, box_nms_thresh)]
        if mode == "fast":
            cands = cands[:max(0, int(fast_max_masks))]
        timings["decoder"] = time.perf_counter() - t1 - timings.get("saliency", 0.0)
        return Segmentation(candidates=cands, frame_shape=tuple(frame_hw), scale=scale, decoder_calls=calls,
                            encoder_reused=reused, timings=timings)

    def _clean(self, logits: np.ndarray, small_cells: float) -> np.ndarray:
        if small_cells <= 0:
            return logits
        on = logits > 0
        cleaned = _remove_small_regions(on, small_cells)
        if np.array_equal(cleaned, on):
            return logits
        out = logits.copy()
        out[on & ~cleaned] = -1.0  # removed islands
        out[cleaned & ~on] = 1.0   # filled holes
        return out

    def _thorough(self, emb, scale, frame_hw, n_side, per_batch, iou_thresh, stab_thresh, small_cells):
        h, w = frame_hw
        pts = grid_points(w, h, n_side)
        cands: List[MaskCandidate] = []
        for start in range(0, len(pts), per_batch):
            batch = pts[start:start + per_batch]
            masks, ious = self.decode(emb, batch * scale)
            stab = stability_score(masks)
            keep = (ious > iou_thresh) & (stab >= stab_thresh)
            for bi, mi in zip(*np.nonzero(keep)):
                logits = self._clean(masks[bi, mi], small_cells)
                c = self._candidate(logits, ious[bi, mi], stab[bi, mi], scale, frame_hw,
                                    (float(batch[bi, 0]), float(batch[bi, 1])))
                if c is not None:
                    cands.append(c)
        return cands, len(pts)

    def _fast(self, emb, scale, frame_hw, seeds, n_grid, iou_thresh, stab_thresh, small_cells, batch):
        h, w = frame_hw
        low = self.low_size
        covered = np.zeros((low, low), bool)
        accepted: List[MaskCandidate] = []
        accepted_masks: List[np.ndarray] = []
        calls = 0

        def take(points: np.ndarray) -> None:
            nonlocal covered, calls
            masks, ious = self.decode(emb, points * scale)
            calls += len(points)
            stab = stability_score(masks)
            # best multimask output per prompt among the stable ones (SAM picks by predicted IoU)
            ok = (ious >= iou_thresh) & (stab >= stab_thresh)
            for bi in range(len(points)):
                if not ok[bi].any():
                    continue
                best = int(np.argmax(np.where(ok[bi], ious[bi], -1.0)))
                logits = self._clean(masks[bi, best], small_cells)
                on = logits > 0
                if not on.any():
                    continue
                # a prompt landing in an object found by an earlier prompt of the same batch
                if any((on & m).sum() > 0.7 * (on | m).sum() for m in accepted_masks):
                    continue
                c = self._candidate(logits, ious[bi, best], stab[bi, best], scale, frame_hw,
                                    (float(points[bi, 0]), float(points[bi, 1])))
                if c is None:
                    continue
                accepted.append(c)
                accepted_masks.append(on)
                covered |= on

        if seeds:
            take(np.asarray(seeds, np.float32))
        grid = grid_points(w, h, n_grid)
        queue = list(grid)
        while queue:
            todo = []
            while queue and len(todo) < batch:
                p = queue.pop(0)
                cx = int(np.clip(p[0] * scale / 4.0, 0, low - 1))
                cy = int(np.clip(p[1] * scale / 4.0, 0, low - 1))
                if not covered[cy, cx]:
                    todo.append(p)
            if todo:
                take(np.asarray(todo, np.float32))
        accepted.sort(key=lambda c: -c.iou_pred)
        return accepted, calls
