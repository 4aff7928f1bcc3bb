"""``tinyvlm ros command|detect|echo`` as separate processes against a real detect_node over real DDS."""

import json
import subprocess
import sys

import cv2
import pytest

from ros_helpers import install_prefix, isolated_domain, node_log, ros_node, spin_until, start_node, stop_node
from tinyvlm_ros.geometry import box_iou
from tinyvlm_ros.testing import scenes

rclpy = pytest.importorskip("rclpy")

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from tinyvlm_ros.ros import convert  # noqa: E402

LABELS = ["red block", "blue ball", "green triangle", "yellow block"]


def tinyvlm(*args, timeout=60):
    """Run the ``tinyvlm`` command line as its own process in this test's DDS domain."""
    isolated_domain()
    return subprocess.run([sys.executable, "-m", "tinyvlm_ros.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    from tinyvlm_ros.testing.models import make_known_answer_set

    tmp = tmp_path_factory.mktemp("ros_cli")
    models = make_known_answer_set(tmp / "models")
    params = install_prefix() / "share" / "tinyvlm_ros" / "config" / "detect.yaml"
    proc = start_node("detect_node", ["--params-file", str(params), "-p", f"model_dir:={models}"],
                      log_path=tmp / "detect_node.log")
    yield proc
    assert stop_node(proc) == 0, node_log(proc)[-3000:]


@pytest.fixture(scope="module")
def scene():
    return scenes.make_scene(21, 320, 240, labels=LABELS)


def test_command_echo_and_detect_against_a_running_node(node, scene, tmp_path):
    # command: waits for the node's subscription, then reports the targets the node parsed
    done = tinyvlm("ros", "command", "pick the red block", "--timeout", "60")
    assert done.returncode == 0, done.stderr + node_log(node)[-2000:]
    assert "/detect_node" in done.stdout and "targets: red block" in done.stdout, done.stdout

    # echo in its own process while this test plays the camera
    echo = subprocess.Popen([sys.executable, "-m", "tinyvlm_ros.cli", "ros", "echo", "--count", "1",
                             "--json", "--timeout", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        with ros_node("camera") as n:
            qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
            pub = n.create_publisher(Image, "image", qos)
            assert spin_until(n, lambda: pub.get_subscription_count() > 0, 30, node)
            # the echo's subscription must exist before the frame that answers it
            assert spin_until(n, lambda: n.count_subscribers("detections") > 0, 30, node), echo.stderr
            header = Header(frame_id="camera_optical")
            header.stamp.sec = 77
            pub.publish(convert.rgb_to_image_msg(scene.image, header))
            out, err = echo.communicate(timeout=60)
    finally:
        if echo.poll() is None:
            echo.kill()
            echo.communicate()
    assert echo.returncode == 0, err
    line = json.loads(out.strip().splitlines()[-1])
    assert line["stamp"].startswith("77.") and line["frame_id"] == "camera_optical"
    top = line["detections"][0]
    assert top["label"] == "red block"
    assert box_iou(top["box_xyxy"], scene.find("red block")[0].box_xyxy) >= 0.5

    # detect: the service on an image file, answered as JSON
    png = tmp_path / "scene.png"
    cv2.imwrite(str(png), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR))
    done = tinyvlm("ros", "detect", "take the blue ball", "--image", str(png))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["success"] and answer["targets"] == ["blue ball"]
    assert answer["detections"][0]["label"] == "blue ball"
    assert box_iou(answer["detections"][0]["box_xyxy"], scene.find("blue ball")[0].box_xyxy) >= 0.5

    # a failing call is success=false and exit code 1, with the node's reason
    done = tinyvlm("ros", "detect", "   ")
    assert done.returncode == 1 and json.loads(done.stdout)["success"] is False


@pytest.mark.parametrize("args, message", [
    (["detect", "pick the pen", "--service", "/nobody/detect", "--timeout", "1"],
     "no service /nobody/detect"),
    (["echo", "--topic", "/nobody/detections", "--timeout", "1"], "nothing publishes /nobody/detections"),
    (["command", "pick the pen", "--topic", "/nobody/command", "--timeout", "1"],
     "nothing subscribes to /nobody/command"),
])
def test_no_node_answering_ends_with_a_clear_message(args, message):
    done = tinyvlm("ros", *args, timeout=30)
    assert done.returncode == 1, done.stdout + done.stderr
    assert message in done.stderr and "detect_node" in done.stderr
