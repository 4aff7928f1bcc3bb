"""Device clock -> host clock: the offset (and rate) between the MCU's clock and the host's.

The device stamps each camera capture with its own clock (microseconds since boot).
To publish that stamp in ROS time the host needs the offset between the clocks,
which it measures with request/reply round trips (Cristian's method):

* the host reads its clock (``t0``), sends CLOCK, the device answers its clock
  ``d``, the host reads its clock again (``t1``).  The device read its clock at
  some instant inside ``[t0, t1]``, so ``offset = d - (t0 + t1) / 2`` is off by at
  most ``(t1 - t0) / 2``, half the round trip, whatever the link's delays are,
  even when the two directions differ;
* a burst of round trips keeps the one with the shortest round trip (the
  tightest bound);
* clocks run at slightly different rates (crystal tolerance): with two bursts
  ``a`` and ``b`` at least ``min_span_s`` apart, translation follows the line
  through them.  If the rates are constant, a stamp at ``d = a + l (b - a)`` is
  then off by at most ``|1 - l| e_a + |l| e_b`` (``e``: the bursts' bounds): the
  larger of the two between them, growing with the distance beyond them.  With
  one burst the bound grows by an assumed worst-case rate error of
  ``max_drift_ppm`` per unit of distance.

Translation is linear between bursts and extrapolated after the last one; the
engine takes a new burst every ``resync_s`` so extrapolation stays short.  A new
boot id (the device rebooted, its clock restarted) drops the history.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

HostClock = Callable[[], int]


@dataclass
class ClockSample:
    """One burst's best round trip: device time, host time of its middle, half the round trip (ns)."""

    device_ns: int
    host_ns: int
    half_rtt_ns: int


class ClockSync:
    """Translate device clock readings into the host's clock, with an error bound.

    Args:
        host_clock: the host time base in nanoseconds (``time.time_ns``, or the node's ROS clock).
        burst: round trips per synchronisation.
        resync_s: a synchronisation older than this is stale (:meth:`stale`).
        keep: bursts kept for the rate estimate.
        min_span_s: the rate is estimated only from bursts at least this far apart.
        max_drift_ppm: rate error assumed while only one burst is known (crystal tolerance).
    """

    def __init__(self, host_clock: HostClock = time.time_ns, burst: int = 8, resync_s: float = 5.0,
                 keep: int = 8, min_span_s: float = 2.0, max_drift_ppm: float = 200.0) -> None:
        if burst < 1 or keep < 1:
            raise ValueError(f"burst and keep must be >= 1, got {burst}, {keep}")
        self.host_clock = host_clock
        self.burst = burst
        self.resync_s = resync_s
        self.keep = keep
        self.min_span_s = min_span_s
        self.max_drift_ppm = max_drift_ppm
        self.samples: List[ClockSample] = []
        self.boot_id: Optional[int] = None
        self._synced_at = 0.0

    def reset(self) -> None:
        """Forget every sample (the device clock restarted)."""
        self.samples.clear()
        self._synced_at = 0.0

    def stale(self, boot_id: Optional[int] = None) -> bool:
        """Tell whether a new burst is due (none yet, too old, or the device rebooted since)."""
        if boot_id is not None and boot_id != self.boot_id:
            return True
        return not self.samples or time.monotonic() - self._synced_at > self.resync_s

    def sync(self, read_device_us: Callable[[], int], boot_id: Optional[int] = None) -> ClockSample:
        """Take one burst of round trips through ``read_device_us`` (``McuLink.clock``); keep the best."""
        if boot_id is not None and boot_id != self.boot_id:
            self.reset()
            self.boot_id = boot_id
        best: Optional[ClockSample] = None
        for _ in range(self.burst):
            t0 = self.host_clock()
            d_us = read_device_us()
            t1 = self.host_clock()
            s = ClockSample(int(d_us) * 1000, (t0 + t1) // 2, (t1 - t0 + 1) // 2)
            if best is None or s.half_rtt_ns < best.half_rtt_ns:
                best = s
        assert best is not None
        self.samples.append(best)
        del self.samples[:-self.keep]
        self._synced_at = time.monotonic()
        return best

    def add(self, sample: ClockSample) -> None:
        """Add a measured sample (for offline use and tests)."""
        self.samples.append(sample)
        del self.samples[:-self.keep]
        self._synced_at = time.monotonic()

    def to_host(self, device_us: int) -> Tuple[int, int]:
        """Device microseconds -> (host ns, error bound ns); ValueError before the first :meth:`sync`."""
        if not self.samples:
            raise ValueError("no clock synchronisation yet: call sync() first")
        d = int(device_us) * 1000
        a, b = self.samples[0], self.samples[-1]
        span = b.device_ns - a.device_ns
        if len(self.samples) < 2 or span < self.min_span_s * 1e9:
            ref = min(self.samples, key=lambda s: abs(s.device_ns - d))
            gap = abs(d - ref.device_ns)
            return ref.host_ns + (d - ref.device_ns), int(ref.half_rtt_ns + gap * self.max_drift_ppm * 1e-6)
        lam = (d - a.device_ns) / span
        host = a.host_ns + lam * (b.host_ns - a.host_ns)
        return int(round(host)), int(abs(1.0 - lam) * a.half_rtt_ns + abs(lam) * b.half_rtt_ns) + 1

    @property
    def last_bound_ns(self) -> int:
        """Half the round trip of the latest burst: the bound of a stamp taken at that instant."""
        return self.samples[-1].half_rtt_ns if self.samples else 0
