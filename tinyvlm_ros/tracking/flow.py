"""Sparse Lucas-Kanade point tracking of object boxes between keyframes (plain OpenCV, no model).

Per object, up to ``max_points`` corner features on the object (where its
colour back-projects, see :mod:`.appearance`) are followed from frame to
frame with pyramidal Lucas-Kanade, forward and backward: a point whose
backward track does not come home within ``fb_max`` pixels is dropped.  The
box moves by the median point displacement and scales by the median ratio
of point-pair distances, so a few points that slide onto a neighbour do not
drag it.  Each object's LK runs on a crop around it, not on the whole frame.

Confidence is the smaller of the surviving fraction of points and the
fraction of the box that still looks like the object, relative to the
keyframe: an occluder sliding over the object or a box that drifted onto the
table both pull it down, and the caller declares the object lost.
``tinyvlm bench tracking`` measures its cost and accuracy next to OpenCV's
trackers (docs/tracking.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from tinyvlm_ros.tracking import appearance
from tinyvlm_ros.tracking.frame import Frame, clip_int_box, half

Box = Tuple[float, float, float, float]


@dataclass
class _Object:
    box: np.ndarray          # float64 [4] xyxy
    points: np.ndarray       # float32 [N, 2]
    app: appearance.Appearance
    since_seed: int = 0


class FlowTracker:
    """Sparse optical-flow box tracker for many objects; see the module docstring.

    Args:
        max_points: features per object.
        win: LK window side in pixels.
        levels: pyramid levels above the frame (motion up to ~win/2 * 2**levels pixels a frame).
        fb_max: forward-backward error (pixels) above which a point is dropped.
        min_points: fewer surviving points than this and the object is lost.
        reseed_every: frames between re-detections of features (points die slowly otherwise).
    """

    name = "flow"

    def __init__(self, max_points: int = 40, win: int = 15, levels: int = 3, fb_max: float = 1.0,
                 min_points: int = 5, reseed_every: int = 10) -> None:
        if max_points < min_points or min_points < 3:
            raise ValueError(f"need max_points >= min_points >= 3, got {max_points}, {min_points}")
        self.max_points = int(max_points)
        self.win = int(win)
        self.levels = int(levels)
        self.fb_max = float(fb_max)
        self.min_points = int(min_points)
        self.reseed_every = int(reseed_every)
        self._objects: Dict[int, _Object] = {}
        self._prev: Optional[Frame] = None
        self._criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 0.03)

    def __contains__(self, key: int) -> bool:
        return key in self._objects

    # -- lifecycle of one object ------------------------------------------------------------------
    def start(self, key: int, box: Box, current: Frame, app: appearance.Appearance,
              origin: Optional[Frame] = None, trail: Sequence[np.ndarray] = ()) -> Optional[Box]:
        """Follow a new object; return its box in ``current``, or None when it cannot be followed.

        Args:
            key: the object's id (the track id).
            box: where the object is in ``origin`` (or in ``current`` when no origin is given).
            current: the newest frame (the one the next :meth:`step` continues from).
            app: the object's appearance (chooses features on the object, judges occlusion).
            origin: an older frame the box was found in (a keyframe whose detections came back late).
            trail: half-resolution grey frames between ``origin`` and ``current``, oldest first
                (:class:`~tinyvlm_ros.tracking.frame.FrameTrail`): the points are carried through
                them at half resolution, then re-seeded on ``current``.
        """
        self.drop(key)
        b = np.asarray(box, np.float64)
        if origin is not None and origin is not current and origin.stamp_ns != current.stamp_ns:
            pts = self._seed(origin, b, app)
            steps = [half(origin.gray)] + list(trail) + [half(current.gray)]
            pb, pp = b / 2.0, pts / 2.0
            for ga, gb in zip(steps, steps[1:]):
                moved = self._flow(ga, gb, {key: (pb, pp)}, levels=self.levels, fb=self.fb_max)
                if key not in moved:
                    return None
                pb, pp = moved[key]
            b = pb * 2.0
            if appearance.object_fill(current, b, app) < 0.5 * max(app.fill, 1e-6):
                return None   # carried onto something else (or it is hidden now)
        pts = self._seed(current, b, app)
        if len(pts) < self.min_points:
            return None
        if self._prev is not None and self._prev is not current and self._objects:
            raise ValueError("start() must be given the frame last passed to step() as current")
        self._objects[key] = _Object(box=b, points=pts, app=app)
        self._prev = current
        return tuple(float(v) for v in b)

    def drop(self, key: int) -> None:
        """Stop following ``key`` (unknown keys are ignored)."""
        self._objects.pop(key, None)

    def clear(self) -> None:
        self._objects.clear()
        self._prev = None

    # -- per frame --------------------------------------------------------------------------------
    def step(self, frame: Frame) -> Dict[int, Tuple[Box, float]]:
        """Move every object into ``frame``; return ``{key: (box, confidence in [0, 1])}``.

        An object whose points all died is returned with confidence 0 and its last box; the caller
        decides what is lost (and calls :meth:`drop`).
        """
        out: Dict[int, Tuple[Box, float]] = {}
        prev, self._prev = self._prev, frame
        if not self._objects:
            return out
        if prev is None or prev.stamp_ns == frame.stamp_ns:
            return {k: (tuple(float(v) for v in o.box), 1.0) for k, o in self._objects.items()}
        before = {k: len(o.points) for k, o in self._objects.items()}
        moved = self._flow(prev.gray, frame.gray, {k: (o.box, o.points) for k, o in self._objects.items()},
                           levels=self.levels, fb=self.fb_max)
        for key, obj in self._objects.items():
            if key not in moved:
                out[key] = (tuple(float(v) for v in obj.box), 0.0)
                obj.points = obj.points[:0]
                continue
            obj.box, obj.points = moved[key]
            fill = appearance.object_fill(frame, obj.box, obj.app) / max(obj.app.fill, 1e-6)
            conf = min(1.0, len(obj.points) / max(1, before[key]), fill)
            obj.since_seed += 1
            if conf > 0.5 and (len(obj.points) < self.max_points // 2 or obj.since_seed >= self.reseed_every):
                fresh = self._seed(frame, obj.box, obj.app)
                if len(fresh) >= len(obj.points):
                    obj.points, obj.since_seed = fresh, 0
            out[key] = (tuple(float(v) for v in obj.box), float(max(0.0, conf)))
        return out

    # -- internals --------------------------------------------------------------------------------
    def _seed(self, frame: Frame, box: np.ndarray, app: appearance.Appearance) -> np.ndarray:
        """Corner features on the object (where it back-projects, edges included), float32 [N, 2]."""
        x0, y0, x1, y1 = clip_int_box(box, frame.shape)
        if x1 - x0 < 4 or y1 - y0 < 4:
            return np.zeros((0, 2), np.float32)
        on_obj = (appearance.backproject(frame, (x0, y0, x1, y1), app) > appearance.OBJECT_LIKE)
        # widen by a few pixels: the best corners are where the object meets the table
        mask = cv2.dilate(on_obj.astype(np.uint8) * 255, np.ones((7, 7), np.uint8))
        pts = cv2.goodFeaturesToTrack(frame.gray[y0:y1, x0:x1], self.max_points, 0.01, 3, mask=mask,
                                      blockSize=5)
        if pts is None:
            return np.zeros((0, 2), np.float32)
        return (pts.reshape(-1, 2) + np.array([x0, y0], np.float32)).astype(np.float32)

    def _flow(self, pa: np.ndarray, pb: np.ndarray, objs: Dict[int, Tuple[np.ndarray, np.ndarray]],
              levels: int, fb: float) -> Dict[int, Tuple[np.ndarray, np.ndarray]]:
        """Carry each object's points from grey image ``pa`` to ``pb``; return survivors' (box, points).

        Each object runs on a crop around its points as wide as LK can reach at this pyramid depth:
        building the pyramids of two whole frames costs more than the tracking itself.
        """
        h, w = pa.shape[:2]
        reach = self.win * 2 ** levels // 2
        win = (self.win, self.win)
        out: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}
        for k, (box, pts) in objs.items():
            if not len(pts):
                continue
            x0 = int(max(0, min(pts[:, 0].min(), box[0]) - reach))
            y0 = int(max(0, min(pts[:, 1].min(), box[1]) - reach))
            x1 = int(min(w, max(pts[:, 0].max(), box[2]) + reach + 1))
            y1 = int(min(h, max(pts[:, 1].max(), box[3]) + reach + 1))
            if x1 - x0 < 8 or y1 - y0 < 8:
                continue
            ca, cb = pa[y0:y1, x0:x1], pb[y0:y1, x0:x1]
            off = np.array([x0, y0], np.float32)
            p0 = (pts - off).reshape(-1, 1, 2).astype(np.float32)
            p1, st1, _ = cv2.calcOpticalFlowPyrLK(ca, cb, p0, None, winSize=win, maxLevel=levels,
                                                  criteria=self._criteria)
            p2, st2, _ = cv2.calcOpticalFlowPyrLK(cb, ca, p1, None, winSize=win, maxLevel=levels,
                                                  criteria=self._criteria)
            err = np.linalg.norm((p2 - p0).reshape(-1, 2), axis=1)
            good = (st1.ravel() == 1) & (st2.ravel() == 1) & (err < fb)
            src = p0.reshape(-1, 2)[good] + off
            dst = p1.reshape(-1, 2)[good] + off
            moved = _similarity_update(box, src, dst, self.min_points)
            if moved is not None:
                out[k] = moved
        return out


def _similarity_update(box: np.ndarray, src: np.ndarray, dst: np.ndarray,
                       min_points: int) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Robust translation + scale from point pairs; return (new box, inlier points) or None."""
    if len(src) < min_points:
        return None
    d = dst - src
    shift = np.median(d, axis=0)
    # points that moved unlike the rest slid onto something else: drop them
    resid = np.linalg.norm(d - shift, axis=1)
    keep = resid <= max(2.0, 3.0 * float(np.median(resid)))
    src, dst = src[keep], dst[keep]
    if len(src) < min_points:
        return None
    scale = 1.0
    if len(src) >= 6:
        # spread about the median point, before and after: robust to the odd outlier, O(N)
        da = np.linalg.norm(src - np.median(src, axis=0), axis=1)
        db = np.linalg.norm(dst - np.median(dst, axis=0), axis=1)
        ok = da > 4.0
        if ok.sum() >= 5:
            scale = float(np.clip(np.median(db[ok] / da[ok]), 0.9, 1.1))
    shift = np.median(dst - src, axis=0)
    cx, cy = (box[0] + box[2]) / 2.0 + shift[0], (box[1] + box[3]) / 2.0 + shift[1]
    hw, hh = (box[2] - box[0]) * scale / 2.0, (box[3] - box[1]) * scale / 2.0
    return np.array([cx - hw, cy - hh, cx + hw, cy + hh], np.float64), dst.astype(np.float32)
