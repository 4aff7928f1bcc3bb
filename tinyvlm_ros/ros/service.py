"""The ``~/detect`` service of the detect node: one command on one image, answered within a bound.

The service exists from the node's construction and answers every call: while
the node is not active it says so (state and reason) with ``success: false``;
while it is active the whole job (decode + inference) runs on a worker and the
call returns after ``service_timeout_s`` at the latest, even if inference is
still running (its late result is discarded and counted in
``service_late_results``).

A call is a command of its own: it takes the next ``command_id`` and goes into
the node's command history, which the topic path shares, so "it" in a call
means the target of the last command accepted on either path.  A command that
cannot be grounded (refused by the parser, or not in this image) answers
``success: false`` with the reason; the standing topic command is not touched.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Optional

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup

from tinyvlm_ros.command_state import Command
from tinyvlm_ros.grounding import CommandError
from tinyvlm_ros.ros import convert
from tinyvlm_ros.srv import Detect
from tinyvlm_ros.types import DetectionResult
from tinyvlm_ros.workers import BoundedCall

if TYPE_CHECKING:  # pragma: no cover
    from tinyvlm_ros.ros.detect_node import DetectNode


class _BadImage(ValueError):
    pass


class DetectService:
    """Serves ``~/detect`` for a :class:`~tinyvlm_ros.ros.detect_node.DetectNode`."""

    def __init__(self, node: "DetectNode") -> None:
        self._node = node
        self._call = BoundedCall(on_late=lambda: node.counters.inc("service_late_results"),
                                 name="tinyvlm-service")
        # its own group: a call that waits for inference never holds up frames, commands or status
        self._srv = node.create_service(Detect, "~/detect", self._on_call,
                                        callback_group=MutuallyExclusiveCallbackGroup())

    def _on_call(self, request: Detect.Request, response: Detect.Response) -> Detect.Response:
        node = self._node
        node.counters.inc("service_calls")
        ready, why = node.availability()
        if not ready:
            response.success, response.message = False, why
            return response
        try:
            cmd = node.commands.new(request.command)
        except (TypeError, ValueError) as exc:
            why = "cannot ground the command" if isinstance(exc, CommandError) else "bad command"
            response.success, response.message = False, f"{why}: {exc}"
            return response
        response.command_id = cmd.id
        response.targets = list(cmd.report.targets)
        response.understood = cmd.report.understood
        response.not_understood = list(cmd.report.not_understood)
        if request.image.width > 0 and request.image.height > 0:
            msg, kind = request.image, "raw"
        else:
            latest = node.latest_frame()
            if latest is None:
                response.success = False
                response.message = (f"no image in the request and no frame received yet on "
                                    f"'{node.image_topic()}'")
                return response
            msg, kind = latest
        threshold = float(request.min_score) if request.min_score > 0 else node.threshold()
        max_det = int(request.max_results) if request.max_results > 0 else int(node.param("max_detections"))
        mode = str(node.param("mode"))
        timeout = float(node.param("service_timeout_s"))
        deadline = time.monotonic() + timeout

        def job() -> Optional[DetectionResult]:
            try:
                rgb = node.decode(msg, kind)
            except ValueError as exc:
                raise _BadImage(str(exc)) from None
            # waiting for the engine (busy with a camera frame) stops at the caller's deadline,
            # so an abandoned call never runs inference later
            return node.engine.detect(rgb, cmd.parsed, score_threshold=threshold, max_detections=max_det,
                                      mode=mode, timeout=max(0.0, deadline - time.monotonic()))

        try:
            result = self._call.run(job, timeout)
        except _BadImage as exc:
            response.success, response.message = False, f"bad image: {exc}"
            return response
        except TimeoutError as exc:
            node.counters.inc("service_timeouts")
            response.success = False
            response.message = f"no answer within service_timeout_s = {timeout:g} s: {exc}"
            return response
        except Exception as exc:  # the engine's own errors come back as the answer
            response.success, response.message = False, f"detection failed: {type(exc).__name__}: {exc}"
            return response
        if result is not None and not result.failure:
            node.commands.record(cmd, result.detections)   # where "it" is now
        return self._answer(response, result, msg, cmd)

    @staticmethod
    def _answer(response: Detect.Response, result: Optional[DetectionResult], msg: Any, cmd: Command
                ) -> Detect.Response:
        if result is None:
            response.success, response.message = False, "the engine is not configured"
            return response
        notes = "".join(f"; note: {w}" for w in cmd.report.warnings)
        dets = [] if result.failure else result.detections
        targets = list(cmd.report.targets)
        # stamped with the image even when empty, as the topic path publishes it
        response.detections = convert.detections_to_msg(dets, msg.header, cmd.id)
        response.info = convert.info_msg(dets, msg.header, cmd.id, cmd.text, targets)
        if result.failure:
            response.success = False
            response.message = f"cannot ground the command in the image: {result.failure}{notes}"
            return response
        response.success = True
        response.message = f"{len(dets)} detection(s) for {', '.join(targets)}{notes}"
        return response
