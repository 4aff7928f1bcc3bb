"""Draw detections on a frame: the node's debug image and the CLI's PNG."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tinyvlm_ros.types import Detection

#: Distinct RGB colours for successive detections.
PALETTE = ((255, 64, 64), (64, 200, 64), (64, 128, 255), (255, 200, 0), (200, 64, 255), (0, 220, 220))


def draw(rgb: np.ndarray, detections: Sequence[Detection], mask_alpha: float = 0.35) -> np.ndarray:
    """Return a copy of ``rgb`` (HxWx3 uint8) with masks tinted, boxes and "label score" drawn."""
    import cv2

    out = rgb.copy()
    for i, det in enumerate(detections):
        colour = PALETTE[i % len(PALETTE)]
        if det.mask is not None and det.mask.shape == out.shape[:2]:
            tint = np.array(colour, np.float32)
            out[det.mask] = (out[det.mask] * (1 - mask_alpha) + tint * mask_alpha).astype(np.uint8)
        x0, y0, x1, y1 = (int(round(v)) for v in det.box_xyxy)
        cv2.rectangle(out, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), colour, 2)
        text = f"{det.label} {det.score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        ty = y0 - 4 if y0 - th - 6 >= 0 else y1 + th + 4
        cv2.rectangle(out, (x0, ty - th - 2), (x0 + tw + 2, ty + base - 2), colour, -1)
        cv2.putText(out, text, (x0 + 1, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return out
