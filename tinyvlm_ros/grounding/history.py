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
        ``target_index`` and ``box_xyxy``); an empty sequence records that nothing was found.
        """
        boxes: List[Optional[Box]] = [None] * len(parsed.targets)
        for d in detections:
            ti = int(getattr(d, "target_index", 0))
            if getattr(d, "role", "target") == "target" and 0 <= ti < len(boxes) and boxes[ti] is None:
                boxes[ti] = tuple(float(v) for v in d.box_xyxy)
        entry = HistoryEntry(parsed.text, list(parsed.targets), boxes)
        self._entries.append(entry)
        return entry

    def update(self, detections: Sequence) -> None:
        """Refresh the boxes of the last command from a newer frame's result (keeps boxes not seen)."""
        if not self._entries:
            return
        last = self._entries[-1]
        fresh = CommandHistory()
        parsed = ParsedCommand(text=last.text, targets=last.targets)
        new = fresh.record(parsed, detections).boxes
        last.boxes = [n if n is not None else o for n, o in zip(new, last.boxes)]

    @property
    def last(self) -> Optional[HistoryEntry]:
        """Return the most recent command, or None."""
        return self._entries[-1] if self._entries else None

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
