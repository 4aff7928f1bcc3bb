"""Plain box geometry shared by the engines, grounding, tracking, evaluation and benchmarks."""

from __future__ import annotations

from typing import Sequence


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Return the IoU of two (x0, y0, x1, y1) boxes; 0.0 when either is empty."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / ua) if ua > 0 else 0.0
