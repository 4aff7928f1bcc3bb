"""Helpers for bag-tool tests: a cheap real engine (red squares by colour) and bag surgery."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np

from tinyvlm_ros.bench import bagio
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


def corrupt_copy(src: Path, dst: Path, corrupt_index: int) -> None:
    """Copy a compressed bag, replacing one frame's JPEG bytes by garbage."""
    with bagio.BagReader(src) as r, bagio.BagWriter(dst, storage=r.storage, store=r.store) as w:
        for c in r.connections:
            w.add_like(c)
        i = 0
        for c, t, d in r.raw():
            if c.topic == bagio.TOPIC_IMAGE_COMPRESSED:
                if i == corrupt_index:
                    msg = r.decode(c, d)
                    msg.data = np.frombuffer(b"\xff\xd8garbage" * 10, np.uint8)
                    d = r.store.serialize_cdr(msg, c.msgtype)
                i += 1
            w.write_raw(c.topic, t, d)
