"""Replay a ROS 2 bag through a detection engine offline, as fast as it goes.

The bag is read once, in log-time order, one message at a time: images go to
the engine, ground truth is kept by stamp until its frame is scored, and every
message is copied to the output bag next to the new detections.  Results are
written as they come (see :mod:`tinyvlm_ros.bench.bag_results`), so a long
bag replays in flat memory and an interrupted run keeps what it did.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Deque, Dict, Iterator, Optional, Tuple

from tinyvlm_ros.bench import bagio
from tinyvlm_ros.bench.bag_report import write_report
from tinyvlm_ros.bench.bag_results import FrameOutcome, ResultSink, TruthCache, cpu_seconds, write_json
from tinyvlm_ros.types import Engine

#: A frame waits this long (bag log time) for ground truth logged after it.
TRUTH_WINDOW_NS = 1_000_000_000
#: Print this many corrupt-frame warnings, then only count them.
MAX_WARNINGS = 5


def open_output_bag(reader: "bagio.BagReader", out_dir: Path) -> "bagio.BagWriter":
    """Open ``out_dir/bag`` in the input's storage with its topics plus the detections topic."""
    out_bag = bagio.BagWriter(out_dir / "bag", storage=reader.storage, store=reader.store)
    out_bag.__enter__()
    for conn in reader.connections:
        out_bag.add_like(conn)
    out_bag.add_topic(bagio.TOPIC_DETECTIONS, bagio.DETECTION2D_ARRAY)
    return out_bag


def pass_through(reader: bagio.BagReader, conn: Any, log_ns: int, data: bytes,
                 out_bag: Optional["bagio.BagWriter"], gt_topic: Optional[str], truths: TruthCache,
                 warn: Optional[Callable[[str], None]] = None) -> bool:
    """Copy a message to the output bag and keep ground truth; return True if it was ground truth."""
    if out_bag is not None:
        out_bag.write_raw(conn.topic, log_ns, data)
    if conn.topic != gt_topic:
        return False
    try:
        msg = reader.decode(conn, data)
        truths.add(bagio.stamp_ns(msg.header.stamp), bagio.msg_to_detections(msg, ids=True))
    except ValueError as exc:
        if warn is not None:
            warn(f"ground truth at {log_ns} skipped: {exc}")
    return True


def image_messages(reader: bagio.BagReader, topic: str, out_bag: Optional["bagio.BagWriter"],
                   gt_topic: Optional[str], truths: TruthCache,
                   warn: Optional[Callable[[str], None]] = None) -> Iterator[Tuple[Any, int, bytes]]:
    """Yield ``(conn, log_ns, data)`` of the image topic in log order.

    Every message is copied to ``out_bag`` on the way, and ground truth goes to ``truths``
    (:func:`pass_through`); the offline, tracking and live replays all read a bag this way.
    """
    for conn, log_ns, data in reader.raw():
        if pass_through(reader, conn, log_ns, data, out_bag, gt_topic, truths, warn):
            continue
        if conn.topic == topic:
            yield conn, log_ns, data


def choose_image_topic(reader: bagio.BagReader, image_topic: Optional[str]) -> Tuple[str, str]:
    """Return (topic, type): the one asked for, or the bag's only image topic."""
    if image_topic:
        return image_topic, reader.require_topic(image_topic, bagio.IMAGE_TYPES)
    images = [t for t, ty in reader.topics.items() if ty in bagio.IMAGE_TYPES]
    if not images:
        raise bagio.BagError(f"bag {reader.path} has no sensor_msgs/Image or CompressedImage topic; "
                             f"its topics are:\n{reader.describe_topics()}")
    if len(images) > 1:
        raise bagio.BagError(f"bag {reader.path} has several image topics ({', '.join(images)}); "
                             "choose one with --image-topic")
    return images[0], reader.topics[images[0]]


