"""A stand-in for SAM's decoder that answers with annotated regions: the one decoder oracle.

Without trained weights SAM's masks are noise, so neither fast mode's
coverage-skipping nor the work per frame can be measured with the real
decoder.  :class:`RegionDecoder` replaces the decoder's *output values* with
the masks a trained SAM gives for a point prompt: the region under the point.
Everything around it - saliency seeds, prompt placement, IoU/stability filters,
coverage-skipping, NMS, crops - is the segmenter's own code on real pixels.

Regions of a photo (:func:`photo_regions`):

* every annotated object is a region; where objects overlap (a cap on a
  person) a pixel belongs to the smallest one, as SAM's best mask for a point
  on the cap is the cap;
* the background (pixels of no object) is split into "stuff" regions, the
  connected areas of similar colour (Lab quantised after a blur: a table
  top, a wall, a patch of sky), which SAM also returns for a point on them;
* a point on a background fragment smaller than ``min_stuff_frac`` of the frame
  gets no mask: predicted IoU ``NOTHING_IOU`` is below every filter.

Per region the three multimask outputs are the region (predicted IoU 0.95 for an
object, 0.9 for stuff), the region grown by two low-res cells (0.86) and shrunk
by two (0.6).  The pipeline benchmark uses the same decoder on generated
scenes (``real_decode`` runs the decoder graph too, so its cost stays real);
:class:`OracleSegmenter` runs it with no model files at all, for prompt coverage.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from tinyvlm_ros.engine.segmenter import SamSegmenter

#: Predicted IoU of the "no mask" answer: below fast mode's and the reference recipe's filters.
NOTHING_IOU = 0.2
#: Predicted IoUs of the three outputs (region, grown, shrunk) for an object and for stuff.
OBJECT_IOUS = (0.95, 0.86, 0.6)
STUFF_IOUS = (0.9, 0.86, 0.6)


def photo_regions(image: np.ndarray, object_masks: Sequence[np.ndarray], *, min_stuff_frac: float = 0.005,
                  blur_sigma: float = 2.0) -> Tuple[np.ndarray, int]:
    """Region map of a photo for :class:`RegionDecoder`.

    Args:
        image: HxWx3 uint8 RGB.
        object_masks: HxW bool masks of the annotated objects; region i is object i.
        min_stuff_frac: background areas smaller than this fraction of the frame give no mask.
        blur_sigma: Gaussian blur (pixels) before the colour quantisation of the background.

    Returns:
        (labels, n_objects): HxW int32 labels (0..n_objects-1 objects, n_objects.. stuff, -1 nothing)
        and the number of objects.
    """
    h, w = image.shape[:2]
    labels = np.full((h, w), -1, np.int32)
    # largest first, so a smaller object lying on a larger one keeps its own pixels
    for i in sorted(range(len(object_masks)), key=lambda k: -int(object_masks[k].sum())):
        m = object_masks[i]
        if m.shape != (h, w):
            raise ValueError(f"object mask {i} is {m.shape}, the image is {(h, w)}")
        labels[m] = i
    n_obj = len(object_masks)
    lab = cv2.cvtColor(cv2.GaussianBlur(image, (0, 0), blur_sigma), cv2.COLOR_RGB2LAB).astype(np.int32)
    code = (lab[..., 0] // 40) * 256 + (lab[..., 1] // 16) * 16 + lab[..., 2] // 16
    code[labels >= 0] = -1
    next_label = n_obj
    min_area = max(1, int(min_stuff_frac * h * w))
    for c in np.unique(code):
        if c < 0:
            continue
        n, comp, stats, _ = cv2.connectedComponentsWithStats((code == c).astype(np.uint8), connectivity=8)
        for k in range(1, n):
            if stats[k, cv2.CC_STAT_AREA] >= min_area:
                labels[comp == k] = next_label
                next_label += 1
    return labels, n_obj


class RegionDecoder:
    """Stands in for ``SamSegmenter.decode``: the masks of the region under each prompt.

    Args:
        real_decode: the segmenter's own decode, run first on every call so the decoder's cost is
            measured (its output values are then replaced); None runs no graph at all.
        input_size: SAM's input side S.
        low_size: side of the low-res mask grid (4 x the embedding side).

    Attributes:
        prompts: every prompt (x, y) in frame pixels since the last :meth:`set_frame`.
    """

    def __init__(self, real_decode: Optional[Callable], input_size: int, low_size: int) -> None:
        self.real_decode = real_decode
        self.input_size = input_size
        self.low_size = low_size
        self.labels: Optional[np.ndarray] = None
        self.n_objects: Optional[int] = None
        self.prompts: List[Tuple[float, float]] = []
        self._cache: Dict[int, np.ndarray] = {}
        self._kernel = np.ones((5, 5), np.uint8)

    def set_frame(self, labels: np.ndarray, n_objects: Optional[int] = None) -> None:
        """Use this frame's region map (HxW int32, -1 = no mask) for the following calls.

        ``n_objects``: labels below it are objects and labels from it on are stuff (None: all objects).
        """
        self.labels = labels
        self.n_objects = n_objects
        self.prompts = []
        self._cache = {}

    def _masks(self, region: int) -> np.ndarray:
        if region not in self._cache:
            h, w = self.labels.shape
            scale = self.input_size / float(max(h, w))
            m = (self.labels == region).astype(np.float32)
            nw, nh = int(round(w * scale)), int(round(h * scale))
            canvas = np.zeros((self.input_size, self.input_size), np.float32)
            canvas[:nh, :nw] = cv2.resize(m, (nw, nh), interpolation=cv2.INTER_LINEAR)
            low = cv2.resize(canvas, (self.low_size, self.low_size), interpolation=cv2.INTER_AREA)
            on = (low > 0.5).astype(np.uint8)
            if not on.any():
                # a region thinner than a low-res cell still answers with the cell under it
                on = (low >= low.max() * 0.5).astype(np.uint8) if low.max() > 0 else on
            grown = cv2.dilate(on, self._kernel)
            shrunk = cv2.erode(on, self._kernel)
            if not shrunk.any():
                shrunk = on
            self._cache[region] = np.stack([(x.astype(np.float32) - 0.5) * 20.0 for x in (on, grown, shrunk)])
        return self._cache[region]

    def __call__(self, emb: np.ndarray, points_s: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        points_s = np.asarray(points_s, np.float64)
        b = len(points_s)
        if self.real_decode is not None:
            masks, iou = self.real_decode(emb, points_s.astype(np.float32))
            if self.labels is None:
                return masks, iou
            masks = np.array(masks, np.float32, copy=True)
            iou = np.array(iou, np.float32, copy=True)
        else:
            if self.labels is None:
                raise ValueError("RegionDecoder without a real decoder needs set_frame() before decoding")
            masks = np.empty((b, 3, self.low_size, self.low_size), np.float32)
            iou = np.empty((b, 3), np.float32)
        h, w = self.labels.shape
        scale = self.input_size / float(max(h, w))
        for k, (x, y) in enumerate(points_s / scale):
            self.prompts.append((float(x), float(y)))
            r = int(self.labels[int(np.clip(y, 0, h - 1)), int(np.clip(x, 0, w - 1))])
            if r < 0:
                masks[k] = -10.0
                iou[k] = NOTHING_IOU
                continue
            masks[k] = self._masks(r)
            stuff = self.n_objects is not None and r >= self.n_objects
            iou[k] = STUFF_IOUS if stuff else OBJECT_IOUS
        return masks, iou


def attach(segmenter: SamSegmenter) -> RegionDecoder:
    """Route a segmenter's decoder calls through a :class:`RegionDecoder` that still runs the real graph.

    Returns the oracle; call its ``set_frame`` with each frame's regions (until then it passes the
    decoder's own outputs through).
    """
    oracle = RegionDecoder(segmenter.decode, segmenter.input_size, segmenter.low_size)
    segmenter.decode = oracle  # an instance attribute shadows the method: the detector calls the oracle
    return oracle


class OracleSegmenter(SamSegmenter):
    """The segmenter's own mask generation with :class:`RegionDecoder` answering and no model files.

    No encoder runs (the oracle never reads the embedding), so fast mode's
    prompts, coverage-skipping and filters can be measured on a photo in
    milliseconds for any SAM input size.

    Args:
        input_size: SAM's input side S (1024 for MobileSAM; 512 for the fast variant).
    """

    def __init__(self, input_size: int = 1024) -> None:
        if input_size % 64 or input_size < 64:
            raise ValueError(f"input_size must be a positive multiple of 64, got {input_size}")
        # deliberately no super().__init__: it opens the ONNX sessions this class replaces
        self.input_size = int(input_size)
        self.low_size = self.input_size // 4
        self._emb_key: Optional[bytes] = None
        self._emb: Optional[np.ndarray] = None
        self.oracle = RegionDecoder(None, self.input_size, self.low_size)
        self.decode = self.oracle  # instance attribute shadows the method

    def embed(self, image: np.ndarray, key: Optional[bytes] = None) -> Tuple[np.ndarray, float, bool]:
        """Return a placeholder embedding and SAM's scale for ``image`` (nothing is encoded)."""
        _, scale = self._geometry(image.shape[:2])
        return np.zeros((1, 1, 1, 1), np.float32), scale, False
