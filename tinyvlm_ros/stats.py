"""Counters, latency windows and log-once bookkeeping for long-running nodes.

Everything here is shared between a node's worker thread (which adds samples)
and its diagnostics timer (which reads them), so every class takes a lock and
readers work on copies: a reader never iterates a container a writer changes.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Deque, Dict, List, Optional, Sequence, Tuple


class Window:
    """The last ``size`` samples of a quantity, with percentiles (thread-safe)."""

    def __init__(self, size: int = 200) -> None:
        self._lock = threading.Lock()
        self._v: Deque[float] = collections.deque(maxlen=size)

    def add(self, value: float) -> None:
        with self._lock:
            self._v.append(float(value))

    def __len__(self) -> int:
        with self._lock:
            return len(self._v)

    def values(self) -> List[float]:
        """Return a copy of the samples, oldest first."""
        with self._lock:
            return list(self._v)

    def percentile(self, q: float) -> float:
        """Return the q-th (0..100) percentile of the window; NaN when empty."""
        return _percentile(sorted(self.values()), q)

    def percentiles(self, qs: Sequence[float]) -> List[float]:
        """Return several percentiles computed on one copy of the samples."""
        s = sorted(self.values())
        return [_percentile(s, q) for q in qs]

    @property
    def last(self) -> float:
        with self._lock:
            return self._v[-1] if self._v else float("nan")


def _percentile(s: List[float], q: float) -> float:
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, int(round(q / 100.0 * (len(s) - 1)))))
    return s[k]


class Windows:
    """Named :class:`Window` s created on first use (e.g. one per engine stage); thread-safe."""

    def __init__(self, size: int = 200) -> None:
        self._lock = threading.Lock()
        self._size = size
        self._w: Dict[str, Window] = {}

    def add(self, name: str, value: float) -> None:
        with self._lock:
            win = self._w.get(name)
            if win is None:
                win = self._w[name] = Window(self._size)
        win.add(value)

    def get(self, name: str) -> Window:
        """Return the window called ``name`` (created empty if new)."""
        with self._lock:
            win = self._w.get(name)
            if win is None:
                win = self._w[name] = Window(self._size)
            return win

    def percentiles(self, qs: Sequence[float] = (50, 95)) -> Dict[str, Tuple[float, ...]]:
        """Return name -> the ``qs`` percentiles, for every window with samples."""
        with self._lock:
            items = list(self._w.items())
        out: Dict[str, Tuple[float, ...]] = {}
        for name, win in items:
            if len(win):
                out[name] = tuple(win.percentiles(qs))
        return out


class Rate:
    """Events per second over a sliding time window (thread-safe)."""

    def __init__(self, horizon_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._t: Deque[float] = collections.deque()
        self._h = horizon_s
        self._clock = clock

    def tick(self) -> None:
        with self._lock:
            now = self._clock()
            self._t.append(now)
            self._expire(now)

    def hz(self) -> float:
        with self._lock:
            now = self._clock()
            self._expire(now)
            if len(self._t) < 2:
                return 0.0
            span = max(now - self._t[0], 1e-9)
            return (len(self._t) - 1) / span

    def _expire(self, now: float) -> None:
        while self._t and now - self._t[0] > self._h:
            self._t.popleft()


class Counters:
    """Thread-safe named counters plus a "first time?" test for log-once warnings.

    ``problem(kind, detail)`` counts an event of ``kind`` and returns True only
    the first time that kind is seen, so a node logs each kind of bad input
    once and counts the rest.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._c: Dict[str, int] = collections.Counter()
        self._seen: Dict[str, str] = {}

    def inc(self, name: str, n: int = 1) -> int:
        with self._lock:
            self._c[name] += n
            return self._c[name]

    def get(self, name: str) -> int:
        with self._lock:
            return self._c.get(name, 0)

    def problem(self, kind: str, detail: Optional[str] = None) -> bool:
        with self._lock:
            self._c["bad_inputs"] += 1
            self._c[f"bad_input.{kind}"] += 1
            first = kind not in self._seen
            if first:
                self._seen[kind] = detail or kind
            return first

    def first_time(self, kind: str) -> bool:
        """Return True only the first time ``kind`` is seen (log-once without counting a bad input)."""
        with self._lock:
            first = kind not in self._seen
            if first:
                self._seen[kind] = kind
            return first

    def snapshot(self) -> Dict[str, int]:
        with self._lock:
            return dict(self._c)
