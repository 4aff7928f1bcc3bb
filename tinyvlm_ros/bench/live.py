"""Play a bag into a running ``detect_node`` over real DDS and record what it answers.

One thread does everything, so nothing here needs a lock: it reads the bag,
spins the rclpy executor until the next frame is due, re-stamps the frame
with the current time (latency = receive time - image stamp), publishes it
with sensor-data QoS, and handles the node's ``Detection2DArray`` answers as
they arrive, matching them to frames by header stamp.  A frame the node never
answers (it keeps only the newest frame when busy) is counted as dropped once
a later frame has been answered or after ``answer_timeout_s``.

rclpy is imported inside the functions only, so the rest of the bench (and
this module's import) works without ROS.

Interface expected from detect_node (its topics relative to its namespace):
    image (sensor_msgs/Image) or image/compressed (sensor_msgs/CompressedImage,
    parameter ``image_transport:=compressed``), command (std_msgs/String,
    reliable), detections (vision_msgs/Detection2DArray, one per processed
    frame, empty when nothing was found, header copied from the image).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from tinyvlm_ros.bench import bagio
from tinyvlm_ros.bench.bag import (choose_image_topic, command_from_bag, image_messages, open_output_bag,
                                   prepare_out_dir, progress_bar, truth_topic)
from tinyvlm_ros.bench.bag_report import write_report
from tinyvlm_ros.bench.bag_results import (FrameOutcome, ResultSink, TruthCache, cpu_seconds, rss_mb,
                                           write_json)

DEFAULT_COMMAND_TOPIC = "/command"
DEFAULT_DETECTIONS_TOPIC = "/detections"


def detect_node_args(image_topic: str, model_dir: Optional[Path] = None, *, compressed: bool = False,
                     command_topic: str = DEFAULT_COMMAND_TOPIC,
                     params: Optional[Dict[str, Any]] = None) -> List[str]:
    """Return the ``--ros-args`` that point a detect_node at a replayed bag's topics."""
    args = ["-r", f"{'image/compressed' if compressed else 'image'}:={image_topic}",
            "-r", f"command:={command_topic}"]
    all_params: Dict[str, Any] = {"image_transport": "compressed" if compressed else "raw"}
    if model_dir is not None:
        all_params["model_dir"] = str(model_dir)
    all_params.update(params or {})
    for k, v in all_params.items():
        args += ["-p", f"{k}:={str(v).lower() if isinstance(v, bool) else v}"]
    return args


@dataclass
class _Sent:
    index: int
    stamp_ns: int      # the frame's stamp in the bag
    log_ns: int
    sent_ns: int       # the stamp it was published with (wall clock)


