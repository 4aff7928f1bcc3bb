"""``tinyvlm bench bag --tracking`` offline on a short generated sequence bag, and the generated docs section.

Real bags (rosbags), the real detector on the known-answer ONNX models, the
tracking loop the node runs; identity metrics recomputed here with motmetrics
from the output bag must equal the report's.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from tinyvlm_ros import cli
from tinyvlm_ros.bench import bagio
from tinyvlm_ros.bench.make_bag import make_sequence_bag
from tinyvlm_ros.bench.tracking_docs import END, START, TrackingRun, render_section, replace_section
from tinyvlm_ros.geometry import iou_matrix
from tinyvlm_ros.testing.sequences import render, sequence

FRAMES = 45


@pytest.fixture(scope="module")
def slide_bag(tmp_path_factory):
    return make_sequence_bag(tmp_path_factory.mktemp("seq") / "slide", "slide", storage="sqlite3",
                             frames=FRAMES)


@pytest.fixture(scope="module")
def offline(slide_bag, tmp_path_factory):
    """One offline tracking replay of the slide bag with the known-answer set: (summary, out dir, stdout)."""
    from tinyvlm_ros.testing.models import make_known_answer_set

    models = make_known_answer_set(tmp_path_factory.mktemp("ka"))
    out = tmp_path_factory.mktemp("run") / "out"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = cli.main(["bench", "bag", str(slide_bag), "--tracking", "--models", str(models),
                       "--engine-latency", "0.3", "--out", str(out)])
    assert rc == 0
    return json.loads((out / "summary.json").read_text()), out, buf.getvalue()


def _read(path: Path, topic: str):
    with bagio.BagReader(path) as r:
        return [r.decode(c, d) for c, _, d in r.raw([topic])]


def test_sequence_bag_ground_truth_carries_identities(slide_bag):
    truth = _read(slide_bag, bagio.TOPIC_GROUND_TRUTH)
    frames = list(render(sequence("slide"), stop=FRAMES))
    assert len(truth) == FRAMES
    for msg, f in zip(truth, frames):
        assert bagio.stamp_ns(msg.header.stamp) == f.stamp_ns
        got = {bagio.object_id(d.id): d for d in msg.detections}
        assert set(got) == {o.identity for o in f.truth}
        for o in f.truth:
            one = type(msg)(header=msg.header, detections=[got[o.identity]])
            d = bagio.msg_to_detections(one, ids=True)[0]
            assert d.track_id == o.identity and d.label == o.label
            assert np.allclose(d.box_xyxy, o.box_xyxy)
    assert bagio.object_id("3/17") == 17 and bagio.object_id("5") == 5 and bagio.object_id("red") == 0


def test_offline_tracking_keeps_one_id_on_slide(offline):
    s, out, stdout = offline
    t = s["tracking"]
    ident = t["identity"]
    assert s["frames"] == FRAMES and s["processed"] == FRAMES
    k = t["frame_kinds"]
    assert sum(k.values()) == FRAMES and k["dropped"] == 0
    # the engine answers 0.3 s after its frame: most frames are tracked, a few carry a fresh answer
    assert 1 <= k["detected"] <= t["loop"]["keyframes"] and k["tracked"] > 5 * k["detected"]
    assert t["loop"]["keyframes"] >= 2 and t["keyframe_ms"]["n"] == t["loop"]["keyframes"]
    assert ident["target_id_switches"] == 0 and ident["target_id_changes"] == 0 and ident["ids_used"] == 1
    assert t["target_identity"] == sequence("slide").target_identity
    assert t["target_iou_median"]["tracked"] >= 0.7
    assert t["latency_ms"]["tracked"]["n"] == k["tracked"] and t["latency_ms"]["tracked"]["p95"] > 0
    assert t["target_rate_hz"] == pytest.approx(30.0, rel=0.01)
    report = (out / "report.md").read_text()
    assert "## Tracking" in report and "MOTA" in report
    assert "tracking: " in stdout and "target id switches 0" in stdout


def test_identity_metrics_are_motmetrics_on_the_published_ids(offline, slide_bag):
    """Recompute MOTA/IDF1/switches from the output bag's ids and the bag's identities with motmetrics."""
    mm = pytest.importorskip("motmetrics")
    s, out, _ = offline
    truth = {bagio.stamp_ns(m.header.stamp): m for m in _read(slide_bag, bagio.TOPIC_GROUND_TRUTH)}
    acc = mm.MOTAccumulator(auto_id=True)
    for msg in _read(out / "bag", bagio.TOPIC_DETECTIONS):
        dets = bagio.msg_to_detections(msg, ids=True)
        gt = [d for d in bagio.msg_to_detections(truth[bagio.stamp_ns(msg.header.stamp)], ids=True)
              if d.label == "red block"]
        iou = iou_matrix(np.array([g.box_xyxy for g in gt]).reshape(-1, 4),
                         np.array([d.box_xyxy for d in dets]).reshape(-1, 4))
        ok = np.array([[g.label == d.label for d in dets] for g in gt], bool).reshape(iou.shape)
        iou = np.where(ok, iou, 0.0)
        acc.update([g.track_id for g in gt], [d.track_id for d in dets],
                   np.where(iou >= 0.5, 1 - iou, np.nan))
    df = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "num_switches", "num_fragmentations"])
    mot = s["tracking"]["identity"]["mot"]
    assert mot["mota"] == pytest.approx(float(df["mota"].iloc[0]), abs=1e-4)
    assert mot["idf1"] == pytest.approx(float(df["idf1"].iloc[0]), abs=1e-4)
    assert mot["num_switches"] == int(df["num_switches"].iloc[0]) == 0
    assert mot["num_fragmentations"] == int(df["num_fragmentations"].iloc[0])


def test_tracking_options_need_tracking(slide_bag, tmp_path, capsys):
    rc = cli.main(["bench", "bag", str(slide_bag), "--engine-latency", "0.3", "--out", str(tmp_path / "o")])
    assert rc != 0 and "go with --tracking" in capsys.readouterr().err


def test_docs_section_goes_between_the_markers(offline, tmp_path):
    s, _, _ = offline
    bad = copy.deepcopy(s)
    bad["tracking"]["latency_ms"]["tracked"]["p95"] = s["tracking"]["latency_ms"]["tracked"]["p95"] + 100.0
    runs = [TrackingRun("slide", 0, "offline", "known-answer", "ka-set", s,
                        ["tinyvlm bench bag X --tracking"], (0.5, 0.7)),
            TrackingRun("slide", 0, "live", "known-answer", "ka-set", bad, ["detect_node ..."], (0.7, 0.9))]
    section = render_section(runs, title="Measured", command="make bench-tracking", date="today",
                             notes=["Live runs left out: because."])
    doc = tmp_path / "tracking.md"
    doc.write_text(f"# Tracking\n\nProse a person wrote.\n\n{START}\nold numbers\n{END}\n\nAfter.\n")
    replace_section(doc, section, "Tracking")
    text = doc.read_text()
    assert text.startswith("# Tracking\n\nProse a person wrote.\n\n") and text.endswith("\n\nAfter.\n")
    assert "old numbers" not in text and text.count(START) == 1 and text.count(END) == 1
    body = text[text.index(START):text.index(END)]
    assert body.index("### known-answer model set ka-set") < body.index("| slide | offline |")
    mot = s["tracking"]["identity"]["mot"]
    assert f"| {mot['mota']:.3f} | {mot['idf1']:.3f} |" in body
    p95 = bad["tracking"]["latency_ms"]["tracked"]["p95"]
    assert f"slide live: tracked-frame p95 {p95:.1f} ms, {p95 - 70:.1f} ms over 70" in body
    assert "Live runs left out: because." in body and "tinyvlm bench bag X --tracking" in body
    assert "0.5 / 0.7" in body
    # no markers yet: the file is made with a title and the section
    fresh = tmp_path / "new.md"
    replace_section(fresh, section, "Tracking")
    assert fresh.read_text().startswith(f"# Tracking\n\n{START}\n")


def test_live_recorder_pairs_info_and_tells_detected_from_tracked_frames():
    """Frames scored in bag order; a frame is detected when the target's verification moved forward."""
    from tinyvlm_ros.bench.live_tracking import LiveTrackingRecorder, info_topic_for
    from tinyvlm_ros.types import Detection

    rec = LiveTrackingRecorder("pick the red block")
    t0, dt = 1_000_000_000, 33_000_000
    truth = [Detection("red block", 1.0, (10, 10, 50, 50), track_id=1)]
    # frame 0: the keyframe's answer (a new track); 1-2 tracked (their verification ages);
    # 3: a later keyframe; 4: dropped; 5: its DetectionInfo never came
    ages = {0: 0.3, 1: 0.333, 2: 0.366, 3: 0.2}
    for i in (3, 1, 0, 2):   # answers may be recorded out of order; the summary sorts them
        stamp = t0 + i * dt
        rec._infos[stamp] = ([7], [1], [ages[i]])
        dets = [Detection("red block", 0.9, (11, 10, 51, 50), track_id=7)]
        rec.answered(i, stamp, truth, dets, 0.01 * (i + 1))
    rec.dropped(4, truth)
    rec.answered(5, t0 + 5 * dt, truth, [Detection("red block", 0.9, (11, 10, 51, 50), track_id=7)], 0.01)
    t = rec.summary(has_truth=True)
    assert t["frame_kinds"] == {"detected": 2, "tracked": 3, "empty": 0, "dropped": 1}
    assert t["info_missing"] == 1 and t["id_mismatches"] == 0
    assert t["identity"]["target_id_switches"] == 0 and t["target_identity"] == 1
    assert t["latency_ms"]["detected"]["n"] == 2 and t["latency_ms"]["tracked"]["n"] == 3
    assert info_topic_for("/robot/detections") == "/robot/detections_info"
    assert info_topic_for("/detections") == "/detections_info"
