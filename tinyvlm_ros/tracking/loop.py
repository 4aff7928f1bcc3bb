"""The per-frame tracking loop around an engine that runs at its own pace.

:class:`TrackingLoop` is what the node's frame worker and the offline bag
replay both run, one call per camera frame: track the frame, fold in whatever
the engine finished since the last frame, and say which engine job (a
keyframe, or a re-verification of tracked crops) should start now, if the
engine is free.  The caller owns the engine and its thread (or, offline, its
simulated clock) and hands answers back with the next frame; the loop never
waits for the engine and never queues frames.

Answers that belong to an older command (``generation``) are dropped, so a
slow keyframe started before a new command can never resurrect old targets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from tinyvlm_ros.tracking.frame import Frame
from tinyvlm_ros.tracking.manager import KeyframeOutcome, TrackingConfig, TrackManager
from tinyvlm_ros.types import Detection, DetectionResult

KEYFRAME, VERIFY = "keyframe", "verify"


@dataclass
class EngineJob:
    """Work for the engine: detect on a keyframe, or re-score tracked regions of a frame.

    Attributes:
        kind: ``"keyframe"`` or ``"verify"``.
        frame: the frame to run on (the engine reads ``frame.rgb`` only).
        generation: the command generation the job belongs to.
        reason: why the keyframe was taken (see :mod:`.keyframes`).
        track_ids, boxes, masks, labels: for ``verify``: which tracks, where, and their phrases.
    """

    kind: str
    frame: Frame
    generation: int
    reason: str = ""
    track_ids: List[int] = field(default_factory=list)
    boxes: List[Tuple[float, float, float, float]] = field(default_factory=list)
    masks: List[Optional[np.ndarray]] = field(default_factory=list)
    labels: List[str] = field(default_factory=list)


@dataclass
class EngineAnswer:
    """What the engine made of a job; ``error`` is set instead when it failed."""

    job: EngineJob
    result: Optional[DetectionResult] = None
    scores: Optional[Sequence[Optional[float]]] = None
    error: str = ""
    seconds: float = 0.0


def run_job(engine: Any, job: EngineJob, command: Any, *, score_threshold: Optional[float] = None,
            max_detections: Optional[int] = None, options: Optional[Dict[str, Any]] = None) -> EngineAnswer:
    """Run one job on ``engine`` (blocking); exceptions become ``EngineAnswer.error``.

    Re-verification needs the engine's optional ``score_regions(image, boxes, masks, phrases)``; an
    engine without it (or one that answers None for a region) leaves those tracks as they are
    (keyframes alone then verify).  ``options`` are further keyword arguments of ``engine.detect``.
    """
    t0 = time.perf_counter()
    try:
        if job.kind == KEYFRAME:
            result = engine.detect(job.frame.rgb, command, score_threshold=score_threshold,
                                   max_detections=max_detections, **(options or {}))
            return EngineAnswer(job, result=result, seconds=time.perf_counter() - t0)
        score = getattr(engine, "score_regions", None)
        if score is None:
            scores: Sequence[Optional[float]] = [None] * len(job.track_ids)
        else:
            scores = [None if s is None else float(s)
                      for s in score(job.frame.rgb, job.boxes, job.masks, job.labels)]
        return EngineAnswer(job, scores=scores, seconds=time.perf_counter() - t0)
    except Exception as exc:  # the loop must survive whatever one engine call does
        return EngineAnswer(job, error=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - t0)


class TrackingLoop:
    """Track every frame; keep the engine busy with keyframes and re-verification when it is free.

    Args:
        config: tracking parameters.
        verify_threshold: a re-verified track scoring below this is dropped (the engine's units).
        with_masks: attach each track's mask to the published detections.
    """

    def __init__(self, config: Optional[TrackingConfig] = None, verify_threshold: float = 0.5,
                 with_masks: bool = False) -> None:
        self.manager = TrackManager(config)
        self.verify_threshold = float(verify_threshold)
        self.with_masks = with_masks
        self.generation = 0
        self.busy = False
        self.last_outcome: Optional[KeyframeOutcome] = None
        self.stats: Dict[str, int] = {"frames": 0, "keyframes": 0, "verifications": 0, "engine_errors": 0,
                                      "stale_answers": 0}
        self.reasons: Dict[str, int] = {}

    def new_command(self) -> None:
        """Forget the tracks; the next frame becomes a keyframe as soon as the engine is free."""
        self.generation += 1
        self.manager.reset()

    def abandon(self) -> None:
        """Forget the engine job in flight (its engine was stopped) and the tracks: start over.

        Its answer, should it still come, belongs to an older generation and is dropped.
        """
        self.new_command()
        self.busy = False

    def step(self, frame: Frame,
             answers: Iterable[EngineAnswer] = ()) -> Tuple[List[Detection], Optional[EngineJob]]:
        """Process one frame: returns (detections to publish for it, engine job to start or None)."""
        self.stats["frames"] += 1
        self.manager.track(frame)
        for answer in answers:
            self.apply(answer)
        job = None if self.busy else self._next_job(frame)
        if job is not None:
            self.busy = True
        return self.manager.detections(self.with_masks), job

    def apply(self, answer: EngineAnswer) -> None:
        """Fold one engine answer in (the engine is free again)."""
        self.busy = False
        job = answer.job
        if job.generation != self.generation:
            self.stats["stale_answers"] += 1
            return
        if answer.error:
            self.stats["engine_errors"] += 1
            if job.kind == KEYFRAME:
                self.manager.cancel_keyframe()
            return
        if job.kind == KEYFRAME and answer.result is not None:
            self.last_outcome = self.manager.apply_keyframe(job.frame, answer.result)
        elif job.kind == VERIFY and answer.scores is not None:
            self.manager.apply_verification(job.frame.stamp_ns, dict(zip(job.track_ids, answer.scores)),
                                            self.verify_threshold)

    def _next_job(self, frame: Frame) -> Optional[EngineJob]:
        reason = self.manager.keyframe_reason(frame)
        if reason is not None:
            self.manager.begin_keyframe(frame)
            self.stats["keyframes"] += 1
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
            return EngineJob(KEYFRAME, frame, self.generation, reason=reason)
        due = self.manager.verification_due(frame.stamp_ns)
        if not due:
            return None
        self.stats["verifications"] += 1
        return EngineJob(VERIFY, frame, self.generation, reason="reverify", track_ids=[t.id for t in due],
                         boxes=[tuple(float(v) for v in t.box) for t in due],
                         masks=[t.mask_in(frame.shape) for t in due], labels=[t.label for t in due])


class OfflineEngine:
    """An engine replayed on a recorded stream's clock (bag replay, tests).

    Jobs run at once; answers become available ``latency`` seconds of *stream time* after their
    frame, as they would live.

    Args:
        engine: the detection engine.
        command: the standing command.
        latency_s: fixed answer delay; None uses each call's measured wall time (what the node would see).
        score_threshold, max_detections: passed to ``engine.detect``.
    """

    def __init__(self, engine: Any, command: Any, latency_s: Optional[float] = None,
                 score_threshold: Optional[float] = None, max_detections: Optional[int] = None) -> None:
        self.engine = engine
        self.command = command
        self.latency_s = latency_s
        self.score_threshold = score_threshold
        self.max_detections = max_detections
        self._pending: List[Tuple[int, EngineAnswer]] = []
        self.engine_seconds: List[float] = []

    def submit(self, job: EngineJob) -> None:
        answer = run_job(self.engine, job, self.command, score_threshold=self.score_threshold,
                         max_detections=self.max_detections)
        if job.kind == KEYFRAME:
            self.engine_seconds.append(answer.seconds)
        delay = answer.seconds if self.latency_s is None else self.latency_s
        self._pending.append((job.frame.stamp_ns + int(delay * 1e9), answer))

    def ready(self, stamp_ns: int) -> List[EngineAnswer]:
        """Answers due at or before ``stamp_ns`` (in submission order)."""
        due = [a for t, a in self._pending if t <= stamp_ns]
        self._pending = [(t, a) for t, a in self._pending if t > stamp_ns]
        return due
