"""What the detector says about itself: one report, its diagnostic level and its key/values.

The node fills a :class:`NodeReport` from its state; ``~/status``
(DetectorStatus) and ``/diagnostics`` (DiagnosticArray) are both built from it
(``tinyvlm_ros/ros/diagnostics.py``), so the two never disagree.  Plain Python.

Frame counters add up.  Every frame the image callback receives ends in exactly
one of these counters::

    frames_received = frames_processed + frames_dropped + frames_skipped_no_command
                      + frames_bad + frames_failed            (+ 1 while a frame waits or runs)

``frames_dropped``: replaced by a newer frame before the worker took it (or left
over when the node was deactivated); ``frames_skipped_no_command``: taken while no
command stood; ``frames_bad``: could not be decoded; ``frames_failed``: the
engine raised (e.g. the MCU stopped answering).  A frame whose command could not
be grounded is processed (an empty Detection2DArray is published) and also
counted in ``grounding_failures``.

With tracking on, every frame taken with a command is tracked and published
(``frames_processed``); the engine's keyframes and re-verifications run beside
on frames the tracker also processed, so they add no term to the identity.
They are counted apart (``tracking.*``: ``frames_tracked``, ``keyframes``,
``verifications``, ``engine_errors``, and the rates ``tracked_hz`` and
``keyframe_hz``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Tuple

#: diagnostic_msgs/DiagnosticStatus levels.
OK, WARN, ERROR = 0, 1, 2

#: The frame counters of the identity above, in the order diagnostics lists them.
FRAME_COUNTERS = ("frames_received", "frames_processed", "frames_dropped", "frames_skipped_no_command",
                  "frames_bad", "frames_failed")

#: Other counters always listed (0 when nothing happened).
OTHER_COUNTERS = ("bad_inputs", "grounding_failures", "commands_received", "service_calls",
                  "service_timeouts", "service_late_results", "frames_without_depth")

#: Tracking counters listed (as ``tracking.<name>``) while tracking is on.
TRACKING_COUNTERS = ("frames_tracked", "keyframes", "verifications", "engine_errors", "stale_answers",
                     "clock_restarts")

#: A standing command with no image for this long is a warning.
NO_IMAGE_WARN_S = 5.0


@dataclass
class NodeReport:
    """A snapshot of the detector's state, taken by the node for one status/diagnostics update.

    Attributes:
        name: the node's fully qualified name ("/arm/detect_node").
        state: lifecycle state label ("unconfigured", "inactive", "active", ...).
        last_error: why the node is not ready (a configure failure), "" when none.
        backend: the ``backend`` parameter the engine was (or is to be) built for.
        models: the engine's description by key ({} without an engine).
        degraded: the engine works but its backend does not answer (an unplugged MCU).
        degraded_reason: why, in words.
        command: the standing command's text ("" when none), its id and its report.
        counters: the node's counters by name.
        stages: stage name -> (p50, p95) seconds.
        fps: frames processed per second, recently.
        last_latency_s: image stamp to publish of the last frame (NaN when none).
        since_last_frame_s: seconds since the last image arrived (inf when none yet).
        tracking: tracking counters and rates by name ({} with tracking off; see
            :meth:`tinyvlm_ros.tracking.runner.TrackingRunner.snapshot`).
    """

    name: str
    state: str
    last_error: str = ""
    backend: str = ""
    models: Dict[str, str] = field(default_factory=dict)
    degraded: bool = False
    degraded_reason: str = ""
    command: str = ""
    command_id: int = 0
    targets: Tuple[str, ...] = ()
    understood: str = ""
    not_understood: Tuple[str, ...] = ()
    command_error: str = ""
    counters: Dict[str, int] = field(default_factory=dict)
    stages: Dict[str, Tuple[float, ...]] = field(default_factory=dict)
    fps: float = 0.0
    last_latency_s: float = float("nan")
    since_last_frame_s: float = float("inf")
    tracking: Dict[str, float] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Return True while the node takes frames (active); a degraded backend shows in the level."""
        return self.state == "active"


def summary(r: NodeReport) -> Tuple[int, str]:
    """Return the diagnostic (level, message) of a report."""
    if r.state == "unconfigured":
        if r.last_error:
            return ERROR, f"configure failed: {r.last_error}"
        return WARN, "unconfigured: trigger the lifecycle transition 'configure'"
    if r.state == "inactive":
        return WARN, "inactive: trigger the lifecycle transition 'activate'"
    if r.state != "active":
        return ERROR, f"{r.state}" + (f": {r.last_error}" if r.last_error else "")
    if r.degraded:
        # frames fail (or use the fallback engine) until the backend answers again
        return WARN, f"degraded: {r.degraded_reason or 'backend unreachable'}"
    if r.command and r.since_last_frame_s > NO_IMAGE_WARN_S:
        return WARN, f"command set but no image for {NO_IMAGE_WARN_S:g} s"
    bad = int(r.counters.get("bad_inputs", 0))
    return OK, f"running; {bad} bad inputs skipped" if bad else "running"


def values(r: NodeReport) -> Dict[str, str]:
    """Return the diagnostics key/values of a report (all strings)."""
    out = {"state": r.state, "last_error": r.last_error, "backend": r.backend, "command": r.command,
           "command_id": str(r.command_id), "command_error": r.command_error, "fps": f"{r.fps:.2f}"}
    out.update({f"model.{k}": v for k, v in r.models.items()})
    for name in FRAME_COUNTERS + OTHER_COUNTERS:
        out[name] = str(int(r.counters.get(name, 0)))
    # kinds of bad input and of refused depth, e.g. bad_input.image:unsupported_encoding
    out.update({k: str(v) for k, v in sorted(r.counters.items())
                if k.startswith(("bad_input.", "depth_refused."))})
    out["tracking"] = "on" if r.tracking else "off"
    if r.tracking:
        for name in TRACKING_COUNTERS:
            out[f"tracking.{name}"] = str(int(r.tracking.get(name, 0)))
        for name in ("tracked_hz", "keyframe_hz"):
            out[f"tracking.{name}"] = f"{r.tracking.get(name, 0.0):.2f}"
    for name, qs in r.stages.items():
        if len(qs) >= 2 and not math.isnan(qs[0]):
            out[f"{name}_p50_ms"] = f"{qs[0] * 1e3:.1f}"
            out[f"{name}_p95_ms"] = f"{qs[1] * 1e3:.1f}"
    return out
