"""Class-agnostic mask proposals from MobileSAM's ONNX encoder and decoder.

Two modes share one encoder pass per frame:

``thorough``
    The reference recipe (SAM's automatic mask generator with
    ``points_per_side=16, pred_iou_thresh=0.8, stability_score_thresh=0.85,
    min_mask_region_area=200``, box NMS 0.7): 256 point prompts, all three
    multimask outputs kept as candidates, then filtered.

``fast`` (default)
    Prompts where something is likely to be: the blobs of a cheap
    colour-contrast saliency map (computed on a ~128 px thumbnail, a few ms;
    an elongated or merged blob gets up to three points), then a 4x4 and an 8x8
    grid for coverage.  All are decoded in small batches, salient points first,
    *skipping every point that already lies inside an accepted mask*, and the
    8x8 grid refines only the 4x4 cells whose point SAM answered with a mask.
    Each prompt keeps only its best multimask output.  ``tinyvlm eval coverage`` measures, on
    the shipped photos, how many prompts that takes (far fewer than the grid's
    256) and that it still puts a prompt on the annotated objects the
    reference grid reaches (docs/eval.md).

Both modes decode each prompt on a window of the image embedding first and on
the whole grid only when its mask reaches the window's edge
(:meth:`SamSegmenter.decode_prompts`; docs/engine.md, "Windowed decoding").  Both keep
masks as low-resolution logits (4E x 4E, the decoder's native output); only
the masks that win the match are upsampled to the frame (see
:func:`logits_to_frame`).  Deviations from SAM's generator, for speed: the
stability score and the small-region clean-up are computed on the low-res
logits (areas scaled accordingly), not on full-resolution masks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import cv2
import numpy as np

from tinyvlm_ros.engine.preprocess import sam_input
from tinyvlm_ros.engine.session import ProviderSpec, open_session
from tinyvlm_ros.models.manifest import SamConfig

MODES = ("fast", "thorough")
#: Side, in embedding cells, of the first window a prompt is decoded on (16 = 256 px of SAM's input).
DEFAULT_DECODER_WINDOW = 16
#: Prompts per whole-grid decoder call when later prompts may be dropped by earlier ones' masks.
FALLBACK_CHUNK = 2
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
    #: prompts decoded per window side (``decoder_window_16``, ...) and on the whole grid (``decoder_full``)
    decoder_stats: Dict[str, int] = field(default_factory=dict)
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
                    min_blob_frac: float = 0.0015, per_blob: int = 3) -> List[Tuple[float, float]]:
    """Prompt points at the blobs of a colour-contrast saliency map.

    Saliency of a thumbnail pixel is its Lab distance to a heavily blurred
    copy (centre-surround) averaged with its distance to the frame's median
    colour; Otsu's threshold (floored so a plain frame yields nothing) splits
    it into blobs.  Each blob gets a point at its most interior pixel; then,
    with a disc of twice that depth cleared around it, a point at the most
    interior pixel left, up to ``per_blob`` points while the rest is at least
    1.5 thumbnail pixels thick: a thin object merged with a bright neighbour
    (a rocket standing on a floodlit pad) gets its own prompt.

    Args:
        image: HxWx3 uint8 RGB.
        max_points: most points returned: every blob's first point (largest salient mass first),
            then second points, and so on.
        thumb: thumbnail longest side in pixels.
        min_blob_frac: smallest blob, as a fraction of the thumbnail area.
        per_blob: most points per blob.

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
    yy, xx = np.mgrid[0:th, 0:tw]
    ranked = []  # (rank within the blob, -blob mass, x, y)
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] < min_area:
            continue
        comp = (labels == i).astype(np.uint8)
        dist = cv2.distanceTransform(np.pad(comp, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
        mass = float(sal[labels == i].sum())
        for k in range(max(1, int(per_blob))):
            y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
            depth = float(dist[y, x])
            if k and depth < 1.5:
                break
            ranked.append((k, -mass, (x + 0.5) / s, (y + 0.5) / s))
            dist[(xx - x) ** 2 + (yy - y) ** 2 <= max(2.0 * depth, 3.0) ** 2] = 0.0
    ranked.sort(key=lambda b: (b[0], b[1]))
    return [(min(bx, w - 1.0), min(by, h - 1.0)) for _, _, bx, by in ranked[:max_points]]


def window_origins(points_s: np.ndarray, window: int, embed_size: int) -> np.ndarray:
    """First cell (x, y) of the ``window``-cell window centred on each S-frame point, inside the grid.

    Args:
        points_s: float [B, 2] (x, y) in the S frame (16 S-frame pixels per embedding cell).
        window: window side in embedding cells.
        embed_size: side E of the embedding grid.

    Returns:
        int64 [B, 2].
    """
    pts = np.asarray(points_s, np.float64).reshape(-1, 2)
    return np.clip(np.floor(pts / 16.0 - window / 2.0 + 0.5), 0, embed_size - window).astype(np.int64)


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
        threads: intra-op threads per graph.
        providers: runtimes in order of preference (see :mod:`tinyvlm_ros.engine.session`).
        decoder_window: side, in embedding cells, of the smallest window the windowed decoder
            decodes a prompt on (0: always decode on the whole grid; ignored when the model set
            has no windowed decoder).  See :meth:`decode`.
        window_batch: most prompts per windowed-decoder call on the first (smallest) window; larger
            windows get proportionally fewer, so every call holds about as many image tokens.
        full_batch: most prompts per whole-grid decoder call; the decoder's activations grow with
            the image tokens of a call, so this (with ``window_batch``) bounds the peak memory.

    Raises:
        FileNotFoundError, ValueError: a model file is missing or not the right graph.
    """

    def __init__(self, cfg: SamConfig, threads: int = 2, providers: ProviderSpec = None,
                 decoder_window: int = DEFAULT_DECODER_WINDOW, window_batch: int = 64, full_batch: int = 4):
        if decoder_window < 0:
            raise ValueError(f"decoder_window must be >= 0 (0 = whole-grid decoding), got {decoder_window}")
        if window_batch < 1 or full_batch < 1:
            raise ValueError(f"window_batch and full_batch must be >= 1, got {window_batch}, {full_batch}")
        self.cfg = cfg
        self.encoder = open_session(cfg.encoder, ["image"], ["image_embeddings"], threads, providers)
        self.decoder = open_session(cfg.decoder,
                                    ["image_embeddings", "point_coords", "point_labels", "mask_input",
                                     "has_mask_input"],
                                    ["low_res_masks", "iou_predictions"], threads, providers)
        self.input_size = cfg.input_size
        self.embed_size = cfg.embed_size
        self.low_size = 4 * cfg.embed_size
        # window sides tried in turn: w, then 2w, both smaller than the grid; then the whole grid
        self.window_sides = tuple(w for w in (decoder_window, 2 * decoder_window)
                                  if 0 < w < cfg.embed_size) if cfg.decoder_window is not None else ()
        self.window_decoder = None
        if self.window_sides:
            self.window_decoder = open_session(
                cfg.decoder_window, ["image_embeddings", "window_origin", "point_coords", "point_labels"],
                ["low_res_masks", "iou_predictions"], threads, providers)
        self.window_batch = int(window_batch)
        self.full_batch = int(full_batch)
        self._mean = np.array(cfg.pixel_mean, np.float32)
        self._std = np.array(cfg.pixel_std, np.float32)
        self._emb_key: Optional[bytes] = None
        self._emb: Optional[np.ndarray] = None

    def sessions(self) -> Dict[str, object]:
        """Return the open graphs by role (for logging which runtime runs each)."""
        out = {"sam_encoder": self.encoder, "sam_decoder": self.decoder}
        if self.window_decoder is not None:
            out["sam_decoder_window"] = self.window_decoder
        return out

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
    @staticmethod
    def _prompts(points_s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Single-point prompts in SAM's ONNX convention: each gets a padding point labelled -1."""
        b = len(points_s)
        coords = np.zeros((b, 2, 2), np.float32)
        coords[:, 0] = points_s
        labels = np.tile(np.array([[1.0, -1.0]], np.float32), (b, 1))
        return coords, labels

    def run_decoder(self, emb: np.ndarray, points_s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """One whole-grid decoder call: float32 [1,256,E,E] + [B,2] S-frame points -> [B,3,4E,4E], [B,3]."""
        coords, labels = self._prompts(points_s)
        feeds = {"image_embeddings": emb, "point_coords": coords, "point_labels": labels,
                 "mask_input": np.zeros((len(points_s), 1, self.low_size, self.low_size), np.float32),
                 "has_mask_input": np.zeros((1,), np.float32)}
        masks, iou = self.decoder.run(["low_res_masks", "iou_predictions"], feeds)
        return masks, iou

    def run_window_decoder(self, windows: np.ndarray, origins: np.ndarray,
                           points_s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """One windowed decoder call.

        Args:
            windows: float32 [B,256,w,w], each prompt's window of the image embedding.
            origins: float32 [B,2] (x, y) of each window's first cell in the embedding grid.
            points_s: float32 [B,2] (x, y) prompts in the S frame (global, not window, coordinates).

        Returns:
            (low_res_masks float32 [B,3,4w,4w] over the window, iou_predictions float32 [B,3]).
        """
        coords, labels = self._prompts(points_s)
        masks, iou = self.window_decoder.run(
            ["low_res_masks", "iou_predictions"],
            {"image_embeddings": windows, "window_origin": origins, "point_coords": coords,
             "point_labels": labels})
        return masks, iou

    def tiers(self) -> Tuple[int, ...]:
        """Window sides a prompt is tried on in turn, then 0 (the whole grid)."""
        return tuple(self.window_sides) + (0,)

    def decode_tier(self, emb: np.ndarray, points_s: np.ndarray, window: int, min_iou: float = 0.0,
                    best_only: bool = False) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Decode prompts on ``window`` x ``window`` windows of the embedding (0: the whole grid).

        Each window is centred on its prompt's cell and kept inside the grid.  A prompt's
        result *fits* when none of the outputs the caller will look at - those with predicted
        IoU >= ``min_iou``, or only the best of them with ``best_only`` - has mask pixels on an
        edge of the window that is not the grid's edge (the mask may go on outside).

        Returns:
            (low_res_masks float32 [B,3,4E,4E] with strongly negative logits outside the window,
            iou_predictions [B,3], fits bool [B], edges int [B]: window edges the looked-at masks reach).
        """
        points_s = np.asarray(points_s, np.float32).reshape(-1, 2)
        b, e, low = len(points_s), self.embed_size, self.low_size
        if window <= 0 or window >= e:
            masks = np.empty((b, 3, low, low), np.float32)
            ious = np.empty((b, 3), np.float32)
            for start in range(0, b, self.full_batch):
                masks[start:start + self.full_batch], ious[start:start + self.full_batch] = self.run_decoder(
                    emb, points_s[start:start + self.full_batch])
            return masks, ious, np.ones(b, bool), np.zeros(b, np.int64)
        masks = np.full((b, 3, low, low), _OUTSIDE, np.float32)
        ious = np.empty((b, 3), np.float32)
        edges = np.zeros(b, np.int64)
        w = int(window)
        origins = window_origins(points_s, w, e)
        # about as many image tokens per call on every window size
        per_call = max(1, (self.window_batch * self.window_sides[0] ** 2) // (w * w)) if self.window_sides \
            else self.window_batch
        for start in range(0, b, per_call):
            sl = slice(start, start + per_call)
            windows = np.stack([emb[0, :, oy:oy + w, ox:ox + w] for ox, oy in origins[sl]])
            wm, wi = self.run_window_decoder(windows, origins[sl].astype(np.float32), points_s[sl])
            for k, (ox, oy) in enumerate(origins[sl]):
                i = start + k
                masks[i, :, 4 * oy:4 * (oy + w), 4 * ox:4 * (ox + w)] = wm[k]
                ious[i] = wi[k]
                look = wi[k] >= min_iou
                if best_only and look.any():
                    look = wi[k] == np.max(np.where(look, wi[k], -np.inf))
                on = wm[k][look] > 0
                if on.size:
                    edges[i] = (int(ox > 0 and on[:, :, 0].any()) + int(oy > 0 and on[:, 0, :].any())
                                + int(ox + w < e and on[:, :, -1].any())
                                + int(oy + w < e and on[:, -1, :].any()))
        return masks, ious, edges == 0, edges

    def decode(self, emb: np.ndarray, points_s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Decode single-point prompts on the whole grid (no windows).

        Args:
            emb: float32 [1,256,E,E].
            points_s: float32 [B, 2] (x, y) in the S frame.

        Returns:
            (low_res_masks float32 [B,3,4E,4E], iou_predictions float32 [B,3]).
        """
        masks, ious, _, _ = self.decode_tier(emb, points_s, 0)
        return masks, ious

    def decode_prompts(self, emb: np.ndarray, points_s: np.ndarray, min_iou: float = 0.0,
                       best_only: bool = False, stats: Optional[Dict[str, int]] = None,
                       wanted: Optional[Callable[[int], bool]] = None,
                       resolved: Optional[Callable[[np.ndarray, np.ndarray, np.ndarray], None]] = None
                       ) -> Tuple[np.ndarray, np.ndarray]:
        """Decode single-point prompts, on windows of the embedding where the masks fit.

        Each prompt is first decoded on a ``w`` x ``w`` window of the image embedding centred on
        it (``decoder_window``; batched, ~(64/w)^2 times less work than the whole grid at 1024),
        then on a ``2w`` window, then on the whole grid, moving on while a mask it looks at
        reaches the window's edge (see :meth:`decode_tier`).  A mask that reaches three or more
        edges of a window skips the larger windows (it is rarely less than twice as wide).  A
        mask that stays inside its window is kept with strongly negative logits outside it.  Not
        exact: the prompt tokens' attention over the image sees only the window (measured
        agreement: docs/benchmarks.md).

        Args:
            emb: float32 [1,256,E,E].
            points_s: float32 [B, 2] (x, y) in the S frame.
            min_iou, best_only: which outputs the caller looks at (see :meth:`decode_tier`).
            stats: if given, ``decoder_window_<w>`` and ``decoder_full`` prompt counts are added.
            wanted: called with a prompt's index before it moves on to a larger window or the whole
                grid; False drops it (its outputs get predicted IoU -1).
            resolved: called with (indices, masks, ious) as soon as prompts are decoded for good,
                so ``wanted`` can depend on what earlier prompts found.

        Returns:
            (low_res_masks float32 [B,3,4E,4E], iou_predictions float32 [B,3]).
        """
        points_s = np.asarray(points_s, np.float32).reshape(-1, 2)
        if "decode" in vars(self):
            # a stand-in for the decoder answers whole-grid calls (tinyvlm_ros.eval.oracle.attach)
            masks, ious = self.decode(emb, points_s)
            if stats is not None:
                stats["decoder_full"] = stats.get("decoder_full", 0) + len(points_s)
            if resolved is not None and len(points_s):
                resolved(np.arange(len(points_s)), masks, ious)
            return masks, ious
        b, low = len(points_s), self.low_size
        masks = np.full((b, 3, low, low), _OUTSIDE, np.float32)
        ious = np.full((b, 3), -1.0, np.float32)
        todo = np.arange(b)
        tiers = self.tiers()
        edges_by_index = np.zeros(b, np.int64)
        for t, w in enumerate(tiers):
            if t > 0 and wanted is not None:
                todo = np.array([i for i in todo if wanted(int(i))], np.int64)
            if not len(todo):
                break
            # a mask that reached 3+ edges of the previous window is left for the whole grid
            if t > 0 and w > 0 and len(todo):
                big = edges_by_index[todo] >= 3
                todo, deferred = todo[~big], todo[big]
            else:
                deferred = np.zeros(0, np.int64)
            # the whole grid is ~20x the cost of a small window: with ``wanted``, go in small chunks
            # so a prompt is dropped as soon as an earlier one's mask covers it
            step = len(todo) if (w > 0 or wanted is None) else FALLBACK_CHUNK
            edges_by_index = np.zeros(b, np.int64)
            edges_by_index[deferred] = 3
            left = []
            for start in range(0, len(todo), step):
                part = todo[start:start + step]
                if start > 0:
                    part = np.array([i for i in part if wanted(int(i))], np.int64)
                    if not len(part):
                        continue
                m, q, fits, edges = self.decode_tier(emb, points_s[part], w, min_iou, best_only)
                if stats is not None:
                    key = f"decoder_window_{w}" if w else "decoder_full"
                    stats[key] = stats.get(key, 0) + len(part)
                done = part[fits]
                masks[done], ious[done] = m[fits], q[fits]
                if resolved is not None and len(done):
                    resolved(done, masks[done], ious[done])
                edges_by_index[part] = edges
                left.append(part[~fits])
            todo = np.sort(np.concatenate(left + [deferred]))
        return masks, ious

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
        # a copy: a view would keep the whole decoder batch it came from alive with the candidate
        return MaskCandidate(logits=np.array(logits, np.float32, copy=True), box=tuple(float(v) for v in box),
                             area=area, iou_pred=float(iou),
                             stability=float(stab), point=point)

    # -- mask generation ------------------------------------------------------------------------
    def generate(self, image: np.ndarray, mode: str = "fast", key: Optional[bytes] = None, *,
                 points_per_side: int = 16, points_per_batch: int = 64, pred_iou_thresh: float = 0.8,
                 stability_score_thresh: float = 0.85, min_mask_region_area: float = 200.0,
                 box_nms_thresh: float = 0.7, fast_grid: int = 8, fast_max_salient: int = 24,
                 fast_iou_thresh: float = 0.7, fast_stability_thresh: float = 0.8,
                 fast_batch: int = 4, fast_max_masks: int = 24) -> Segmentation:
        """Propose masks for an HxWx3 uint8 RGB frame.

        Args:
            image: HxWx3 uint8 RGB (already validated and downscaled by the caller).
            mode: ``"fast"`` or ``"thorough"`` (see the module docstring).
            key: frame identity for embedding reuse (None: always encode).
            points_per_side .. box_nms_thresh: the reference recipe's settings (thorough mode;
                ``min_mask_region_area`` and ``box_nms_thresh`` also apply to fast mode).
            fast_grid: finest coverage grid per side in fast mode; a grid of half as many per side is
                prompted first, and the cells where it finds nothing are not refined.
            fast_max_salient: most saliency prompts in fast mode.
            fast_iou_thresh, fast_stability_thresh: fast mode's mask filters (one mask per prompt,
                chosen by predicted IoU, so they are looser than the grid recipe's).
            fast_batch: prompts per decoder batch in fast mode (smaller = more skipping).
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
        dstats: Dict[str, int] = {}
        if mode == "thorough":
            cands, calls = self._thorough(emb, scale, frame_hw, points_per_side, points_per_batch,
                                          pred_iou_thresh, stability_score_thresh, small_cells, dstats)
        else:
            t_sal = time.perf_counter()
            seeds = saliency_points(image, max_points=fast_max_salient)
            timings["saliency"] = time.perf_counter() - t_sal
            cands, calls = self._fast(emb, scale, frame_hw, seeds, fast_grid, fast_iou_thresh,
                                      fast_stability_thresh, small_cells, fast_batch, dstats)
        cands = [c for c in cands if c.area >= min_mask_region_area]
        if cands:
            boxes = np.array([c.box for c in cands], np.float32)
            scores = np.array([c.iou_pred for c in cands], np.float32)
            cands = [cands[i] for i in box_nms(boxes, scores, box_nms_thresh)]
        if mode == "fast":
            cands = cands[:max(0, int(fast_max_masks))]
        timings["decoder"] = time.perf_counter() - t1 - timings.get("saliency", 0.0)
        return Segmentation(candidates=cands, frame_shape=tuple(frame_hw), scale=scale, decoder_calls=calls,
                            encoder_reused=reused, timings=timings, decoder_stats=dstats)

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

    def _thorough(self, emb, scale, frame_hw, n_side, per_batch, iou_thresh, stab_thresh, small_cells,
                  dstats):
        h, w = frame_hw
        pts = grid_points(w, h, n_side)
        cands: List[MaskCandidate] = []
        for start in range(0, len(pts), per_batch):
            batch = pts[start:start + per_batch]
            masks, ious = self.decode_prompts(emb, batch * scale, min_iou=iou_thresh, stats=dstats)
            stab = stability_score(masks)
            keep = (ious > iou_thresh) & (stab >= stab_thresh)
            for bi, mi in zip(*np.nonzero(keep)):
                logits = self._clean(masks[bi, mi], small_cells)
                c = self._candidate(logits, ious[bi, mi], stab[bi, mi], scale, frame_hw,
                                    (float(batch[bi, 0]), float(batch[bi, 1])))
                if c is not None:
                    cands.append(c)
        return cands, len(pts)

    def _fast(self, emb, scale, frame_hw, seeds, n_grid, iou_thresh, stab_thresh, small_cells, batch, dstats):
        h, w = frame_hw
        low = self.low_size
        covered = np.zeros((low, low), bool)
        accepted: List[MaskCandidate] = []
        accepted_masks: List[np.ndarray] = []
        calls = 0

        def covered_at(p: np.ndarray) -> bool:
            cx = int(np.clip(p[0] * scale / 4.0, 0, low - 1))
            cy = int(np.clip(p[1] * scale / 4.0, 0, low - 1))
            return bool(covered[cy, cx])

        def take(points: np.ndarray) -> List[bool]:
            """Decode a batch; per prompt, whether SAM answered it with a confident, stable mask."""
            nonlocal calls
            answered = [False] * len(points)

            def accept(idx: np.ndarray, masks: np.ndarray, ious: np.ndarray) -> None:
                nonlocal covered
                stab = stability_score(masks)
                # best multimask output per prompt among the stable ones (SAM picks by predicted IoU)
                ok = (ious >= iou_thresh) & (stab >= stab_thresh)
                for k, bi in enumerate(idx):
                    if not ok[k].any():
                        continue
                    best = int(np.argmax(np.where(ok[k], ious[k], -1.0)))
                    logits = self._clean(masks[k, best], small_cells)
                    on = logits > 0
                    if not on.any():
                        continue
                    answered[bi] = True
                    # a prompt landing in an object found by an earlier prompt
                    if any((on & m).sum() > 0.7 * (on | m).sum() for m in accepted_masks):
                        continue
                    c = self._candidate(logits, ious[k, best], stab[k, best], scale, frame_hw,
                                        (float(points[bi, 0]), float(points[bi, 1])))
                    if c is None:
                        continue
                    accepted.append(c)
                    accepted_masks.append(on)
                    covered |= on

            # a prompt whose mask did not fit its window is dropped once an accepted mask covers it
            self.decode_prompts(emb, points * scale, min_iou=iou_thresh, best_only=True, stats=dstats,
                                wanted=lambda i: not covered_at(points[i]), resolved=accept)
            calls += len(points)
            # a prompt dropped because an accepted mask came to cover it lies on an object: answered
            return [a or covered_at(pt) for a, pt in zip(answered, points)]

        # Salient points first (largest blob first), then a coarse grid of n_grid/2 per side, then
        # the n_grid grid.  Any point inside an accepted mask is skipped, and a coarse cell whose
        # point SAM answered with no mask (featureless texture) is not refined.
        n_coarse = max(1, n_grid // 2)

        def cell(p: np.ndarray) -> Tuple[int, int]:
            return (min(n_coarse - 1, int(p[0] * n_coarse / w)), min(n_coarse - 1, int(p[1] * n_coarse / h)))

        # three passes, each in batches, so a fine point is decided after its coarse cell's answer:
        # (point, the coarse cell it probes, the coarse cell it refines)
        passes = [[(np.asarray(p, np.float32), None, None) for p in seeds],
                  [(p, cell(p), None) for p in grid_points(w, h, n_coarse)],
                  [(p, None, cell(p)) for p in grid_points(w, h, n_grid)] if n_grid > n_coarse else []]
        empty_cells = set()
        for queue in passes:
            while queue:
                todo = []
                while queue and len(todo) < batch:
                    p, probes, refines = queue.pop(0)
                    if refines is not None and refines in empty_cells:
                        continue
                    if not covered_at(p):
                        todo.append((p, probes))
                if todo:
                    answered = take(np.asarray([p for p, _ in todo], np.float32))
                    empty_cells.update(c for (_, c), a in zip(todo, answered) if c is not None and not a)
        accepted.sort(key=lambda c: -c.iou_pred)
        return accepted, calls
