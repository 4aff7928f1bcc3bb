"""One computation of the detection message fields for the node and the bag writer."""

import numpy as np
import pytest

from tinyvlm_ros.detection_fields import (SOURCE_DETECTED, SOURCE_TRACKED, detection_fields, detection_id,
                                          parse_detection_id)
from tinyvlm_ros.types import Detection


def _dets():
    return [Detection("red block", 0.9, (10.0, 20.0, 30.0, 60.0), role="target"),
            Detection("red block", 0.7, (100.0, 40.0, 150.0, 90.0), role="candidate", track_id=17,
                      tracked=True, verified_age_s=0.4),
            Detection("blue ball", 0.6, (5.0, 5.0, 9.0, 7.0), role="candidate")]


def test_ids_carry_the_command_id_and_the_track_id_or_the_rank():
    fields = detection_fields(_dets(), command_id=12)
    assert [f.id for f in fields] == ["12/1", "12/17", "12/3"]
    assert [parse_detection_id(f.id) for f in fields] == [(12, 1), (12, 17), (12, 3)]
    assert detection_id(0, _dets()[0], 1) == "0/1"
    with pytest.raises(ValueError, match="command_id"):
        parse_detection_id("3")


def test_fields_are_centre_size_and_the_detections_info():
    f0, f1, _ = detection_fields(_dets(), command_id=1)
    assert f0.center == (20.0, 40.0) and f0.size == (20.0, 40.0) and f0.class_id == "red block"
    assert f0.role == "target" and f0.source == SOURCE_DETECTED and f0.track_id == 0
    assert f1.role == "candidate" and f1.source == SOURCE_TRACKED and f1.track_id == 17
    assert f1.verified_age_s == pytest.approx(0.4)


def test_node_and_bag_writer_build_the_same_message():
    # The rosbags message, serialized to CDR as a bag stores it, deserializes to exactly the
    # message the node publishes.  Needs the built interfaces (run under colcon test).
    pytest.importorskip("tinyvlm_ros.msg", reason="needs the installed package (make build; colcon test)")
    from rclpy.serialization import deserialize_message
    from std_msgs.msg import Header
    from vision_msgs.msg import Detection2DArray

    from tinyvlm_ros.bench import bagio
    from tinyvlm_ros.msg import DetectionInfo
    from tinyvlm_ros.ros import convert

    assert (DetectionInfo.SOURCE_DETECTED, DetectionInfo.SOURCE_TRACKED) == (SOURCE_DETECTED, SOURCE_TRACKED)
    store = bagio.typestore()
    t_ns = 1_700_000_000_123_456_789
    bag_msg = bagio.detections_to_msg(store, bagio.make_header(store, t_ns, "camera"), _dets(), command_id=5)
    cdr = store.serialize_cdr(bag_msg, bagio.DETECTION2D_ARRAY)
    from_bag = deserialize_message(bytes(cdr), Detection2DArray)
    header = Header(frame_id="camera")
    header.stamp.sec, header.stamp.nanosec = divmod(t_ns, 1_000_000_000)
    live = convert.detections_to_msg(_dets(), header, command_id=5)
    assert from_bag == live
    assert from_bag.detections[1].results[0].pose.pose.position.x == 125.0   # the pixel centre, not 0
    info = convert.info_msg(_dets(), header, 5, "pick the red block", ["red block"])
    assert list(info.roles) == ["target", "candidate", "candidate"] and list(info.track_ids) == [0, 17, 0]
    assert list(info.sources) == [SOURCE_DETECTED, SOURCE_TRACKED, SOURCE_DETECTED]
    assert np.allclose(info.verified_age_s, [0.0, 0.4, 0.0]) and info.header == header