def run_live(bag: Path, out_dir: Path, *, command: Optional[str] = None, image_topic: Optional[str] = None,
             publish_topic: Optional[str] = None, command_topic: str = DEFAULT_COMMAND_TOPIC,
             detections_topic: str = DEFAULT_DETECTIONS_TOPIC, rate: Optional[float] = None,
             max_frames: Optional[int] = None, node_pid: Optional[int] = None, wait_node_s: float = 20.0,
             answer_timeout_s: float = 10.0, warmup_s: float = 0.5, write_bag: bool = True,
             command_line: str = "", on_detections: Optional[Callable[[FrameOutcome], None]] = None,
             node_alive: Optional[Callable[[], bool]] = None,
             model_set: Optional[Dict[str, str]] = None, tracking: bool = False,
             target_identity: Optional[int] = None) -> Dict[str, Any]:
    """Replay ``bag`` into a running detect_node and write the same outputs as an offline run.

    Args:
        publish_topic: where images go (default: the bag's own image topic name).
        rate: frames per second (default: the bag's recorded timing).
        node_pid: the node's process, to report its CPU % and peak RSS.
        wait_node_s: how long to wait for the node's subscriptions and publisher.
        answer_timeout_s: a frame without an answer after this long is dropped.
        on_detections: called with each answered frame (the demo prints them).
        node_alive: polled while waiting; False ends the run with an error.
        model_set: ``models`` (name) and ``kind`` of the set the node runs, for what its ``~/status``
            does not say (an MCU backend names no host model set).
        tracking: the node tracks (``tracking:=true``, checked): add the tracking report
            (:mod:`tinyvlm_ros.bench.live_tracking`) under ``tracking`` in the summary.
        target_identity: ground-truth identity of the target (default: where detection 0 first lands).

    Raises:
        BagError: bag problems; TimeoutError: no node showed up or it stopped answering.
    """
    import psutil

    ros, node, executor = _ros_up()
    if rate is not None and not rate > 0:
        raise ValueError(f"--rate must be positive, got {rate}")
    bag = Path(bag)
    proc = psutil.Process()
    node_proc = psutil.Process(node_pid) if node_pid else None
    try:
        with bagio.BagReader(bag) as reader:
            topic, msgtype = choose_image_topic(reader, image_topic)
            compressed = msgtype == bagio.COMPRESSED_IMAGE
            gt_topic = truth_topic(reader)
            command = command_from_bag(reader, command)
            out_dir = prepare_out_dir(out_dir)
            pub_topic = publish_topic or topic
            total = reader.count(topic) if not max_frames else min(max_frames, reader.count(topic))

            from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                                   qos_profile_sensor_data)
            from rclpy.executors import ExternalShutdownException
            from rclpy.serialization import deserialize_message
            from sensor_msgs.msg import CompressedImage, Image
            from std_msgs.msg import String
            from vision_msgs.msg import Detection2DArray

            ros_type = CompressedImage if compressed else Image
            command_pub = node.create_publisher(String, command_topic, QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL))
            det_reliability = _wait_for_node(node, executor, command_pub, detections_topic,
                                             pub_topic, wait_node_s, node_alive)
            statuses = _listen_to_status(node, executor, detections_topic)
            recorder, tracking_params = None, None
            if tracking:
                from tinyvlm_ros.bench.live_tracking import (LiveTrackingRecorder, info_topic_for,
                                                             node_tracking_parameters)

                node_fqn, tracking_params = node_tracking_parameters(node, executor, detections_topic,
                                                                     min(wait_node_s, 10.0))
                tracking_params = {"node": node_fqn, **tracking_params}
                recorder = LiveTrackingRecorder(command, target_identity)
                recorder.subscribe(node, info_topic_for(detections_topic))
            if _subscriber_wants_reliable(node, pub_topic):
                # A reliable subscription never matches a best-effort publisher: follow the node.
                image_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                                       reliability=ReliabilityPolicy.RELIABLE)
            else:
                image_qos = qos_profile_sensor_data
                if (not compressed and _largest_image_bytes(reader, topic) > 512 * 1024
                        and not os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE")):
                    _say(f"warning: {pub_topic} frames are large and the node subscribes best-effort; "
                         "Fast DDS loses most best-effort frames beyond its 512 kB shared-memory segment. "
                         "Give both processes FASTRTPS_DEFAULT_PROFILES_FILE=<tinyvlm_ros share>/config/"
                         "fastdds_large_frames.xml, or run the node with -p image_reliability:=reliable, "
                         "or replay a compressed bag")
            image_pub = node.create_publisher(ros_type, pub_topic, image_qos)
            if not _spin_until(executor, lambda: image_pub.get_subscription_count() > 0, wait_node_s):
                raise TimeoutError(f"the node's subscription on {pub_topic} did not match the player's "
                                   "publisher (incompatible QoS?)")

            out_bag = open_output_bag(reader, out_dir) if write_bag else None
            sink = ResultSink(out_dir, command, out_bag, bagio.TOPIC_DETECTIONS)
            truths = TruthCache()
            pending: "OrderedDict[int, _Sent]" = OrderedDict()   # sent stamp -> frame, oldest first
            stats = {"unmatched": 0, "answered_at": time.monotonic()}
            bar = progress_bar(total, "bench bag --live")

            def finish(sent: _Sent, status: str, dets: List[Any], latency_s: Optional[float]) -> None:
                o = FrameOutcome(index=sent.index, stamp_ns=sent.stamp_ns, log_ns=sent.log_ns, status=status,
                                 detections=dets, latency_s=latency_s)
                if gt_topic:
                    o.truth = truths.pop(sent.stamp_ns) or []
                sink.add(o)
                if recorder is not None:
                    if status == "ok":
                        recorder.answered(sent.index, sent.sent_ns, o.truth, dets, latency_s)
                    else:
                        recorder.dropped(sent.index, o.truth)
                if bar is not None:
                    bar.update(1)
                if on_detections and status == "ok":
                    on_detections(o)

            def on_answer(msg: Any) -> None:
                recv_ns = time.time_ns()
                stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                sent = pending.pop(stamp, None)
                if sent is None:
                    stats["unmatched"] += 1  # an answer to a frame of another run or already given up on
                    return
                stats["answered_at"] = time.monotonic()
                # Frames sent before this one were skipped by the node (it keeps the newest only).
                while pending and next(iter(pending)) < stamp:
                    _, older = pending.popitem(last=False)
                    finish(older, "dropped", [], None)
                finish(sent, "ok", bagio.msg_to_detections(msg, ids=tracking), (recv_ns - stamp) * 1e-9)

            def expire() -> None:
                limit = time.time_ns() - int(answer_timeout_s * 1e9)
                while pending and next(iter(pending)) < limit:
                    _, old = pending.popitem(last=False)
                    finish(old, "dropped", [], None)

            det_sub = node.create_subscription(Detection2DArray, detections_topic, on_answer, QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=100, reliability=det_reliability))
            # Matched, not just discovered: answers to the first frames must not be lost.
            _spin_until(executor, lambda: det_sub.get_publisher_count() > 0, wait_node_s)
            command_pub.publish(String(data=command))
            _spin_until(executor, lambda: False, warmup_s)  # let the node take the command first

            status, error = "complete", None
            cpu0, t0 = cpu_seconds(proc), time.perf_counter()
            node_cpu0 = cpu_seconds(node_proc) if node_proc else 0.0
            node_peak_rss = 0.0
            start_wall, first_log, index = time.monotonic(), None, 0
            try:
                for conn, log_ns, data in image_messages(reader, topic, out_bag, gt_topic, truths):
                    if max_frames is not None and index >= max_frames:
                        status = "max-frames"
                        break
                    first_log = log_ns if first_log is None else first_log
                    due = start_wall + (index / rate if rate else (log_ns - first_log) * 1e-9)
                    while True:
                        left = due - time.monotonic()
                        if left <= 0:
                            break
                        executor.spin_once(timeout_sec=min(left, 0.05))
                    if node_alive is not None and not node_alive():
                        raise TimeoutError("detect_node exited during the replay")
                    try:
                        msg = deserialize_message(bytes(data), ros_type)
                        stamp_in_bag = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                    except Exception as exc:  # undecodable CDR: a corrupt frame, as offline
                        sink.add(FrameOutcome(index=index, stamp_ns=log_ns, log_ns=log_ns, status="corrupt",
                                              error=str(exc)))
                        index += 1
                        continue
                    problem = _undecodable(msg) if compressed else ""
                    sent_ns = time.time_ns()
                    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(sent_ns, 1_000_000_000)
                    if problem:
                        # Sent all the same (the node must shrug it off) but no answer is expected.
                        sink.add(FrameOutcome(index=index, stamp_ns=stamp_in_bag, log_ns=log_ns,
                                              status="corrupt", error=problem))
                        _say(f"frame {index}: {problem} (sent anyway, counted as corrupt)")
                    else:
                        pending[sent_ns] = _Sent(index, stamp_in_bag, log_ns, sent_ns)
                    image_pub.publish(msg)
                    index += 1
                    expire()
                    if node_proc is not None and index % 10 == 0:
                        node_peak_rss = max(node_peak_rss, rss_mb(node_proc))
                # Give the node time to answer the last frames.
                deadline = time.monotonic() + answer_timeout_s
                while pending and time.monotonic() < deadline:
                    executor.spin_once(timeout_sec=0.05)
                    if time.monotonic() - stats["answered_at"] > answer_timeout_s:
                        break
                if recorder is not None:  # the last answers' DetectionInfo may still be on its way
                    _spin_until(executor, lambda: False, 0.3)
            except (KeyboardInterrupt, ExternalShutdownException):
                # Ctrl-C: rclpy's own handler may shut the context down before Python raises.
                status, error = "interrupted", KeyboardInterrupt()
            except Exception as exc:  # bag damage, a vanished node, anything: keep what was done
                status, error = "error", exc
            finally:
                for sent in list(pending.values()):
                    finish(sent, "dropped", [], None)
                pending.clear()
                wall, cpu = time.perf_counter() - t0, cpu_seconds(proc) - cpu0
                if bar is not None:
                    bar.close()
                sink.close()
                if out_bag is not None:
                    out_bag.__exit__(None, None, None)
            extra: Dict[str, Any] = {
                "status": status, "command_line": command_line, "storage": reader.storage,
                "output_bag_name": "bag/" if write_bag else None, "published_on": pub_topic,
                "detections_topic": detections_topic, "rate_hz": rate,
                "unmatched_answers": stats["unmatched"],
                "error": f"{type(error).__name__}: {error}" if error and status == "error" else None,
                "note": "latency = detections receive time - image stamp (set at publish); "
                        "cpu_percent and peak_rss_mb are this player's; node_* are detect_node's",
            }
            if node_proc is not None:
                try:
                    extra["node_cpu_percent"] = round(100.0 * (cpu_seconds(node_proc) - node_cpu0) / wall, 1)
                    extra["node_peak_rss_mb"] = round(max(node_peak_rss, rss_mb(node_proc)), 1)
                except psutil.Error:
                    pass
            if recorder is not None:
                extra["tracking"] = {**recorder.summary(gt_topic is not None),
                                     "node_parameters": tracking_params}
            engine_info = {**(model_set or {}), **_node_engine(executor, statuses),
                           "node": "detect_node", "detections_topic": detections_topic}
            summary = sink.summary(mode="live", bag=bag, image_topic=topic, engine=engine_info,
                                   wall_s=wall, cpu_s=cpu, extra=extra)
        write_json(out_dir / "summary.json", summary)
        write_report(summary, sink, out_dir)
        if error is not None:
            raise error
        return summary
    finally:
        ros.close()


