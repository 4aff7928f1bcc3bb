"""Tracking with the real detector on the known-answer ONNX models: re-verification and a whole sequence."""

from __future__ import annotations

import numpy as np
import pytest

from tinyvlm_ros.engine.detector import Detector
from tinyvlm_ros.testing.models import make_known_answer_set
from tinyvlm_ros.testing.sequences import render, sequence
from tinyvlm_ros.tracking import Frame, OfflineEngine, TrackingConfig, TrackingLoop, run_job
from tinyvlm_ros.tracking.metrics import TrackingScore, TruthBox


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    return Detector.from_dir(make_known_answer_set(tmp_path_factory.mktemp("ka")))


def _mask(shape, box):
    m = np.zeros(shape, bool)
    x0, y0, x1, y1 = (int(v) for v in box)
    m[y0:y1, x0:x1] = True
    return m


def test_score_regions_confirms_the_object_and_rejects_the_table(detector):
    f = next(iter(render(sequence("slide"), stop=1)))
    red, ball = f.find(1).box_xyxy, f.find(2).box_xyxy
    table = (300.0, 150.0, 370.0, 220.0)
    s = detector.score_regions(f.image, [red, table, ball], [_mask(f.image.shape[:2], red), None, None],
                               ["red block", "red block", "red block"])
    assert s.shape == (3,) and s[0] >= 0.5 and s[1] < 0.5 and s[2] < 0.5
    assert detector.score_regions(f.image, [], [], []).shape == (0,)
    with pytest.raises(ValueError, match="one mask and phrase per box"):
        detector.score_regions(f.image, [red], [], ["red block"])


def test_a_track_that_drifted_onto_the_table_fails_reverification(detector):
    spec = sequence("slide")
    frames = list(render(spec, stop=30))
    loop = TrackingLoop(TrackingConfig(reverify_period_s=0.2, keyframe_period_s=10.0))
    engine = OfflineEngine(detector, spec.command, latency_s=0.0)
    loop.new_command()
    jobs = []
    for f in frames:
        dets, job = loop.step(Frame(f.stamp_ns, f.image), engine.ready(f.stamp_ns))
        if job is not None:
            jobs.append(job)
            if job.kind == "verify" and len([j for j in jobs if j.kind == "verify"]) == 2:
                # the tracker has drifted onto the table: what the engine gets to re-score is the table
                job.boxes = [(300.0, 150.0, 370.0, 220.0)]
                job.masks = [None]
            engine.submit(job)
        if loop.manager.counters["verify_failed"]:
            break
    kinds = [j.kind for j in jobs]
    assert kinds[0] == "keyframe" and "verify" in kinds
    assert loop.manager.counters["verified"] >= 1          # the first re-verification passed
    assert loop.manager.counters["verify_failed"] == 1     # the drifted one did not
    assert loop.manager.tracks == [] and loop.manager.target_id is None
    # the same frame that learnt it asks for a keyframe to find the target again
    assert jobs[-1].kind == "keyframe" and jobs[-1].reason == "empty"
    assert jobs[-1].frame.stamp_ns == f.stamp_ns


def test_engine_failures_cancel_the_keyframe_and_the_loop_goes_on(detector):
    f = next(iter(render(sequence("slide"), stop=1)))
    loop = TrackingLoop()
    loop.new_command()
    _, job = loop.step(Frame(f.stamp_ns, f.image))
    answer = run_job(detector, job, "")   # an empty command: the engine refuses it
    assert answer.error.startswith("CommandError: empty command")  # a ValueError subclass
    loop.apply(answer)
    assert loop.stats["engine_errors"] == 1 and not loop.busy


def test_known_answer_detector_tracks_a_sliding_target_with_one_id(detector):
    spec = sequence("slide")
    loop = TrackingLoop(TrackingConfig())
    engine = OfflineEngine(detector, spec.command, latency_s=0.3)
    score = TrackingScore()
    loop.new_command()
    for f in render(spec, stop=75):
        dets, job = loop.step(Frame(f.stamp_ns, f.image), engine.ready(f.stamp_ns))
        if job is not None:
            engine.submit(job)
        truth = [TruthBox(o.identity, o.label, o.box_xyxy) for o in f.truth if o.label == spec.target_label]
        score.add(truth, dets, spec.target_identity)
    s = score.summary()
    assert s["target_id_switches"] == 0 and s["target_jumps"] == 0 and s["ids_used"] == 1
    assert s["tracked_iou_median"] >= 0.7
    assert s["frames_with_target"] >= 75 - 12
    assert loop.stats["keyframes"] <= 6
