"""The generated interfaces import and have the fields the README documents."""

import pytest

pytest.importorskip("rclpy")


def test_detect_service_fields():
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from tinyvlm_ros.srv import Detect

    req = Detect.Request(command="pick the pen", min_score=0.3, max_results=5)
    assert isinstance(req.image, Image) and req.image.width == 0
    res = Detect.Response(success=True, message="ok", targets=["pen"])
    assert isinstance(res.detections, Detection2DArray)
    assert list(res.targets) == ["pen"]


def test_detector_status_message():
    from tinyvlm_ros.msg import DetectorStatus

    msg = DetectorStatus(backend="local", command="pick the pen", targets=["pen"], ready=True,
                         frames_dropped=3)
    assert msg.frames_dropped == 3 and list(msg.targets) == ["pen"]


def test_vision_msgs_layout_matches_upstream_jazzy():
    # Field for field as upstream vision_msgs 4.x, so other nodes' type hashes match.
    from vision_msgs.msg import BoundingBox2D, Detection2D, ObjectHypothesisWithPose, Pose2D

    assert Detection2D.get_fields_and_field_types() == {
        "header": "std_msgs/Header",
        "results": "sequence<vision_msgs/ObjectHypothesisWithPose>",
        "bbox": "vision_msgs/BoundingBox2D",
        "id": "string",
    }
    assert BoundingBox2D.get_fields_and_field_types() == {
        "center": "vision_msgs/Pose2D", "size_x": "double", "size_y": "double"}
    assert Pose2D.get_fields_and_field_types() == {"position": "vision_msgs/Point2D", "theta": "double"}
    assert ObjectHypothesisWithPose.get_fields_and_field_types() == {
        "hypothesis": "vision_msgs/ObjectHypothesis", "pose": "geometry_msgs/PoseWithCovariance"}
