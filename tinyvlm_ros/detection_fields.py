"""The fields of the published detection messages, computed once for every writer.

The node (rclpy messages) and the bag tools (rosbags messages) both write
``vision_msgs/Detection2DArray``; both build it from :func:`detection_fields`,
so a bag written offline carries the same ids, poses and boxes as the live
node's output.  The node's ``tinyvlm_ros/DetectionInfo`` takes its per-detection
entries (role, track id, source, verification age) from the same fields.

Conventions (README's topic table):

- ``Detection2D.id`` is ``"<command_id>/<object_id>"``: ``command_id`` counts the
  commands the node accepted (0: no command, e.g. ground truth), ``object_id`` is
  the stable track id when the tracker gave one, else the 1-based rank in the
  message.
- ``results[0].hypothesis`` holds the target phrase (``class_id``) and the
  calibrated score; ``results[0].pose`` and the bbox centre are the box centre in
  pixels; the bbox size is in pixels.
- Detection 0 is the chosen target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence, Tuple

from tinyvlm_ros.types import Detection

#: DetectionInfo.sources values (the message's SOURCE_DETECTED / SOURCE_TRACKED; a test checks they agree).
SOURCE_DETECTED = 0
SOURCE_TRACKED = 1


@dataclass(frozen=True)
class DetectionFields:
    """Everything one Detection2D and its DetectionInfo entry carry."""

    id: str
    class_id: str
    score: float
    center: Tuple[float, float]
    size: Tuple[float, float]
    role: str
    track_id: int
    source: int
    verified_age_s: float


def object_id(det: Detection, rank: int) -> int:
    """Return the track id when the detection has one, else its 1-based rank."""
    return int(det.track_id) if det.track_id else int(rank)


def detection_id(command_id: int, det: Detection, rank: int) -> str:
    """Return ``"<command_id>/<object_id>"`` for the detection at 1-based ``rank``."""
    return f"{int(command_id)}/{object_id(det, rank)}"


def parse_detection_id(value: str) -> Tuple[int, int]:
    """Split a ``Detection2D.id`` into (command_id, object_id); ValueError when it is not one."""
    head, sep, tail = value.partition("/")
    if not sep or not head.isdigit() or not tail.isdigit():
        raise ValueError(f"{value!r} is not a detection id of the form '<command_id>/<object_id>'")
    return int(head), int(tail)


def detection_fields(detections: Sequence[Detection], command_id: int = 0) -> List[DetectionFields]:
    """Compute the message fields of each detection, in order (detection 0 = the target)."""
    out: List[DetectionFields] = []
    for rank, det in enumerate(detections, start=1):
        cx, cy = det.center
        w, h = det.size
        out.append(DetectionFields(
            id=detection_id(command_id, det, rank), class_id=str(det.label), score=float(det.score),
            center=(float(cx), float(cy)), size=(float(w), float(h)), role=str(det.role),
            track_id=int(det.track_id), source=SOURCE_TRACKED if det.tracked else SOURCE_DETECTED,
            verified_age_s=float(det.verified_age_s)))
    return out