def _ros_up() -> Any:
    try:
        from tinyvlm_ros.ros import client
    except ImportError as exc:
        raise ValueError(f"--live needs ROS 2 (rclpy, vision_msgs): source tools/ros_env/env.sh or your "
                         f"ROS setup ({exc})") from None
    stack = contextlib.ExitStack()
    node, executor = stack.enter_context(client.client_node("tinyvlm_bag_player"))
    return stack, node, executor


def _spin_until(executor: Any, predicate: Callable[[], bool], timeout_s: float) -> bool:
    from tinyvlm_ros.ros.client import spin_until

    return spin_until(executor, predicate, timeout_s)


def _wait_for_node(node: Any, executor: Any, command_pub: Any, detections_topic: str,
                   image_topic: str, timeout_s: float, node_alive: Optional[Callable[[], bool]]) -> Any:
    """Wait for a node on the image, command and detections topics; return its detections reliability."""
    from tinyvlm_ros.ros.client import publishers_reliability

    def ready() -> bool:
        if node_alive is not None and not node_alive():
            raise TimeoutError("detect_node exited before it was ready")
        return (node.count_subscribers(image_topic) > 0 and command_pub.get_subscription_count() > 0
                and node.count_publishers(detections_topic) > 0)

    if not _spin_until(executor, ready, timeout_s):
        have = sorted(f"{n} [{', '.join(t)}]" for n, t in node.get_topic_names_and_types())
        raise TimeoutError(
            f"no detect_node within {timeout_s:g} s: need a subscriber on {image_topic} "
            f"({node.count_subscribers(image_topic)}) and {command_pub.topic_name} "
            f"({command_pub.get_subscription_count()}) and a publisher on {detections_topic} "
            f"({node.count_publishers(detections_topic)}). Start it with e.g.\n  detect_node --ros-args "
            f"{' '.join(detect_node_args(image_topic))} -p model_dir:=DIR\n"
            f"Topics seen: {', '.join(have) or 'none'}")
    # Match the node's detections QoS: a reliable subscription would never hear a best-effort publisher.
    return publishers_reliability(node, detections_topic)


