"""One camera frame as the trackers see it: stamp, RGB, and what is derived from them once."""

from __future__ import annotations

from typing import List, Optional, Tuple

import cv2
import numpy as np

#: Side of the grey thumbnail that measures how much the scene changed.
THUMB_W, THUMB_H = 32, 24


class Frame:
    """A frame and its lazily computed grey image and thumbnail.

    Args:
        stamp_ns: the camera stamp (header stamp) in nanoseconds.
        rgb: HxWx3 uint8 RGB.
    """

    def __init__(self, stamp_ns: int, rgb: np.ndarray) -> None:
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError("a tracking frame must be an HxWx3 uint8 RGB array")
        self.stamp_ns = int(stamp_ns)
        self.rgb = rgb
        self._gray: Optional[np.ndarray] = None
        self._thumb: Optional[np.ndarray] = None

    @property
    def shape(self) -> Tuple[int, int]:
        """(height, width)."""
        return self.rgb.shape[0], self.rgb.shape[1]

    @property
    def gray(self) -> np.ndarray:
        if self._gray is None:
            self._gray = cv2.cvtColor(self.rgb, cv2.COLOR_RGB2GRAY)
        return self._gray

    @property
    def thumb(self) -> np.ndarray:
        """float32 [THUMB_H, THUMB_W] grey thumbnail in [0, 1]."""
        if self._thumb is None:
            small = cv2.resize(self.gray, (THUMB_W, THUMB_H), interpolation=cv2.INTER_AREA)
            self._thumb = small.astype(np.float32) / 255.0
        return self._thumb

    def hsv(self, box: Tuple[int, int, int, int]) -> np.ndarray:
        """HSV (OpenCV ranges) of the integer region (x0, y0, x1, y1), clipped to the frame."""
        x0, y0, x1, y1 = clip_int_box(box, self.shape)
        return cv2.cvtColor(self.rgb[y0:y1, x0:x1], cv2.COLOR_RGB2HSV)

    def release(self) -> None:
        """Drop the derived images (a frame kept only for its stamp costs nothing then)."""
        self._gray = None


def clip_int_box(box, shape: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """Round a float (x0, y0, x1, y1) box outwards to integers inside an (h, w) frame."""
    h, w = shape
    x0 = int(min(max(np.floor(box[0]), 0), w))
    y0 = int(min(max(np.floor(box[1]), 0), h))
    x1 = int(min(max(np.ceil(box[2]), x0), w))
    y1 = int(min(max(np.ceil(box[3]), y0), h))
    return x0, y0, x1, y1


class FrameTrail:
    """Half-resolution grey copies of recent frames, at most one per ``period_s``, for catching up.

    A keyframe's answer comes back seconds after its frame; a new object it found has moved since.
    Optical flow cannot jump seconds of motion at once, but it can follow the object through this
    trail in steps of ``period_s``.  Bounded: at most ``max_frames`` entries (``max_frames`` x a
    quarter of a grey frame of memory), none older than ``horizon_s``.  Frames are not queued for
    processing: the trail is only read when an answer needs it.
    """

    def __init__(self, period_s: float = 0.1, horizon_s: float = 10.0, max_frames: int = 64) -> None:
        self.period_ns = int(period_s * 1e9)
        self.horizon_ns = int(horizon_s * 1e9)
        self.max_frames = int(max_frames)
        self._items: List[Tuple[int, np.ndarray]] = []

    def __len__(self) -> int:
        return len(self._items)

    def add(self, frame: Frame) -> None:
        if self._items and frame.stamp_ns - self._items[-1][0] < self.period_ns:
            return
        self._items.append((frame.stamp_ns, half(frame.gray)))
        cut = frame.stamp_ns - self.horizon_ns
        while self._items and (len(self._items) > self.max_frames or self._items[0][0] < cut):
            self._items.pop(0)

    def between(self, after_ns: int, before_ns: int) -> List[np.ndarray]:
        """Half-resolution grey frames with after_ns < stamp < before_ns, oldest first."""
        return [g for t, g in self._items if after_ns < t < before_ns]

    def clear(self) -> None:
        self._items.clear()


def half(gray: np.ndarray) -> np.ndarray:
    """Half-resolution copy of a grey image (area averaging)."""
    h, w = gray.shape
    return cv2.resize(gray, (max(1, w // 2), max(1, h // 2)), interpolation=cv2.INTER_AREA)
