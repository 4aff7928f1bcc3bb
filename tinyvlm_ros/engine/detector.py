"""Segment-then-match detector: frame + command -> boxes, on ONNX Runtime, CPU only.

Pipeline per frame: validate and downscale early (bounded memory for 8K
input), hash the frame, propose masks (:mod:`.segmenter`), embed every
mask-aware crop in one batch (:mod:`.matcher`), then score the crops with
calibrated probabilities against every phrase the command needs (targets,
reference objects, excluded objects), keep per phrase the crops above that
phrase's threshold (box NMS: one per object) and let the shared grounding
resolver (:mod:`tinyvlm_ros.grounding.resolve`) choose the target(s) with the
command's qualifiers, ordinals, relations and exclusions.  Masks and crop
embeddings are cached per frame hash, so a new command on the same frame costs
only the text tower and a matrix product.

Output: detection 0 is the chosen target (role "target"; every target of a
command with several, in spoken order), then the other instances of the target
phrases, ranked (role "candidate").  Reference objects are never returned.  A
command whose constraints cannot be met in the frame ("the third apple" with two
visible) returns no detections and the reason in ``DetectionResult.failure``.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from tinyvlm_ros.engine.matcher import ClipMatcher
from tinyvlm_ros.engine.segmenter import (DEFAULT_DECODER_WINDOW, MODES, SamSegmenter, Segmentation, box_nms,
                                          logits_to_frame, saliency_points)
from tinyvlm_ros.engine.session import ProviderSpec, describe_runtimes
from tinyvlm_ros.grounding import ParsedCommand, parse_targets
from tinyvlm_ros.grounding.resolve import Candidate, resolve
from tinyvlm_ros.models.manifest import ModelSet, load_manifest
from tinyvlm_ros.types import Detection, DetectionResult

#: Default calibrated-probability threshold (see matcher: > 0.5 means the target beats the generic prompts).
DEFAULT_THRESHOLD = 0.5
#: Frames larger than this (longest side, pixels) are downscaled before anything else.
DEFAULT_MAX_SIDE = 1600
#: Grey levels a new frame may differ from the last encoded one and still re-use its embedding.
DEFAULT_STATIC_TOLERANCE = 3.0

LOG = logging.getLogger("tinyvlm_ros.engine")


@dataclass
class _FrameEntry:
    """What a frame costs once and every command on it re-uses."""

    seg: Segmentation
    crop_emb: np.ndarray  # float32 [N, dim]
    work_scale: float     # working-frame pixels per original pixel (<= 1)
    orig_hw: Tuple[int, int]


def validate_image(image: np.ndarray) -> np.ndarray:
    """Check an HxWx3 uint8 RGB frame; return it C-contiguous.

    Raises:
        ValueError: not an ndarray, wrong dtype, wrong shape, or empty.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array (HxWx3 uint8 RGB), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (HxWx3 RGB), got dtype {image.dtype}; "
                         "convert with (img * 255).clip(0, 255).astype(np.uint8) if it is float in [0, 1]")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be HxWx3 RGB, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image is empty: shape {image.shape}")
    return np.ascontiguousarray(image)


