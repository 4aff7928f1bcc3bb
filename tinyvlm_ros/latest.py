"""Newest-only hand-off between a ROS callback and an inference worker.

A camera callback must never wait for inference.  It puts each frame into a
:class:`LatestSlot`; the worker takes whatever is newest.  A frame replaced
before the worker took it is dropped and counted, so memory holds at most one
pending frame whatever the input rate.
"""

from __future__ import annotations

import threading
from typing import Any, Optional, Tuple


class LatestSlot:
    """A one-item mailbox that keeps only the newest item."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Any = None
        self._has = False
        self._closed = False
        self.put_count = 0
        self.dropped = 0

    def put(self, item: Any) -> bool:
        """Store ``item``; return True if it replaced one the worker never took."""
        with self._cond:
            replaced = self._has
            if replaced:
                self.dropped += 1
            self._item, self._has = item, True
            self.put_count += 1
            self._cond.notify()
            return replaced

    def take(self, timeout: float) -> Optional[Any]:
        """Wait up to ``timeout`` s for an item; return it, or None (timeout or closed)."""
        with self._cond:
            if not self._has and not self._closed:
                self._cond.wait(timeout)
            if not self._has:
                return None
            item, self._item, self._has = self._item, None, False
            return item

    def peek(self) -> Tuple[bool, Any]:
        """Return (present, item) without taking it."""
        with self._cond:
            return self._has, self._item

    def close(self) -> None:
        """Wake a waiting worker; later ``take`` calls return what is left, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        with self._cond:
            self._closed = False
