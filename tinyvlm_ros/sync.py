"""Pair side streams (depth, camera_info) with a colour frame by header stamp.

A 3D box is only right when the depth image was taken at the moment of the
colour frame.  Cameras publish colour, depth and intrinsics on separate topics
with their own stamps (identical for aligned depth, a few milliseconds apart
otherwise), and the three arrive in any order.  So each side stream keeps its
recent messages, and a frame takes from each the message whose stamp is
nearest its own, accepted only within a tolerance: the rule of message_filters'
ApproximateTimeSynchronizer with a ``slop``, driven by the frame the detector
chose to process.  A frame is never paired with "the latest seen": when no
message is close enough the pairing is refused and says why.

Plain Python; the node feeds it from its subscriptions and asks for a pairing
after inference, when the side messages of that moment have had time to arrive.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, Sequence, Tuple

NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class Pairing:
    """The side messages for one frame, or why there are none.

    Attributes:
        messages: stream name -> message, for every stream (empty when refused).
        problem: "" when paired; else ``"<stream>_missing"`` (nothing received yet),
            ``"<stream>_stale"`` (the nearest message is older than the frame by more than the
            tolerance) or ``"<stream>_ahead"`` (only messages newer than the frame by more than it).
        detail: the problem in words, with the stamp difference and the tolerance.
    """

    messages: Dict[str, Any] = field(default_factory=dict)
    problem: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


class StampPairer:
    """Recent messages of named side streams, matched to a frame stamp within a tolerance.

    Args:
        streams: the side streams every frame needs, e.g. ``("depth", "camera_info")``.
        tolerance_s: the largest accepted |stamp difference| between the frame and a side
            message, in seconds (message_filters calls it the slop).
        history: messages kept per stream (the oldest is forgotten first).
    """

    def __init__(self, streams: Sequence[str], tolerance_s: float, history: int = 30) -> None:
        if not streams:
            raise ValueError("StampPairer needs at least one stream name")
        if tolerance_s < 0:
            raise ValueError(f"tolerance_s must be >= 0, got {tolerance_s}")
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        self.streams: Tuple[str, ...] = tuple(streams)
        self.tolerance_ns = int(round(tolerance_s * NS_PER_S))
        self._cond = threading.Condition()
        self._queues: Dict[str, Deque[Tuple[int, Any]]] = {
            s: collections.deque(maxlen=int(history)) for s in self.streams}

    def add(self, stream: str, stamp_ns: int, msg: Any) -> None:
        """Remember ``msg`` of ``stream`` stamped ``stamp_ns`` (arrival order does not matter)."""
        queue = self._queues.get(stream)
        if queue is None:
            raise ValueError(f"unknown stream {stream!r}; this pairer has {', '.join(self.streams)}")
        with self._cond:
            queue.append((int(stamp_ns), msg))
            self._cond.notify_all()

    def clear(self) -> None:
        """Forget every message (e.g. when the node is deactivated)."""
        with self._cond:
            for queue in self._queues.values():
                queue.clear()

    def pair(self, stamp_ns: int, wait_s: float = 0.0) -> Pairing:
        """Return the message of each stream nearest ``stamp_ns``, or the first stream that has none.

        Args:
            stamp_ns: the frame's stamp.
            wait_s: while a stream has nothing close enough yet but may still get it (nothing
                received, or only older messages), wait up to this long for it to arrive.
        """
        deadline = time.monotonic() + max(0.0, wait_s)
        with self._cond:
            while True:
                found = self._pair_locked(int(stamp_ns))
                left = deadline - time.monotonic()
                if found.ok or found.problem.endswith("_ahead") or left <= 0:
                    return found
                self._cond.wait(left)

    def _pair_locked(self, stamp_ns: int) -> Pairing:
        tol = self.tolerance_ns
        found: Dict[str, Any] = {}
        for stream in self.streams:
            queue = self._queues[stream]
            if not queue:
                return Pairing(problem=f"{stream}_missing",
                               detail=f"no {stream} message received yet")
            t, msg = min(queue, key=lambda item: abs(item[0] - stamp_ns))
            diff = t - stamp_ns
            if abs(diff) > tol:
                when = "older" if diff < 0 else "newer"
                kind = "stale" if diff < 0 else "ahead"
                return Pairing(problem=f"{stream}_{kind}",
                               detail=f"the nearest {stream} message is {abs(diff) / NS_PER_S:.3f} s {when} "
                                      f"than the frame (tolerance {tol / NS_PER_S:.3f} s)")
            found[stream] = msg
        return Pairing(messages=found)
