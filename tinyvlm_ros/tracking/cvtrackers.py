"""OpenCV's single-object trackers (MIL; KCF, CSRT with opencv-contrib) behind the flow tracker's interface.

They are here to be measured against :class:`~tinyvlm_ros.tracking.flow.FlowTracker`
and for users who prefer them; each object runs its own tracker, so the
cost grows with the number of objects.  KCF and CSRT live in
``opencv-contrib-python-headless``, which *replaces* ``opencv-python-headless``
(uninstall the plain one first: both in one environment shadow each other).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from tinyvlm_ros.tracking import appearance
from tinyvlm_ros.tracking.frame import Frame, clip_int_box

Box = Tuple[float, float, float, float]

#: tracker name -> cv2 factory attribute names, tried in order (OpenCV moved some into cv2.legacy).
FACTORIES = {
    "mil": ("TrackerMIL_create",),
    "kcf": ("TrackerKCF_create", "legacy.TrackerKCF_create"),
    "csrt": ("TrackerCSRT_create", "legacy.TrackerCSRT_create"),
}


def factory(kind: str) -> Optional[Callable[[], Any]]:
    """Return the cv2 constructor of tracker ``kind``, or None when this OpenCV build lacks it."""
    for name in FACTORIES.get(kind, ()):
        obj: Any = cv2
        for part in name.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            return obj
    return None


class OpenCvTracker:
    """One cv2 tracker per object, with the :class:`FlowTracker` interface.

    Confidence is 1 while OpenCV reports success and the box still looks like the object
    (:func:`appearance.object_fill`, relative to the keyframe), else that fill ratio.
    """

    def __init__(self, kind: str) -> None:
        make = factory(kind)
        if kind not in FACTORIES:
            raise ValueError(f"unknown OpenCV tracker {kind!r}; known: {', '.join(FACTORIES)}")
        if make is None:
            raise ValueError(f"this OpenCV ({cv2.__version__}) has no {kind.upper()} tracker; install "
                             "opencv-contrib-python-headless in place of opencv-python-headless, or use "
                             "tracker 'flow'")
        self.name = kind
        self._make = make
        self._objects: Dict[int, Tuple[Any, np.ndarray, appearance.Appearance]] = {}

    def __contains__(self, key: int) -> bool:
        return key in self._objects

    def start(self, key: int, box: Box, current: Frame, app: appearance.Appearance,
              origin: Optional[Frame] = None, trail: Sequence[np.ndarray] = ()) -> Optional[Box]:
        """Follow a new object from ``origin`` (or ``current``); return its box in ``current`` or None.

        The trail is not used: these trackers jump from ``origin`` to ``current`` in one update.
        """
        self.drop(key)
        src = origin if origin is not None else current
        x0, y0, x1, y1 = clip_int_box(box, src.shape)
        if x1 - x0 < 4 or y1 - y0 < 4:
            return None
        t = self._make()
        t.init(src.rgb, (x0, y0, x1 - x0, y1 - y0))
        b = np.array([x0, y0, x1, y1], np.float64)
        if src is not current:
            ok, r = t.update(current.rgb)
            if not ok:
                return None
            b = np.array([r[0], r[1], r[0] + r[2], r[1] + r[3]], np.float64)
        self._objects[key] = (t, b, app)
        return tuple(float(v) for v in b)

    def drop(self, key: int) -> None:
        self._objects.pop(key, None)

    def clear(self) -> None:
        self._objects.clear()

    def step(self, frame: Frame) -> Dict[int, Tuple[Box, float]]:
        """Update every object's tracker on ``frame``; ``{key: (box, confidence)}``."""
        out: Dict[int, Tuple[Box, float]] = {}
        for key, (t, box, app) in self._objects.items():
            ok, r = t.update(frame.rgb)
            if ok:
                box = np.array([r[0], r[1], r[0] + r[2], r[1] + r[3]], np.float64)
                self._objects[key] = (t, box, app)
            fill = appearance.object_fill(frame, box, app) / max(app.fill, 1e-6)
            out[key] = (tuple(float(v) for v in box), float(min(1.0, fill)) if ok else 0.0)
        return out
