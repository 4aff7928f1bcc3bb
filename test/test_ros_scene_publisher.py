"""The installed scene_publisher, as a separate process, over real DDS."""

import numpy as np
import pytest

from tinyvlm_ros.testing import scenes
from ros_helpers import ros_node, spin_until, start_node, stop_node

pytest.importorskip("rclpy")


def test_scene_publisher_frames_and_truth_match_the_scene_generator(tmp_path):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from tinyvlm_ros.ros import convert

    proc = start_node("scene_publisher", ["-p", "seed:=7", "-p", "rate_hz:=20.0", "-p", "width:=160",
                                          "-p", "height:=120", "-p", "n_objects:=2"],
                      log_path=tmp_path / "scene_publisher.log")
    images, truths = [], {}
    try:
        with ros_node() as node:
            node.create_subscription(Image, "image", images.append, qos_profile_sensor_data)
            node.create_subscription(
                Detection2DArray, "ground_truth",
                lambda m: truths.__setitem__((m.header.stamp.sec, m.header.stamp.nanosec), m), 10)
            assert spin_until(node, lambda: len(images) >= 3, timeout=30, proc=proc), \
                "no images from scene_publisher within 30 s"
            stamp = (images[-1].header.stamp.sec, images[-1].header.stamp.nanosec)
            spin_until(node, lambda: stamp in truths, timeout=5, proc=proc)
    finally:
        assert stop_node(proc) == 0

    msg = images[-1]
    assert (msg.width, msg.height, msg.encoding) == (160, 120, "rgb8")
    assert msg.header.frame_id == "camera"
    rgb = convert.image_msg_to_rgb(msg)
    # the frame must be one of the generator's frames, pixel for pixel
    k = next((k for k in range(200)
              if np.array_equal(scenes.make_scene(7 + k, 160, 120, 2).image, rgb)), None)
    assert k is not None, "published image is not a frame of make_scene(seed + k)"
    expected = sorted((o.label, tuple(float(v) for v in o.box_xyxy))
                      for o in scenes.make_scene(7 + k, 160, 120, 2).objects)
    got = sorted((label, box) for label, _, box in convert.msg_to_boxes(truths[stamp]))
    assert got == expected
