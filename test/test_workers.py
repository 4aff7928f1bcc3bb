"""Inference off the callbacks: bounded call, frame worker, shared engine (tinyvlm_ros.workers)."""

import threading
import time

import numpy as np
import pytest

from tinyvlm_ros.latest import LatestSlot
from tinyvlm_ros.types import DetectionResult
from tinyvlm_ros.workers import BoundedCall, FrameWorker, SharedEngine


def test_bounded_call_returns_the_result_or_raises_the_jobs_error():
    call = BoundedCall()
    assert call.run(lambda: 41 + 1, timeout=5) == 42
    with pytest.raises(KeyError, match="boom"):
        call.run(lambda: {}["boom"], timeout=5)


def test_bounded_call_gives_up_on_a_long_job_and_counts_its_late_result():
    late = []
    release = threading.Event()
    call = BoundedCall(on_late=lambda: late.append(1))

    def slow():
        release.wait(10)
        return "too late"

    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="still runs"):
        call.run(slow, timeout=0.2)
    assert time.monotonic() - t0 < 5.0
    assert late == []                 # still running: nothing reported yet
    # the next call waits for the abandoned job within its own timeout, then gives up too
    with pytest.raises(TimeoutError, match="previous request"):
        call.run(lambda: "next", timeout=0.1)
    release.set()
    deadline = time.monotonic() + 5
    while not late and time.monotonic() < deadline:
        time.sleep(0.01)
    assert late == [1]                # the late result was discarded and reported once
    assert call.run(lambda: "next", timeout=5) == "next"


def test_frame_worker_takes_only_the_newest_and_survives_a_failing_frame():
    slot = LatestSlot()
    seen, errors, gate = [], [], threading.Event()

    def handle(item):
        if item == "bad":
            raise RuntimeError("bad frame")
        gate.wait(5)
        seen.append(item)

    worker = FrameWorker(slot, handle, errors.append)
    worker.start()
    slot.put("bad")
    deadline = time.monotonic() + 5
    while not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [str(e) for e in errors] == ["bad frame"] and worker.running
    slot.put(1)                            # taken at once, blocks on the gate
    time.sleep(0.2)
    for i in range(2, 6):
        slot.put(i)                        # 2..4 are replaced: only 5 is left for the worker
    gate.set()
    deadline = time.monotonic() + 5
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [1, 5] and slot.dropped == 3
    assert worker.stop(timeout=5)


def test_frame_worker_stop_hands_back_what_is_left_and_silences_shutdown_errors():
    slot = LatestSlot()
    leftover, errors = [], []
    started, release = threading.Event(), threading.Event()

    def handle(item):
        started.set()
        release.wait(5)
        raise RuntimeError("context is invalid")   # what a publish does after shutdown

    worker = FrameWorker(slot, handle, errors.append, on_leftover=leftover.append)
    worker.start()
    slot.put("in flight")
    assert started.wait(5)
    slot.put("waiting")
    stopper = threading.Thread(target=worker.stop, kwargs={"timeout": 5})
    stopper.start()
    time.sleep(0.1)
    release.set()
    stopper.join(10)
    assert leftover == ["waiting"]
    assert errors == []                    # an error raised while stopping is not reported


def test_frame_worker_respects_the_rate_limit():
    slot = LatestSlot()
    times = []
    worker = FrameWorker(slot, lambda item: times.append(time.monotonic()), lambda e: None,
                         rate_limit_hz=lambda: 5.0)
    worker.start()
    t_end = time.monotonic() + 1.2
    while time.monotonic() < t_end:
        slot.put(object())
        time.sleep(0.01)
    worker.stop(timeout=5)
    gaps = np.diff(times)
    assert len(times) >= 2 and gaps.min() >= 0.19


class _Engine:
    name = "test"

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()
        self.mode = "fast"
        self.closed = False

    def detect(self, image, command, *, score_threshold=None, max_detections=None):
        self.entered.set()
        self.release.wait(10)
        return DetectionResult(targets=[command])

    def describe(self):
        return {"models": "test", "mode": self.mode}

    def close(self):
        self.closed = True


def test_shared_engine_runs_one_detect_at_a_time_and_times_out_waiting():
    shared = SharedEngine()
    assert shared.detect(np.zeros((4, 4, 3), np.uint8), "x", score_threshold=None, max_detections=1) is None
    engine = _Engine()
    shared.set(engine)
    frame = np.zeros((4, 4, 3), np.uint8)
    busy = threading.Thread(target=shared.detect, args=(frame, "pen"),
                            kwargs=dict(score_threshold=None, max_detections=1, mode="thorough"))
    busy.start()
    assert engine.entered.wait(5) and engine.mode == "thorough"
    with pytest.raises(TimeoutError, match="busy"):
        shared.detect(frame, "cup", score_threshold=None, max_detections=1, timeout=0.1)
    engine.release.set()
    busy.join(5)
    assert shared.detect(frame, "cup", score_threshold=None, max_detections=1).targets == ["cup"]
    assert shared.describe() == {"models": "test", "mode": "thorough"}
    assert shared.release() and engine.closed and shared.describe() == {}