def truth_topic(reader: bagio.BagReader) -> Optional[str]:
    """Return the ground-truth topic when the bag has one of the right type, else None."""
    if reader.topics.get(bagio.TOPIC_GROUND_TRUTH) == bagio.DETECTION2D_ARRAY:
        return bagio.TOPIC_GROUND_TRUTH
    return None


def command_from_bag(reader: bagio.BagReader, command: Optional[str]) -> str:
    """Return the command given, else the first std_msgs/String on the bag's /command topic."""
    if command:
        return command
    if reader.topics.get(bagio.TOPIC_COMMAND) == bagio.STRING:
        for conn, _, data in reader.raw([bagio.TOPIC_COMMAND]):
            text = str(reader.decode(conn, data).data).strip()
            if text:
                return text
    raise ValueError(f"no command: pass -c \"pick the red block\" (bag {reader.path} has none on "
                     f"{bagio.TOPIC_COMMAND})")


def check_bag(bag: Path, image_topic: Optional[str] = None, command: Optional[str] = None) -> Tuple[str, str]:
    """Open ``bag`` and return (image topic, command), raising the errors a replay would meet first."""
    with bagio.BagReader(Path(bag)) as reader:
        topic, _ = choose_image_topic(reader, image_topic)
        return topic, command_from_bag(reader, command)


