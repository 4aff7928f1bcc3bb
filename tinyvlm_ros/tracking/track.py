"""One tracked object: its identity, life-cycle state and where it was, frame by frame.

The engine answers for a keyframe that is already old when the answer comes
back (0.1-5 s on a small CPU).  So every track keeps a short history of its
box keyed by frame stamp (:class:`BoxHistory`): a late keyframe's detections
are compared with where the tracks were *at that keyframe's stamp*, and the
motion since then is added back (see :mod:`.manager`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Deque, Optional, Tuple

import cv2
import numpy as np

from tinyvlm_ros.tracking.appearance import Appearance

Box = Tuple[float, float, float, float]


class TrackState(str, Enum):
    """Life cycle: TENTATIVE (seen on one keyframe) -> CONFIRMED (seen again) <-> LOST (tracker lost it).

    A LOST track is not published; it is kept ``max_track_age_s`` for a keyframe to find it again
    (occlusion, a brief exit), then deleted.
    """

    TENTATIVE = "tentative"
    CONFIRMED = "confirmed"
    LOST = "lost"


class BoxHistory:
    """Boxes by stamp for the last ``horizon_s`` seconds (bounded: at most ``max_len`` entries).

    Entries are (stamp_ns, box, visible); ``visible`` is False for stamps at which the tracker
    had lost the object.
    """

    def __init__(self, horizon_s: float = 10.0, max_len: int = 2048) -> None:
        self.horizon_ns = int(horizon_s * 1e9)
        self._items: Deque[Tuple[int, np.ndarray, bool]] = deque(maxlen=max_len)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, stamp_ns: int, box: Box, visible: bool = True) -> None:
        if self._items and stamp_ns <= self._items[-1][0]:
            # frames arrive in stamp order; a repeat (same frame again) replaces the entry
            if stamp_ns == self._items[-1][0]:
                self._items.pop()
            else:
                return
        self._items.append((int(stamp_ns), np.asarray(box, np.float64), bool(visible)))
        while self._items and self._items[0][0] < stamp_ns - self.horizon_ns:
            self._items.popleft()

    @property
    def first_ns(self) -> Optional[int]:
        return self._items[0][0] if self._items else None

    def at(self, stamp_ns: int) -> Optional[Tuple[np.ndarray, bool]]:
        """(box, visible) at ``stamp_ns``: interpolated between neighbouring entries, clamped at the ends."""
        items = self._items
        if not items:
            return None
        if stamp_ns <= items[0][0]:
            return items[0][1].copy(), items[0][2]
        if stamp_ns >= items[-1][0]:
            return items[-1][1].copy(), items[-1][2]
        lo, hi = 0, len(items) - 1
        while hi - lo > 1:  # bisect on stamps (deque indexing is O(1) near the ends, fine at this size)
            mid = (lo + hi) // 2
            if items[mid][0] <= stamp_ns:
                lo = mid
            else:
                hi = mid
        (t0, b0, v0), (t1, b1, v1) = items[lo], items[hi]
        a = (stamp_ns - t0) / float(t1 - t0)
        return b0 + a * (b1 - b0), (v0 if a < 0.5 else v1)


@dataclass
class Track:
    """A tracked object.

    Attributes:
        id: stable integer id (never reused while the manager lives).
        label: the target phrase it answers.
        target_index: index of that phrase in the command's targets.
        score: the engine's score at the last keyframe that saw it.
        state: see :class:`TrackState`.
        box: current box (x0, y0, x1, y1), float64 [4].
        created_ns, last_seen_ns, last_verified_ns: stamps of the frame it was born in, the last
            frame the tracker held it, and the last frame on which the engine (detection or
            re-verification) confirmed it.
        lost_since_ns: stamp of the first frame it was lost in (None while held).
        hits: keyframes that detected it; misses: keyframes in a row that did not, while held.
        velocity: px/s of the box centre (exponentially smoothed), for predicting a lost track.
        appearance: colour model (see :mod:`.appearance`).
        mask_patch: the keyframe mask cropped to its box (bool), warped into the current box on output.
    """

    id: int
    label: str
    target_index: int
    score: float
    state: TrackState
    box: np.ndarray
    created_ns: int
    last_seen_ns: int
    last_verified_ns: int
    appearance: Optional[Appearance] = None
    lost_since_ns: Optional[int] = None
    hits: int = 1
    misses: int = 0
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    confidence: float = 1.0
    mask_patch: Optional[np.ndarray] = None
    history: BoxHistory = field(default_factory=BoxHistory)

    @property
    def visible(self) -> bool:
        return self.state != TrackState.LOST

    def predicted_box(self, stamp_ns: int, max_coast_s: float) -> np.ndarray:
        """Predict where a lost track is at ``stamp_ns``.

        The last box moved on by its velocity for at most ``max_coast_s`` (objects stop; extrapolating
        further only spreads the guess).
        """
        base_ns = self.last_seen_ns
        dt = float(np.clip((stamp_ns - base_ns) * 1e-9, 0.0, max_coast_s))
        return self.box + np.array([dt * self.velocity[0], dt * self.velocity[1]] * 2)

    def box_at(self, stamp_ns: int, max_coast_s: float) -> Tuple[np.ndarray, bool]:
        """(box, held) at a past or present stamp: the history while held, else the prediction."""
        if self.lost_since_ns is not None and stamp_ns >= self.lost_since_ns:
            return self.predicted_box(stamp_ns, max_coast_s), False
        got = self.history.at(stamp_ns)
        if got is None:
            return self.box.copy(), self.visible
        return got

    def mask_in(self, shape: Tuple[int, int]) -> Optional[np.ndarray]:
        """Return an HxW bool mask: the keyframe mask scaled into the current box (None without a mask)."""
        if self.mask_patch is None or not self.mask_patch.any():
            return None
        h, w = shape
        x0, y0, x1, y1 = (int(round(v)) for v in self.box)
        if x1 <= x0 or y1 <= y0:
            return None
        patch = cv2.resize(self.mask_patch.astype(np.uint8), (x1 - x0, y1 - y0),
                           interpolation=cv2.INTER_NEAREST).astype(bool)
        out = np.zeros((h, w), bool)
        cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if cx1 > cx0 and cy1 > cy0:
            out[cy0:cy1, cx0:cx1] = patch[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
        return out


def mask_patch(mask: Optional[np.ndarray], box: Box) -> Optional[np.ndarray]:
    """Crop an HxW bool mask to an (x0, y0, x1, y1) box (rounded), for :attr:`Track.mask_patch`."""
    if mask is None:
        return None
    h, w = mask.shape
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    if x1 <= x0 or y1 <= y0:
        return None
    patch = np.zeros((y1 - y0, x1 - x0), bool)  # the whole box, also where it leaves the frame
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if cx1 > cx0 and cy1 > cy0:
        patch[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] = mask[cy0:cy1, cx0:cx1]
    return patch
