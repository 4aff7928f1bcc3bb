"""Live bag replay: the installed detect_node as a real process, frames over real DDS.

Skips (saying why) when rclpy is not importable; needs the package built (``make build``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tinyvlm_ros.bench import bagio
from tinyvlm_ros.bench.make_bag import make_bag

FRAMES = 12
RATE_HZ = 3.0


def _need_rclpy():
    try:
        import rclpy  # noqa: F401
        import vision_msgs.msg  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"rclpy/vision_msgs not importable (source tools/ros_env/env.sh): {exc}")


@pytest.fixture(scope="module")
def detect_node_exe():
    _need_rclpy()
    import ros_helpers

    return ros_helpers.executable("detect_node")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tinyvlm_ros.testing.models import make_known_answer_set

    return Path(make_known_answer_set(tmp_path_factory.mktemp("ka")))


def test_no_node_is_a_clear_timeout(tmp_path):
    _need_rclpy()
    import ros_helpers
    from tinyvlm_ros.bench.live import run_live

    ros_helpers.isolated_domain()
    bag = make_bag(tmp_path / "b", frames=2, width=64, height=48)
    with pytest.raises(TimeoutError, match="(?s)no detect_node within 1 s.*detect_node --ros-args"):
        run_live(bag, tmp_path / "o", wait_node_s=1.0, detections_topic="/nobody/detections")


@pytest.mark.parametrize("storage,compressed,transport", [
    ("sqlite3", False, "reliable"), ("mcap", False, "large-shm"), ("mcap", True, "default")],
    ids=["sqlite3-raw-reliable", "mcap-raw-best-effort-large-shm-cli", "mcap-compressed"])
def test_live_replay_into_detect_node(detect_node_exe, models, tmp_path, storage, compressed, transport):
    import os
    import subprocess
    import sys

    import ros_helpers
    from tinyvlm_ros.bench.live import detect_node_args, run_live

    # VGA only where the frame size is the point (raw frames beyond Fast DDS's 512 kB segment).
    w, h = (640, 480) if transport == "large-shm" else (320, 240)
    bag = make_bag(tmp_path / "bag", storage=storage, compressed=compressed, frames=FRAMES, rate=RATE_HZ,
                   width=w, height=h)
    topic = bagio.TOPIC_IMAGE_COMPRESSED if compressed else bagio.TOPIC_IMAGE
    # Raw VGA frames (900 kB) cross Fast DDS whole either reliable (the player follows the node's
    # subscription) or best-effort through the large shared-memory segment profile given to both sides.
    params = {"image_reliability": "reliable"} if transport == "reliable" else {}
    env = {}
    if transport == "large-shm":
        profile = ros_helpers.SOURCE_DIR / "config" / "fastdds_large_frames.xml"
        env["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(profile)
    node = ros_helpers.start_node("detect_node", detect_node_args(topic, models, compressed=compressed,
                                                                  params=params),
                                  log_path=tmp_path / "node.log", env=env)
    got = []
    try:
        if env:
            # Fast DDS reads its profile once per process: this player runs as the CLI in its own.
            cli = [sys.executable, "-m", "tinyvlm_ros.cli", "bench", "bag", str(bag), "--live",
                   "--wait-node", "60", "--answer-timeout", "15", "--node-pid", str(node.pid),
                   "--out", str(tmp_path / "out")]
            res = subprocess.run(cli, env=dict(os.environ, **env), capture_output=True, text=True,
                                 timeout=180)
            assert res.returncode == 0, res.stderr[-3000:]
            assert "live with the known-answer model set" in res.stdout and "report:" in res.stdout
            s = json.loads((tmp_path / "out" / "summary.json").read_text())
            got = [None] * s["processed"]
        else:
            s = run_live(bag, tmp_path / "out", wait_node_s=60.0, answer_timeout_s=15.0, node_pid=node.pid,
                         on_detections=got.append, node_alive=lambda: node.poll() is None)
    finally:
        rc = ros_helpers.stop_node(node)
    log = ros_helpers.node_log(node)
    assert rc == 0, log[-3000:]
    assert s["frames"] == FRAMES and s["corrupt"] == 0, s
    # The node keeps only the newest frame while busy, so on a loaded machine it may skip some;
    # every frame is accounted for, and what it answered must be right.
    assert s["processed"] + s["dropped"] == FRAMES
    assert s["processed"] >= FRAMES // 2, (s, log[-2000:])
    gt = s["ground_truth"]
    assert gt["tp"] >= 0.8 * s["processed"] and gt["fp"] <= 1 and s["mean_iou"] >= 0.7, s
    assert 0 < s["latency_ms"]["p50"] < 5000 and s["node_cpu_percent"] is not None
    assert len(got) == s["processed"]
    out = tmp_path / "out"
    assert json.loads((out / "summary.json").read_text())["mode"] == "live"
    # the model set comes from the node's own ~/status, and the report names it first
    name = json.loads((models / "manifest.json").read_text())["name"]
    assert s["model_set"] == {"name": name, "kind": "known-answer"}, s["engine"]
    assert (out / "report.md").read_text().startswith(f"# Bag replay (live) of {bag.name} with the "
                                                      f"known-answer model set {name}\n")
    with open(out / "frames.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == FRAMES
    with bagio.BagReader(out / "bag") as r:
        assert r.storage == storage
        dets = [r.decode(c, d) for c, _, d in r.raw([bagio.TOPIC_DETECTIONS])]
    # detections in the output bag carry the bag's own image stamps
    ok_stamps = sorted(int(row["stamp_ns"]) for row in rows if row["status"] == "ok")
    assert sorted(bagio.stamp_ns(m.header.stamp) for m in dets) == ok_stamps


def test_live_corrupt_frame_is_counted_and_the_node_goes_on(detect_node_exe, models, tmp_path):
    import ros_helpers
    from bag_engines import corrupt_copy
    from tinyvlm_ros.bench.live import detect_node_args, run_live

    good = make_bag(tmp_path / "good", storage="mcap", compressed=True, frames=FRAMES, rate=RATE_HZ,
                    width=320, height=240)
    bag = tmp_path / "bad"
    corrupt_copy(good, bag, corrupt_index=4)
    node = ros_helpers.start_node("detect_node", detect_node_args(bagio.TOPIC_IMAGE_COMPRESSED, models,
                                                                  compressed=True),
                                  log_path=tmp_path / "node.log")
    try:
        s = run_live(bag, tmp_path / "out", wait_node_s=60.0, answer_timeout_s=15.0,
                     node_alive=lambda: node.poll() is None)
        alive_after = node.poll() is None
    finally:
        rc = ros_helpers.stop_node(node)
    assert alive_after and rc == 0, ros_helpers.node_log(node)[-2000:]
    assert s["corrupt"] == 1 and s["frames"] == FRAMES and s["processed"] + s["dropped"] == FRAMES - 1
    assert s["processed"] >= FRAMES // 2 and s["ground_truth"]["tp"] >= 0.8 * s["processed"], s


def test_demo_shows_detections_flowing(detect_node_exe, models, tmp_path):
    import subprocess
    import sys

    import ros_helpers

    ros_helpers.isolated_domain()
    demo = ros_helpers.SOURCE_DIR / "tools" / "demo.py"
    res = subprocess.run([sys.executable, str(demo), "--frames", "10", "--rate", "4",
                          "--out", str(tmp_path / "demo"), "--models", str(models), "--wait-node", "60"],
                         capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert res.stdout.count("[demo] frame") >= 3 and "red block" in res.stdout
    assert "report:" in res.stdout and (tmp_path / "demo" / "run" / "report.md").exists()
    assert "[demo] models:" in res.stdout
