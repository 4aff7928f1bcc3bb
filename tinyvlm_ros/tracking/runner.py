"""Tracking in a live node: every frame tracked on the caller's thread, the engine on a thread of its own.

:class:`TrackingRunner` wraps a :class:`~tinyvlm_ros.tracking.loop.TrackingLoop`
for a process that receives frames in real time (the detect node's frame
worker).  :meth:`TrackingRunner.step` is cheap (optical flow on one frame) and
returns the detections to publish for that very frame; when the loop asks for
an engine job (a keyframe or a re-verification) it is handed to the engine
thread, which runs it at the engine's own pace.  Its answer is folded in on the
first frame after it finished.

Invariants the node relies on:

* ``step`` never waits for the engine (a hand-over under a lock, nothing more);
* at most one job runs and at most one waits, and a job is only started when
  the engine is idle, so no frame is ever queued: the engine always works on
  the newest frame the loop chose;
* the loop is only touched by the thread that calls ``step`` (and by
  :meth:`start`/:meth:`stop` while that thread is not stepping);
* after :meth:`stop` an answer still being computed is thrown away, never
  folded in after a later :meth:`start`.

Plain Python (no rclpy); the engine is anything with the engine interface
(``detect``, optionally ``score_regions``), e.g. the node's shared engine.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Hashable, List, Optional, Tuple

from tinyvlm_ros.stats import Counters, Rate, Window
from tinyvlm_ros.tracking.frame import Frame
from tinyvlm_ros.tracking.loop import KEYFRAME, EngineAnswer, EngineJob, TrackingLoop, run_job
from tinyvlm_ros.tracking.manager import TrackingConfig
from tinyvlm_ros.types import Detection

#: Longest single wait of the engine thread for work (it re-checks whether it was stopped).
IDLE_WAIT_S = 0.5


@dataclass(frozen=True)
class JobSettings:
    """How the engine runs the jobs of one frame's command.

    Attributes:
        command: what ``engine.detect`` gets as the command (text or a parsed command).
        score_threshold, max_detections: passed to ``engine.detect``.
        options: further keyword arguments of ``engine.detect`` (e.g. the node engine's ``mode``).
    """

    command: Any
    score_threshold: Optional[float] = None
    max_detections: Optional[int] = None
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Step:
    """What one frame gave.

    Attributes:
        detections: to publish for this frame (detection 0 = the target; empty while it is not held).
        job: the engine job started on this frame, or None.
        answers: engine answers of the current command folded in on this frame (a keyframe's
            ``result.failure`` says the command cannot be grounded).
        errors: engine errors among those answers, in words.
        seconds: time spent tracking this frame.
    """

    detections: List[Detection]
    job: Optional[EngineJob] = None
    answers: List[EngineAnswer] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)
    seconds: float = 0.0


class TrackingRunner:
    """A tracking loop fed frame by frame and an engine thread beside it; see the module docstring.

    Args:
        engine: the detection engine (``detect``; ``score_regions`` for re-verification).
        config: tracking parameters.
        verify_threshold: a re-verified track scoring below this is dropped (engine units).
        with_masks: attach each track's mask to the published detections.
        name: the engine thread's name.
    """

    def __init__(self, engine: Any, config: Optional[TrackingConfig] = None, *, verify_threshold: float = 0.5,
                 with_masks: bool = False, name: str = "tinyvlm-engine") -> None:
        self.loop = TrackingLoop(config, verify_threshold=verify_threshold, with_masks=with_masks)
        self._engine = engine
        self._name = name
        self._cond = threading.Condition()
        self._epoch = 0
        self._pending: Optional[Tuple[EngineJob, JobSettings]] = None
        self._answers: List[EngineAnswer] = []
        self._thread: Optional[threading.Thread] = None
        self._key: Optional[Hashable] = None
        self._last_stamp_ns: Optional[int] = None
        #: keyframes, verifications, frames_tracked, engine_errors, stale_answers, clock_restarts
        self.counters = Counters()
        self.keyframe_rate = Rate()
        self.tracked_rate = Rate()
        self.engine_seconds = Window()

    # ------------------------------------------------------------------ life cycle
    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        """Start the engine thread; the next frame starts over as for a new command."""
        if self.running:
            raise RuntimeError("TrackingRunner already started")
        self.loop.abandon()
        self._key = None
        self._last_stamp_ns = None
        with self._cond:
            self._epoch += 1
            epoch = self._epoch
        # daemon: an engine call stuck in a dead device must not keep the process alive at exit
        self._thread = threading.Thread(target=self._serve, args=(epoch,), name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the engine thread, waiting up to ``timeout`` s for a job in progress; True if it ended.

        Call it only while no thread is in :meth:`step`.  A job still running after ``timeout``
        finishes on its own, and its answer is discarded.
        """
        with self._cond:
            self._epoch += 1
            self._pending = None
            self._answers = []
            self._cond.notify_all()
        thread, self._thread = self._thread, None
        stopped = True
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, timeout))
            stopped = not thread.is_alive()
        self.loop.abandon()
        return stopped

    # ------------------------------------------------------------------ per frame
    def step(self, frame: Frame, key: Hashable, settings: JobSettings) -> Step:
        """Track ``frame`` for the command identified by ``key``; start an engine job if one is due.

        A new ``key`` (a new command) forgets the tracks; a frame older than the one before (a bag
        that loops, a simulated clock that restarts) does too, counted in ``clock_restarts``.
        """
        if not self.running:
            raise RuntimeError("TrackingRunner.step needs start() first")
        t0 = time.perf_counter()
        if key != self._key:
            self._key = key
            self.loop.new_command()
        elif self._last_stamp_ns is not None and frame.stamp_ns < self._last_stamp_ns:
            self.counters.inc("clock_restarts")
            self.loop.new_command()
        self._last_stamp_ns = frame.stamp_ns
        with self._cond:
            answers, self._answers = self._answers, []
        current = [a for a in answers if a.job.generation == self.loop.generation]
        self.counters.inc("stale_answers", len(answers) - len(current))
        errors = [a.error for a in current if a.error]
        self.counters.inc("engine_errors", len(errors))
        for a in current:
            if a.job.kind == KEYFRAME and not a.error:
                self.engine_seconds.add(a.seconds)
        detections, job = self.loop.step(frame, answers)
        if job is not None:
            with self._cond:
                self._pending = (job, settings)
                self._cond.notify_all()
            if job.kind == KEYFRAME:
                self.counters.inc("keyframes")
                self.keyframe_rate.tick()
            else:
                self.counters.inc("verifications")
        self.counters.inc("frames_tracked")
        self.tracked_rate.tick()
        return Step(detections, job, current, errors, time.perf_counter() - t0)

    def snapshot(self) -> Dict[str, float]:
        """Counters and rates (Hz) for diagnostics; safe from any thread."""
        out: Dict[str, float] = {k: float(v) for k, v in self.counters.snapshot().items()}
        out["keyframe_hz"] = self.keyframe_rate.hz()
        out["tracked_hz"] = self.tracked_rate.hz()
        out["engine_busy"] = 1.0 if self.loop.busy else 0.0
        return out

    # ------------------------------------------------------------------ engine thread
    def _serve(self, epoch: int) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._epoch != epoch or self._pending is not None,
                                    timeout=IDLE_WAIT_S)
                if self._epoch != epoch:
                    return
                if self._pending is None:
                    continue
                job, settings = self._pending
                self._pending = None
            answer = run_job(self._engine, job, settings.command, score_threshold=settings.score_threshold,
                             max_detections=settings.max_detections, options=settings.options)
            with self._cond:
                if self._epoch != epoch:
                    return          # stopped meanwhile: nobody may fold this answer in
                self._answers.append(answer)
