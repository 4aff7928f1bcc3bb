"""When to spend the engine on a new keyframe.

The engine is the expensive part (0.1-5 s a frame on a small CPU), so it runs
only when a keyframe is worth it, in this order of urgency:

``command``   a new command has no answer yet;
``empty``     nothing is tracked (nothing to follow: detect as often as the engine can);
``lost``      a track was lost (occlusion, exit, drift) and waits to be found again;
``confidence`` a held track's tracker confidence fell below ``min_confidence``;
``scene``     the picture changed a lot since the last keyframe (camera moved, lights);
``period``    ``period_s`` passed since the last keyframe (new objects appear, scores drift).

The policy only says *whether*; the caller starts a keyframe when the engine
is free (one at a time), so a slow engine is simply used back to back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from tinyvlm_ros.tracking.frame import Frame

REASONS = ("command", "empty", "lost", "confidence", "scene", "period")


@dataclass
class KeyframePolicy:
    """Keyframe triggers; see the module docstring.

    Attributes:
        period_s: longest time between keyframes (0: back to back, the engine never idles).
        min_confidence: tracker confidence below which a keyframe is asked for.
        scene_change: mean thumbnail difference (0..1) since the last keyframe that asks for one.
    """

    period_s: float = 1.0
    min_confidence: float = 0.6
    scene_change: float = 0.035

    def __post_init__(self) -> None:
        if self.period_s < 0:
            raise ValueError(f"keyframe period must be >= 0 s, got {self.period_s}")
        self._last_ns: Optional[int] = None
        self._last_thumb: Optional[np.ndarray] = None   # only the thumbnail: no frame is kept alive
        self._fresh_command = True

    def new_command(self) -> None:
        """Make the next keyframe due at once (a new command has no answer yet)."""
        self._fresh_command = True
        self._last_ns = self._last_thumb = None

    def started(self, frame: Frame) -> None:
        """Note that a keyframe was started on ``frame``."""
        self._last_ns, self._last_thumb = frame.stamp_ns, frame.thumb
        self._fresh_command = False

    @property
    def last_stamp_ns(self) -> Optional[int]:
        return self._last_ns

    def reason(self, frame: Frame, *, tracks: int, lost_since_keyframe: bool,
               min_confidence: float) -> Optional[str]:
        """Why a keyframe should start on ``frame`` now, or None.

        Args:
            frame: the newest frame.
            tracks: how many tracks are held (published).
            lost_since_keyframe: a held track was lost after the last keyframe started.
            min_confidence: the lowest tracker confidence among held tracks (1 when none).
        """
        if self._fresh_command or self._last_ns is None or self._last_thumb is None:
            return "command"
        if tracks == 0:
            return "empty"
        if lost_since_keyframe:
            return "lost"
        if min_confidence < self.min_confidence:
            return "confidence"
        if float(np.mean(np.abs(frame.thumb - self._last_thumb))) > self.scene_change:
            return "scene"
        if (frame.stamp_ns - self._last_ns) * 1e-9 >= self.period_s:
            return "period"
        return None
