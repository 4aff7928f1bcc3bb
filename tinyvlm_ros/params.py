"""The detect node's parameters: one table for names, defaults, ranges and docs.

The node declares its parameters from :data:`PARAMS`, validates every set
through :func:`validate`, ``config/detect.yaml`` lists the same defaults, and
a test keeps the three (and README) in agreement.  Plain Python, no rclpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from tinyvlm_ros.grounding import parse_threshold_table
from tinyvlm_ros.tracking.manager import TRACKERS


@dataclass(frozen=True)
class Param:
    """One parameter: default (its type is the parameter's type), doc, constraints.

    ``range`` is an inclusive (min, max) for numbers; ``choices`` lists the
    allowed strings; ``check`` returns why a value is refused (None: accepted);
    ``reconfigure`` means a change takes effect at the next configure transition
    (the backend is rebuilt), not at once.
    """

    name: str
    default: Any
    description: str
    range: Optional[Tuple[float, float]] = None
    choices: Optional[Sequence[str]] = None
    reconfigure: bool = False
    check: Optional[Callable[[Any], Optional[str]]] = None


def _providers_problem(value: str) -> Optional[str]:
    """Say why a runtime preference list is refused (None: every name is known)."""
    from tinyvlm_ros.engine.session import parse_providers

    try:
        parse_providers(value)
    except ValueError as exc:
        return str(exc)
    return None


def _threshold_table_problem(value: str) -> Optional[str]:
    try:
        parse_threshold_table(value)
    except ValueError as exc:
        return f"target_thresholds: {exc}"
    return None


PARAMS: Tuple[Param, ...] = (
    Param("backend", "local", "detection engine: local (ONNX Runtime on this computer) or mcu (serial "
          "microcontroller)", choices=("local", "mcu"), reconfigure=True),
    Param("model_dir", "", "model set directory (manifest.json); empty = the cache's default set "
          "($TINYVLM_MODELS/sets/mobilesam+tinyclip-61m-32, cache default ~/.cache/tinyvlm_ros)",
          reconfigure=True),
    Param("mode", "fast", "segmentation mode: fast (few decoder calls) or thorough (reference 16x16 grid)",
          choices=("fast", "thorough")),
    Param("threads", 2, "ONNX Runtime intra-op threads", range=(1, 64), reconfigure=True),
    Param("providers", "cpu", "inference runtimes in order of preference, comma-separated: cpu, openvino, "
          "openvino-bf16, cuda, tensorrt, coreml; one that is not installed or rejects a graph is skipped, "
          "cpu is the last resort, and the configure log line says which runs each graph", reconfigure=True,
          check=_providers_problem),
    Param("decoder_window", 16, "decode each SAM prompt on a window of this many embedding cells first "
          "(then twice that, then the whole grid, while the mask reaches the window's edge); 0 = whole "
          "grid only", range=(0, 64), reconfigure=True),
    Param("score_threshold", 0.5, "calibrated match probability below which detections are dropped "
          "(0.5: the target beats the generic prompts)", range=(0.0, 1.0)),
    Param("target_thresholds", "", "per-phrase score thresholds, e.g. 'cup:0.4, red block:0.7' (the "
          "engine's units, as score_threshold or mcu_score_threshold); for commands accepted after it is "
          "set, a threshold written in the command wins", check=_threshold_table_problem),
    Param("max_detections", 10, "at most this many detections per frame", range=(1, 254)),
    Param("matryoshka_dim", 0, "embedding prefix length used for matching (0 = full)", range=(0, 4096)),
    Param("image_transport", "raw", "raw: sensor_msgs/Image on 'image'; compressed: "
          "sensor_msgs/CompressedImage on 'image/compressed'", choices=("raw", "compressed"),
          reconfigure=True),
    Param("image_reliability", "best_effort", "QoS reliability of the image subscription; match your "
          "camera driver", choices=("best_effort", "reliable"), reconfigure=True),
    Param("rate_limit_hz", 0.0, "process at most this many frames per second (0 = as fast as possible)",
          range=(0.0, 1000.0)),
    Param("one_shot", False, "run a command on the next frame only, then clear it"),
    Param("publish_masks", True, "publish a mono8 label image on 'masks' (0 = background, i+1 = "
          "detection i)"),
    Param("use_depth", False, "also publish vision_msgs/Detection3DArray from 'depth' + 'camera_info'",
          reconfigure=True),
    Param("depth_tolerance_s", 0.05, "largest stamp difference between a frame and the depth image and "
          "camera_info used for its 3D boxes; a frame without both within it gets no detections_3d (counted "
          "in diagnostics)", range=(0.0, 1.0), reconfigure=True),
    Param("depth_scale", 0.001, "metres per unit of a 16UC1 depth image", range=(1e-6, 10.0)),
    Param("serial_port", "", "MCU serial port or pyserial URL (/dev/ttyACM0, socket://127.0.0.1:5555)",
          reconfigure=True),
    Param("serial_baud", 921600, "MCU serial baud rate", range=(1200, 12000000), reconfigure=True),
    Param("mcu_timeout_s", 2.0, "timeout of one MCU request in seconds", range=(0.05, 60.0),
          reconfigure=True),
    Param("mcu_fallback", False, "when the MCU is unreachable, run the local engine instead",
          reconfigure=True),
    Param("mcu_model_dir", "", "trained MCU encoder (`tinyvlm mcu distill --out`; the device must run its "
          "model.tvm): text projection, prefix and calibrated thresholds; required unless "
          "mcu_allow_random_model", reconfigure=True),
    Param("mcu_allow_random_model", False, "accept the firmware's random-weight built-in encoder without "
          "mcu_model_dir (its boxes mean nothing: wiring tests only)", reconfigure=True),
    Param("mcu_camera", "host", "host: frames from the image topic are sent to the MCU; device: the MCU "
          "captures with its own camera (no image subscription) and detections are stamped with its capture "
          "time translated to ROS time", choices=("host", "device"), reconfigure=True),
    Param("mcu_camera_frame_id", "mcu_camera", "frame_id of detections in mcu_camera device mode (the MCU "
          "camera's optical frame)"),
    Param("mcu_score_threshold", 0.0, "cosine threshold of MCU region scores (0 = the distilled model's "
          "calibrated value, else 0.25)", range=(0.0, 1.0)),
    Param("tracking", False, "follow the command's objects between keyframes (docs/tracking.md): detections "
          "for every camera frame with stable track ids, the engine runs on keyframes at its own pace",
          reconfigure=True),
    Param("tracking_keyframe_period_s", 1.0, "with tracking: longest time between keyframes (0 = back to "
          "back); lost tracks, low tracker confidence and scene changes take one sooner", range=(0.0, 60.0),
          reconfigure=True),
    Param("tracking_max_track_age_s", 1.0, "with tracking: how long an object that was lost (occluded, out "
          "of view) keeps its id while keyframes look for it", range=(0.0, 60.0), reconfigure=True),
    Param("tracking_reverify_period_s", 0.0, "with tracking: re-score each tracked object against the "
          "command this often between keyframes, dropping one that no longer matches (0 = keyframes only; "
          "local backend)", range=(0.0, 60.0), reconfigure=True),
    Param("tracking_tracker", "flow", "with tracking: box tracker between keyframes: flow (sparse optical "
          "flow) or OpenCV's mil, kcf, csrt (kcf and csrt need opencv-contrib)", choices=TRACKERS,
          reconfigure=True),
    Param("service_timeout_s", 10.0, "the ~/detect service answers failure after this long",
          range=(0.1, 600.0)),
    Param("diagnostics_period_s", 1.0, "period of /diagnostics and ~/status updates", range=(0.1, 60.0)),
    Param("autostart", True, "configure and activate on start (as a plain node would)", reconfigure=True),
)

BY_NAME: Dict[str, Param] = {p.name: p for p in PARAMS}


def defaults() -> Dict[str, Any]:
    """Return name -> default value for every parameter."""
    return {p.name: p.default for p in PARAMS}


def validate(name: str, value: Any) -> Optional[str]:
    """Check one value; return ``None`` if it is acceptable, else the reason it is not."""
    p = BY_NAME.get(name)
    if p is None:
        return None  # not ours (e.g. use_sim_time)
    want = type(p.default)
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, want) or (want is int and isinstance(value, bool)):
        return f"{name} must be {want.__name__}, got {type(value).__name__}"
    if p.choices is not None and value not in p.choices:
        return f"{name} must be one of {', '.join(p.choices)}; got {value!r}"
    if p.range is not None and not (p.range[0] <= value <= p.range[1]):
        return f"{name} must be within [{p.range[0]:g}, {p.range[1]:g}]; got {value}"
    return p.check(value) if p.check is not None else None
