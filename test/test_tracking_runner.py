"""The live tracking runner: frames tracked on the caller's thread, the engine on its own, never queued.

Real engines: the known-answer detector for the end-to-end case; a gated engine (answers the
ground truth only once the test opens a gate) to control exactly when the engine is busy.
"""

from __future__ import annotations

import threading
import time

import pytest

from tinyvlm_ros.engine.detector import Detector
from tinyvlm_ros.testing.models import make_known_answer_set
from tinyvlm_ros.testing.sequences import render, sequence
from tinyvlm_ros.tracking import Frame, TrackingConfig
from tinyvlm_ros.tracking.runner import JobSettings, TrackingRunner
from tinyvlm_ros.types import Detection, DetectionResult
from tinyvlm_ros.workers import SharedEngine

SPEC = sequence("slide")
FRAMES = list(render(SPEC, stop=60))


class GatedEngine:
    """Answers a keyframe with the ground truth of the red block, once the gate is open."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.started = threading.Event()
        self.calls = 0

    def detect(self, rgb, command, *, score_threshold=None, max_detections=None, mode=None):
        self.calls += 1
        self.started.set()
        if not self.gate.wait(10.0):
            raise TimeoutError("the test never opened the gate")
        frame = next(f for f in FRAMES if f.image is rgb or (f.image == rgb).all())
        return DetectionResult([Detection(o.label, 0.9, tuple(float(v) for v in o.box_xyxy))
                                for o in frame.truth if o.label == "red block"], targets=["red block"])


def _frame(i):
    return Frame(FRAMES[i].stamp_ns, FRAMES[i].image)


def _step_until(runner, start, predicate, settings, key=1, timeout=10.0):
    """Step frames from ``start`` (the last one again when they run out) until ``predicate(step)``."""
    deadline = time.monotonic() + timeout
    i = start
    while time.monotonic() < deadline:
        step = runner.step(_frame(min(i, len(FRAMES) - 1)), key, settings)
        if predicate(step):
            return i, step
        i += 1
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def test_steps_never_wait_for_a_busy_engine_and_jobs_never_queue():
    engine = GatedEngine()
    runner = TrackingRunner(engine, TrackingConfig(keyframe_period_s=0.0))
    runner.start()
    try:
        settings = JobSettings("pick the red block")
        first = runner.step(_frame(0), 1, settings)
        assert first.job is not None and first.job.kind == "keyframe" and first.detections == []
        assert engine.started.wait(5.0)
        # the engine is stuck on frame 0: every further frame is still tracked and answered at once,
        # and no second job is handed over while it is busy
        for i in range(1, 20):
            step = runner.step(_frame(i), 1, settings)
            assert step.job is None and step.detections == []
        assert engine.calls == 1 and runner.loop.busy
        engine.gate.set()
        i, step = _step_until(runner, 20, lambda s: bool(s.detections), settings)
        target = step.detections[0]
        assert target.label == "red block" and target.tracked and target.track_id >= 1
        assert target.verified_age_s > 0   # carried over from frame 0
        snap = runner.snapshot()
        assert snap["frames_tracked"] == i + 1 and snap["keyframes"] >= 1 and snap["engine_errors"] == 0
    finally:
        engine.gate.set()
        assert runner.stop(5.0)


def test_an_answer_computed_across_stop_is_never_folded_in():
    engine = GatedEngine()
    runner = TrackingRunner(engine, TrackingConfig(keyframe_period_s=0.0))
    runner.start()
    settings = JobSettings("pick the red block")
    assert runner.step(_frame(0), 1, settings).job is not None
    assert engine.started.wait(5.0)
    assert runner.stop(0.1) is False          # the engine is still inside detect()
    with pytest.raises(RuntimeError, match="start"):
        runner.step(_frame(1), 1, settings)
    runner.start()
    try:
        # after the restart the loop is free again: the first frame asks for a keyframe of its own
        again = runner.step(_frame(1), 1, settings)
        assert again.job is not None and again.job.frame.stamp_ns == FRAMES[1].stamp_ns
        engine.gate.set()
        _, step = _step_until(runner, 2, lambda s: bool(s.answers), settings)
        # only the second job's answer arrives; the first one's was thrown away
        assert [a.job.frame.stamp_ns for a in step.answers] == [FRAMES[1].stamp_ns]
        assert runner.snapshot()["stale_answers"] == 0
    finally:
        engine.gate.set()
        assert runner.stop(5.0)


def test_new_command_and_older_frames_start_over():
    engine = GatedEngine()
    engine.gate.set()
    runner = TrackingRunner(engine, TrackingConfig(keyframe_period_s=0.5))
    runner.start()
    try:
        settings = JobSettings("pick the red block")
        i, step = _step_until(runner, 0, lambda s: bool(s.detections), settings)
        first_id = step.detections[0].track_id
        # the same command keeps its tracks; a new one (another key) forgets them at once
        assert runner.step(_frame(i + 1), 1, settings).detections[0].track_id == first_id
        assert runner.step(_frame(i + 2), 2, settings).detections == []
        _, step = _step_until(runner, i + 3, lambda s: bool(s.detections), settings, key=2)
        assert step.detections[0].track_id > first_id          # ids are never reused
        # a replay that starts over (older stamps) is a restart, not an error
        back = runner.step(_frame(0), 2, settings)
        assert back.detections == [] and runner.snapshot()["clock_restarts"] == 1
    finally:
        assert runner.stop(5.0)


def test_engine_errors_are_answers_and_the_runner_goes_on():
    class Broken:
        def detect(self, rgb, command, **kw):
            raise RuntimeError("device unplugged")

    runner = TrackingRunner(Broken(), TrackingConfig())
    runner.start()
    try:
        _, step = _step_until(runner, 0, lambda s: bool(s.errors), JobSettings("pick the red block"))
        assert step.errors == ["RuntimeError: device unplugged"]
        assert runner.snapshot()["engine_errors"] == 1
    finally:
        assert runner.stop(5.0)


def test_known_answer_detector_through_the_shared_engine(tmp_path):
    shared = SharedEngine()
    shared.set(Detector.from_dir(make_known_answer_set(tmp_path / "ka")))
    # re-verification goes through the shared engine's score_regions (one engine call at a time)
    runner = TrackingRunner(shared, TrackingConfig(reverify_period_s=0.3), verify_threshold=0.5)
    runner.start()
    try:
        settings = JobSettings("pick the red block", 0.5, 10, {"mode": "fast"})
        ids, published = set(), 0
        for k in range(60):                      # 2 s of the sequence at its own 30 Hz
            f = FRAMES[k]
            step = runner.step(Frame(f.stamp_ns, f.image), 1, settings)
            if step.detections:
                published += 1
                ids.add(step.detections[0].track_id)
                assert step.detections[0].role == "target"
            time.sleep(1 / 30)
        snap = runner.snapshot()
    finally:
        assert runner.stop(10.0)
    assert snap["frames_tracked"] == 60 and 1 <= snap["keyframes"] < 60
    assert published >= 30 and len(ids) == 1
    assert snap["engine_errors"] == 0


def test_shared_engine_score_regions_without_an_engine_that_can():
    shared = SharedEngine()
    assert shared.score_regions(None, [(0, 0, 1, 1)], [None], ["cup"]) == [None]
    shared.set(GatedEngine())
    assert shared.score_regions(None, [(0, 0, 1, 1), (1, 1, 2, 2)], [None, None], ["a", "b"]) == [None, None]
