"""Tracking quality against ground truth: CLEAR-MOT and identity metrics from motmetrics, and the target's.

MOTA, MOTP, IDF1, identity switches and fragmentations are computed by the
standard implementation (motmetrics, the py-motmetrics package); this module
only feeds it one frame at a time, with IoU distances (a pair below
``iou_threshold`` cannot match, as in the MOT benchmarks).  Target-specific
numbers: the identity switches of the target object (motmetrics' SWITCH
events of that object), and, counted here, how often detection 0 (the
planner's target) moved to another ground-truth object ("jumps").

Without identities in the ground truth (a user's bag with boxes only) the
identity metrics cannot be computed; the self-consistency counters (how often
the target's id changed at all, how many ids were used) still are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tinyvlm_ros.geometry import iou_matrix
from tinyvlm_ros.types import Detection

#: motmetrics metric names reported, in this order.
MOT_METRICS = ("num_frames", "mota", "motp", "idf1", "idp", "idr", "num_switches", "num_fragmentations",
               "num_false_positives", "num_misses", "num_objects", "num_unique_objects", "mostly_tracked",
               "precision", "recall")


@dataclass
class TruthBox:
    """One ground-truth object in a frame (``identity`` 0: unknown)."""

    identity: int
    label: str
    box_xyxy: Tuple[float, float, float, float]


def _accumulator() -> Any:
    try:
        import motmetrics as mm
    except ImportError as exc:
        raise ValueError(f"tracking metrics need motmetrics: pip install motmetrics ({exc})") from None
    return mm.MOTAccumulator(auto_id=True)


def hypothesis_ids(dets: Sequence[Detection]) -> List[int]:
    """Object ids of published detections: the track id, or (tracking off) the rank, 1-based.

    Ranks are shifted far from track ids so the two never collide in one run.
    """
    return [d.track_id if d.track_id else 1_000_000 + i + 1 for i, d in enumerate(dets)]


@dataclass
class TrackingScore:
    """Accumulates frames of (truth, published detections); :meth:`summary` returns the numbers.

    Args:
        iou_threshold: a detection and a ground-truth box match only at this IoU or more.
    """

    iou_threshold: float = 0.5
    frames: int = 0
    frames_with_target: int = 0
    target_jumps: int = 0
    target_id_changes: int = 0
    ids_seen: set = field(default_factory=set)
    ious: Dict[str, List[float]] = field(default_factory=lambda: {"tracked": [], "detected": []})
    target_ious: List[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._acc = None
        self._target_identity: Optional[int] = None
        self._has_identities = True
        self._last_target_gt: Optional[int] = None
        self._last_target_id: Optional[int] = None

    def add(self, truth: Sequence[TruthBox], dets: Sequence[Detection],
            target_identity: Optional[int] = None) -> None:
        """Score one frame.

        Args:
            truth: the relevant ground-truth objects visible in the frame.
            dets: the published detections, detection 0 = the target.
            target_identity: the ground-truth object the target should be (None: not known).
        """
        self.frames += 1
        hyp_ids = hypothesis_ids(dets)
        self.ids_seen.update(hyp_ids)
        gt_boxes = np.array([t.box_xyxy for t in truth], np.float64).reshape(-1, 4)
        det_boxes = np.array([d.box_xyxy for d in dets], np.float64).reshape(-1, 4)
        iou = iou_matrix(gt_boxes, det_boxes)
        labels_ok = np.array([[t.label == d.label for d in dets] for t in truth], bool).reshape(iou.shape)
        iou = np.where(labels_ok, iou, 0.0)
        dist = np.where(iou >= self.iou_threshold, 1.0 - iou, np.nan)
        if any(t.identity <= 0 for t in truth):
            self._has_identities = False
        if self._has_identities:
            if self._acc is None:
                self._acc = _accumulator()
            self._acc.update([t.identity for t in truth], hyp_ids, dist)
        # per-detection IoU with its best ground truth, split by how the box was made
        for j, d in enumerate(dets):
            best = float(iou[:, j].max()) if len(truth) else 0.0
            if best >= self.iou_threshold:
                self.ious["tracked" if d.tracked else "detected"].append(best)
        if dets:
            self.frames_with_target += 1
            tid = hyp_ids[0]
            if self._last_target_id is not None and tid != self._last_target_id:
                self.target_id_changes += 1
            self._last_target_id = tid
            col = iou[:, 0] if len(truth) else np.zeros(0)
            if col.size and col.max() >= self.iou_threshold:
                gt = truth[int(col.argmax())].identity
                self.target_ious.append(float(col.max()))
                if self._last_target_gt is not None and gt != self._last_target_gt:
                    self.target_jumps += 1
                self._last_target_gt = gt
        if target_identity is not None:
            self._target_identity = target_identity

    def summary(self) -> Dict[str, Any]:
        """Return the run's numbers (motmetrics' under ``mot``, None without identities in the truth)."""
        out: Dict[str, Any] = {
            "frames": self.frames,
            "frames_with_target": self.frames_with_target,
            "target_id_changes": self.target_id_changes,
            "target_jumps": self.target_jumps,
            "ids_used": len(self.ids_seen),
            "iou_threshold": self.iou_threshold,
            "tracked_iou_median": _median(self.ious["tracked"]),
            "detected_iou_median": _median(self.ious["detected"]),
            "target_iou_median": _median(self.target_ious),
            "mot": None,
            "target_id_switches": None,
        }
        if self._has_identities and self._acc is not None:
            import motmetrics as mm

            mh = mm.metrics.create()
            df = mh.compute(self._acc, metrics=list(MOT_METRICS), name="all")
            out["mot"] = {k: _num(k, df[k].iloc[0]) for k in MOT_METRICS}
            if self._target_identity is not None:
                ev = self._acc.mot_events
                out["target_id_switches"] = int(((ev["Type"] == "SWITCH")
                                                 & (ev["OId"] == self._target_identity)).sum())
        return out


def _median(v: List[float]) -> Optional[float]:
    return round(float(np.median(v)), 4) if v else None


def _num(name: str, v: Any) -> Optional[float]:
    f = float(v)
    if not np.isfinite(f):
        return None
    return int(f) if name.startswith(("num_", "mostly_")) else round(f, 4)
