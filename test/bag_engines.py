"""A cheap, real engine for bag-tool tests: finds filled red squares by colour, no models needed."""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import numpy as np

from tinyvlm_ros.types import Detection, DetectionResult


class RedBlockEngine:
    """Answers "red block" by thresholding red pixels and keeping near-square, well-filled blobs.

    It implements :class:`tinyvlm_ros.types.Engine` in a few milliseconds a
    frame, so the bag tooling (reading, matching, reports, memory) can be
    tested on thousands of frames without the ONNX models.
    """

    name = "red-block-by-colour"

    def __init__(self, fail_at: Optional[int] = None, exc: type = KeyboardInterrupt) -> None:
        self.calls = 0
        self.fail_at = fail_at
        self.exc = exc

    def detect(self, image: np.ndarray, command: Union[str, Sequence[str]], *,
               score_threshold: Optional[float] = None,
               max_detections: Optional[int] = None) -> DetectionResult:
        """Detect red blocks in an HxWx3 uint8 RGB frame."""
        import cv2

        if self.fail_at is not None and self.calls == self.fail_at:
            raise self.exc()
        self.calls += 1
        red = (image[..., 0] > 170) & (image[..., 1] < 100) & (image[..., 2] < 100)
        n, _, stats, _ = cv2.connectedComponentsWithStats(red.astype(np.uint8))
        dets = []
        for x, y, w, h, area in stats[1:n]:
            if area >= 16 and area / float(w * h) > 0.85 and 0.8 < w / float(h) < 1.25:
                dets.append(Detection("red block", 0.9, (float(x), float(y), float(x + w), float(y + h))))
        return DetectionResult(detections=dets[:max_detections] if max_detections else dets,
                               targets=["red block"])

    def describe(self) -> Dict[str, str]:
        """Backend name for reports."""
        return {"backend": "test", "model": self.name}
