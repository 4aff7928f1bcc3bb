"""``tinyvlm bench bag --live --tracking``: a sequence bag replayed over real DDS into a tracking detect_node.

The node is the installed detect_node as its own process, started with
``tracking:=true``.  The one skip besides a missing rclpy: the node does not
declare the ``tracking`` parameter (asked over its parameter service below),
i.e. node-side tracking is not in this build yet.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyvlm_ros.bench import bagio
from tinyvlm_ros.bench.make_bag import make_sequence_bag

FRAMES = 60   # 2 s of the slide sequence at 30 Hz


def _need_rclpy():
    try:
        import rclpy  # noqa: F401
        import vision_msgs.msg  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"rclpy/vision_msgs not importable (source tools/ros_env/env.sh): {exc}")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tinyvlm_ros.testing.models import make_known_answer_set

    return Path(make_known_answer_set(tmp_path_factory.mktemp("ka")))


def _node_parameters(node_proc, detections_topic="/detections"):
    """Ask the running node for its ``tracking`` parameter over its parameter service."""
    from tinyvlm_ros.bench.live_tracking import get_parameters
    from tinyvlm_ros.ros.client import client_node, named_endpoints, spin_until

    with client_node("tracking_param_probe") as (node, executor):
        assert spin_until(executor, lambda: node.count_publishers(detections_topic) > 0
                          or node_proc.poll() is not None, 60.0), "detect_node did not come up"
        assert node_proc.poll() is None, "detect_node exited"
        infos = named_endpoints(executor, lambda: node.get_publishers_info_by_topic(detections_topic), 10.0)
        assert infos, "detect_node's publisher never told its name"
        fqn = f"{infos[0].node_namespace.rstrip('/')}/{infos[0].node_name}"
        params = get_parameters(node, executor, fqn, ["tracking"], 10.0)
    assert "tracking" in params, f"{fqn} has no 'tracking' parameter"
    return params


def test_live_tracking_keeps_one_id_and_publishes_every_frame(models, tmp_path):
    _need_rclpy()
    import ros_helpers
    from tinyvlm_ros.bench.live import detect_node_args, run_live

    bag = make_sequence_bag(tmp_path / "slide", "slide", compressed=True, frames=FRAMES)
    node = ros_helpers.start_node("detect_node", detect_node_args(
        bagio.TOPIC_IMAGE_COMPRESSED, models, compressed=True, params={"tracking": True}),
        log_path=tmp_path / "node.log")
    try:
        params = _node_parameters(node)
        assert params["tracking"] is True
        s = run_live(bag, tmp_path / "out", wait_node_s=60.0, answer_timeout_s=15.0, node_pid=node.pid,
                     node_alive=lambda: node.poll() is None, tracking=True)
    finally:
        rc = ros_helpers.stop_node(node)
    log = ros_helpers.node_log(node)
    assert rc == 0, log[-3000:]
    t = s["tracking"]
    k = t["frame_kinds"]
    assert t["node_parameters"]["tracking"] is True
    assert sum(k.values()) == FRAMES and s["processed"] + s["dropped"] == FRAMES
    # tracked frames are answered between keyframes: far more of them than detected ones
    assert k["tracked"] > k["detected"] and k["tracked"] + k["detected"] >= FRAMES // 2, (t, log[-2000:])
    assert t["info_missing"] == 0 and t["id_mismatches"] == 0, t
    ident = t["identity"]
    assert ident["target_id_switches"] == 0 and ident["target_id_changes"] == 0, t
    assert t["target_iou_median"]["tracked"] >= 0.5, t
    assert t["latency_ms"]["tracked"]["n"] == k["tracked"] and t["target_rate_hz"] > 0
    assert "## Tracking" in (tmp_path / "out" / "report.md").read_text()


def test_live_tracking_refuses_a_node_that_does_not_track(models, tmp_path):
    _need_rclpy()
    import ros_helpers
    from tinyvlm_ros.bench.live import detect_node_args, run_live

    bag = make_sequence_bag(tmp_path / "slide", "slide", compressed=True, frames=3)
    node = ros_helpers.start_node("detect_node", detect_node_args(
        bagio.TOPIC_IMAGE_COMPRESSED, models, compressed=True), log_path=tmp_path / "node.log")
    try:
        with pytest.raises(ValueError, match="no 'tracking' parameter|tracking:=false"):
            run_live(bag, tmp_path / "out", wait_node_s=60.0, answer_timeout_s=5.0,
                     node_alive=lambda: node.poll() is None, tracking=True)
    finally:
        ros_helpers.stop_node(node)