def prepare_out_dir(out_dir: Path) -> Path:
    """Create ``out_dir``; replace a previous run's output bag there, refuse to touch anything else."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    old = out_dir / "bag"
    if old.exists():
        if not (out_dir / "summary.json").exists() and not (out_dir / "frames.csv").exists():
            raise FileExistsError(f"{old} exists and is not from an earlier bench run; choose another --out")
        shutil.rmtree(old)
    return out_dir


def progress_bar(total: Optional[int], desc: str) -> Any:
    """Return a tqdm bar when stdout is a terminal, else None (logs and CI stay clean)."""
    if not sys.stdout.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", dynamic_ncols=True)


def run_offline(bag: Path, out_dir: Path, engine: Engine, *, command: Optional[str] = None,
                image_topic: Optional[str] = None, max_frames: Optional[int] = None,
                score_threshold: Optional[float] = None, max_detections: Optional[int] = None,
                write_bag: bool = True, command_line: str = "",
                on_frame: Optional[Callable[[FrameOutcome], None]] = None) -> Dict[str, Any]:
    """Replay every image of ``bag`` through ``engine`` and write the results into ``out_dir``.

    Returns the summary (also written to ``out_dir/summary.json``).

    Raises:
        BagError: missing topic, unknown type, damaged bag (results so far are kept).
    """
    import psutil

    if max_frames is not None and max_frames < 1:
        raise ValueError(f"--max-frames must be at least 1, got {max_frames}")
    bag = Path(bag)
    proc = psutil.Process()
    with bagio.BagReader(bag) as reader:
        topic, _ = choose_image_topic(reader, image_topic)
        gt_topic = truth_topic(reader)
        command = command_from_bag(reader, command)
        out_dir = prepare_out_dir(out_dir)
        total = reader.count(topic)
        if max_frames:
            total = min(total, max_frames)
        out_bag = open_output_bag(reader, out_dir) if write_bag else None
        sink = ResultSink(out_dir, command, out_bag, bagio.TOPIC_DETECTIONS)
        truths = TruthCache()
        pending: Deque[FrameOutcome] = deque()
        bar = progress_bar(total, "bench bag")
        warned = 0
        index = 0
        status = "complete"
        error: Optional[BaseException] = None

        def settle(now_ns: Optional[int]) -> None:
            # Score frames whose ground truth had its chance to arrive.
            while pending and (now_ns is None or pending[0].log_ns + TRUTH_WINDOW_NS < now_ns):
                o = pending.popleft()
                if gt_topic:
                    o.truth = truths.pop(o.stamp_ns) or []
                sink.add(o)
                if on_frame:
                    on_frame(o)

        cpu0, t0 = cpu_seconds(proc), time.perf_counter()
        try:
            for conn, log_ns, data in image_messages(reader, topic, out_bag, gt_topic, truths, _warn):
                if max_frames is not None and index >= max_frames:
                    status = "max-frames"
                    break
                outcome = _process(reader, conn, log_ns, data, index, engine, command,
                                   score_threshold, max_detections)
                if outcome.status == "corrupt":
                    warned += 1
                    if warned <= MAX_WARNINGS:
                        _warn(f"frame {index}: {outcome.error} (skipped)")
                    elif warned == MAX_WARNINGS + 1:
                        _warn("more corrupt frames; counting them in summary.json only")
                pending.append(outcome)
                index += 1
                settle(log_ns)
                if bar is not None:
                    bar.update(1)
        except KeyboardInterrupt:
            status = "interrupted"
            error = KeyboardInterrupt()
        except bagio.BagError as exc:
            status = "bag-error"
            error = exc
        except Exception as exc:  # an engine failure: keep what was done, then let it surface
            status = "error"
            error = exc
        finally:
            settle(None)
            wall, cpu = time.perf_counter() - t0, cpu_seconds(proc) - cpu0
            if bar is not None:
                bar.close()
            sink.close()
            if out_bag is not None:
                out_bag.__exit__(None, None, None)
        failure = f"{type(error).__name__}: {error}" if error and status != "interrupted" else None
        summary = sink.summary(mode="offline", bag=bag, image_topic=topic, engine=_describe(engine),
                               wall_s=wall, cpu_s=cpu,
                               extra={"status": status, "command_line": command_line,
                                      "storage": reader.storage,
                                      "output_bag_name": "bag/" if write_bag else None,
                                      "error": failure})
    write_json(out_dir / "summary.json", summary)
    write_report(summary, sink, out_dir)
    if error is not None:
        raise error
    return summary


def decode_frame(reader: bagio.BagReader, conn: Any, log_ns: int, data: bytes,
                 index: int) -> Tuple[int, Optional[Any], Optional[FrameOutcome]]:
    """Decode one image message: ``(stamp_ns, rgb, None)``, or ``(stamp_ns, None, corrupt outcome)``.

    The stamp is the header's, or the log time when the message cannot be read; a broken bag
    (:class:`bagio.BagError`) is raised, a broken frame is an outcome.
    """
    stamp = log_ns
    try:
        msg = reader.decode(conn, data)
        stamp = bagio.stamp_ns(msg.header.stamp)
        return stamp, bagio.msg_to_rgb(conn.msgtype, msg), None
    except bagio.BagError:
        raise
    except ValueError as exc:
        return stamp, None, FrameOutcome(index=index, stamp_ns=stamp, log_ns=log_ns, status="corrupt",
                                         error=str(exc))


def _process(reader: bagio.BagReader, conn: Any, log_ns: int, data: bytes, index: int, engine: Engine,
             command: str, score_threshold: Optional[float], max_detections: Optional[int]) -> FrameOutcome:
    t0 = time.perf_counter()
    stamp, rgb, corrupt = decode_frame(reader, conn, log_ns, data, index)
    if corrupt is not None:
        return corrupt
    t1 = time.perf_counter()
    result = engine.detect(rgb, command, score_threshold=score_threshold, max_detections=max_detections)
    t2 = time.perf_counter()
    return FrameOutcome(index=index, stamp_ns=stamp, log_ns=log_ns, status="ok",
                        detections=list(result.detections),
                        latency_s=t2 - t0, decode_s=t1 - t0, detect_s=t2 - t1)


def _describe(engine: Engine) -> Dict[str, str]:
    try:
        info = dict(engine.describe())
    except Exception as exc:  # diagnostics must not end a finished run
        info = {"describe_error": str(exc)}
    info.setdefault("name", str(getattr(engine, "name", type(engine).__name__)))
    return {str(k): str(v) for k, v in info.items()}


def _warn(text: str) -> None:
    print(f"tinyvlm bench bag: {text}", file=sys.stderr, flush=True)
