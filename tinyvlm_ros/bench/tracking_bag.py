"""``tinyvlm bench bag --tracking`` offline: the node's tracking loop over a bag, the engine on its own clock.

Every image of the bag goes through :class:`~tinyvlm_ros.tracking.loop.TrackingLoop`
(one call per frame, as the node's frame worker does); the engine's jobs run
through :class:`~tinyvlm_ros.tracking.loop.OfflineEngine`, whose answers come
back ``engine_latency_s`` of *stream time* after their frame (default: each
call's measured wall time, what the node would see with an idle second core).
So the frames the engine would still be busy on are tracked, exactly as live.

Latency per frame is decode + ``TrackingLoop.step`` (the frame worker's work;
the engine's job runs beside it live and is not on the frame's path); the
engine's own time per keyframe is reported apart.  Results go through the
same :class:`~tinyvlm_ros.bench.bag_results.ResultSink` as the detection bench
(frames.csv, output bag, report.md) plus the tracking report
(:mod:`tinyvlm_ros.bench.tracking`) under ``tracking`` in summary.json.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any, Deque, Dict, Optional, Tuple

import numpy as np

from tinyvlm_ros.bench import bagio
from tinyvlm_ros.bench.bag import (TRUTH_WINDOW_NS, _describe, _warn, choose_image_topic, command_from_bag,
                                   decode_frame, image_messages, open_output_bag, prepare_out_dir,
                                   progress_bar, truth_topic)
from tinyvlm_ros.bench.bag_report import write_report
from tinyvlm_ros.bench.bag_results import FrameOutcome, ResultSink, TruthCache, cpu_seconds, write_json
from tinyvlm_ros.bench.tracking import DETECTED, EMPTY, TRACKED, TrackingTally
from tinyvlm_ros.tracking import Frame, OfflineEngine, TrackingConfig, TrackingLoop
from tinyvlm_ros.tracking.loop import KEYFRAME
from tinyvlm_ros.types import Engine


def run_offline_tracking(bag: Path, out_dir: Path, engine: Engine, *, config: Optional[TrackingConfig] = None,
                         engine_latency_s: Optional[float] = None, command: Optional[str] = None,
                         image_topic: Optional[str] = None, max_frames: Optional[int] = None,
                         score_threshold: Optional[float] = None, max_detections: Optional[int] = None,
                         target_identity: Optional[int] = None, write_bag: bool = True,
                         command_line: str = "") -> Dict[str, Any]:
    """Replay ``bag`` through the tracking loop and ``engine``; write the results into ``out_dir``.

    Returns the summary (also ``out_dir/summary.json``), with the tracking report under ``tracking``.

    Raises:
        BagError: missing topic, damaged bag (results so far are kept).
    """
    import psutil

    if max_frames is not None and max_frames < 1:
        raise ValueError(f"--max-frames must be at least 1, got {max_frames}")
    if engine_latency_s is not None and engine_latency_s < 0:
        raise ValueError(f"--engine-latency must be >= 0 s, got {engine_latency_s}")
    config = config or TrackingConfig()
    bag = Path(bag)
    proc = psutil.Process()
    with bagio.BagReader(bag) as reader:
        topic, _ = choose_image_topic(reader, image_topic)
        gt_topic = truth_topic(reader)
        command = command_from_bag(reader, command)
        out_dir = prepare_out_dir(out_dir)
        total = reader.count(topic) if not max_frames else min(max_frames, reader.count(topic))
        out_bag = open_output_bag(reader, out_dir) if write_bag else None
        sink = ResultSink(out_dir, command, out_bag, bagio.TOPIC_DETECTIONS)
        tally = TrackingTally(command, target_identity=target_identity)
        truths = TruthCache()
        loop = TrackingLoop(config)
        loop.new_command()
        offline = OfflineEngine(engine, command, latency_s=engine_latency_s, score_threshold=score_threshold,
                                max_detections=max_detections)
        pending: Deque[Tuple[FrameOutcome, str]] = deque()
        bar = progress_bar(total, "bench bag --tracking")
        index, status, error = 0, "complete", None

        def settle(now_ns: Optional[int]) -> None:
            while pending and (now_ns is None or pending[0][0].log_ns + TRUTH_WINDOW_NS < now_ns):
                o, kind = pending.popleft()
                if gt_topic:
                    o.truth = truths.pop(o.stamp_ns) or []
                sink.add(o)
                if o.status == "ok":
                    tally.add(o.truth if gt_topic else None, o.detections, kind=kind,
                              time_s=o.stamp_ns * 1e-9, latency_s=o.latency_s)

        cpu0, t0 = cpu_seconds(proc), time.perf_counter()
        try:
            for conn, log_ns, data in image_messages(reader, topic, out_bag, gt_topic, truths, _warn):
                if max_frames is not None and index >= max_frames:
                    status = "max-frames"
                    break
                pending.append(_step(reader, conn, log_ns, data, index, loop, offline))
                index += 1
                settle(log_ns)
                if bar is not None:
                    bar.update(1)
        except KeyboardInterrupt as exc:
            status, error = "interrupted", exc
        except bagio.BagError as exc:
            status, error = "bag-error", exc
        except Exception as exc:  # keep what was done, then let it surface
            status, error = "error", exc
        finally:
            settle(None)
            wall, cpu = time.perf_counter() - t0, cpu_seconds(proc) - cpu0
            if bar is not None:
                bar.close()
            sink.close()
            if out_bag is not None:
                out_bag.__exit__(None, None, None)
        report = tally.summary()
        keyframe_ms = [s * 1e3 for s in offline.engine_seconds]
        report.update({
            "mode": "offline",
            "config": {"keyframe_period_s": config.keyframe_period_s,
                       "max_track_age_s": config.max_track_age_s,
                       "reverify_period_s": config.reverify_period_s, "tracker": config.tracker},
            "engine_latency_s": engine_latency_s,
            "engine_latency_from": "given" if engine_latency_s is not None else "measured per call",
            "keyframe_ms": {"n": len(keyframe_ms),
                            "p50": round(float(np.percentile(keyframe_ms, 50)), 1) if keyframe_ms else None,
                            "p95": round(float(np.percentile(keyframe_ms, 95)), 1) if keyframe_ms else None},
            "loop": dict(loop.stats), "keyframe_reasons": dict(loop.reasons),
        })
        failure = f"{type(error).__name__}: {error}" if error and status != "interrupted" else None
        summary = sink.summary(mode="offline", bag=bag, image_topic=topic, engine=_describe(engine),
                               wall_s=wall, cpu_s=cpu,
                               extra={"status": status, "command_line": command_line,
                                      "storage": reader.storage,
                                      "output_bag_name": "bag/" if write_bag else None, "error": failure,
                                      "tracking": report,
                                      "note": "tracking replay: latency = decode + tracking step per frame; "
                                              "the engine runs on keyframes on the stream's clock"})
    write_json(out_dir / "summary.json", summary)
    write_report(summary, sink, out_dir)
    if error is not None:
        raise error
    return summary


def _step(reader: bagio.BagReader, conn: Any, log_ns: int, data: bytes, index: int, loop: TrackingLoop,
          offline: OfflineEngine) -> Tuple[FrameOutcome, str]:
    """Decode one frame and run it through the loop; return its outcome and kind (detected/tracked/empty)."""
    t0 = time.perf_counter()
    stamp, rgb, corrupt = decode_frame(reader, conn, log_ns, data, index)
    if corrupt is not None:
        return corrupt, EMPTY
    t1 = time.perf_counter()
    answers = offline.ready(stamp)
    fresh = any(a.job.kind == KEYFRAME and a.result is not None and not a.error
                and a.job.generation == loop.generation for a in answers)
    dets, job = loop.step(Frame(stamp, rgb), answers)
    t2 = time.perf_counter()
    if job is not None:
        offline.submit(job)   # live, the engine thread runs it beside the frame worker
    kind = (DETECTED if fresh else TRACKED) if dets else EMPTY
    return FrameOutcome(index=index, stamp_ns=stamp, log_ns=log_ns, status="ok", detections=list(dets),
                        latency_s=t2 - t0, decode_s=t1 - t0, detect_s=t2 - t1), kind