class Detector:
    """Open-vocabulary detector implementing :class:`tinyvlm_ros.types.Engine`.

    Args:
        model_set: a loaded model set (see :func:`tinyvlm_ros.models.manifest.load_manifest`).
        mode: ``"fast"`` (default) or ``"thorough"`` (the reference recipe).
        threads: ONNX Runtime threads per session.
        matryoshka_dim: keep this many leading CLIP embedding dimensions (None: all).
        score_threshold: default calibrated-score threshold.
        max_side: frames with a longer side are downscaled first (memory stays bounded).
        cache_frames: how many recent frames keep their masks and crop embeddings.
        static_tolerance: re-use the image embedding of the last encoded frame while a new frame
            differs from it by at most this many grey levels anywhere on a 48 px thumbnail (a
            static scene with sensor noise); None re-encodes every new frame.  Masks and crops
            are still computed on the new frame.
        segmenter_options: keyword overrides for :meth:`SamSegmenter.generate` (e.g.
            ``{"fast_grid": 6, "pred_iou_thresh": 0.86}``), for benchmarks and tuning.
        providers: runtimes in order of preference, e.g. ``"openvino,cpu"`` (see
            :mod:`tinyvlm_ros.engine.session`); CPU is the fallback.  Which runtime runs each
            graph is logged once (``tinyvlm_ros.engine`` logger) and reported by :meth:`describe`.
        decoder_window: first window side of the windowed SAM decoder, in embedding cells
            (0 = whole-grid decoding only); see :meth:`SamSegmenter.decode_prompts`.
    """

    name = "onnx-segment-match"

    def __init__(self, model_set: ModelSet, mode: str = "fast", threads: int = 2,
                 matryoshka_dim: Optional[int] = None, score_threshold: float = DEFAULT_THRESHOLD,
                 max_side: int = DEFAULT_MAX_SIDE, cache_frames: int = 4,
                 static_tolerance: Optional[float] = DEFAULT_STATIC_TOLERANCE,
                 segmenter_options: Optional[Dict[str, float]] = None, providers: ProviderSpec = None,
                 decoder_window: int = DEFAULT_DECODER_WINDOW):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if max_side < 64:
            raise ValueError(f"max_side must be >= 64, got {max_side}")
        self.model_set = model_set
        self.mode = mode
        self.score_threshold = float(score_threshold)
        self.max_side = int(max_side)
        self.segmenter = SamSegmenter(model_set.sam, threads, providers, decoder_window=decoder_window)
        self.matcher = ClipMatcher(model_set.clip, threads, matryoshka_dim, providers=providers)
        self.runtimes = {**self.segmenter.sessions(), **self.matcher.sessions()}
        LOG.info("graphs: %s", describe_runtimes(self.runtimes))
        self._cache: "OrderedDict[tuple, _FrameEntry]" = OrderedDict()
        self._cache_frames = max(1, int(cache_frames))
        # the frame cache and ORT sessions are shared state: one detect() at a time
        self._lock = threading.Lock()
        if static_tolerance is not None and static_tolerance < 0:
            raise ValueError(f"static_tolerance must be >= 0 or None, got {static_tolerance}")
        self.static_tolerance = static_tolerance
        self.segmenter_options = dict(segmenter_options or {})
        params = inspect.signature(SamSegmenter.generate).parameters
        allowed = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
        unknown = sorted(set(self.segmenter_options) - allowed)
        if unknown:
            raise ValueError(f"unknown segmenter_options {unknown}; known: {sorted(allowed)}")
        self._anchor: Optional[Tuple[np.ndarray, bytes]] = None  # (thumbnail, key) of the last encoded frame
        # OpenCV's first colour conversion and blur set up its thread pool (~0.2 s); pay it here,
        # not on the first frame
        saliency_points(np.zeros((32, 32, 3), np.uint8))

    @classmethod
    def from_dir(cls, model_dir: Union[str, Path], mode: str = "fast", threads: int = 2,
                 matryoshka_dim: Optional[int] = None, verify_hashes: bool = True, **kwargs) -> "Detector":
        """Load the model set in ``model_dir`` (checks the manifest and file hashes)."""
        return cls(load_manifest(model_dir, verify_hashes=verify_hashes), mode=mode, threads=threads,
                   matryoshka_dim=matryoshka_dim, **kwargs)

    def describe(self) -> Dict[str, str]:
        ms = self.model_set
        runtimes = sorted({getattr(sess, "runtime", "cpu") for sess in self.runtimes.values()})
        return {"backend": "+".join("onnxruntime-cpu" if r == "cpu" else r for r in runtimes),
                "engine": self.name, "mode": self.mode, "models": ms.name, "kind": ms.kind,
                "model_dir": str(ms.root), "sam_input": str(ms.sam.input_size),
                "clip_dim": str(self.matcher.dim), "runtimes": describe_runtimes(self.runtimes),
                "decoder_window": str(self.segmenter.window_sides[0] if self.segmenter.window_sides else 0)}

    def clear_cache(self) -> None:
        """Forget cached frames (masks, crop embeddings and the image embedding)."""
        self._cache.clear()
        self._anchor = None
        self.segmenter.forget_embedding()

    # -- per-frame work -------------------------------------------------------------------------
    def _frame(self, image: np.ndarray, mode: str, work: Dict[str, int],
               timings: Dict[str, float]) -> _FrameEntry:
        h, w = image.shape[:2]
        t0 = time.perf_counter()
        digest = hashlib.blake2b(image.data, digest_size=16)
        digest.update(np.array(image.shape, np.int64).tobytes())
        key = digest.digest()
        timings["hash"] = time.perf_counter() - t0
        entry = self._cache.get((key, mode))
        if entry is not None:
            self._cache.move_to_end((key, mode))
            work["cache_hit"] = 1
            work["masks"] = len(entry.seg.candidates)
            return entry
        work["cache_hit"] = 0
        t0 = time.perf_counter()
        work_scale = min(1.0, self.max_side / float(max(h, w)))
        if work_scale < 1.0:
            # downscale first: every later buffer is sized by the working frame, not the input
            size = (max(1, int(round(w * work_scale))), max(1, int(round(h * work_scale))))
            work_img = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            work_scale = size[0] / float(w)
        else:
            work_img = image
        emb_key = key
        if self.static_tolerance is not None:
            # the thumbnail averages ~hundreds of pixels each, so sensor noise stays far below
            # the tolerance while any object that moves changes some thumbnail pixel a lot
            tw = 48
            th = max(1, int(round(tw * work_img.shape[0] / float(work_img.shape[1]))))
            thumb = cv2.resize(work_img, (tw, th), interpolation=cv2.INTER_AREA).astype(np.int16)
            if (self._anchor is not None and self._anchor[0].shape == thumb.shape
                    and int(np.abs(self._anchor[0] - thumb).max()) <= self.static_tolerance
                    and self.segmenter.embedding_key == self._anchor[1]):
                emb_key = self._anchor[1]
            else:
                self._anchor = (thumb, key)
        timings["resize"] = time.perf_counter() - t0
        seg = self.segmenter.generate(work_img, mode, key=emb_key, **self.segmenter_options)
        timings.update(seg.timings)
        work["encoder_calls"] = 0 if seg.encoder_reused else 1
        work["decoder_calls"] = seg.decoder_calls
        work.update(seg.decoder_stats)
        work["masks"] = len(seg.candidates)
        t0 = time.perf_counter()
        if seg.candidates:
            crops = np.stack([self.matcher.crop(work_img, c, seg.scale) for c in seg.candidates])
        else:
            crops = np.zeros((0, self.matcher.cfg.image_size, self.matcher.cfg.image_size, 3), np.uint8)
        timings["crops"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        emb = self.matcher.embed_crops(crops)
        timings["visual"] = time.perf_counter() - t0
        work["crops"] = len(crops)
        entry = _FrameEntry(seg=seg, crop_emb=emb, work_scale=work_scale, orig_hw=(h, w))
        self._cache[(key, mode)] = entry
        while len(self._cache) > self._cache_frames:
            self._cache.popitem(last=False)
        return entry

    # -- output -------------------------------------------------------------------------------------
    def _full_mask(self, entry: _FrameEntry, idx: int, box: Tuple[float, float, float, float]) -> np.ndarray:
        """Upsample one winning low-res mask to an HxW bool mask of the original frame (box region only)."""
        h, w = entry.orig_hw
        mask = np.zeros((h, w), bool)
        cand = entry.seg.candidates[idx]
        scale = entry.seg.scale * entry.work_scale  # S-frame pixels per original pixel
        cell = 4.0 / scale
        x0 = int(max(0, np.floor(box[0] - cell)))
        y0 = int(max(0, np.floor(box[1] - cell)))
        x1 = int(min(w, np.ceil(box[2] + cell)))
        y1 = int(min(h, np.ceil(box[3] + cell)))
        if x1 > x0 and y1 > y0:
            mask[y0:y1, x0:x1] = logits_to_frame(cand.logits, scale, (x0, y0, x1 - x0, y1 - y0)) > 0
        return mask

    # -- public API -----------------------------------------------------------------------------
    def detect(self, image: np.ndarray, command: Union[str, Sequence[str], ParsedCommand], *,
               score_threshold: Optional[float] = None, max_detections: Optional[int] = None,
               mode: Optional[str] = None, return_masks: bool = True) -> DetectionResult:
        """Find the command's targets in one frame.

        Args:
            image: HxWx3 uint8 RGB.
            command: a command ("pick the red block"), a list of target phrases, or a parsed command
                (:func:`tinyvlm_ros.grounding.parse_command`, e.g. with a command history).
            score_threshold: calibrated-score threshold in [0, 1] (default: the detector's).
            max_detections: keep at most this many detections in total.
            mode: override the detector's mode for this call.
            return_masks: attach HxW bool masks to the detections.

        Returns:
            :class:`DetectionResult`: detection 0 = the chosen target (see the module docstring), boxes
            in original pixel coordinates, label = target phrase, timings per stage in seconds, work
            counters (``decoder_calls``, ``crops``, ``masks``, ``encoder_calls``, ``cache_hit``,
            ``text_calls``); ``failure`` says why a command could not be grounded in this frame.

        Raises:
            ValueError: bad image, bad threshold or mode; :class:`tinyvlm_ros.grounding.CommandError`
                (a ValueError) for a command that names no object or uses an unknown relation.
        """
        t_start = time.perf_counter()
        image = validate_image(image)
        parsed = command if isinstance(command, ParsedCommand) else parse_targets(command)
        thr = self.score_threshold if score_threshold is None else float(score_threshold)
        if not 0.0 <= thr <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if max_detections is not None and int(max_detections) < 0:
            raise ValueError(f"max_detections must be >= 0, got {max_detections}")
        mode = self.mode if mode is None else mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        with self._lock:
            return self._detect(image, parsed, thr, max_detections, mode, return_masks, t_start)

    def _detect(self, image: np.ndarray, parsed: ParsedCommand, thr: float, max_detections: Optional[int],
                mode: str, return_masks: bool, t_start: float) -> DetectionResult:
        timings: Dict[str, float] = {}
        work: Dict[str, int] = {"decoder_calls": 0, "crops": 0, "masks": 0, "encoder_calls": 0}
        entry = self._frame(image, mode, work, timings)
        t0 = time.perf_counter()
        text_before = self.matcher.text_calls
        cands = entry.seg.candidates
        inv = 1.0 / entry.work_scale
        h, w = entry.orig_hw
        boxes = np.array([[c.box[0] * inv, c.box[1] * inv, c.box[2] * inv, c.box[3] * inv] for c in cands],
                         np.float64).reshape(-1, 4)
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
        areas = np.array([c.area * inv * inv for c in cands], np.float64)
        lists: Dict[str, List[Candidate]] = {}
        for phrase, pthr in parsed.phrase_thresholds(thr).items():
            p = self.matcher.scores(entry.crop_emb, phrase)
            idx = np.nonzero(p >= pthr)[0]
            if len(idx) == 0:
                lists[phrase] = []
                continue
            # one object may have several near-identical masks: keep the best-scoring of each
            tie = np.array([cands[i].iou_pred for i in idx]) * 1e-3
            keep = [int(idx[k]) for k in box_nms(boxes[idx].astype(np.float32), p[idx] + tie, 0.5)]
            lists[phrase] = [Candidate(tuple(float(v) for v in boxes[i]), float(p[i]), float(areas[i]), i)
                             for i in keep]
        grounded = resolve(parsed, lists, (h, w))
        timings["match"] = time.perf_counter() - t0
        work["text_calls"] = self.matcher.text_calls - text_before
        chosen = grounded.chosen
        if max_detections is not None:
            chosen = chosen[:int(max_detections)]
        t0 = time.perf_counter()
        detections = []
        for c in chosen:
            box = c.candidate.box
            mask = self._full_mask(entry, c.candidate.region, box) if return_masks else None
            detections.append(Detection(label=c.phrase, score=c.candidate.score, box_xyxy=box, mask=mask,
                                        target_index=c.target_index, role=c.role))
        timings["masks_out"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        return DetectionResult(detections=detections, targets=parsed.phrases, timings=timings, work=work,
                               failure=grounded.failure)

    def score_regions(self, image: np.ndarray, boxes: Sequence[Sequence[float]],
                      masks: Sequence[Optional[np.ndarray]], phrases: Sequence[str]) -> np.ndarray:
        """Calibrated score that region i of ``image`` shows ``phrases[i]`` (re-verifying tracked objects).

        Costs one visual-tower batch (no segmentation): a tracker that drifted onto the table scores low.

        Args:
            image: HxWx3 uint8 RGB.
            boxes: (x0, y0, x1, y1) per region, original pixels.
            masks: HxW bool mask per region, or None (the whole box).
            phrases: target phrase per region.

        Returns:
            float32 [N] in [0, 1], on the same scale as detection scores.
        """
        image = validate_image(image)
        if not (len(boxes) == len(masks) == len(phrases)):
            raise ValueError(f"need one mask and phrase per box, got {len(boxes)} boxes, {len(masks)} masks, "
                             f"{len(phrases)} phrases")
        if not len(boxes):
            return np.zeros(0, np.float32)
        with self._lock:
            crops = np.stack([self.matcher.crop_region(image, b, m) for b, m in zip(boxes, masks)])
            emb = self.matcher.embed_crops(crops)
            scores = [self.matcher.scores(emb[i:i + 1], p)[0] for i, p in enumerate(phrases)]
        return np.array(scores, np.float32)
