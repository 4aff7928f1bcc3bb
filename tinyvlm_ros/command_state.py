"""The node's command bookkeeping: the standing command, command ids, and why the last one failed.

A command comes from the ``command`` topic (it then *stands*: it applies to
every new frame until replaced or cleared) or from one Detect service call.
Every accepted command gets the next ``command_id`` (1, 2, ...), so a planner
can tell detections of the current command from those of an older one; a
topic command that repeats the standing one keeps its id.  A command that is
refused, or that cannot be grounded in a frame, clears the standing command
(the robot never keeps acting on an old target) and leaves its reason in
:attr:`CommandState.error`.

:func:`report` is the one place that turns a parsed command into what
``~/status`` and the service say about it (targets, what was understood, what
was not).  Plain Python, no rclpy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple

from tinyvlm_ros.grounding import parse_command

#: Longer commands are refused before parsing (a 10 kB string is not a command).
MAX_COMMAND_CHARS = 500


@dataclass(frozen=True)
class CommandReport:
    """What the node tells about a parsed command (DetectorStatus, the Detect response)."""

    targets: List[str]
    understood: str
    not_understood: List[str] = field(default_factory=list)


def report(parsed: Any) -> CommandReport:
    """Describe a parsed command: its target phrases, what was understood, what was not used.

    Takes ``understood``/``not_understood`` from the parser when it provides them;
    otherwise the understanding is written from the targets' phrases and qualifiers.
    """
    targets = [str(p) for p in parsed.phrases]
    understood = getattr(parsed, "understood", None)
    if not isinstance(understood, str):
        parts = []
        for t in parsed.targets:
            quals = getattr(t, "qualifiers", None) or []
            parts.append(t.phrase + (f" ({', '.join(quals)})" if quals else ""))
        understood = "targets: " + "; ".join(parts)
    return CommandReport(targets=targets, understood=understood,
                         not_understood=[str(w) for w in getattr(parsed, "not_understood", None) or []])


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
    """An accepted command: its id, its text, the parse and the report of it."""

    id: int
    text: str
    parsed: Any
    report: CommandReport


class CommandState:
    """The standing command of the topic path and the command id counter (thread-safe).

    Args:
        parse: text -> parsed command (with ``phrases`` and ``targets``; engines take it as it
            is); raises ValueError for text it cannot use.  The grounding parser by default;
            a closure over a :class:`tinyvlm_ros.grounding.CommandHistory` resolves "it".
    """

    def __init__(self, parse: Callable[[str], Any] = parse_command) -> None:
        self._parse = parse
        self._lock = threading.Lock()
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

    def new(self, text: str) -> Command:
        """Parse ``text`` into a command with the next id (a service call); ValueError when refused."""
        clean = check_text(text)
        parsed = self._parse(clean)
        with self._lock:
            self._last_id += 1
            return Command(self._last_id, clean, parsed, report(parsed))

    def submit(self, text: str) -> Tuple[str, Optional[Command]]:
        """Apply a command from the topic; return (what happened, the standing command).

        What happened is ``"accepted"`` (a new standing command), ``"unchanged"`` (the same text
        as the standing one), ``"cleared"`` (empty text cleared a standing command), ``"idle"``
        (empty text and nothing standing) or ``"rejected"`` (:attr:`error` says why; the
        standing command is cleared).
        """
        try:
            clean = check_text(text)
        except (TypeError, ValueError) as exc:
            return self._reject(str(exc))
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
            self._standing = Command(self._last_id, clean, parsed, report(parsed))
            self._error = ""
            return "accepted", self._standing

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

    def _reject(self, reason: str) -> Tuple[str, Optional[Command]]:
        with self._lock:
            self._standing, self._error = None, reason
        return "rejected", None
