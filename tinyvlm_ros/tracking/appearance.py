"""Colour appearance of a tracked object: a hue-saturation histogram and where it is in a frame.

Two uses.  Association compares a new detection's histogram with each
track's, so two objects at the same place but of different colours are not
confused, and a track lost behind an occluder is re-found only by an object
that looks like it.  The point tracker back-projects the *ratio* histogram
(object over its surroundings) to seed features only on the object and to
notice that the box no longer holds it (occluded, or drifted onto the table).
Cheap: a few hundred pixels per object, no model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import cv2
import numpy as np

from tinyvlm_ros.tracking.frame import Frame, clip_int_box

#: Hue and saturation bins (OpenCV HSV: hue 0..180, saturation 0..256).
BINS = (18, 8)
_RANGES = [0, 180, 0, 256]
#: Back-projection above this (0..1) counts a pixel as the object.
OBJECT_LIKE = 0.5


@dataclass
class Appearance:
    """What an object looks like.

    Attributes:
        hist: float32 [H, S] histogram of the object's pixels, sums to 1.
        ratio: float32 [H, S] in [0, 1]: how much more often a colour occurs on the object than around it.
        fill: fraction of the object's box that back-projects as object (the reference for occlusion).
    """

    hist: np.ndarray
    ratio: np.ndarray
    fill: float

    def blend(self, other: "Appearance", keep: float = 0.7) -> "Appearance":
        """Mix in a newer look (running average: lighting and pose drift slowly)."""
        hist = keep * self.hist + (1.0 - keep) * other.hist
        ratio = keep * self.ratio + (1.0 - keep) * other.ratio
        fill = keep * self.fill + (1.0 - keep) * other.fill
        return Appearance(hist / max(float(hist.sum()), 1e-12), ratio, fill)


def _hist(hsv: np.ndarray, mask: Optional[np.ndarray]) -> np.ndarray:
    m = None if mask is None else mask.astype(np.uint8)
    h = cv2.calcHist([hsv], [0, 1], m, list(BINS), _RANGES).astype(np.float32)
    return h


def measure(frame: Frame, box, mask: Optional[np.ndarray] = None) -> Optional[Appearance]:
    """Appearance of the object in ``box`` (x0, y0, x1, y1) of ``frame``.

    Args:
        mask: HxW bool mask of the object in the whole frame; without it the inner 60 % of the box
            stands for the object.

    Returns:
        None when the box holds no pixels.
    """
    h, w = frame.shape
    x0, y0, x1, y1 = clip_int_box(box, (h, w))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    # the surroundings: a ring one third of the box wide around it
    mx, my = max(2, (x1 - x0) // 3), max(2, (y1 - y0) // 3)
    ox0, oy0, ox1, oy1 = clip_int_box((x0 - mx, y0 - my, x1 + mx, y1 + my), (h, w))
    hsv = frame.hsv((ox0, oy0, ox1, oy1))
    inside = np.zeros(hsv.shape[:2], bool)
    if mask is not None and mask.shape == (h, w) and mask[y0:y1, x0:x1].any():
        inside[y0 - oy0:y1 - oy0, x0 - ox0:x1 - ox0] = mask[y0:y1, x0:x1]
    else:
        bw, bh = x1 - x0, y1 - y0
        ix0, iy0 = x0 - ox0 + int(0.2 * bw), y0 - oy0 + int(0.2 * bh)
        inside[iy0:iy0 + max(1, int(0.6 * bh)), ix0:ix0 + max(1, int(0.6 * bw))] = True
    ring = np.ones_like(inside)
    ring[y0 - oy0:y1 - oy0, x0 - ox0:x1 - ox0] = False
    obj = _hist(hsv, inside)
    n_obj = float(obj.sum())
    if n_obj <= 0:
        return None
    bg = _hist(hsv, ring) if ring.any() else np.zeros_like(obj)
    obj_p = obj / n_obj
    bg_p = bg / max(float(bg.sum()), 1.0)
    ratio = np.clip(obj_p / np.maximum(bg_p, 1e-3) / 4.0, 0.0, 1.0).astype(np.float32)
    app = Appearance(hist=obj_p.astype(np.float32), ratio=ratio, fill=0.0)
    app.fill = object_fill(frame, (x0, y0, x1, y1), app)
    return app


def similarity(a: Optional[Appearance], b: Optional[Appearance]) -> float:
    """Histogram similarity in [0, 1] (1 - Bhattacharyya distance); 0.5 when either is unknown."""
    if a is None or b is None:
        return 0.5
    d = cv2.compareHist(a.hist, b.hist, cv2.HISTCMP_BHATTACHARYYA)
    return float(np.clip(1.0 - d, 0.0, 1.0))


def backproject(frame: Frame, region: Tuple[int, int, int, int], app: Appearance) -> np.ndarray:
    """float32 map in [0, 1] over ``region`` (integer x0, y0, x1, y1): how object-like each pixel is."""
    hsv = frame.hsv(region)
    if hsv.size == 0:
        return np.zeros(hsv.shape[:2], np.float32)
    return cv2.calcBackProject([hsv], [0, 1], app.ratio, _RANGES, 1.0).astype(np.float32)


def object_fill(frame: Frame, box, app: Appearance) -> float:
    """Fraction of ``box``'s pixels that look like the object."""
    region = clip_int_box(box, frame.shape)
    if region[2] <= region[0] or region[3] <= region[1]:
        return 0.0
    return float((backproject(frame, region, app) > OBJECT_LIKE).mean())