def _listen_to_status(node: Any, executor: Any, detections_topic: str) -> Optional[List[Any]]:
    """Subscribe to the latched ``~/status`` of the nodes publishing ``detections_topic``.

    Returns the list the statuses arrive in, or None when there is nothing to listen to (the
    interfaces are not built).  Subscribing at the start leaves discovery the whole replay to
    deliver the status.
    """
    from tinyvlm_ros.ros.client import STATUS_QOS, named_endpoints, status_topic

    try:
        from tinyvlm_ros.msg import DetectorStatus
    except ImportError:
        return None
    got: List[Any] = []
    infos = named_endpoints(executor, lambda: node.get_publishers_info_by_topic(detections_topic))
    for i in infos:
        node.create_subscription(DetectorStatus, status_topic(i), got.append, STATUS_QOS)
    return got if infos else None


def _node_engine(executor: Any, statuses: Optional[List[Any]], timeout_s: float = 5.0) -> Dict[str, str]:
    """Return what the node says it runs: its last status's ``models`` key-values ({} when none came)."""
    if statuses is None:
        return {}
    try:
        _spin_until(executor, lambda: bool(statuses and statuses[-1].models), timeout_s)
    except Exception:  # the context went down with Ctrl-C: report without it
        pass
    return {str(kv.key): str(kv.value) for kv in statuses[-1].models} if statuses else {}


def _undecodable(msg: Any) -> str:
    """Return why a CompressedImage does not decode, or "" when it does (same check as offline)."""
    try:
        bagio.compressed_to_rgb(msg)
    except ValueError as exc:
        return str(exc)
    return ""


def _largest_image_bytes(reader: bagio.BagReader, topic: str) -> int:
    """Size of the first image message: enough to tell VGA raw frames from thumbnails."""
    for _, _, data in reader.raw([topic]):
        return len(data)
    return 0


def _say(text: str) -> None:
    print(f"tinyvlm bench bag: {text}", file=sys.stderr, flush=True)


def _subscriber_wants_reliable(node: Any, topic: str) -> bool:
    from rclpy.qos import ReliabilityPolicy

    return any(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE
               for i in node.get_subscriptions_info_by_topic(topic))
