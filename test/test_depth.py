"""3D boxes from a depth image and a mask (pinhole back-projection)."""

import numpy as np
import pytest

from tinyvlm_ros import depth


def test_box_of_a_flat_square_at_known_distance():
    h, w, f = 120, 160, 100.0
    k = [f, 0, w / 2, 0, f, h / 2, 0, 0, 1]
    mm = np.full((h, w), 2000, np.uint16)          # table at 2 m
    mm[40:80, 60:100] = 1000                        # a 40x40 px object at 1 m -> 0.4 m wide
    d = depth.depth_to_metres(h, w, "16UC1", 0, w * 2, mm.tobytes(), 0.001)
    mask = np.zeros((h, w), bool)
    mask[40:80, 60:100] = True
    centre, size = depth.box_from_points(depth.mask_points(d, mask, k))
    assert centre[2] == pytest.approx(1.0, abs=1e-3)
    assert centre[0] == pytest.approx(0.0, abs=0.01) and centre[1] == pytest.approx(0.0, abs=0.01)
    assert size[0] == pytest.approx(0.36, abs=0.03)  # 5-95th percentile of a 0.4 m face


def test_invalid_depth_is_ignored_and_resolution_may_differ():
    d = np.full((60, 80), np.nan, np.float32)
    d[10:20, 10:20] = 1.5
    data = d.astype("<f4").tobytes()
    dm = depth.depth_to_metres(60, 80, "32FC1", 0, 80 * 4, data)
    mask = np.zeros((120, 160), bool)                # colour image is twice the depth size
    mask[20:40, 20:40] = True
    pts = depth.mask_points(dm, mask, [50, 0, 40, 0, 50, 30, 0, 0, 1])
    assert len(pts) == 100 and np.allclose(pts[:, 2], 1.5)
    assert depth.box_from_points(pts[:5]) is None


def test_rejects_bad_depth():
    with pytest.raises(ValueError, match="unsupported depth encoding"):
        depth.depth_to_metres(2, 2, "rgb8", 0, 6, b"\0" * 12)
    with pytest.raises(ValueError, match="does not match"):
        depth.depth_to_metres(2, 2, "16UC1", 0, 4, b"\0" * 3)
