"""Plain box geometry shared by the engines, grounding, tracking, evaluation and benchmarks."""

from __future__ import annotations

import math
from typing import Sequence, Tuple


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
