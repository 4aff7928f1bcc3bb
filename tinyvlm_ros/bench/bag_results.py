"""Per-frame results of a bag replay: matching against ground truth, CSV, summary, output bag.

Offline and live replays both hand every frame's outcome to a
:class:`ResultSink`.  It writes the CSV row and the output bag message at
once (nothing waits in memory for the end of the run) and keeps only a few
numbers per frame for the summary and the plots, so a 10,000-frame replay
runs in flat memory.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tinyvlm_ros.geometry import box_iou
from tinyvlm_ros.types import Detection

IOU_THRESHOLD = 0.5

CSV_FIELDS = ["index", "stamp_ns", "log_ns", "status", "latency_ms", "decode_ms", "detect_ms",
              "n_detections", "best_label", "best_score", "best_x0", "best_y0", "best_x1", "best_y1",
              "tp", "fp", "fn", "mean_iou", "rss_mb"]

#: Frame outcomes.  ``ok``: detections came back; ``dropped``: never answered
#: (the live node skipped it, or the run stopped); ``corrupt``: undecodable.
STATUSES = ("ok", "dropped", "corrupt")


def relevant_truth(truth: Sequence[Detection], command: str) -> List[Detection]:
    """Ground-truth objects the command asks for: those whose label appears in the command text.

    The same rule serves offline and live runs, which cannot see how the
    engine parsed the command.
    """
    text = " ".join(command.lower().split())
    return [t for t in truth if t.label and t.label.lower() in text]


def match(detections: Sequence[Detection], truth: Sequence[Detection],
          iou_threshold: float = IOU_THRESHOLD) -> Tuple[int, int, int, List[float]]:
    """Greedy, best score first, one-to-one matching of same-label boxes.

    Returns:
        (true positives, false positives, false negatives, IoUs of the true positives).
    """
    used = [False] * len(truth)
    tp, ious = 0, []
    for det in sorted(detections, key=lambda d: -d.score):
        best_j, best_iou = -1, iou_threshold
        for j, gt in enumerate(truth):
            if used[j] or gt.label != det.label:
                continue
            iou = box_iou(det.box_xyxy, gt.box_xyxy)
            if iou >= best_iou:
                best_j, best_iou = j, iou
        if best_j >= 0:
            used[best_j] = True
            tp += 1
            ious.append(best_iou)
    return tp, len(detections) - tp, len(truth) - tp, ious


@dataclass
class FrameOutcome:
    """What happened to one image of the bag."""

    index: int
    stamp_ns: int
    log_ns: int
    status: str
    detections: List[Detection] = field(default_factory=list)
    latency_s: Optional[float] = None
    decode_s: Optional[float] = None
    detect_s: Optional[float] = None
    truth: Optional[List[Detection]] = None  # None: the bag has no ground truth for this frame
    error: str = ""


def cpu_seconds(proc: Any) -> float:
    """User + system CPU seconds a ``psutil.Process`` has used so far."""
    t = proc.cpu_times()
    return float(t.user + t.system)


def rss_mb(proc: Any) -> float:
    """Resident memory of a ``psutil.Process`` in MiB."""
    return proc.memory_info().rss / 2**20


def percentile(values: Any, q: float) -> Optional[float]:
    """q-th percentile of ``values`` or None when empty."""
    if len(values) == 0:
        return None
    return float(np.percentile(np.frombuffer(values, np.float64) if isinstance(values, array) else values, q))


class ResultSink:
    """Collects frame outcomes into frames.csv, the output bag and running statistics.

    Args:
        out_dir: where frames.csv goes (created).
        command: the standing command, for choosing the relevant ground truth.
        out_bag: an open :class:`~tinyvlm_ros.bench.bagio.BagWriter` (or None);
            each answered frame adds a Detection2DArray on ``det_topic``.
        det_topic: topic of the detections in the output bag.
    """

    def __init__(self, out_dir: Path, command: str, out_bag: Any = None,
                 det_topic: str = "/tinyvlm/detections", iou_threshold: float = IOU_THRESHOLD) -> None:
        import psutil

        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.command = command
        self.out_bag = out_bag
        self.det_topic = det_topic
        self.iou_threshold = iou_threshold
        self._csv_file = open(self.out_dir / "frames.csv", "w", newline="")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=CSV_FIELDS)
        self._csv.writeheader()
        self._proc = psutil.Process()
        self.counts = {s: 0 for s in STATUSES}
        # compact per-frame series for percentiles and plots (8 bytes a frame each)
        self.latency_ms = array("d")
        self.latency_index = array("q")
        self.ok_index = array("q")
        self.lost_index = array("q")    # dropped or corrupt frames, for the plots
        self.n_dets = array("q")
        self.rss_mb = array("d")
        self.tp = self.fp = self.fn = 0
        self.tp_processed = self.fn_processed = 0   # the same, over the frames the engine answered
        self.ious = array("d")
        self.frames_with_truth = 0
        self.processed_with_truth = 0
        self.peak_rss_mb = 0.0
        self.rows = 0
        self._rss_every = 10

    def add(self, o: FrameOutcome) -> None:
        """Record one frame: CSV row (flushed), output bag message, statistics."""
        if o.status not in STATUSES:
            raise ValueError(f"unknown frame status {o.status!r}")
        self.counts[o.status] += 1
        if self.rows % self._rss_every == 0:
            rss = rss_mb(self._proc)
            self.peak_rss_mb = max(self.peak_rss_mb, rss)
            self.rss_mb.append(rss)
        row: Dict[str, Any] = {"index": o.index, "stamp_ns": o.stamp_ns, "log_ns": o.log_ns,
                               "status": o.status,
                               "latency_ms": _ms(o.latency_s), "decode_ms": _ms(o.decode_s),
                               "detect_ms": _ms(o.detect_s), "n_detections": len(o.detections),
                               "rss_mb": f"{self.rss_mb[-1]:.1f}" if self.rss_mb else ""}
        if o.detections:
            best = max(o.detections, key=lambda d: d.score)
            row.update(best_label=best.label, best_score=f"{best.score:.4f}",
                       **{k: f"{v:.1f}" for k, v in zip(("best_x0", "best_y0", "best_x1", "best_y1"),
                                                        best.box_xyxy)})
        if o.status != "ok":
            self.lost_index.append(o.index)
        if o.status == "ok":
            self.ok_index.append(o.index)
            self.n_dets.append(len(o.detections))
            if o.latency_s is not None:
                self.latency_ms.append(o.latency_s * 1e3)
                self.latency_index.append(o.index)
        if o.truth is not None and o.status != "corrupt":
            # A dropped frame still counts against recall: the robot got no answer for it.
            rel = relevant_truth(o.truth, self.command)
            tp, fp, fn, ious = match(o.detections, rel, self.iou_threshold)
            self.tp, self.fp, self.fn = self.tp + tp, self.fp + fp, self.fn + fn
            self.ious.extend(ious)
            self.frames_with_truth += 1
            if o.status == "ok":
                self.tp_processed += tp
                self.fn_processed += fn
                self.processed_with_truth += 1
            row.update(tp=tp, fp=fp, fn=fn, mean_iou=f"{np.mean(ious):.4f}" if ious else "")
        self._csv.writerow(row)
        self._csv_file.flush()
        self.rows += 1
        if self.out_bag is not None and o.status == "ok":
            from tinyvlm_ros.bench import bagio

            store = self.out_bag.store
            header = bagio.make_header(store, o.stamp_ns, "camera")
            t_ns = o.log_ns + int((o.latency_s or 0.0) * 1e9)
            # the run's one command is command 1, as the node numbers the first command it accepts
            self.out_bag.write(self.det_topic, t_ns, bagio.detections_to_msg(store, header, o.detections,
                                                                             command_id=1))

    def close(self) -> None:
        """Close the CSV file (the output bag belongs to the caller)."""
        if not self._csv_file.closed:
            self._csv_file.close()

    def metrics(self) -> Dict[str, Optional[float]]:
        """Precision, recall (all frames, and processed frames only) and mean IoU; None without ground truth.

        ``recall`` counts a dropped frame's objects as missed (the robot got no
        answer for it); ``recall_processed`` is the engine's own recall on the
        frames it answered.  Both are None when there was nothing to find.
        """
        if not self.frames_with_truth:
            return {"precision": None, "recall": None, "recall_processed": None, "mean_iou": None}
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else None  # nothing detected: undefined
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else None  # nothing to find: undefined
        seen = self.tp_processed + self.fn_processed
        rp = self.tp_processed / seen if seen else None
        miou = float(np.mean(self.ious)) if len(self.ious) else None
        return {"precision": p, "recall": r, "recall_processed": rp, "mean_iou": miou}

    def summary(self, *, mode: str, bag: Path, image_topic: str, engine: Dict[str, str], wall_s: float,
                cpu_s: float, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Return the run's summary.json content.

        ``engine`` describes what answered (an engine's or the node's ``describe()``); its
        ``models`` and ``kind`` name the model set the numbers belong to.
        """
        frames = sum(self.counts.values())
        processed = self.counts["ok"]
        lat = {f"p{q}": _round(percentile(self.latency_ms, q)) for q in (50, 95, 99)}
        lat["mean"] = _round(float(np.mean(self.latency_ms)) if len(self.latency_ms) else None)
        lat["max"] = _round(float(np.max(self.latency_ms)) if len(self.latency_ms) else None)
        m = self.metrics()
        out: Dict[str, Any] = {
            "mode": mode,
            "bag": str(bag),
            "image_topic": image_topic,
            "command": self.command,
            "engine": engine,
            "model_set": {"name": engine.get("models"), "kind": engine.get("kind")},
            "frames": frames,
            "processed": processed,
            "dropped": self.counts["dropped"],
            "corrupt": self.counts["corrupt"],
            "latency_ms": lat,
            "throughput_fps": _round(processed / wall_s if wall_s > 0 else None),
            "wall_s": _round(wall_s),
            "cpu_percent": _round(100.0 * cpu_s / wall_s if wall_s > 0 else None),
            "peak_rss_mb": _round(self.peak_rss_mb),
            "rss_growth_mb": _round(self.rss_mb[-1] - self.rss_mb[0] if len(self.rss_mb) > 1 else 0.0),
            "ground_truth": {
                "frames": self.frames_with_truth,
                "iou_threshold": self.iou_threshold,
                "tp": self.tp, "fp": self.fp, "fn": self.fn,
                "processed_frames": self.processed_with_truth,
                "tp_processed": self.tp_processed, "fn_processed": self.fn_processed,
                **{k: _round(v) for k, v in m.items()},
            } if self.frames_with_truth else None,
            "precision": _round(m["precision"]),
            "recall": _round(m["recall"]),
            "recall_processed": _round(m["recall_processed"]),
            "mean_iou": _round(m["mean_iou"]),
            "machine": {"platform": platform.platform(),
                        "processor": platform.processor() or platform.machine(),
                        "cpus": os.cpu_count(), "python": platform.python_version()},
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if extra:
            out.update(extra)
        return out


def write_json(path: Path, data: Dict[str, Any]) -> None:
    """Write JSON atomically so a reader never sees half a file."""
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _ms(s: Optional[float]) -> str:
    return "" if s is None else f"{s * 1e3:.3f}"


def _round(v: Optional[float], nd: int = 4) -> Optional[float]:
    return None if v is None else round(float(v), nd)


class TruthCache:
    """Ground truth by header stamp, bounded: frames and their truth may arrive in either order."""

    def __init__(self, capacity: int = 4096) -> None:
        from collections import OrderedDict

        self.capacity = capacity
        self._by_stamp: "OrderedDict[int, List[Detection]]" = OrderedDict()

    def add(self, stamp_ns: int, truth: List[Detection]) -> None:
        self._by_stamp[stamp_ns] = truth
        while len(self._by_stamp) > self.capacity:
            self._by_stamp.popitem(last=False)

    def pop(self, stamp_ns: int) -> Optional[List[Detection]]:
        return self._by_stamp.pop(stamp_ns, None)
