"""Inference off the ROS callbacks: the shared engine, the frame worker and the bounded call.

A ROS callback must never wait for inference, and a service must answer within
its timeout even when inference does not.  Three small pieces give that:

- :class:`SharedEngine` holds the configured engine; one ``detect`` runs at a time
  (the ONNX sessions and the MCU link are not re-entrant).
- :class:`FrameWorker` is the thread that drains a newest-only
  :class:`~tinyvlm_ros.latest.LatestSlot` and hands each frame to a function.
- :class:`BoundedCall` runs a job on a thread of its own and waits for it at most
  a given time; a result that comes too late is discarded and reported.

Plain Python (no rclpy), tested with plain pytest.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, Generic, List, Optional, Sequence, Tuple, TypeVar

import numpy as np

from tinyvlm_ros.latest import LatestSlot
from tinyvlm_ros.types import DetectionResult, Engine

T = TypeVar("T")


class SharedEngine:
    """The node's engine, used by the frame worker and the service one call at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engine: Optional[Engine] = None

    def set(self, engine: Engine) -> None:
        with self._lock:
            self._engine = engine

    @property
    def present(self) -> bool:
        return self._engine is not None

    def release(self, timeout: float = 5.0) -> bool:
        """Forget the engine and close it; False when a detect() still held it after ``timeout`` s."""
        got = self._lock.acquire(timeout=timeout)
        try:
            engine, self._engine = self._engine, None
        finally:
            if got:
                self._lock.release()
        close = getattr(engine, "close", None)
        if callable(close):
            close()
        return got

    def describe(self) -> Dict[str, str]:
        """Return the engine's description (backend, models, ...) as strings; {} without an engine."""
        engine = self._engine
        return {str(k): str(v) for k, v in engine.describe().items()} if engine is not None else {}

    def health(self) -> Tuple[bool, str]:
        """Return (degraded, reason) of the engine (e.g. an MCU that stopped answering)."""
        engine = self._engine
        if engine is None or not getattr(engine, "degraded", False):
            return False, ""
        return True, str(getattr(engine, "last_error", "") or "backend unreachable")

    def detect(self, rgb: np.ndarray, command: Any, *, score_threshold: Optional[float],
               max_detections: int, mode: Optional[str] = None,
               timeout: Optional[float] = None) -> Optional[DetectionResult]:
        """Run the engine on one frame; None when no engine is configured.

        Raises:
            TimeoutError: another detect() held the engine for ``timeout`` seconds.
        """
        if not self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            raise TimeoutError(f"the engine stayed busy for {timeout:g} s")
        try:
            engine = self._engine
            if engine is None:
                return None
            if mode is not None and hasattr(engine, "mode"):
                engine.mode = mode
            return engine.detect(rgb, command, score_threshold=score_threshold,
                                 max_detections=max_detections)
        finally:
            self._lock.release()

    def score_regions(self, image: np.ndarray, boxes: Sequence[Sequence[float]],
                      masks: Sequence[Optional[np.ndarray]], phrases: Sequence[str]) -> List[Optional[float]]:
        """Re-score regions of ``image`` against phrases (tracking's re-verification), one call at a time.

        An engine without ``score_regions`` (the MCU) or no engine answers None per region: the
        caller then leaves those tracks as they are.
        """
        with self._lock:
            engine = self._engine
            score = getattr(engine, "score_regions", None) if engine is not None else None
            if score is None:
                return [None] * len(boxes)
            return [float(v) for v in score(image, boxes, masks, phrases)]

    def capture(self, command: Any, *, score_threshold: Optional[float],
                max_detections: int) -> Optional[Tuple[DetectionResult, Any]]:
        """Ask an engine with its own camera (the MCU in device-camera mode) to capture and detect.

        Returns:
            (result, capture info with ``stamp_ns``, ``error_ns``, ``width``, ``height``), or None
            when no engine is configured.
        """
        with self._lock:
            engine = self._engine
            if engine is None:
                return None
            return engine.capture(command, score_threshold=score_threshold, max_detections=max_detections)


