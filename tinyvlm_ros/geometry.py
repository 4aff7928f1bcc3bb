"""Plain box geometry shared by the engines, grounding, tracking, evaluation and benchmarks."""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Return the IoU of two (x0, y0, x1, y1) boxes; 0.0 when either is empty."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / ua) if ua > 0 else 0.0


def box_area(b: Sequence[float]) -> float:
    """Area of an (x0, y0, x1, y1) box; 0 for an empty one."""
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def box_centre(b: Sequence[float]) -> Tuple[float, float]:
    """Centre (x, y) of a box."""
    return ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0)


def box_gap(a: Sequence[float], b: Sequence[float]) -> float:
    """Shortest distance between two boxes' edges; 0 when they touch or overlap."""
    dx = max(0.0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0.0, max(a[1], b[1]) - min(a[3], b[3]))
    return math.hypot(dx, dy)


def box_containment(inner: Sequence[float], outer: Sequence[float]) -> float:
    """Fraction of ``inner``'s area that lies inside ``outer`` (0..1)."""
    ix = max(0.0, min(inner[2], outer[2]) - max(inner[0], outer[0]))
    iy = max(0.0, min(inner[3], outer[3]) - max(inner[1], outer[1]))
    a = box_area(inner)
    return ix * iy / a if a > 0 else 0.0


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of [N, 4] and [M, 4] xyxy boxes: float64 [N, M] (0 where a box is empty)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def box_mask(box_xyxy: Sequence[float], frame_hw: Tuple[int, int]) -> np.ndarray:
    """Return an HxW bool mask that is True inside a pixel box (rounded to whole pixels, clipped)."""
    m = np.zeros(tuple(frame_hw), bool)
    x0, y0, x1, y1 = (int(round(v)) for v in box_xyxy)
    m[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = True
    return m
