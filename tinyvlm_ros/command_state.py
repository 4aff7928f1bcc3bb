"""The node's command bookkeeping: the standing command, command ids, the command history.

A command comes from the ``command`` topic (it then *stands*: it applies to
every new frame until replaced or cleared) or from one Detect service call.
Every accepted command gets the next ``command_id`` (1, 2, ...), so a planner
can tell detections of the current command from those of an older one; a
topic command that repeats the standing one keeps its id.  A command that is
refused, or that cannot be grounded in a frame, clears the standing command
(the robot never keeps acting on an old target) and leaves its reason in
:attr:`CommandState.error`.

Both paths share one :class:`~tinyvlm_ros.grounding.CommandHistory`: every
accepted command is recorded when it is accepted, and :meth:`CommandState.record`
sets where its targets were from each result of it, so "it", "that one" and "the
other one" refer to the last accepted command, topic or service, and to where its
target was last seen.

:func:`report` is the one place that turns a parsed command into what
``~/status`` and the service say about it.  Plain Python, no rclpy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from tinyvlm_ros.grounding import CommandHistory, HistoryEntry, ParsedCommand, parse_command

#: Longer commands are refused before parsing (a 10 kB string is not a command).
MAX_COMMAND_CHARS = 500


@dataclass(frozen=True)
class CommandReport:
    """What the node tells about a parsed command (DetectorStatus, the Detect response, the log).

    Attributes:
        targets: the target phrases, in spoken order.
        understood: one line saying what the command was read as.
        not_understood: the parts of the text that were not used.
        warnings: readings the user should know about (non-English text, assumed directions).
    """

    targets: List[str]
    understood: str
    not_understood: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def report(parsed: ParsedCommand) -> CommandReport:
    """Describe a parsed command: its target phrases, what was understood, what was not used."""
    return CommandReport(targets=list(parsed.phrases), understood=parsed.understood,
                         not_understood=list(parsed.not_understood), warnings=list(parsed.warnings))


def check_text(text: str) -> str:
    """Return the command text stripped, or raise ValueError for text that is not a command."""
    if not isinstance(text, str):
        raise TypeError(f"command must be a string, got {type(text).__name__}")
    if len(text) > MAX_COMMAND_CHARS:
        raise ValueError(f"command is {len(text)} characters; the limit is {MAX_COMMAND_CHARS}")
    if "\ufffd" in text:
        raise ValueError("command is not valid UTF-8 text")
    return text.strip()


@dataclass(frozen=True)
class Command:
    """An accepted command: its id, its text, the parse, the report of it and its history entry."""

    id: int
    text: str
    parsed: ParsedCommand
    report: CommandReport
    entry: Optional[HistoryEntry] = field(default=None, compare=False, repr=False)


class CommandState:
    """The standing command of the topic path, the command id counter and the history (thread-safe).

    Args:
        history_size: how many earlier commands "it" and "the other one" can reach back
            (only the last one is used today; older ones are kept for reports).
    """

    def __init__(self, history_size: int = 8) -> None:
        self._lock = threading.Lock()
        # parsing reads the history and recording writes it, from different threads
        self._history_lock = threading.Lock()
        self._history = CommandHistory(history_size)
        self._thresholds: Dict[str, float] = {}
        self._last_id = 0
        self._standing: Optional[Command] = None
        self._error = ""

    @property
    def standing(self) -> Optional[Command]:
        with self._lock:
            return self._standing

    @property
    def error(self) -> str:
        """Why the last command was refused or could not be grounded ("" after an accepted one)."""
        with self._lock:
            return self._error

    def snapshot(self) -> Tuple[Optional[Command], str]:
        """Return (standing command, error) read together."""
        with self._lock:
            return self._standing, self._error

    def set_thresholds(self, table: Mapping[str, float]) -> None:
        """Set per-phrase default thresholds (``target_thresholds``) for the commands accepted from now on.

        ``table`` is :func:`tinyvlm_ros.grounding.parse_threshold_table`'s output; a threshold
        written in a command wins over it.
        """
        with self._history_lock:
            self._thresholds = {str(k): float(v) for k, v in table.items()}

    def new(self, text: str) -> Command:
        """Parse ``text`` into a command with the next id (a service call); ValueError when refused."""
        clean = check_text(text)
        parsed = self._parse(clean)
        with self._lock:
            self._last_id += 1
            return self._accept(self._last_id, clean, parsed)

    def submit(self, text: str) -> Tuple[str, Optional[Command]]:
        """Apply a command from the topic; return (what happened, the standing command).

        What happened is ``"accepted"`` (a new standing command), ``"unchanged"`` (the same text
        as the standing one), ``"cleared"`` (empty text cleared a standing command), ``"idle"``
        (empty text and nothing standing), ``"rejected"`` (a command that cannot be grounded as
        written) or ``"invalid"`` (text that is no command: too long, not UTF-8).  After the last
        two :attr:`error` says why and the standing command is cleared.
        """
        try:
            clean = check_text(text)
        except (TypeError, ValueError) as exc:
            return self._reject(str(exc), "invalid")
        if not clean:
            with self._lock:
                had, self._standing = self._standing is not None, None
            return ("cleared" if had else "idle"), None
        with self._lock:
            if self._standing is not None and self._standing.text == clean:
                return "unchanged", self._standing
        try:
            parsed = self._parse(clean)
        except ValueError as exc:
            return self._reject(str(exc))
        with self._lock:
            self._last_id += 1
            self._standing = self._accept(self._last_id, clean, parsed)
            self._error = ""
            return "accepted", self._standing

    def record(self, command: Command, detections: Sequence) -> None:
        """Note where ``command``'s targets were in a result of it (every result; none found keeps the last).

        ``detections`` are the result's detections (role ``target`` ones count); pass none for a
        result that failed.
        """
        if command.entry is None:
            return
        with self._history_lock:
            CommandHistory.refresh(command.entry, detections)

    def fail(self, command: Command, reason: str) -> bool:
        """Clear ``command`` if it still stands, recording ``reason``; True if it was cleared."""
        with self._lock:
            if self._standing is not command:
                return False
            self._standing, self._error = None, reason
            return True

    def finish(self, command: Command) -> bool:
        """Clear ``command`` if it still stands (one-shot mode); True if it was cleared."""
        with self._lock:
            if self._standing is not command:
                return False
            self._standing = None
            return True

    def _parse(self, clean: str) -> ParsedCommand:
        with self._history_lock:
            parsed = parse_command(clean, self._history)
            if self._thresholds:
                parsed.default_thresholds(self._thresholds)
            return parsed

    def _accept(self, command_id: int, clean: str, parsed: ParsedCommand) -> Command:
        # recorded at once, so "it" in the very next command means this one even before a frame ran
        with self._history_lock:
            entry = self._history.record(parsed)
        return Command(command_id, clean, parsed, report(parsed), entry)

    def _reject(self, reason: str, what: str = "rejected") -> Tuple[str, Optional[Command]]:
        with self._lock:
            self._standing, self._error = None, reason
        return what, None