class FrameWorker:
    """A thread that takes the newest item from a slot and passes it to ``handle``.

    Args:
        slot: the newest-only hand-off the callbacks put frames into.
        handle: called with each item taken, on the worker thread.
        on_error: called with any exception ``handle`` raises while the worker runs (the
            worker carries on); exceptions raised after :meth:`stop` are shutdown noise
            and are dropped.
        rate_limit_hz: returns the current limit (0: none); read before every frame.
        on_leftover: called with an item still in the slot when the worker stops.
        take: where items come from, ``take(timeout) -> item or None``; default the slot's
            newest frame (a device that captures its own frames supplies its own).
    """

    def __init__(self, slot: LatestSlot, handle: Callable[[Any], None],
                 on_error: Callable[[BaseException], None],
                 rate_limit_hz: Callable[[], float] = lambda: 0.0,
                 on_leftover: Callable[[Any], None] = lambda item: None,
                 name: str = "tinyvlm-worker",
                 take: Optional[Callable[[float], Any]] = None) -> None:
        self._slot = slot
        self._take = take if take is not None else slot.take
        self._handle = handle
        self._on_error = on_error
        self._rate = rate_limit_hz
        self._on_leftover = on_leftover
        self._running = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._name = name

    @property
    def running(self) -> bool:
        """Return True between :meth:`start` and :meth:`stop`; a handler checks it before publishing."""
        return self._running.is_set()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("FrameWorker already started")
        self._slot.reopen()
        self._running.set()
        # daemon: a frame stuck in a slow engine must not keep the process alive at exit
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop taking frames and wait up to ``timeout`` s for the one in progress; True if it ended."""
        self._running.clear()
        self._slot.close()
        thread, self._thread = self._thread, None
        stopped = True
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            stopped = not thread.is_alive()
        left = self._slot.take(timeout=0.0)
        if left is not None:
            self._on_leftover(left)
        return stopped

    def _loop(self) -> None:
        last_start = 0.0
        while self._running.is_set():
            limit = float(self._rate())
            if limit > 0:
                wait = last_start + 1.0 / limit - time.monotonic()
                if wait > 0:
                    # frames that arrive meanwhile replace each other in the slot (counted drops)
                    time.sleep(min(wait, 0.2))
                    continue
            item = self._take(0.2)
            if item is None:
                continue
            if not self._running.is_set():
                self._on_leftover(item)
                break
            last_start = time.monotonic()
            try:
                self._handle(item)
            except Exception as exc:  # one bad frame must not end the worker
                if self._running.is_set():
                    self._on_error(exc)


class _Job(Generic[T]):
    def __init__(self, fn: Callable[[], T]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.result: Optional[T] = None
        self.error: Optional[BaseException] = None
        self.finished = False
        self.abandoned = False


class BoundedCall:
    """Run one job at a time on its own thread; the caller waits at most a timeout.

    A job that is still running when its caller gives up keeps running (Python
    cannot interrupt an ONNX session or a serial read) but its result is
    discarded: ``on_late`` is called once it finishes, so it can be counted.  The
    next call first waits, within its own timeout, for that job to end, so at
    most one job runs at any time.
    """

    def __init__(self, on_late: Callable[[], None] = lambda: None, name: str = "tinyvlm-call") -> None:
        self._on_late = on_late
        self._name = name
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None

    def run(self, fn: Callable[[], T], timeout: float) -> T:
        """Return ``fn()`` or raise what it raised.

        Raises:
            TimeoutError: ``fn`` (or the job before it) did not finish within ``timeout`` s.
        """
        deadline = time.monotonic() + max(0.0, float(timeout))
        if not self._lock.acquire(timeout=max(0.0, float(timeout))):
            raise TimeoutError(f"another call held the worker for {timeout:g} s")
        try:
            prev = self._thread
            if prev is not None and prev.is_alive():
                prev.join(max(0.0, deadline - time.monotonic()))
                if prev.is_alive():
                    raise TimeoutError(f"the previous request was still running after {timeout:g} s")
            job: _Job[T] = _Job(fn)
            self._thread = threading.Thread(target=self._execute, args=(job,), name=self._name, daemon=True)
            self._thread.start()
            job.done.wait(max(0.0, deadline - time.monotonic()))
            with job.lock:
                if not job.finished:
                    job.abandoned = True
                    raise TimeoutError(f"no result within {timeout:g} s (the job still runs; its result "
                                       "will be discarded)")
        finally:
            self._lock.release()
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def _execute(self, job: "_Job[Any]") -> None:
        try:
            job.result = job.fn()
        except BaseException as exc:  # handed to the caller, who decides
            job.error = exc
        with job.lock:
            job.finished = True
            late = job.abandoned
        job.done.set()
        if late:
            self._on_late()
