"""detect_node: camera + language command in, ``vision_msgs/Detection2DArray`` out.

A lifecycle node.  From construction it publishes ``~/status`` (latched) and
``/diagnostics`` and serves ``~/detect``, so an unconfigured or inactive node is
visible with its state and the reason.  ``configure`` builds the engine (loads
models or opens the MCU link) and the output publishers, and fails with one
clear log line when it cannot; ``activate`` enables the outputs, subscribes to
the inputs and starts the worker.  Run plainly (``ros2 run`` or the launch
file) it configures and activates itself (parameter ``autostart``).

Callbacks never wait for inference: frames go to a newest-only slot that a
worker thread drains, so a slow engine drops (and counts) stale frames instead
of building up latency.  With ``tracking`` on, the worker tracks every frame
(cheap) and publishes detections for each, while the engine runs keyframes and
re-verifications on a thread of its own (:mod:`tinyvlm_ros.tracking.runner`).
With ``backend: mcu`` and ``mcu_camera: device`` there is no image
subscription: the worker asks the MCU to capture and detect, and the
detections are stamped with the device's capture time in ROS time.

This file wires parameters, topics and the lifecycle; the service, the outputs
and the diagnostics have their own modules, and the algorithms live in plain
modules.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import rclpy
from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleState, Node, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header, String

from tinyvlm_ros import backends, health, params
from tinyvlm_ros.command_state import Command, CommandState
from tinyvlm_ros.grounding import parse_threshold_table
from tinyvlm_ros.latest import LatestSlot
from tinyvlm_ros.ros import convert
from tinyvlm_ros.ros.diagnostics import Reporter
from tinyvlm_ros.ros.outputs import Outputs
from tinyvlm_ros.ros.service import DetectService
from tinyvlm_ros.stats import Counters, Rate, Windows
from tinyvlm_ros.sync import StampPairer
from tinyvlm_ros.tracking import Frame, TrackingConfig
from tinyvlm_ros.tracking.loop import KEYFRAME
from tinyvlm_ros.tracking.runner import JobSettings, TrackingRunner
from tinyvlm_ros.types import Detection, DetectionResult
from tinyvlm_ros.workers import FrameWorker, SharedEngine

#: Seconds the worker gets to finish its frame when the node deactivates or shuts down.
WORKER_STOP_S = 5.0


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
        self.counters = Counters()
        self.commands = CommandState()
        self.engine = SharedEngine()
        self._slot = LatestSlot()
        self._stages = Windows()
        self._fps = Rate()
        self._latest: Optional[Tuple[Any, str]] = None   # (msg, "raw"|"compressed") for the service
        self._last_frame_time = 0.0
        self._state = "unconfigured"
        self._last_error = ""
        self._cfg: Dict[str, Any] = {}                    # parameter values of the last configure
        self._pairer: Optional[StampPairer] = None
        self._subs: List[Any] = []
        self._worker: Optional[FrameWorker] = None
        self._tracking: Optional[TrackingRunner] = None   # with the tracking parameter, from configure
        self._outputs = Outputs(self)
        self._reporter = Reporter(self, self.report, float(self.param("diagnostics_period_s")))
        self._service = DetectService(self)
        self._reporter.publish_status()

    # ---------------------------------------------------------------- parameters
    def _on_set_parameters(self, changes) -> SetParametersResult:
        for change in changes:
            reason = params.validate(change.name, change.value)
            if reason:
                return SetParametersResult(successful=False, reason=reason)
        for change in changes:
            if change.name == "diagnostics_period_s":
                self._reporter.set_period(float(change.value))
            elif change.name == "target_thresholds":
                self.commands.set_thresholds(parse_threshold_table(change.value))
        return SetParametersResult(successful=True)

    def param(self, name: str) -> Any:
        """Return a parameter's current value."""
        return self.get_parameter(name).value

    def threshold(self) -> Optional[float]:
        """Return the score threshold in the active engine's units (None: the engine's own)."""
        if self._cfg.get("backend") == "mcu":
            return float(self.param("mcu_score_threshold")) or None   # cosine of region scores
        return float(self.param("score_threshold"))                    # calibrated probability

    # ----------------------------------------------------------------- lifecycle
    def autostart(self) -> None:
        """Configure and activate when the ``autostart`` parameter says so."""
        if not self.param("autostart"):
            return
        if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            self.trigger_activate()
        else:
            self.get_logger().error("staying unconfigured; fix the problem above and configure again "
                                    "(lifecycle transition 'configure')")

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._cfg = {p.name: self.param(p.name) for p in params.PARAMS}
        try:
            problem = params.validate("target_thresholds", self._cfg["target_thresholds"])
            if problem:
                raise ValueError(problem)
            self.commands.set_thresholds(parse_threshold_table(self._cfg["target_thresholds"]))
            tracking = self._make_tracking(self._cfg)
            # device-camera stamps are translated into this node's ROS clock
            engine = backends.make_engine(self._cfg, host_clock=lambda: self.get_clock().now().nanoseconds)
        except Exception as exc:
            # the expected kinds explain themselves; others (e.g. ONNX Runtime refusing a corrupt
            # model) keep their type name so the reason is never empty
            expected = isinstance(exc, (FileNotFoundError, ValueError, OSError, ConnectionError, ImportError))
            self._last_error = str(exc) if expected and str(exc) else f"{type(exc).__name__}: {exc}"
            self.get_logger().error(f"configure failed: {self._last_error}")
            self._set_state("unconfigured")
            return TransitionCallbackReturn.FAILURE
        self._last_error = ""
        self.engine.set(engine)
        self._tracking = tracking
        self._outputs.configure(bool(self._cfg["use_depth"]))
        if self._cfg["use_depth"]:
            self._pairer = StampPairer(("depth", "camera_info"), float(self._cfg["depth_tolerance_s"]))
        self.get_logger().info(f"configured: backend {self._cfg['backend']}, models {self.engine.describe()}"
                               + (f", tracking with {self._cfg['tracking_tracker']}" if tracking else ""))
        self._set_state("inactive")
        return TransitionCallbackReturn.SUCCESS

    @staticmethod
    def _tracking_config(cfg: Dict[str, Any]) -> Optional[TrackingConfig]:
        """Return the tracking parameters of ``cfg``, or None with tracking off (ValueError: unusable)."""
        if not cfg["tracking"]:
            return None
        if cfg["backend"] == "mcu" and cfg["mcu_camera"] == "device":
            raise ValueError("tracking needs the camera frames on this computer; with mcu_camera device "
                             "they never leave the MCU: use mcu_camera host or tracking false")
        return TrackingConfig(keyframe_period_s=float(cfg["tracking_keyframe_period_s"]),
                              max_track_age_s=float(cfg["tracking_max_track_age_s"]),
                              reverify_period_s=float(cfg["tracking_reverify_period_s"]),
                              tracker=str(cfg["tracking_tracker"]))

    def _make_tracking(self, cfg: Dict[str, Any]) -> Optional[TrackingRunner]:
        config = self._tracking_config(cfg)
        if config is None:
            return None
        # builds the tracker now: an OpenCV tracker this build lacks is a configure error, not a frame error
        return TrackingRunner(self.engine, config, name="tinyvlm-engine")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        super().on_activate(state)   # enables the lifecycle publishers
        image_topic = self._subscribe()
        device = self._device_camera()
        handle = self._on_capture if device else self._on_frame
        if self._tracking is not None:
            self._tracking.start()
            handle = self._on_tracked_frame
        self._worker = FrameWorker(self._slot, handle,
                                   self._on_frame_error,
                                   rate_limit_hz=lambda: float(self.param("rate_limit_hz")),
                                   on_leftover=lambda item: self.counters.inc("frames_dropped"),
                                   take=self._next_capture if device else None)
        self._worker.start()
        self._set_state("active")
        source = ("the MCU's camera" if device else
                  f"'{image_topic}' ({self._cfg['image_transport']}, {self._cfg['image_reliability']})")
        self.get_logger().info(
            f"active: image from {source}, "
            f"command on '{self.resolve_topic_name('command')}', detections on "
            f"'{self._outputs.topic('detections')}'")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_inputs()
        super().on_deactivate(state)
        self._set_state("inactive")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._outputs.cleanup()
        self._tracking = None
        self.engine.release()
        self._pairer = None
        self._set_state("unconfigured")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop()
        self._set_state("finalized")
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        # a transition raised: drop everything and start over from unconfigured
        self.get_logger().error(f"lifecycle transition from '{state.label}' raised; back to unconfigured")
        self.stop()
        self._outputs.cleanup()
        self._set_state("unconfigured")
        return TransitionCallbackReturn.SUCCESS

    def stop(self) -> None:
        """Stop the worker and the inputs and free the engine; safe to call more than once."""
        self._stop_inputs()
        self.engine.release(timeout=1.0)

    def _set_state(self, label: str) -> None:
        self._state = label
        self._reporter.publish_status()

    def availability(self) -> Tuple[bool, str]:
        """Return (True, "") while active, else (False, the state and what to do)."""
        if self._state == "active":
            return True, ""
        why = f"detect_node is {self._state}"
        if self._last_error:
            why += f": {self._last_error}"
        elif self._state == "unconfigured":
            why += ": trigger the lifecycle transition 'configure'"
        elif self._state == "inactive":
            why += ": trigger the lifecycle transition 'activate'"
        return False, why

    # ------------------------------------------------------------------ inputs
    def _device_camera(self) -> bool:
        return self._cfg.get("backend") == "mcu" and self._cfg.get("mcu_camera") == "device"

    def _subscribe(self) -> str:
        cfg = self._cfg
        reliability = (ReliabilityPolicy.RELIABLE if cfg["image_reliability"] == "reliable"
                       else ReliabilityPolicy.BEST_EFFORT)
        image_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability,
                               durability=DurabilityPolicy.VOLATILE)
        # Commands are rare and must not be lost: reliable.  Volatile durability
        # so that any publisher (volatile or transient-local) is compatible.
        command_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                                 reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
        group = ReentrantCallbackGroup()

        def events() -> SubscriptionEventCallbacks:
            return SubscriptionEventCallbacks(incompatible_qos=self._on_incompatible_qos)

        self._subs = [self.create_subscription(String, "command", self._on_command, command_qos,
                                               callback_group=group, event_callbacks=events())]
        if self._device_camera():
            image_topic = ""   # frames never cross DDS: the MCU captures them
        elif cfg["image_transport"] == "compressed":
            image = self.create_subscription(CompressedImage, "image/compressed",
                                             lambda m: self._accept(m, "compressed"), image_qos,
                                             callback_group=group, event_callbacks=events())
            self._subs.append(image)
            image_topic = image.topic_name
        else:
            image = self.create_subscription(Image, "image", lambda m: self._accept(m, "raw"), image_qos,
                                             callback_group=group, event_callbacks=events())
            self._subs.append(image)
            image_topic = image.topic_name
        pairer = self._pairer
        if pairer is not None:
            self._subs.append(self.create_subscription(
                Image, "depth", lambda m: pairer.add("depth", _stamp_ns(m.header), m),
                qos_profile_sensor_data, callback_group=group))
            self._subs.append(self.create_subscription(
                CameraInfo, "camera_info", lambda m: pairer.add("camera_info", _stamp_ns(m.header), m),
                qos_profile_sensor_data, callback_group=group))
        return image_topic

    def _stop_inputs(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None and not worker.stop(WORKER_STOP_S):
            self.get_logger().warning(f"the frame in progress did not finish within {WORKER_STOP_S:g} s; "
                                      "its result will not be published")
        tracking = self._tracking
        if tracking is not None and tracking.running and not tracking.stop(WORKER_STOP_S):
            self.get_logger().warning(f"the engine job in progress did not finish within "
                                      f"{WORKER_STOP_S:g} s; its answer will be discarded")
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []
        # a frame that arrived while the worker stopped must not be processed after a later activate
        if self._slot.take(timeout=0.0) is not None:
            self.counters.inc("frames_dropped")
        if self._pairer is not None:
            self._pairer.clear()

    def image_topic(self) -> str:
        """Return the resolved name of the image topic the node subscribes to (or would)."""
        compressed = self._cfg.get("image_transport", self.param("image_transport")) == "compressed"
        return self.resolve_topic_name("image/compressed" if compressed else "image")

    def latest_frame(self) -> Optional[Tuple[Any, str]]:
        """Return the newest (image message, kind) received, or None."""
        return self._latest

    def _on_incompatible_qos(self, event) -> None:
        if self.counters.problem("incompatible_qos"):
            self.get_logger().warning(
                "a publisher's QoS is incompatible with this subscription, so its messages cannot arrive "
                f"(last policy kind {event.last_policy_kind}); set image_reliability to match the camera")

    def _accept(self, msg: Any, kind: str) -> None:
        # Cheap on purpose: keep a reference and hand the newest frame over.
        self.counters.inc("frames_received")
        now = time.monotonic()
        self._latest = (msg, kind)
        self._last_frame_time = now
        if self._slot.put((msg, kind, now)):
            self.counters.inc("frames_dropped")

    def _on_command(self, msg: String) -> None:
        self.counters.inc("commands_received")
        what, cmd = self.commands.submit(msg.data)
        if what == "invalid":
            self._report_problem("command",
                                 f"command refused ({self.commands.error}); standing command cleared")
        elif what == "rejected":
            # a person's command that cannot be grounded: said every time (throttled against floods)
            self.counters.problem("command_not_groundable")
            self.get_logger().warning(f"command {msg.data.strip()!r} cannot be grounded: "
                                      f"{self.commands.error}; standing command cleared",
                                      throttle_duration_sec=1.0)
        elif what == "cleared":
            self.get_logger().info("command cleared")
        elif what == "accepted" and cmd is not None:
            # throttled: a command flood must not become a log flood
            self.get_logger().info(f"command {cmd.id}: {cmd.text!r} understood as: {cmd.report.understood}"
                                   + (f"; not understood: {cmd.report.not_understood}"
                                      if cmd.report.not_understood else ""), throttle_duration_sec=1.0)
            if cmd.report.warnings:
                # once per command (re-sending it changes nothing), never per frame
                self.get_logger().warning(f"command {cmd.id}: " + "; ".join(cmd.report.warnings),
                                          throttle_duration_sec=1.0)
        if what != "unchanged" and what != "idle":
            self._reporter.publish_status()

    def _report_problem(self, kind: str, message: str) -> None:
        if self.counters.problem(kind, message):
            self.get_logger().warning(f"{message} (further '{kind}' problems are counted, not logged)")

    def decode(self, msg: Any, kind: str) -> np.ndarray:
        """Decode an Image or CompressedImage message to RGB (ValueError on bad input)."""
        if kind == "compressed":
            return convert.compressed_msg_to_rgb(msg)
        return convert.image_msg_to_rgb(msg)

    # ------------------------------------------------------------------ worker
    def _on_frame_error(self, exc: BaseException) -> None:
        self._report_problem("inference", f"frame failed: {type(exc).__name__}: {exc}")

    def _decode_or_count(self, msg: Any, kind: str) -> Optional[np.ndarray]:
        """Decode a camera frame; a bad one is counted, reported once per kind, and gives None."""
        try:
            return self.decode(msg, kind)
        except ValueError as exc:
            self.counters.inc("frames_bad")
            self._report_problem(f"image:{_problem_kind(str(exc))}", f"bad image skipped: {exc}")
            return None

    def _on_frame(self, item: Tuple[Any, str, float]) -> None:
        msg, kind, _ = item
        cmd = self.commands.standing
        if cmd is None:
            self.counters.inc("frames_skipped_no_command")
            return
        t0 = time.perf_counter()
        rgb = self._decode_or_count(msg, kind)
        if rgb is None:
            return
        t_decoded = time.perf_counter()
        try:
            result = self.engine.detect(rgb, cmd.parsed, score_threshold=self.threshold(),
                                        max_detections=int(self.param("max_detections")),
                                        mode=self.param("mode"))
        except Exception:
            self.counters.inc("frames_failed")
            raise
        worker = self._worker
        if result is None or worker is None or not worker.running:
            # deactivated or shutting down while the engine ran: nothing may be published
            self.counters.inc("frames_dropped")
            return
        t_engine = time.perf_counter()
        detections = self._grounded(cmd, result)
        self._outputs.publish(msg.header, rgb, detections, cmd.id, cmd.text, cmd.report.targets,
                              bool(self.param("publish_masks")))
        if self._outputs.wants_3d:
            self._publish_3d(msg.header, rgb.shape[:2], detections)
        t1 = time.perf_counter()
        self._record_timings(msg.header, t0, t_decoded, t_engine, t1, result.timings)
        self.counters.inc("frames_processed")
        if self.param("one_shot") and self.commands.finish(cmd):
            self._reporter.publish_status()

    def _on_tracked_frame(self, item: Tuple[Any, str, float]) -> None:
        """Tracking mode: track this frame and publish for it; the engine thread runs keyframes beside."""
        msg, kind, _ = item
        runner = self._tracking
        cmd = self.commands.standing
        if cmd is None or runner is None:
            self.counters.inc("frames_skipped_no_command")
            return
        t0 = time.perf_counter()
        rgb = self._decode_or_count(msg, kind)
        if rgb is None:
            return
        threshold = self.threshold()
        runner.loop.with_masks = bool(self.param("publish_masks"))
        runner.loop.verify_threshold = threshold if threshold is not None else 0.5
        settings = JobSettings(cmd.parsed, threshold, int(self.param("max_detections")),
                               {"mode": str(self.param("mode"))})
        try:
            step = runner.step(Frame(_stamp_ns(msg.header), rgb), cmd.id, settings)
        except Exception:
            self.counters.inc("frames_failed")
            raise
        worker = self._worker
        if worker is None or not worker.running:
            self.counters.inc("frames_dropped")   # deactivated meanwhile: nothing may be published
            return
        for error in step.errors:
            self._report_problem("inference", f"engine job failed: {error}")
        detections: List[Detection] = step.detections
        keyframes = [a for a in step.answers if a.job.kind == KEYFRAME and a.result is not None]
        for answer in keyframes:
            self._stages.add("engine", answer.seconds)
            for name, secs in answer.result.timings.items():
                self._stages.add(f"stage.{name}", secs)
            if answer.result.failure:
                self._command_failed(cmd, answer.result.failure)
                detections = []
            else:
                self.commands.record(cmd, answer.result.detections)   # where "it" is now
        self._outputs.publish(msg.header, rgb, detections, cmd.id, cmd.text, cmd.report.targets,
                              bool(self.param("publish_masks")))
        if self._outputs.wants_3d:
            self._publish_3d(msg.header, rgb.shape[:2], detections)
        t1 = time.perf_counter()
        self._stages.add("track", step.seconds)
        self._stages.add("overhead", (t1 - t0) - step.seconds)
        self._stages.add("total", t1 - t0)
        self._record_latency(msg.header)
        self.counters.inc("frames_processed")
        if keyframes and self.param("one_shot") and self.commands.finish(cmd):
            self._reporter.publish_status()

    def _next_capture(self, timeout: float) -> Optional[Tuple[None, str, float]]:
        """Device-camera mode's frame source: one capture request whenever a command stands."""
        if self.commands.standing is None:
            time.sleep(min(timeout, 0.05))
            return None
        return (None, "device", time.monotonic())

    def _on_capture(self, item: Tuple[None, str, float]) -> None:
        """Device-camera mode: the MCU captures and detects; stamp with its capture time in ROS time."""
        cmd = self.commands.standing
        if cmd is None:
            return
        t0 = time.perf_counter()
        try:
            out = self.engine.capture(cmd.parsed, score_threshold=self.threshold(),
                                      max_detections=int(self.param("max_detections")))
        except Exception:
            self.counters.inc("frames_failed")
            time.sleep(0.2)   # do not spin on a dead device
            raise
        worker = self._worker
        if out is None or worker is None or not worker.running:
            return
        result, cap = out
        t_engine = time.perf_counter()
        self.counters.inc("frames_received")
        self._last_frame_time = time.monotonic()
        header = Header(frame_id=str(self.param("mcu_camera_frame_id")))
        header.stamp = Time(nanoseconds=int(cap.stamp_ns)).to_msg()
        detections = self._grounded(cmd, result)
        self._outputs.publish(header, None, detections, cmd.id, cmd.text, cmd.report.targets,
                              bool(self.param("publish_masks")), frame_hw=(int(cap.height), int(cap.width)))
        self._stages.add("capture_stamp_error", cap.error_ns * 1e-9)
        self._record_timings(header, t0, t0, t_engine, time.perf_counter(), result.timings)
        self.counters.inc("frames_processed")
        if self.param("one_shot") and self.commands.finish(cmd):
            self._reporter.publish_status()

    def _grounded(self, cmd: Command, result: DetectionResult) -> List[Detection]:
        """Return the detections to publish for ``cmd``'s result; a failure clears the command."""
        if result.failure:
            self._command_failed(cmd, result.failure)
            return []
        self.commands.record(cmd, result.detections)   # where "it" is now
        return result.detections

    def _command_failed(self, cmd: Command, reason: str) -> None:
        self.counters.inc("grounding_failures")
        if self.commands.fail(cmd, reason):
            # once per command: the failure clears it (throttled: a flood of such commands)
            self.get_logger().warning(f"command {cmd.id} {cmd.text!r} cannot be grounded in the frame: "
                                      f"{reason}; standing command cleared", throttle_duration_sec=1.0)
            self._reporter.publish_status()

    def _publish_3d(self, header: Any, frame_hw: Tuple[int, int], detections: List[Any]) -> None:
        pairer = self._pairer
        if pairer is None:
            return
        # the frame's own depth image may still be on its way: wait for it up to the tolerance
        tol = float(self._cfg["depth_tolerance_s"])
        pairing = pairer.pair(_stamp_ns(header), wait_s=tol)
        if not pairing.ok:
            self.counters.inc("frames_without_depth")
            self.counters.inc(f"depth_refused.{pairing.problem}")
            if self.counters.first_time(f"depth:{pairing.problem}"):
                self.get_logger().warning(f"no detections_3d for a frame: {pairing.detail} "
                                          "(depth_tolerance_s; further refusals of this kind are counted, "
                                          "not logged)")
            return
        try:
            self._outputs.publish_3d(header, frame_hw, detections, pairing.messages["depth"],
                                     pairing.messages["camera_info"], float(self.param("depth_scale")))
        except ValueError as exc:
            self._report_problem("depth", f"bad depth image or camera_info: {exc}")

    def _record_timings(self, header: Any, t0: float, t_decoded: float, t_engine: float, t1: float,
                        engine_timings: Dict[str, float]) -> None:
        # node overhead: everything but the engine call (decode, messages, publish)
        self._stages.add("engine", t_engine - t_decoded)
        self._stages.add("overhead", (t_decoded - t0) + (t1 - t_engine))
        self._stages.add("total", t1 - t0)
        for name, secs in engine_timings.items():
            self._stages.add(f"stage.{name}", secs)
        self._record_latency(header)

    def _record_latency(self, header: Any) -> None:
        stamp = Time.from_msg(header.stamp)
        if stamp.nanoseconds > 0:
            self._stages.add("latency", (self.get_clock().now() - stamp).nanoseconds * 1e-9)
        self._fps.tick()

    # ------------------------------------------------------------- diagnostics
    def report(self) -> health.NodeReport:
        """Snapshot the node's state for ``~/status`` and ``/diagnostics``."""
        cmd, error = self.commands.snapshot()
        tracking = self._tracking
        degraded, why = self.engine.health()
        since = time.monotonic() - self._last_frame_time if self._last_frame_time else float("inf")
        return health.NodeReport(
            name=self.get_fully_qualified_name(), state=self._state, last_error=self._last_error,
            backend=str(self._cfg.get("backend") or self.param("backend")), models=self.engine.describe(),
            degraded=degraded, degraded_reason=why,
            command=cmd.text if cmd else "", command_id=cmd.id if cmd else 0,
            targets=tuple(cmd.report.targets) if cmd else (),
            understood=cmd.report.understood if cmd else "",
            not_understood=tuple(cmd.report.not_understood) if cmd else (), command_error=error,
            counters=self.counters.snapshot(), stages=self._stages.percentiles((50, 95)), fps=self._fps.hz(),
            last_latency_s=self._stages.get("latency").last, since_last_frame_s=since,
            tracking=tracking.snapshot() if tracking is not None else {})


def _stamp_ns(header: Any) -> int:
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def _problem_kind(message: str) -> str:
    """Group bad-image messages into kinds for log-once (e.g. 'unsupported encoding')."""
    for key in ("unsupported encoding", "step", "empty", "data has", "larger than", "decode", "even width",
                "no data"):
        if key in message:
            return key.replace(" ", "_")
    return "other"


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(args: Optional[List[str]] = None) -> int:
    # rclpy's own signal handlers would shut the context down at once, under a frame still being
    # published; instead SIGINT/SIGTERM end the spin loop and the worker stops first.
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGTERM, _interrupt)
    node = None
    executor = MultiThreadedExecutor(num_threads=4)
    try:
        node = DetectNode()
        executor.add_node(node)
        node.autostart()
        while rclpy.ok():
            # a short timeout: Python handles the signal only between calls
            executor.spin_once(timeout_sec=0.25)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.stop()
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown(timeout_sec=5)
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
