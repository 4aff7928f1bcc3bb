"""Box trackers side by side on the generated moving sequences: cost per frame and box IoU.

Every tracker starts on the exact boxes of the objects wholly in view in the
first frame and runs to the end with no keyframe help, so the numbers show
the tracker alone: milliseconds per frame for all objects together (one
thread, like the node's frame worker), median IoU of its boxes with the
visible ground truth while the object is fully visible and the tracker still
holds it, and how many frames it held.  This is the measurement behind the
default (``flow``); OpenCV's KCF and CSRT appear when opencv-contrib is
installed.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence

import cv2
import numpy as np

from tinyvlm_ros.geometry import box_iou
from tinyvlm_ros.testing.sequences import SEQUENCES, render
from tinyvlm_ros.tracking.appearance import measure
from tinyvlm_ros.tracking.cvtrackers import FACTORIES, factory
from tinyvlm_ros.tracking.frame import Frame
from tinyvlm_ros.tracking.manager import make_tracker

#: Below this confidence a tracker is taken to have let go of the object.
HELD = 0.35


def available_trackers() -> List[str]:
    """Tracker names this OpenCV build can run."""
    return ["flow"] + [k for k in FACTORIES if factory(k) is not None]


def compare(trackers: Optional[Sequence[str]] = None, sequences: Optional[Sequence[str]] = None,
            max_frames: Optional[int] = None) -> List[Dict[str, Any]]:
    """Run each tracker on each sequence; one row per (tracker, sequence).

    Rows: tracker, sequence, objects, frames, ms_p50, ms_p95 (all objects, one frame), iou_median,
    held_fraction (object-frames the tracker still held, of those with the object in view).
    """
    cv2.setNumThreads(1)   # the node's frame worker is one thread next to the engine's
    rows = []
    for seq_name in sequences or list(SEQUENCES):
        spec = SEQUENCES[seq_name]
        frames = list(render(spec, stop=max_frames))
        for name in trackers or available_trackers():
            tracker = make_tracker(name)
            f0 = Frame(frames[0].stamp_ns, frames[0].image)
            objs = [o for o in frames[0].truth if o.visible > 0.99]
            for o in objs:
                tracker.start(o.identity, o.box_xyxy, f0, measure(f0, o.box_xyxy))
            times, ious, held, seen = [], [], 0, 0
            for f in frames[1:]:
                frame = Frame(f.stamp_ns, f.image)
                t0 = time.perf_counter()
                out = tracker.step(frame)
                times.append(time.perf_counter() - t0)
                for o in objs:
                    truth = f.find(o.identity)
                    if truth is None:
                        continue
                    seen += 1
                    got = out.get(o.identity)
                    if got is None or got[1] < HELD:
                        tracker.drop(o.identity)
                        continue
                    held += 1
                    if truth.visible > 0.99:
                        ious.append(box_iou(got[0], truth.box_xyxy))
            rows.append({"tracker": name, "sequence": seq_name, "objects": len(objs), "frames": len(frames),
                         "ms_p50": round(float(np.percentile(times, 50)) * 1e3, 2),
                         "ms_p95": round(float(np.percentile(times, 95)) * 1e3, 2),
                         "iou_median": round(float(np.median(ious)), 3) if ious else None,
                         "held_fraction": round(held / seen, 3) if seen else None})
    return rows


def markdown(rows: Sequence[Dict[str, Any]]) -> str:
    """Format the comparison as a Markdown table."""
    lines = ["| tracker | sequence | objects | ms/frame p50 | p95 | box IoU (median) | held |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        iou = "n/a" if r["iou_median"] is None else f"{r['iou_median']:.3f}"
        held = "n/a" if r["held_fraction"] is None else f"{100 * r['held_fraction']:.0f} %"
        lines.append(f"| {r['tracker']} | {r['sequence']} | {r['objects']} | {r['ms_p50']:.2f} "
                     f"| {r['ms_p95']:.2f} | {iou} | {held} |")
    return "\n".join(lines) + "\n"
