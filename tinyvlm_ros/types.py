"""Data types shared by every engine, the ROS layer, the CLI and the benchmarks.

A detector (host ONNX engine or the microcontroller backend) turns one RGB frame
and one command into a :class:`DetectionResult`.  Keeping this contract in one
plain module lets the node, the CLI and the bag benchmark treat engines alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Protocol, Sequence, Union

import numpy as np

if TYPE_CHECKING:
    from tinyvlm_ros.grounding import ParsedCommand


@dataclass
class Detection:
    """One object found in a frame.

    Attributes:
        label: the target phrase this object answers ("red block").
        score: calibrated match score in [0, 1]; higher is better.
        box_xyxy: (x0, y0, x1, y1) in pixels of the *original* frame, float,
            x1/y1 exclusive (a one-pixel box at (3, 4) is (3, 4, 4, 5)).
        mask: optional HxW bool array aligned with the original frame.
        target_index: index of the phrase in the parsed command's targets.
        role: ``"target"`` for the object the command singles out (published first), ``"candidate"``
            for another instance of a target phrase ranked after it.
        track_id: stable object id given by the tracker (0: not tracked).
        tracked: True when the box was carried over by the tracker rather than found by the engine
            in this frame.
        verified_age_s: seconds since the engine last confirmed this object (0 when detected now).
    """

    label: str
    score: float
    box_xyxy: tuple
    mask: Optional[np.ndarray] = None
    target_index: int = 0
    role: str = "target"
    track_id: int = 0
    tracked: bool = False
    verified_age_s: float = 0.0

    @property
    def center(self) -> tuple:
        x0, y0, x1, y1 = self.box_xyxy
        return ((x0 + x1) / 2.0, (y0 + y1) / 2.0)

    @property
    def size(self) -> tuple:
        x0, y0, x1, y1 = self.box_xyxy
        return (x1 - x0, y1 - y0)


@dataclass
class DetectionResult:
    """What an engine returns for one frame and one command.

    Attributes:
        detections: best first.
        targets: the target phrases the command was parsed into.
        timings: seconds per stage, e.g. {"encoder": 0.17, "decoder": 0.2}.
        work: counters, e.g. {"decoder_calls": 12, "crops": 9}.
        failure: why the command could not be grounded in this frame ("" when it could), e.g. "the
            third apple from the left was asked for but 2 apples are visible"; detections are then empty.
    """

    detections: List[Detection] = field(default_factory=list)
    targets: List[str] = field(default_factory=list)
    timings: Dict[str, float] = field(default_factory=dict)
    work: Dict[str, int] = field(default_factory=dict)
    failure: str = ""


class Engine(Protocol):
    """What the ROS node and the benchmarks need from a detection engine."""

    name: str

    def detect(self, image: np.ndarray, command: Union[str, Sequence[str], "ParsedCommand"], *,
               score_threshold: Optional[float] = None,
               max_detections: Optional[int] = None) -> DetectionResult:
        """Detect the command's targets in an HxWx3 uint8 RGB frame.

        ``command`` is text, a list of target phrases, or a parsed command
        (:func:`tinyvlm_ros.grounding.parse_command`, e.g. with the node's command history).
        Detection 0 of the result is the chosen target; ``failure`` says why a command could not
        be grounded in this frame.
        """
        ...

    def describe(self) -> Dict[str, str]:
        """Backend and model names for diagnostics."""
        ...
