"""Numbers of an evaluation run: hit rate, precision/recall, absent-object false positives, latency.

Definitions (docs/eval.md explains them for users):

* **hit**: the first detection (the one a planner acts on) overlaps a right
  answer with box IoU >= 0.5.  For an absent command, a hit is returning nothing.
* **precision / recall** over all detections of all commands: a detection is a
  true positive when it matches a right answer one to one (IoU >= 0.5, best
  score first), otherwise a false positive; right answers left unmatched are
  false negatives.  A plain command's right answers are all instances; a
  qualified command has one right answer (any of its acceptable instances); an
  absent command has none.  Unmatched detections of a category whose
  annotations are not exhaustive are not counted.
* **object recall by size**: of the instances plain commands ask for, the
  share matched, per COCO size class.
* **latency**: the first command on a photo pays for the frame; later ones
  re-use it (re-query).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from tinyvlm_ros.bench.bag_results import match
from tinyvlm_ros.eval.dataset import SIZE_CLASSES, Dataset
from tinyvlm_ros.geometry import box_iou
from tinyvlm_ros.types import Detection

IOU_THRESHOLD = 0.5


def _dets(rec: Dict[str, Any]) -> List[Detection]:
    # one shared label: matching is by box only, whatever phrase the engine parsed
    return [Detection(label="", score=float(d["score"]), box_xyxy=tuple(d["box"])) for d in rec["detections"]]


def score_command(rec: Dict[str, Any], boxes: Dict[int, Sequence[float]], exhaustive: bool = True
                  ) -> Dict[str, Any]:
    """Hit, TP/FP/FN and matched right answers of one command record.

    Args:
        rec: a command record of results.jsonl (kind, targets, detections).
        boxes: annotation id -> (x0, y0, x1, y1).
        exhaustive: False when the category has unannotated instances in this photo.
    """
    dets = _dets(rec)
    truth_ids = list(rec["targets"])
    if rec["kind"] == "absent":
        return {"hit": not dets, "tp": 0, "fp": len(dets), "fn": 0, "matched": []}
    first_ok = bool(dets) and any(box_iou(dets[0].box_xyxy, boxes[a]) >= IOU_THRESHOLD for a in truth_ids)
    truth = [Detection(label="", score=1.0, box_xyxy=tuple(boxes[a])) for a in truth_ids]
    tp, fp, fn, _ = match(dets, truth, IOU_THRESHOLD)
    # the instances some detection found (for recall by object size)
    matched = [a for a in truth_ids if any(box_iou(d.box_xyxy, boxes[a]) >= IOU_THRESHOLD for d in dets)]
    if rec["kind"] != "plain":
        # the command singles out one object: one right answer, whichever acceptable instance it is
        tp = min(tp, 1)
        fp, fn = len(dets) - tp, 1 - tp
    if not exhaustive:
        fp = 0
    return {"hit": first_ok, "tp": tp, "fp": fp, "fn": fn, "matched": matched}


def _pct(values: Sequence[float], q: float) -> Optional[float]:
    return round(float(np.percentile(values, q)), 4) if len(values) else None


def _ratio(a: float, b: float) -> Optional[float]:
    return round(a / b, 4) if b else None


def summarise(dataset: Dataset, records: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Every number of the report from the photo records of a run."""
    images = {img.file_name: img for img in dataset.images}
    per_kind: Dict[str, Dict[str, float]] = {}
    per_cat: Dict[str, Dict[str, float]] = {}
    sizes = {s: [0, 0] for s in SIZE_CLASSES}
    totals = {"tp": 0, "fp": 0, "fn": 0}
    parse_fail: List[Dict[str, Any]] = []
    absent_fp = []
    frame_lat, requery_lat, frame_cpu, work_rows, errors = [], [], [], [], []
    n_commands = 0
    for rec in records:
        img = images.get(rec["image"])
        if img is None:
            continue
        boxes = {o.ann_id: o.box for o in img.objects}
        for k, c in enumerate(rec["commands"]):
            n_commands += 1
            s = score_command(c, boxes, exhaustive=c["category"] not in img.not_exhaustive)
            for key in totals:
                totals[key] += s[key]
            kd = per_kind.setdefault(c["kind"], {"commands": 0, "hits": 0})
            kd["commands"] += 1
            kd["hits"] += int(s["hit"])
            if c["kind"] != "absent":
                cd = per_cat.setdefault(c["category"], {"commands": 0, "hits": 0, "tp": 0, "fp": 0, "fn": 0})
                cd["commands"] += 1
                cd["hits"] += int(s["hit"])
                for key in ("tp", "fp", "fn"):
                    cd[key] += s[key]
            else:
                absent_fp.append(len(c["detections"]))
            if c["kind"] == "plain":
                for o in img.instances(c["category"]):
                    sizes[o.size][1] += 1
                    sizes[o.size][0] += int(o.ann_id in s["matched"])
            if not c["parse_ok"]:
                parse_fail.append({"image": rec["image"], "command": c["text"], "category": c["category"],
                                   "parsed": c["parsed"]})
            if c.get("error"):
                errors.append({"image": rec["image"], "command": c["text"], "error": c["error"]})
            (frame_lat if k == 0 else requery_lat).append(float(c["latency_s"]))
            if k == 0:
                counts = {w: c.get("work", {}).get(w, 0) for w in ("decoder_calls", "masks", "crops")}
                work_rows.append({"image": rec["image"], **counts, "latency_s": c["latency_s"],
                                  "cpu_s": c.get("cpu_s"), "load_avg_1min": rec.get("load_avg_1min")})
                if c.get("cpu_s") is not None:
                    frame_cpu.append(float(c["cpu_s"]))
    tp, fp, fn = totals["tp"], totals["fp"], totals["fn"]
    work = {w: round(float(np.mean([r[w] for r in work_rows])), 2) if work_rows else None
            for w in ("decoder_calls", "masks", "crops")}
    return {
        "photos": len(records), "commands": n_commands,
        "hit_rate": {k: _ratio(v["hits"], v["commands"]) for k, v in sorted(per_kind.items())},
        "commands_by_kind": {k: int(v["commands"]) for k, v in sorted(per_kind.items())},
        "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn), "tp": tp, "fp": fp, "fn": fn,
        "absent": {"commands": len(absent_fp), "with_detections": sum(1 for n in absent_fp if n),
                   "false_positive_rate": _ratio(sum(1 for n in absent_fp if n), len(absent_fp)),
                   "mean_detections": round(float(np.mean(absent_fp)), 3) if absent_fp else None,
                   "verified": dataset.has_absent_lists},
        "object_recall_by_size": {s: {"objects": n, "found": f, "recall": _ratio(f, n)}
                                  for s, (f, n) in sizes.items()},
        "per_category": {k: {"commands": int(v["commands"]), "hit_rate": _ratio(v["hits"], v["commands"]),
                             "precision": _ratio(v["tp"], v["tp"] + v["fp"]),
                             "recall": _ratio(v["tp"], v["tp"] + v["fn"])}
                         for k, v in sorted(per_cat.items())},
        "parse": {"commands": n_commands, "target_is_category": n_commands - len(parse_fail),
                  "rate": _ratio(n_commands - len(parse_fail), n_commands), "failures": parse_fail},
        "latency_s": {"frame_p50": _pct(frame_lat, 50), "frame_p95": _pct(frame_lat, 95),
                      "frame_cpu_p50": _pct(frame_cpu, 50),
                      "requery_p50": _pct(requery_lat, 50), "requery_p95": _pct(requery_lat, 95),
                      "frame": [round(v, 4) for v in frame_lat], "requery_count": len(requery_lat)},
        "work_per_frame": work, "per_photo": work_rows, "errors": errors,
    }
