"""The node benchmark runs the installed detect_node over real DDS and reports its figures."""

import pytest

from ros_helpers import SOURCE_DIR, isolated_domain

pytest.importorskip("rclpy")


def test_bench_node_reports_latency_and_overhead():
    from tinyvlm_ros.bench import node as bench_node

    isolated_domain()
    out = bench_node.run(frames=6, rate_hz=4.0, width=320, height=240, reliability="reliable",
                         dds_profile=SOURCE_DIR / "config" / "fastdds_large_frames.xml")
    assert out["frames_received"] == 6
    assert out["frames_processed"] + out["frames_dropped"] == 6
    assert out["detections_received"] == out["frames_processed"] >= 1
    assert 0 < out["e2e_latency_p50_ms"] <= out["e2e_latency_p95_ms"]
    assert out["node_overhead_p50_ms"] >= 0 and out["engine_p50_ms"] > 0
