"""The tracker comparison that chose the default tracker: it runs and its numbers mean what they say."""

from tinyvlm_ros.bench.trackers import available_trackers, compare, markdown


def test_tracker_comparison_rows_and_table():
    assert available_trackers()[:2] == ["flow", "mil"]
    rows = compare(["flow", "mil"], ["slide"], max_frames=8)
    assert [(r["tracker"], r["sequence"], r["frames"], r["objects"]) for r in rows] == [
        ("flow", "slide", 8, 3), ("mil", "slide", 8, 3)]
    for r in rows:
        assert 0 < r["ms_p50"] <= r["ms_p95"]
        assert r["held_fraction"] == 1.0 and r["iou_median"] > 0.8
    table = markdown(rows)
    assert table.count("\n") == 4 and "| flow | slide | 3 |" in table
