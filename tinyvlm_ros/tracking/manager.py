"""Tracks with stable ids between keyframes: life cycle, late keyframes, the sticky target.

:class:`TrackManager` is single-threaded and knows nothing of ROS or of the
engine's pace.  Per camera frame the caller calls :meth:`~TrackManager.track`
(every held track moves with the point tracker; one that loses confidence
becomes LOST), then folds in any engine answer that came back
(:meth:`~TrackManager.apply_keyframe`, :meth:`~TrackManager.apply_verification`),
then publishes :meth:`~TrackManager.detections`.

Late keyframes.  A keyframe's detections describe the frame the engine
started on, S, while the tracks have moved on to now.  Each track's box
history gives where it was at S: detections are associated there
(:mod:`.association`), and a matched track takes the detected box *plus its
own motion since S* (translation and scale), re-seeded on the current frame.
A lost track re-found at S, or a new object, is carried from the keyframe to
the current frame by one long optical-flow step.

Identity rules.
* Ids count up from 1 and are never reused while the manager lives (a new
  command clears the tracks but not the counter), so a planner can never
  confuse an old object with a new one.
* A track is TENTATIVE after one keyframe, CONFIRMED after ``confirm_hits``;
  a tentative track that the next keyframe does not see is dropped, a
  confirmed one after ``max_keyframe_misses`` keyframes in a row.
* LOST tracks (occluded, left the picture, tracker failed) are not published
  but kept ``max_track_age_s`` for a keyframe to re-find them, by position
  and colour, under their old id.
* The target (detection 0) is the engine's choice on the first keyframe of a
  command and then stays on that track: a later keyframe that ranks another
  instance first does not move it.  While the target is lost nothing is
  published (detection 0 is always the target); once it is deleted the next
  keyframe's choice becomes the new target, under its own id.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from tinyvlm_ros.tracking import appearance
from tinyvlm_ros.tracking.association import AssociationConfig, associate
from tinyvlm_ros.tracking.cvtrackers import FACTORIES, OpenCvTracker
from tinyvlm_ros.tracking.flow import FlowTracker
from tinyvlm_ros.tracking.frame import Frame, FrameTrail
from tinyvlm_ros.tracking.keyframes import KeyframePolicy
from tinyvlm_ros.tracking.track import Track, TrackState, mask_patch
from tinyvlm_ros.types import Detection, DetectionResult

#: Tracker names accepted by :func:`make_tracker` (the node's ``tracker`` parameter).
TRACKERS = ("flow",) + tuple(FACTORIES)


def make_tracker(name: str):
    """Return a box tracker by name: ``flow`` (sparse optical flow) or an OpenCV tracker (mil, kcf, csrt)."""
    if name == "flow":
        return FlowTracker()
    if name in FACTORIES:
        return OpenCvTracker(name)
    raise ValueError(f"unknown tracker {name!r}; choose one of {', '.join(TRACKERS)}")


@dataclass
class TrackingConfig:
    """Tracking parameters: the node's four (keyframes, track age, re-verification, tracker) and finer knobs.

    Attributes:
        keyframe_period_s: longest time between keyframes.
        max_track_age_s: how long a lost track waits to be re-found before it is deleted.
        reverify_period_s: re-score each held track against the command this often (0: only keyframes
            verify).
        tracker: box tracker name (see :data:`TRACKERS`).
        min_confidence: tracker confidence below which a held track becomes LOST.
        confirm_hits: keyframes that must see a track before it is CONFIRMED.
        max_keyframe_misses: keyframes in a row that may miss a held, confirmed track before it is dropped.
        history_s: how far back the box history reaches (must cover the slowest keyframe).
        min_visible: a box with less than this fraction inside the frame has left the picture.
    """

    keyframe_period_s: float = 1.0
    max_track_age_s: float = 1.0
    reverify_period_s: float = 0.0
    tracker: str = "flow"
    min_confidence: float = 0.35
    confirm_hits: int = 2
    max_keyframe_misses: int = 2
    history_s: float = 10.0
    min_visible: float = 0.5
    keyframe_min_confidence: float = 0.6
    scene_change: float = 0.035
    association: AssociationConfig = field(default_factory=AssociationConfig)

    def __post_init__(self) -> None:
        if self.max_track_age_s < 0:
            raise ValueError(f"max_track_age_s must be >= 0, got {self.max_track_age_s}")
        if self.reverify_period_s < 0:
            raise ValueError(f"reverify_period_s must be >= 0 (0 = off), got {self.reverify_period_s}")
        if self.tracker not in TRACKERS:
            raise ValueError(f"unknown tracker {self.tracker!r}; choose one of {', '.join(TRACKERS)}")
        if self.confirm_hits < 1 or self.max_keyframe_misses < 1:
            raise ValueError("confirm_hits and max_keyframe_misses must be >= 1")


@dataclass
class KeyframeOutcome:
    """What one keyframe changed (for logs, counters and tests)."""

    stamp_ns: int
    matched: List[int] = field(default_factory=list)
    recovered: List[int] = field(default_factory=list)
    created: List[int] = field(default_factory=list)
    dropped: List[int] = field(default_factory=list)
    target_id: Optional[int] = None


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0])


def _size(box: np.ndarray) -> np.ndarray:
    return np.array([max(box[2] - box[0], 1e-6), max(box[3] - box[1], 1e-6)])


def _box(centre: np.ndarray, size: np.ndarray) -> np.ndarray:
    return np.array([centre[0] - size[0] / 2, centre[1] - size[1] / 2, centre[0] + size[0] / 2,
                     centre[1] + size[1] / 2], np.float64)


def _inside_fraction(box: np.ndarray, shape: Tuple[int, int]) -> float:
    h, w = shape
    area = max((box[2] - box[0]) * (box[3] - box[1]), 1e-9)
    ix = max(0.0, min(box[2], w) - max(box[0], 0.0))
    iy = max(0.0, min(box[3], h) - max(box[1], 0.0))
    return float(ix * iy / area)


class TrackManager:
    """Stable-id tracks between keyframes; see the module docstring.

    Args:
        config: parameters (defaults: :class:`TrackingConfig`).
        tracker: a box tracker (default: ``make_tracker(config.tracker)``).
    """

    def __init__(self, config: Optional[TrackingConfig] = None, tracker=None) -> None:
        self.cfg = config or TrackingConfig()
        self.tracker = tracker if tracker is not None else make_tracker(self.cfg.tracker)
        self.policy = KeyframePolicy(period_s=self.cfg.keyframe_period_s,
                                     min_confidence=self.cfg.keyframe_min_confidence,
                                     scene_change=self.cfg.scene_change)
        self._tracks: "OrderedDict[int, Track]" = OrderedDict()
        self._next_id = 1
        self.target_id: Optional[int] = None
        self._frame: Optional[Frame] = None
        self.trail = FrameTrail(horizon_s=self.cfg.history_s)
        self._pending_ns: Optional[int] = None
        self._lost_since_keyframe = False
        self.counters: Dict[str, int] = {k: 0 for k in (
            "frames", "keyframes", "created", "deleted", "lost", "recovered", "verified", "verify_failed")}

    # -- state ------------------------------------------------------------------------------------
    @property
    def tracks(self) -> List[Track]:
        return list(self._tracks.values())

    def get(self, track_id: int) -> Optional[Track]:
        return self._tracks.get(track_id)

    @property
    def frame(self) -> Optional[Frame]:
        """Return the last frame given to :meth:`track`."""
        return self._frame

    def reset(self) -> None:
        """Forget every track for a new command (ids keep counting); ask for a keyframe at once."""
        self.tracker.clear()
        self._tracks.clear()
        self.target_id = None
        self._pending_ns = None
        self._lost_since_keyframe = False
        self.policy.new_command()
        # the next frame may be older (a replay that starts over): nothing before it is needed
        self._frame = None
        self.trail.clear()

    # -- per frame --------------------------------------------------------------------------------
    def track(self, frame: Frame) -> None:
        """Move every held track into ``frame``; lose those the tracker lost; delete expired lost tracks."""
        if self._frame is not None and frame.stamp_ns < self._frame.stamp_ns:
            raise ValueError(f"frames must come in stamp order ({frame.stamp_ns} came after "
                             f"{self._frame.stamp_ns})")
        prev, self._frame = self._frame, frame
        if prev is not None and prev is not frame:
            prev.release()   # the pyramid of the frame before is all the tracker needed of it
        self.counters["frames"] += 1
        self.trail.add(frame)
        moved = self.tracker.step(frame)
        stamp = frame.stamp_ns
        for tr in list(self._tracks.values()):
            if not tr.visible:
                continue
            got = moved.get(tr.id)
            if got is None:
                self._lose(tr, stamp)
                continue
            box, conf = np.asarray(got[0], np.float64), float(got[1])
            tr.confidence = conf
            if conf < self.cfg.min_confidence or _inside_fraction(box, frame.shape) < self.cfg.min_visible:
                self._lose(tr, stamp)
                continue
            dt = (stamp - tr.last_seen_ns) * 1e-9
            if dt > 0:
                v = (_centre(box) - _centre(tr.box)) / dt
                tr.velocity = 0.6 * tr.velocity + 0.4 * v
            tr.box, tr.last_seen_ns = box, stamp
            tr.history.add(stamp, box, True)
        self._expire(stamp)

    def _lose(self, tr: Track, stamp_ns: int) -> None:
        tr.state = TrackState.LOST
        tr.lost_since_ns = stamp_ns
        tr.confidence = 0.0
        self.tracker.drop(tr.id)
        tr.history.add(stamp_ns, tr.box, False)
        self._lost_since_keyframe = True
        self.counters["lost"] += 1

    def _expire(self, now_ns: int) -> None:
        age_ns = int(self.cfg.max_track_age_s * 1e9)
        for tr in list(self._tracks.values()):
            if tr.visible or tr.lost_since_ns is None:
                continue
            deadline = tr.lost_since_ns + age_ns
            # a keyframe already running on a frame within the track's age may still find it
            waiting = self._pending_ns is not None and self._pending_ns <= deadline
            if now_ns > deadline and not waiting:
                self._delete(tr)

    def _delete(self, tr: Track) -> None:
        self._tracks.pop(tr.id, None)
        self.tracker.drop(tr.id)
        if tr.id == self.target_id:
            self.target_id = None
        self.counters["deleted"] += 1

    # -- keyframes --------------------------------------------------------------------------------
    def keyframe_reason(self, frame: Frame) -> Optional[str]:
        """Why the engine should take ``frame`` as a keyframe now, or None (see :mod:`.keyframes`)."""
        held = [t for t in self._tracks.values() if t.visible]
        lowest = min((t.confidence for t in held), default=1.0)
        if self.target_id is None and held:
            return "empty"   # tracks but no target (it was deleted): let the engine choose again
        # while a lost track waits to be re-found, look for it as often as the engine can
        searching = self._lost_since_keyframe or len(held) < len(self._tracks)
        return self.policy.reason(frame, tracks=len(held), lost_since_keyframe=searching,
                                  min_confidence=lowest)

    def begin_keyframe(self, frame: Frame) -> None:
        """Note that the engine starts on ``frame``: lost tracks wait for its answer before they expire."""
        self._pending_ns = frame.stamp_ns
        self._lost_since_keyframe = False
        self.policy.started(frame)
        self.counters["keyframes"] += 1

    def cancel_keyframe(self) -> None:
        """Forget the running keyframe (the engine failed): nothing to apply."""
        self._pending_ns = None

    def apply_keyframe(self, keyframe: Frame, result: DetectionResult) -> KeyframeOutcome:
        """Fold the engine's detections for ``keyframe`` (possibly seconds old) into the tracks."""
        stamp = keyframe.stamp_ns
        if self._pending_ns == stamp:
            self._pending_ns = None
        current = self._frame if self._frame is not None else keyframe
        out = KeyframeOutcome(stamp_ns=stamp)
        dets = list(result.detections)
        apps = [appearance.measure(keyframe, d.box_xyxy, d.mask) for d in dets]
        tracks = [t for t in self._tracks.values() if t.created_ns <= stamp]
        matches, new, unmatched = associate(dets, apps, tracks, stamp, self.cfg.association)
        det_track: Dict[int, int] = {}
        for m in matches:
            tr = self._tracks[m.track_id]
            self._update(tr, dets[m.detection], apps[m.detection], keyframe, current)
            det_track[m.detection] = tr.id
            (out.recovered if m.was_lost else out.matched).append(tr.id)
        for i in new:
            tr = self._create(dets[i], apps[i], keyframe, current)
            det_track[i] = tr.id
            out.created.append(tr.id)
        for tid in unmatched:
            tr = self._tracks.get(tid)
            if tr is None:
                continue
            box_then, held_then = tr.box_at(stamp, self.cfg.association.max_coast_s)
            in_view = _inside_fraction(box_then, keyframe.shape) >= self.cfg.min_visible
            if not (held_then and tr.visible and in_view):
                continue   # the engine could not have seen it there
            tr.misses += 1
            if tr.state == TrackState.TENTATIVE or tr.misses >= self.cfg.max_keyframe_misses:
                self._delete(tr)
                out.dropped.append(tid)
        if self.target_id is None and dets:
            chosen = next((i for i, d in enumerate(dets) if d.role == "target"), 0)
            self.target_id = det_track.get(chosen)
        out.target_id = self.target_id
        return out

    def _update(self, tr: Track, det: Detection, app: Optional[appearance.Appearance], keyframe: Frame,
                current: Frame) -> None:
        stamp = keyframe.stamp_ns
        det_box = np.asarray(det.box_xyxy, np.float64)
        then, held_then = tr.box_at(stamp, self.cfg.association.max_coast_s)
        if app is not None:
            tr.appearance = app if tr.appearance is None else tr.appearance.blend(app)
        patch = mask_patch(det.mask, det.box_xyxy)
        if patch is not None:
            tr.mask_patch = patch
        tr.score, tr.target_index, tr.label = float(det.score), int(det.target_index), det.label
        tr.hits += 1
        tr.misses = 0
        tr.last_verified_ns = max(tr.last_verified_ns, stamp)
        was_lost = not tr.visible
        if tr.visible and held_then and current is not keyframe:
            # where the engine saw it at S, moved on by what the tracker saw it do since S
            scale = np.clip(_size(tr.box) / _size(then), 0.5, 2.0)
            box = _box(_centre(det_box) + _centre(tr.box) - _centre(then), _size(det_box) * scale)
            origin = None
        else:
            box, origin = det_box, (keyframe if current is not keyframe else None)
        placed = self._place(tr, box, current, origin)
        if placed is None:
            if tr.visible:
                self._lose(tr, current.stamp_ns)
            else:
                # seen again at S but not followable now: its age counts from S
                tr.box, tr.last_seen_ns = det_box, stamp
                tr.lost_since_ns = max(tr.lost_since_ns or stamp, stamp)
            return
        if was_lost:
            self.counters["recovered"] += 1
        tr.state = TrackState.CONFIRMED if tr.hits >= self.cfg.confirm_hits else TrackState.TENTATIVE

    def _create(self, det: Detection, app: Optional[appearance.Appearance], keyframe: Frame,
                current: Frame) -> Track:
        stamp = keyframe.stamp_ns
        box = np.asarray(det.box_xyxy, np.float64)
        tr = Track(id=self._next_id, label=det.label, target_index=int(det.target_index),
                   score=float(det.score),
                   state=TrackState.TENTATIVE, box=box, created_ns=stamp, last_seen_ns=stamp,
                   last_verified_ns=stamp, appearance=app, mask_patch=mask_patch(det.mask, det.box_xyxy))
        tr.history.horizon_ns = int(self.cfg.history_s * 1e9)
        tr.history.add(stamp, box, True)
        self._next_id += 1
        self._tracks[tr.id] = tr
        self.counters["created"] += 1
        if self._place(tr, box, current, keyframe if current is not keyframe else None) is None:
            tr.state = TrackState.LOST
            tr.lost_since_ns = current.stamp_ns
            tr.confidence = 0.0
        return tr

    def _place(self, tr: Track, box: np.ndarray, current: Frame,
               origin: Optional[Frame]) -> Optional[np.ndarray]:
        """Start the tracker on ``tr`` at ``box`` (in ``origin``, else in ``current``); update its state."""
        if tr.appearance is None:
            return None
        trail = self.trail.between(origin.stamp_ns, current.stamp_ns) if origin is not None else ()
        placed = self.tracker.start(tr.id, tuple(box), current, tr.appearance, origin=origin, trail=trail)
        if placed is None:
            return None
        placed = np.asarray(placed, np.float64)
        if origin is not None and current.stamp_ns > origin.stamp_ns:
            tr.velocity = (_centre(placed) - _centre(box)) / ((current.stamp_ns - origin.stamp_ns) * 1e-9)
        tr.box, tr.last_seen_ns, tr.lost_since_ns, tr.confidence = placed, current.stamp_ns, None, 1.0
        if tr.state == TrackState.LOST:
            tr.state = TrackState.TENTATIVE
        tr.history.add(current.stamp_ns, placed, True)
        return placed

    # -- re-verification --------------------------------------------------------------------------
    def verification_due(self, now_ns: int) -> List[Track]:
        """Held tracks whose last confirmation is older than ``reverify_period_s`` (none when it is 0)."""
        period = self.cfg.reverify_period_s
        if period <= 0:
            return []
        return [t for t in self._tracks.values()
                if t.visible and (now_ns - t.last_verified_ns) * 1e-9 >= period]

    def apply_verification(self, stamp_ns: int, scores: Dict[int, Optional[float]],
                           threshold: float) -> List[int]:
        """Fold in re-scores of tracked crops on the frame at ``stamp_ns``; delete those below ``threshold``.

        A score of None means the engine could not judge (the track is left as it is).  Returns the
        ids dropped: a tracker that drifted onto the table scores low and its track goes.
        """
        dropped = []
        for tid, score in scores.items():
            tr = self._tracks.get(tid)
            if tr is None or score is None:
                continue
            if score >= threshold:
                tr.last_verified_ns = max(tr.last_verified_ns, stamp_ns)
                self.counters["verified"] += 1
            else:
                self._delete(tr)
                self.counters["verify_failed"] += 1
                dropped.append(tid)
        return dropped

    # -- output -----------------------------------------------------------------------------------
    def detections(self, with_masks: bool = False) -> List[Detection]:
        """Return the published view of the last frame: the target first, then the other held tracks by score.

        Empty while there is no target or the target is lost (detection 0 is always the target).
        """
        frame = self._frame
        target = self._tracks.get(self.target_id) if self.target_id is not None else None
        if frame is None or target is None or not target.visible:
            return []
        others = sorted((t for t in self._tracks.values() if t.visible and t.id != target.id),
                        key=lambda t: (-t.score, t.id))
        h, w = frame.shape
        out = []
        for tr in [target] + others:
            # published in image coordinates: the part of the box inside the frame
            box = np.clip(tr.box, 0.0, [w, h, w, h])
            out.append(Detection(
                label=tr.label, score=tr.score, box_xyxy=tuple(float(v) for v in box),
                mask=tr.mask_in(frame.shape) if with_masks else None, target_index=tr.target_index,
                role="target" if tr is target else "candidate", track_id=tr.id, tracked=True,
                verified_age_s=max(0.0, (frame.stamp_ns - tr.last_verified_ns) * 1e-9)))
        return out
