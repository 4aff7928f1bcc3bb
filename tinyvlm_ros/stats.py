"""Counters, latency windows and log-once bookkeeping for long-running nodes."""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Deque, Dict, Optional


class Window:
    """The last ``size`` samples of a quantity, with percentiles."""

    def __init__(self, size: int = 200) -> None:
        self._v: Deque[float] = collections.deque(maxlen=size)

    def add(self, value: float) -> None:
        self._v.append(float(value))

    def __len__(self) -> int:
        return len(self._v)

    def percentile(self, q: float) -> float:
        """Return the q-th (0..100) percentile of the window; NaN when empty."""
        if not self._v:
            return float("nan")
        s = sorted(self._v)
        k = min(len(s) - 1, max(0, int(round(q / 100.0 * (len(s) - 1)))))
        return s[k]

    @property
    def last(self) -> float:
        return self._v[-1] if self._v else float("nan")


class Rate:
    """Events per second over a sliding time window."""

    def __init__(self, horizon_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._t: Deque[float] = collections.deque()
        self._h = horizon_s
        self._clock = clock

    def tick(self) -> None:
        now = self._clock()
        self._t.append(now)
        while self._t and now - self._t[0] > self._h:
            self._t.popleft()

    def hz(self) -> float:
        now = self._clock()
        while self._t and now - self._t[0] > self._h:
            self._t.popleft()
        if len(self._t) < 2:
            return 0.0
        span = max(now - self._t[0], 1e-9)
        return (len(self._t) - 1) / span


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

    def snapshot(self) -> Dict[str, int]:
        with self._lock:
            return dict(self._c)
