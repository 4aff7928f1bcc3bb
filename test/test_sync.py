"""Stamp pairing of depth and camera_info with a colour frame (tinyvlm_ros.sync)."""

import threading
import time

import pytest

from tinyvlm_ros.sync import NS_PER_S, StampPairer

MS = NS_PER_S // 1000


def _pairer(tol_s=0.02, history=30):
    return StampPairer(("depth", "camera_info"), tol_s, history)


def test_pairs_the_nearest_message_of_each_stream_within_the_tolerance():
    p = _pairer()
    for t in (0, 33, 66, 100):
        p.add("depth", t * MS, f"d{t}")
    p.add("camera_info", 60 * MS, "i60")
    got = p.pair(70 * MS)
    assert got.ok and got.messages == {"depth": "d66", "camera_info": "i60"}
    p.add("camera_info", 110 * MS, "i110")
    assert p.pair(120 * MS).messages == {"depth": "d100", "camera_info": "i110"}   # 20 ms: the tolerance
    assert p.pair(121 * MS).problem == "depth_stale"


def test_arrival_order_does_not_matter():
    p = _pairer()
    for t in (100, 0, 66, 33):
        p.add("depth", t * MS, f"d{t}")
    p.add("camera_info", 30 * MS, "i")
    assert p.pair(35 * MS).messages["depth"] == "d33"


def test_stale_depth_is_refused_not_taken_as_the_latest_seen():
    p = _pairer()
    p.add("depth", 0, "old depth")
    p.add("camera_info", 500 * MS, "info")
    got = p.pair(500 * MS)
    assert not got.ok and got.problem == "depth_stale" and got.messages == {}
    assert "0.500 s older" in got.detail and "0.020" in got.detail


def test_missing_and_ahead_streams_are_named():
    p = _pairer()
    assert p.pair(0).problem == "depth_missing"
    p.add("depth", 0, "d")
    assert p.pair(0).problem == "camera_info_missing"
    p.add("camera_info", 300 * MS, "i")
    got = p.pair(0)
    assert got.problem == "camera_info_ahead" and "newer" in got.detail


def test_history_is_bounded_oldest_forgotten():
    p = _pairer(history=3)
    for t in range(10):
        p.add("depth", t * 100 * MS, t)
    p.add("camera_info", 0, "i")
    assert p.pair(0).problem == "depth_ahead"          # t=0 was forgotten; 700 ms is the oldest kept
    p.add("camera_info", 900 * MS, "i")
    assert p.pair(900 * MS).messages["depth"] == 9


def test_waits_for_a_depth_frame_still_on_its_way():
    p = _pairer(tol_s=0.05)
    p.add("camera_info", 1000 * MS, "i")
    p.add("depth", 900 * MS, "previous")

    def late():
        time.sleep(0.1)
        p.add("depth", 1000 * MS, "this one")

    threading.Thread(target=late).start()
    got = p.pair(1000 * MS, wait_s=5.0)
    assert got.ok and got.messages["depth"] == "this one"
    # without waiting, the same question is refused at once
    q = _pairer(tol_s=0.05)
    q.add("camera_info", 1000 * MS, "i")
    q.add("depth", 900 * MS, "previous")
    t0 = time.monotonic()
    assert q.pair(1000 * MS, wait_s=0.05).problem == "depth_stale"
    assert time.monotonic() - t0 < 2.0


def test_clear_and_bad_arguments():
    p = _pairer()
    p.add("depth", 0, "d")
    p.add("camera_info", 0, "i")
    p.clear()
    assert p.pair(0).problem == "depth_missing"
    with pytest.raises(ValueError, match="unknown stream"):
        p.add("rgb", 0, "x")
    with pytest.raises(ValueError, match="tolerance"):
        StampPairer(("depth",), -1.0)
    with pytest.raises(ValueError, match="at least one"):
        StampPairer((), 0.1)
