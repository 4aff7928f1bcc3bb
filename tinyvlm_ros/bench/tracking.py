"""The tracking report of a bag replay: identities, detected vs tracked frames, target stream rate, latency.

Offline (:mod:`tinyvlm_ros.bench.tracking_bag`) and live (:mod:`tinyvlm_ros.bench.live` with
``tracking=True``) replays hand every frame to a :class:`TrackingTally`: the
bag's ground truth (identities from ``Detection2D.id``, see
:func:`tinyvlm_ros.bench.bagio.object_id`), the published detections with their
track ids, and whether the frame was *detected* (the engine's answer is in it)
or *tracked* (carried by the tracker).  The identity metrics (MOTA, IDF1,
identity switches, fragmentations) come from motmetrics through
:class:`tinyvlm_ros.tracking.metrics.TrackingScore`; only the ground-truth
objects the command names count.

The target's ground-truth identity is the object detection 0 first lands on
(IoU >= the threshold) unless the caller names it: the benchmark checks that
the answer *stays* on the object it chose, which is what a planner needs.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from tinyvlm_ros.bench.bag_results import relevant_truth
from tinyvlm_ros.geometry import box_iou
from tinyvlm_ros.tracking.metrics import TrackingScore, TruthBox
from tinyvlm_ros.types import Detection

DETECTED, TRACKED, EMPTY, DROPPED = "detected", "tracked", "empty", "dropped"
KINDS = (DETECTED, TRACKED, EMPTY, DROPPED)


def _pcts(values: Sequence[float]) -> Dict[str, Optional[float]]:
    if not len(values):
        return {"n": 0, "p50": None, "p95": None}
    v = np.asarray(values, np.float64)
    return {"n": int(v.size), "p50": round(float(np.percentile(v, 50)), 3),
            "p95": round(float(np.percentile(v, 95)), 3)}


def _rate(times_s: Sequence[float]) -> Optional[float]:
    """Messages per second over the span of ``times_s`` (None with fewer than two)."""
    if len(times_s) < 2 or times_s[-1] <= times_s[0]:
        return None
    return round((len(times_s) - 1) / (times_s[-1] - times_s[0]), 3)


class TrackingTally:
    """Accumulate a replay's frames; :meth:`summary` gives the tracking report.

    Args:
        command: the standing command (its named objects are the relevant ground truth).
        target_identity: the ground-truth object the target should stay on (None: the first one it lands on).
        iou_threshold: a published box and a ground-truth box match at this IoU or more.
    """

    def __init__(self, command: str, target_identity: Optional[int] = None,
                 iou_threshold: float = 0.5) -> None:
        self.command = command
        self.score = TrackingScore(iou_threshold=iou_threshold)
        self.iou_threshold = iou_threshold
        self.target_identity = target_identity
        self.target_named = target_identity is not None
        self.counts = {k: 0 for k in KINDS}
        self.latency_ms: Dict[str, List[float]] = {DETECTED: [], TRACKED: []}
        self.target_iou: Dict[str, List[float]] = {DETECTED: [], TRACKED: []}
        self.target_times_s: List[float] = []
        self.answer_times_s: List[float] = []
        self.frames_with_truth = 0
        self._first_s: Optional[float] = None

    def add(self, truth: Optional[Sequence[Detection]], dets: Sequence[Detection], *, kind: str,
            time_s: Optional[float] = None, latency_s: Optional[float] = None) -> None:
        """Score one frame.

        Args:
            truth: the bag's ground truth for the frame (``track_id`` = identity), None when it has none.
            dets: the published detections (detection 0 = the target), empty for a dropped frame.
            kind: ``"detected"``, ``"tracked"``, ``"empty"`` (answered, nothing published) or ``"dropped"``.
            time_s: when the answer was published (stream time offline, receive time live), for the rates
                and the time from the first answer to the first target.
            latency_s: the frame's latency (image stamp to detections).
        """
        if kind not in KINDS:
            raise ValueError(f"frame kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if dets and kind in (EMPTY, DROPPED):
            raise ValueError(f"a {kind} frame publishes nothing, got {len(dets)} detections")
        self.counts[kind] += 1
        if time_s is not None and self._first_s is None:
            self._first_s = float(time_s)
        if kind != DROPPED and time_s is not None:
            self.answer_times_s.append(float(time_s))
            if dets:
                self.target_times_s.append(float(time_s))
        if kind in self.latency_ms and latency_s is not None:
            self.latency_ms[kind].append(latency_s * 1e3)
        if truth is None:
            return
        self.frames_with_truth += 1
        rel = relevant_truth(truth, self.command)
        boxes = [TruthBox(int(t.track_id), t.label, tuple(t.box_xyxy)) for t in rel]
        if self.target_identity is None and dets:
            self.target_identity = self._landed_on(boxes, dets[0])
        self.score.add(boxes, list(dets), self.target_identity)
        if dets and kind in self.target_iou and self.target_identity is not None:
            gt = [b for b in boxes if b.identity == self.target_identity]
            self.target_iou[kind].append(box_iou(dets[0].box_xyxy, gt[0].box_xyxy) if gt else 0.0)

    def _landed_on(self, boxes: Sequence[TruthBox], det: Detection) -> Optional[int]:
        best, who = self.iou_threshold, None
        for b in boxes:
            iou = box_iou(det.box_xyxy, b.box_xyxy) if b.label == det.label else 0.0
            if b.identity > 0 and iou >= best:
                best, who = iou, b.identity
        return who

    def ids_per_object(self) -> Optional[Dict[int, int]]:
        """Distinct published ids each ground-truth object was matched to (motmetrics' matches), or None."""
        acc = getattr(self.score, "_acc", None)
        if acc is None or not self.score._has_identities:
            return None
        ev = acc.mot_events
        ev = ev[ev["Type"].isin(["MATCH", "SWITCH"])]
        return {int(k): int(v) for k, v in ev.groupby("OId")["HId"].nunique().items()}

    def summary(self) -> Dict[str, Any]:
        """Return the tracking report (JSON-ready)."""
        s = self.score.summary()
        med = {k: (round(float(np.median(v)), 4) if v else None) for k, v in self.target_iou.items()}
        return {
            "frames": sum(self.counts.values()),
            "frame_kinds": dict(self.counts),
            "frames_with_truth": self.frames_with_truth,
            "latency_ms": {k: _pcts(v) for k, v in self.latency_ms.items()},
            "target_rate_hz": _rate(self.target_times_s),
            "first_target_s": (round(self.target_times_s[0] - self._first_s, 3)
                               if self.target_times_s and self._first_s is not None else None),
            "answer_rate_hz": _rate(self.answer_times_s),
            "target_identity": self.target_identity,
            "target_identity_from": "given" if self.target_named else "first match of detection 0",
            "target_iou_median": med,
            "target_frames_matched": {k: sum(1 for x in v if x >= self.iou_threshold)
                                      for k, v in self.target_iou.items()},
            "ids_per_object": self.ids_per_object(),
            "identity": s,
        }


def markdown(t: Dict[str, Any]) -> List[str]:
    """Lines of report.md's tracking section for a :meth:`TrackingTally.summary`."""
    k = t["frame_kinds"]
    lat = t["latency_ms"]
    ident = t["identity"]
    mot = ident.get("mot") or {}

    def f(v: Any, nd: int = 3) -> str:
        return "n/a" if v is None else (f"{v:.{nd}f}" if isinstance(v, float) else str(v))

    lines = ["## Tracking", "",
             "| frames | detected | tracked | empty | dropped | target stream | tracked p50 | tracked p95 "
             "| detected p95 |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| {t['frames']} | {k['detected']} | {k['tracked']} | {k['empty']} | {k['dropped']} "
             f"| {f(t['target_rate_hz'], 1)} Hz | {f(lat['tracked']['p50'], 1)} ms "
             f"| {f(lat['tracked']['p95'], 1)} ms | {f(lat['detected']['p95'], 1)} ms |", ""]
    if t["frames_with_truth"]:
        lines += [
            f"Against the ground truth (objects the command names, IoU >= {ident['iou_threshold']}; "
            f"target = ground-truth object {t['target_identity']}, {t['target_identity_from']}):", "",
            "| target id switches | target id changes | target jumps | ids used | ID switches (all) "
            "| fragmentations | MOTA | IDF1 | target IoU tracked (median) | target IoU detected |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {f(ident['target_id_switches'])} | {ident['target_id_changes']} | {ident['target_jumps']} "
            f"| {ident['ids_used']} | {f(mot.get('num_switches'))} | {f(mot.get('num_fragmentations'))} "
            f"| {f(mot.get('mota'))} | {f(mot.get('idf1'))} | {f(t['target_iou_median']['tracked'])} "
            f"| {f(t['target_iou_median']['detected'])} |", "",
            "MOTA, IDF1, switches and fragmentations: motmetrics.  Target id changes count every change of "
            "detection 0's id, target jumps every move of detection 0 to another ground-truth object.", ""]
    else:
        lines += ["No ground truth in this bag: identity metrics not measured.", ""]
    return lines
