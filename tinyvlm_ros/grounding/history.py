"""What earlier commands asked for and where their targets were: what "it" and "the other one" mean."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Deque, List, Optional, Sequence

from tinyvlm_ros.grounding.command import Box, ParsedCommand, Target


@dataclass
class HistoryEntry:
    """One grounded command.

    Attributes:
        text: the command as given.
        targets: its targets (the parse's specs).
        boxes: per target, the box of the object chosen for it in the frame it ran on, or None when
            it was not found.
    """

    text: str
    targets: List[Target]
    boxes: List[Optional[Box]] = field(default_factory=list)


class CommandHistory:
    """The last few commands and their chosen boxes.

    The node keeps one and records every command it accepts together with the first result for
    it; "it" then means the object chosen before, "the other one" another instance of its phrase.

    Args:
        size: how many commands to remember.
    """

    def __init__(self, size: int = 8) -> None:
        if size < 1:
            raise ValueError(f"history size must be >= 1, got {size}")
        self._entries: Deque[HistoryEntry] = deque(maxlen=size)

    def record(self, parsed: ParsedCommand, detections: Sequence = ()) -> HistoryEntry:
        """Remember a command and the detections chosen for it (``role == "target"``, by target index).

        ``detections`` are :class:`tinyvlm_ros.types.Detection` objects (or anything with ``role``,
        ``target_index`` and ``box_xyxy``); an empty sequence records that nothing was found (yet).
        """
        boxes = _chosen_boxes(len(parsed.targets), detections)
        entry = HistoryEntry(parsed.text, list(parsed.targets), boxes)
        self._entries.append(entry)
        return entry

    @staticmethod
    def refresh(entry: HistoryEntry, detections: Sequence) -> None:
        """Set the boxes of ``entry`` from a newer result of its command (boxes not found are kept).

        The node records a command when it accepts it and refreshes it with every result, so "it"
        means where the object was last seen.
        """
        new = _chosen_boxes(len(entry.targets), detections)
        entry.boxes = [n if n is not None else o for n, o in zip(new, entry.boxes)]

    def update(self, detections: Sequence) -> None:
        """Refresh the boxes of the last command from a newer frame's result (keeps boxes not seen)."""
        if self._entries:
            self.refresh(self._entries[-1], detections)

    @property
    def last(self) -> Optional[HistoryEntry]:
        """Return the most recent command, or None."""
        return self._entries[-1] if self._entries else None

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _chosen_boxes(n_targets: int, detections: Sequence) -> List[Optional[Box]]:
    """Per target index, the box of the first detection with role "target" chosen for it (None: none)."""
    boxes: List[Optional[Box]] = [None] * n_targets
    for d in detections:
        ti = int(getattr(d, "target_index", 0))
        if getattr(d, "role", "target") == "target" and 0 <= ti < n_targets and boxes[ti] is None:
            boxes[ti] = tuple(float(v) for v in d.box_xyxy)
    return boxes
