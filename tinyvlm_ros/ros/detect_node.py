"""detect_node: camera + language command in, ``vision_msgs/Detection2DArray`` out.

A lifecycle node.  ``configure`` builds the engine (loads models or opens the
MCU link) and fails with one clear log line when it cannot; ``activate``
creates the topics and the service and starts the worker.  Run plainly (``ros2
run`` or the launch file) it configures and activates itself (parameter
``autostart``).

Callbacks never wait for inference: frames go to a newest-only slot that a
worker thread drains, so a slow engine drops (and counts) stale frames instead
of building up latency.  All algorithms live in plain modules; this file wires
topics, parameters and the service to them.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleState, Node, TransitionCallbackReturn
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy,
                       qos_profile_sensor_data)
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header, String
from vision_msgs.msg import Detection3D, Detection3DArray, ObjectHypothesisWithPose

from tinyvlm_ros import annotate, backends, depth, params
from tinyvlm_ros.command import ParsedCommand, parse_command
from tinyvlm_ros.latest import LatestSlot
from tinyvlm_ros.msg import DetectorStatus
from tinyvlm_ros.ros import convert
from tinyvlm_ros.srv import Detect
from tinyvlm_ros.stats import Counters, Rate, Window
from tinyvlm_ros.types import DetectionResult, Engine

#: Longer commands are rejected before parsing (a 10 kB string is not a command).
MAX_COMMAND_CHARS = 500


def _descriptor(p: params.Param) -> ParameterDescriptor:
    d = ParameterDescriptor(description=p.description + (" (applied at configure)" if p.reconfigure else ""))
    if p.range is not None and isinstance(p.default, float):
        d.floating_point_range = [FloatingPointRange(from_value=float(p.range[0]),
                                                     to_value=float(p.range[1]))]
    elif p.range is not None and isinstance(p.default, int) and not isinstance(p.default, bool):
        d.integer_range = [IntegerRange(from_value=int(p.range[0]), to_value=int(p.range[1]), step=1)]
    if p.choices:
        d.additional_constraints = "one of: " + ", ".join(p.choices)
    return d


class DetectNode(Node):
    """The detector node; see the module docstring."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("detect_node", **kwargs)
        for p in params.PARAMS:
            self.declare_parameter(p.name, p.default, _descriptor(p))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._counters = Counters()
        self._slot = LatestSlot()
        self._engine: Optional[Engine] = None
        self._engine_lock = threading.Lock()
        self._command: Optional[ParsedCommand] = None
        self._command_lock = threading.Lock()
        self._latest_msg: Optional[Tuple[Any, str]] = None   # (msg, "raw"|"compressed") for the service
        self._depth: Optional[Image] = None
        self._camera_info: Optional[CameraInfo] = None
        self._worker: Optional[threading.Thread] = None
        self._running = threading.Event()
        self._entities: List[Any] = []
        self._stage = {name: Window() for name in ("total", "engine", "overhead", "latency")}
        self._stage_extra: Dict[str, Window] = {}
        self._fps = Rate()
        self._ready = False
        self._last_error = ""
        self._last_frame_time = 0.0
        self._cfg: Dict[str, Any] = {}
        self._pubs: Dict[str, Any] = {}
        self._status_pub = None
        self._diag_timer = None

    # ---------------------------------------------------------------- parameters
    def _on_set_parameters(self, changes) -> SetParametersResult:
        for change in changes:
            reason = params.validate(change.name, change.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    # ----------------------------------------------------------------- lifecycle
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._cfg = {p.name: self._param(p.name) for p in params.PARAMS}
        try:
            # device-camera stamps are translated into this node's ROS clock
            engine = backends.make_engine(self._cfg, host_clock=lambda: self.get_clock().now().nanoseconds)
        except (FileNotFoundError, ValueError, OSError, ConnectionError, ImportError) as exc:
            self._last_error = str(exc)
            self.get_logger().error(f"configure failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        with self._engine_lock:
            self._engine = engine
        names = engine.describe()
        self.get_logger().info(f"configured: backend {self._cfg['backend']}, models {names}")
        self._status_pub = self.create_publisher(
            DetectorStatus, "~/status",
            QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self._last_error = ""
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        cfg = self._cfg
        reliability = (ReliabilityPolicy.RELIABLE if cfg["image_reliability"] == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        image_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability,
                               durability=DurabilityPolicy.VOLATILE)
        # Commands are rare and must not be lost: reliable.  Volatile durability
        # so that any publisher (volatile or transient-local) is compatible.
        command_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                                 reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
        inputs = ReentrantCallbackGroup()
        events = SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos)
        if self._device_camera():
            source = "the MCU's camera"   # frames never cross DDS
        elif cfg["image_transport"] == "compressed":
            sub = self.create_subscription(CompressedImage, "image/compressed", self._on_compressed,
                                           image_qos, callback_group=inputs, event_callbacks=events)
            source = f"'{sub.topic_name}' ({cfg['image_transport']}, {cfg['image_reliability']})"
        else:
            sub = self.create_subscription(Image, "image", self._on_image, image_qos,
                                           callback_group=inputs, event_callbacks=events)
            source = f"'{sub.topic_name}' ({cfg['image_transport']}, {cfg['image_reliability']})"
        if not self._device_camera():
            self._entities.append(sub)
        self._entities.append(self.create_subscription(
            String, "command", self._on_command, command_qos, callback_group=inputs,
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos)))
        if cfg["use_depth"]:
            self._entities.append(self.create_subscription(
                Image, "depth", lambda m: setattr(self, "_depth", m), qos_profile_sensor_data,
                callback_group=inputs))
            self._entities.append(self.create_subscription(
                CameraInfo, "camera_info", lambda m: setattr(self, "_camera_info", m),
                qos_profile_sensor_data, callback_group=inputs))
            self._pubs["detections_3d"] = self.create_publisher(Detection3DArray, "detections_3d", 10)
        self._pubs["detections"] = self.create_publisher(convert.Detection2DArray, "detections", 10)
        self._pubs["masks"] = self.create_publisher(Image, "masks", 10)
        self._pubs["debug_image"] = self.create_publisher(Image, "debug_image", 1)
        self._pubs["diagnostics"] = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._entities.append(self.create_service(Detect, "~/detect", self._on_detect_service,
                                                  callback_group=MutuallyExclusiveCallbackGroup()))
        self._diag_timer = self.create_timer(float(self._param("diagnostics_period_s")),
                                             self._publish_diagnostics,
                                             callback_group=MutuallyExclusiveCallbackGroup())
        self._slot.reopen()
        self._running.set()
        self._worker = threading.Thread(target=self._work, name="tinyvlm-worker", daemon=True)
        self._worker.start()
        self._ready = True
        self._publish_status()
        self.get_logger().info(
            f"active: image from {source}, "
            f"command on '{self.resolve_topic_name('command')}', detections on "
            f"'{self._pubs['detections'].topic_name}'")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        for ent in self._entities:
            self._destroy(ent)
        self._entities.clear()
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        self._pubs.clear()
        if self._diag_timer is not None:
            self.destroy_timer(self._diag_timer)
            self._diag_timer = None
        self._ready = False
        self._publish_status()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release_engine()
        if self._status_pub is not None:
            self.destroy_publisher(self._status_pub)
            self._status_pub = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_worker()
        self._release_engine()
        return TransitionCallbackReturn.SUCCESS

    def _destroy(self, ent: Any) -> None:
        if hasattr(ent, "srv_type"):
            self.destroy_service(ent)
        else:
            self.destroy_subscription(ent)

    def _stop_worker(self) -> None:
        self._running.clear()
        self._slot.close()
        if self._worker is not None:
            self._worker.join(timeout=30.0)
            if self._worker.is_alive():
                self.get_logger().warning("worker did not stop within 30 s (inference still running)")
            self._worker = None

    def _release_engine(self) -> None:
        with self._engine_lock:
            engine, self._engine = self._engine, None
        close = getattr(engine, "close", None)
        if callable(close):
            close()

    # ------------------------------------------------------------------ inputs
    def _on_incompatible_qos(self, event) -> None:
        if self._counters.problem("incompatible_qos"):
            self.get_logger().warning(
                "a publisher's QoS is incompatible with this subscription, so its messages cannot arrive "
                f"(last policy kind {event.last_policy_kind}); set image_reliability to match the camera")

    def _on_image(self, msg: Image) -> None:
        self._accept(msg, "raw")

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._accept(msg, "compressed")

    def _accept(self, msg: Any, kind: str) -> None:
        # Cheap on purpose: keep a reference and hand the newest frame over.
        self._counters.inc("frames_received")
        self._latest_msg = (msg, kind)
        self._last_frame_time = time.monotonic()
        if self._slot.put((msg, kind, time.monotonic())):
            self._counters.inc("frames_dropped")

    def _on_command(self, msg: String) -> None:
        self._counters.inc("commands_received")
        text = msg.data
        if not text.strip():
            with self._command_lock:
                had = self._command is not None
                self._command = None
            if had:
                self.get_logger().info("command cleared")
                self._publish_status()
            return
        try:
            parsed = self._parse(text)
        except ValueError as exc:
            with self._command_lock:
                self._command = None   # never keep acting on an old target after a bad new one
            self._report_problem("command", f"command rejected ({exc}); standing command cleared")
            self._publish_status(rejected=str(exc))
            return
        with self._command_lock:
            changed = self._command is None or self._command.text != parsed.text
            self._command = parsed
        if changed:
            # throttled: a command flood must not become a log flood
            self.get_logger().info(f"command: {text!r} -> targets {parsed.phrases}",
                                   throttle_duration_sec=1.0)
            self._publish_status()

    @staticmethod
    def _parse(text: str) -> ParsedCommand:
        if len(text) > MAX_COMMAND_CHARS:
            raise ValueError(f"command is {len(text)} characters; the limit is {MAX_COMMAND_CHARS}")
        if "\ufffd" in text:
            raise ValueError("command is not valid UTF-8 text")
        return parse_command(text)

    def _report_problem(self, kind: str, message: str) -> None:
        if self._counters.problem(kind, message):
            self.get_logger().warning(f"{message} (further '{kind}' problems are counted, not logged)")

    def _decode(self, msg: Any, kind: str) -> np.ndarray:
        if kind == "compressed":
            return convert.compressed_msg_to_rgb(msg)
        return convert.image_msg_to_rgb(msg)

    # ------------------------------------------------------------------ worker
    def _device_camera(self) -> bool:
        return self._cfg.get("backend") == "mcu" and self._cfg.get("mcu_camera") == "device"

    def _work(self) -> None:
        last_start = 0.0
        while self._running.is_set():
            limit = float(self._param("rate_limit_hz"))
            if limit > 0:
                wait = last_start + 1.0 / limit - time.monotonic()
                if wait > 0:
                    time.sleep(min(wait, 0.5))
                    continue
            if self._device_camera():
                with self._command_lock:
                    command = self._command
                if command is None:
                    time.sleep(0.05)
                    continue
                last_start = time.monotonic()
                try:
                    self._capture(command)
                except Exception as exc:  # keep the node alive; do not spin on a dead device
                    self._report_problem("inference", f"device capture failed: {type(exc).__name__}: {exc}")
                    time.sleep(0.2)
                continue
            item = self._slot.take(timeout=0.2)
            if item is None:
                continue
            with self._command_lock:
                command = self._command
            if command is None:
                continue
            last_start = time.monotonic()
            msg, kind, _ = item
            try:
                self._process(msg, kind, command)
            except Exception as exc:  # keep the node alive whatever one frame does
                self._report_problem("inference", f"frame failed: {type(exc).__name__}: {exc}")

    def _process(self, msg: Any, kind: str, command: ParsedCommand) -> None:
        t0 = time.perf_counter()
        try:
            rgb = self._decode(msg, kind)
        except ValueError as exc:
            self._report_problem(f"image:{_problem_kind(str(exc))}", f"bad image skipped: {exc}")
            return
        t_decoded = time.perf_counter()
        result = self._run_engine(rgb, command.text, self._threshold(), int(self._param("max_detections")),
                                  timeout=None)
        if result is None:
            return
        t_engine = time.perf_counter()
        self._publish_result(msg.header, rgb, result)
        self._frame_done(command, msg.header, result, t0, t_decoded, t_engine)

    def _capture(self, command: ParsedCommand) -> None:
        """Device-camera mode: the MCU captures and detects; stamp with its capture time in ROS time."""
        t0 = time.perf_counter()
        with self._engine_lock:
            if self._engine is None:
                return
            result, cap = self._engine.capture(command.text, score_threshold=self._threshold(),
                                               max_detections=int(self._param("max_detections")))
        t_engine = time.perf_counter()
        self._counters.inc("frames_received")
        self._last_frame_time = time.monotonic()
        header = Header(frame_id=str(self._param("mcu_camera_frame_id")))
        header.stamp = Time(nanoseconds=cap.stamp_ns).to_msg()
        if "detections" in self._pubs:
            self._pubs["detections"].publish(convert.detections_to_msg(result.detections, header))
            if self._param("publish_masks"):
                self._pubs["masks"].publish(
                    convert.mono8_msg(convert.label_image(result.detections, cap.height, cap.width), header))
        self._stage_extra.setdefault("capture_stamp_error", Window()).add(cap.error_ns * 1e-9)
        self._frame_done(command, header, result, t0, t0, t_engine)

    def _frame_done(self, command: ParsedCommand, header: Header, result: DetectionResult, t0: float,
                    t_decoded: float, t_engine: float) -> None:
        t1 = time.perf_counter()
        # Node overhead: everything but the engine call (decode, messages, publish).
        self._stage["engine"].add(t_engine - t_decoded)
        self._stage["overhead"].add((t_decoded - t0) + (t1 - t_engine))
        self._stage["total"].add(t1 - t0)
        for name, secs in result.timings.items():
            self._stage_extra.setdefault(name, Window()).add(secs)
        stamp = Time.from_msg(header.stamp)
        if stamp.nanoseconds > 0:
            self._stage["latency"].add((self.get_clock().now() - stamp).nanoseconds * 1e-9)
        self._fps.tick()
        self._counters.inc("frames_processed")
        if self._param("one_shot"):
            with self._command_lock:
                if self._command is command:
                    self._command = None
            self._publish_status()

    def _threshold(self) -> Optional[float]:
        """Return the score threshold in the active engine's units (None: the engine's own)."""
        if self._cfg.get("backend") == "mcu":
            return float(self._param("mcu_score_threshold")) or None   # cosine of region scores
        return float(self._param("score_threshold"))                    # calibrated probability

    def _run_engine(self, rgb: np.ndarray, command: str, threshold: Optional[float], max_det: int,
                    timeout: Optional[float]) -> Optional[DetectionResult]:
        if not self._engine_lock.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError(f"the engine stayed busy for {timeout:g} s")
        try:
            if self._engine is None:
                return None
            if hasattr(self._engine, "mode"):
                self._engine.mode = self._param("mode")
            return self._engine.detect(rgb, command, score_threshold=threshold, max_detections=max_det)
        finally:
            self._engine_lock.release()

    def _publish_result(self, header: Header, rgb: np.ndarray, result: DetectionResult) -> None:
        dets = result.detections
        pubs = self._pubs
        if "detections" not in pubs:
            return
        pubs["detections"].publish(convert.detections_to_msg(dets, header))
        if self._param("publish_masks"):
            pubs["masks"].publish(convert.mono8_msg(convert.label_image(dets, *rgb.shape[:2]), header))
        if pubs["debug_image"].get_subscription_count() > 0:
            pubs["debug_image"].publish(convert.rgb_to_image_msg(annotate.draw(rgb, dets), header))
        if "detections_3d" in pubs:
            self._publish_3d(header, rgb, result)

    def _publish_3d(self, header: Header, rgb: np.ndarray, result: DetectionResult) -> None:
        dmsg, info = self._depth, self._camera_info
        out = Detection3DArray(header=header)
        if dmsg is not None and info is not None:
            try:
                d = depth.depth_to_metres(dmsg.height, dmsg.width, dmsg.encoding, dmsg.is_bigendian,
                                          dmsg.step, bytes(dmsg.data), float(self._param("depth_scale")))
            except ValueError as exc:
                self._report_problem("depth", f"bad depth image: {exc}")
                d = None
            if d is not None:
                out.header.frame_id = dmsg.header.frame_id or header.frame_id
                for i, det in enumerate(result.detections):
                    mask = det.mask if det.mask is not None else _box_mask(det.box_xyxy, rgb.shape[:2])
                    box = depth.box_from_points(depth.mask_points(d, mask, info.k))
                    if box is None:
                        continue
                    (cx, cy, cz), (sx, sy, sz) = box
                    d3 = Detection3D(header=out.header, id=str(i))
                    hyp = ObjectHypothesisWithPose()
                    hyp.hypothesis.class_id, hyp.hypothesis.score = det.label, float(det.score)
                    hyp.pose.pose.position.x, hyp.pose.pose.position.y = float(cx), float(cy)
                    hyp.pose.pose.position.z = float(cz)
                    d3.results.append(hyp)
                    d3.bbox.center.position.x, d3.bbox.center.position.y = float(cx), float(cy)
                    d3.bbox.center.position.z = float(cz)
                    d3.bbox.center.orientation.w = 1.0
                    d3.bbox.size.x, d3.bbox.size.y, d3.bbox.size.z = float(sx), float(sy), float(sz)
                    out.detections.append(d3)
        self._pubs["detections_3d"].publish(out)

    # ------------------------------------------------------------------ service
    def _on_detect_service(self, request: Detect.Request, response: Detect.Response) -> Detect.Response:
        self._counters.inc("service_calls")
        try:
            parsed = self._parse(request.command)
        except ValueError as exc:
            response.success, response.message = False, f"bad command: {exc}"
            return response
        response.targets = parsed.phrases
        if request.image.width > 0 and request.image.height > 0:
            msg, kind = request.image, "raw"
        elif self._latest_msg is not None:
            msg, kind = self._latest_msg
        else:
            topic = "image/compressed" if self._cfg.get("image_transport") == "compressed" else "image"
            response.success = False
            response.message = f"no image in the request and no frame received yet on '{topic}'"
            return response
        try:
            rgb = self._decode(msg, kind)
        except ValueError as exc:
            response.success, response.message = False, f"bad image: {exc}"
            return response
        threshold = request.min_score if request.min_score > 0 else self._threshold()
        max_det = request.max_results if request.max_results > 0 else int(self._param("max_detections"))
        try:
            result = self._run_engine(rgb, parsed.text, threshold, max_det,
                                      timeout=float(self._param("service_timeout_s")))
        except TimeoutError as exc:
            response.success, response.message = False, str(exc)
            return response
        except Exception as exc:
            response.success, response.message = False, f"detection failed: {type(exc).__name__}: {exc}"
            return response
        if result is None:
            response.success, response.message = False, "the engine is not configured"
            return response
        response.detections = convert.detections_to_msg(result.detections, msg.header)
        response.success = True
        response.message = f"{len(result.detections)} detection(s) for {', '.join(parsed.phrases)}"
        return response

    # ------------------------------------------------------------- diagnostics
    def _publish_status(self, rejected: str = "") -> None:
        if self._status_pub is None:
            return
        with self._command_lock:
            cmd = self._command
        c = self._counters
        msg = DetectorStatus(
            backend=str(self._cfg.get("backend", "")),
            models=[KeyValue(key=k, value=v) for k, v in self._describe().items()],
            command=cmd.text if cmd else "", targets=cmd.phrases if cmd else [], ready=self._ready,
            frames_received=c.get("frames_received"), frames_processed=c.get("frames_processed"),
            frames_dropped=c.get("frames_dropped"), bad_inputs=c.get("bad_inputs"),
            last_latency_s=float(np.nan_to_num(self._stage["latency"].last)))
        msg.header.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(msg)

    def _describe(self) -> Dict[str, str]:
        engine = self._engine
        return {str(k): str(v) for k, v in engine.describe().items()} if engine is not None else {}

    def _publish_diagnostics(self) -> None:
        pub = self._pubs.get("diagnostics")
        if pub is None:
            return
        c = self._counters.snapshot()
        st = DiagnosticStatus(name=f"{self.get_name()}: detector", hardware_id=str(self._cfg.get("backend")))
        with self._command_lock:
            cmd = self._command
        since = time.monotonic() - self._last_frame_time if self._last_frame_time else float("inf")
        if not self._ready:
            st.level, st.message = DiagnosticStatus.ERROR, self._last_error or "not active"
        elif cmd is not None and since > 5.0:
            st.level, st.message = DiagnosticStatus.WARN, "command set but no image for 5 s"
        elif c.get("bad_inputs", 0):
            st.level, st.message = DiagnosticStatus.OK, f"running; {c['bad_inputs']} bad inputs skipped"
        else:
            st.level, st.message = DiagnosticStatus.OK, "running"
        if getattr(self._engine, "degraded", False):
            # e.g. the MCU stopped answering: frames fail (or use the fallback) until it is back
            st.level = DiagnosticStatus.WARN
            st.message = f"degraded: {getattr(self._engine, 'last_error', '') or 'backend unreachable'}"
        values = {"backend": str(self._cfg.get("backend")), "command": cmd.text if cmd else "",
                  "fps": f"{self._fps.hz():.2f}"}
        values.update({f"model.{k}": v for k, v in self._describe().items()})
        for name in ("frames_received", "frames_processed", "frames_dropped", "bad_inputs",
                     "commands_received", "service_calls"):
            values[name] = str(c.get(name, 0))
        values.update({k: str(v) for k, v in c.items() if k.startswith("bad_input.")})
        windows = list(self._stage.items()) + [(f"stage.{k}", w) for k, w in self._stage_extra.items()]
        for name, win in windows:
            if len(win):
                values[f"{name}_p50_ms"] = f"{win.percentile(50) * 1e3:.1f}"
                values[f"{name}_p95_ms"] = f"{win.percentile(95) * 1e3:.1f}"
        st.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        arr = DiagnosticArray(status=[st])
        arr.header.stamp = self.get_clock().now().to_msg()
        pub.publish(arr)
        self._publish_status()


def _problem_kind(message: str) -> str:
    """Group bad-image messages into kinds for log-once (e.g. 'unsupported encoding')."""
    for key in ("unsupported encoding", "step", "empty", "data has", "larger than", "decode", "even width",
                "no data"):
        if key in message:
            return key.replace(" ", "_")
    return "other"


def _box_mask(box, shape) -> np.ndarray:
    m = np.zeros(shape, bool)
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    m[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = True
    return m


def main(args: Optional[List[str]] = None) -> int:
    rclpy.init(args=args)
    node = None
    executor = MultiThreadedExecutor(num_threads=4)
    try:
        node = DetectNode()
        executor.add_node(node)
        if node.get_parameter("autostart").value:
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
            else:
                node.get_logger().error(
                    "staying unconfigured; fix the problem above and configure again "
                    "(lifecycle transition 'configure')")
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node._stop_worker()
            node._release_engine()
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown(timeout_sec=5)
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
