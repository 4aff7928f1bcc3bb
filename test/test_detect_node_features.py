"""detect_node features over real DDS: compressed input, depth, debug image, one-shot, QoS, lifecycle."""

import numpy as np
import pytest

from ros_helpers import node_log, ros_node, spin_until, start_node, stop_node
from tinyvlm_ros import imaging
from tinyvlm_ros.geometry import box_iou
from tinyvlm_ros.testing import scenes

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import Header, String  # noqa: E402
from vision_msgs.msg import Detection2DArray, Detection3DArray  # noqa: E402

from test_detect_node import LABELS, LATCHED, RELIABLE, _params_file  # noqa: E402
from tinyvlm_ros.msg import DetectorStatus  # noqa: E402
from tinyvlm_ros.srv import Detect  # noqa: E402
from tinyvlm_ros.ros import convert  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tinyvlm_ros.testing.models import make_known_answer_set

    return make_known_answer_set(tmp_path_factory.mktemp("models") / "known")


def _start(models, tmp_path, *extra):
    return start_node("detect_node", ["--params-file", _params_file(), "-p", f"model_dir:={models}",
                                      "-p", "diagnostics_period_s:=0.2", *extra],
                      log_path=tmp_path / "detect_node.log")


def _header(sec, nanosec=0):
    h = Header(frame_id="camera")
    h.stamp.sec, h.stamp.nanosec = sec, nanosec
    return h


def _diag_values(diag, name="/detect_node: detector"):
    for arr in reversed(diag):
        for st in arr.status:
            if st.name == name:
                return st, {kv.key: kv.value for kv in st.values}
    return None, {}


def _wait_status(n, status, proc, pred, timeout=60):
    assert spin_until(n, lambda: status and pred(status[-1]), timeout, proc), \
        f"status condition not met:\n{node_log(proc)[-3000:]}"


def test_compressed_input_and_corrupt_frames(models, tmp_path):
    proc = _start(models, tmp_path, "-p", "image_transport:=compressed")
    scene = scenes.make_scene(21, 320, 240, labels=LABELS)
    try:
        with ros_node() as n:
            pub = n.create_publisher(CompressedImage, "image/compressed", RELIABLE)
            cmd = n.create_publisher(String, "command", RELIABLE)
            dets, status = [], []
            n.create_subscription(Detection2DArray, "detections", dets.append, 10)
            n.create_subscription(DetectorStatus, "detect_node/status", status.append, LATCHED)
            _wait_status(n, status, proc, lambda s: s.ready)
            assert spin_until(n, lambda: cmd.get_subscription_count() > 0, 10, proc)
            cmd.publish(String(data="grab the blue ball"))
            _wait_status(n, status, proc, lambda s: list(s.targets) == ["blue ball"])
            corrupt = CompressedImage(header=_header(5), format="jpeg")
            corrupt.data = b"\xff\xd8 definitely not a jpeg"
            pub.publish(corrupt)
            _wait_status(n, status, proc, lambda s: s.bad_inputs >= 1, timeout=15)
            fmt, data = imaging.encode_compressed(scene.image, "png")
            good = CompressedImage(header=_header(6), format=fmt)
            good.data = data
            pub.publish(good)
            assert spin_until(n, lambda: any(m.header.stamp.sec == 6 for m in dets), 30, proc)
            msg = next(m for m in dets if m.header.stamp.sec == 6)
            label, _, box = convert.msg_to_boxes(msg)[0]
            assert label == "blue ball"
            assert box_iou(box, scene.find("blue ball")[0].box_xyxy) >= 0.5
    finally:
        assert stop_node(proc) == 0


def test_depth_paired_by_stamp_gives_3d_boxes_and_debug_image_only_on_demand(models, tmp_path):
    proc = _start(models, tmp_path, "-p", "use_depth:=true", "-p", "one_shot:=true",
                  "-p", "depth_tolerance_s:=0.05")
    w, h, f = 320, 240, 200.0
    scene = scenes.make_scene(22, w, h, labels=LABELS)
    truth = scene.find("red block")[0]
    depth_mm = np.full((h, w), 1500, np.uint16)
    depth_mm[truth.mask] = 800                       # the block stands 0.7 m in front of the table
    try:
        with ros_node() as n:
            img_pub = n.create_publisher(Image, "image", RELIABLE)
            depth_pub = n.create_publisher(Image, "depth", RELIABLE)
            info_pub = n.create_publisher(CameraInfo, "camera_info", RELIABLE)
            cmd = n.create_publisher(String, "command", RELIABLE)
            d3, debug, dets, status, diag = [], [], [], [], []
            n.create_subscription(Detection3DArray, "detections_3d", d3.append, 10)
            n.create_subscription(Detection2DArray, "detections", dets.append, 10)
            n.create_subscription(Image, "debug_image", debug.append, 10)
            n.create_subscription(DetectorStatus, "detect_node/status", status.append, LATCHED)
            n.create_subscription(DiagnosticArray, "/diagnostics", diag.append, 10)
            _wait_status(n, status, proc, lambda s: s.ready)
            assert spin_until(n, lambda: img_pub.get_subscription_count() > 0 and
                              depth_pub.get_subscription_count() > 0, 10, proc)

            def depth_at(sec, nanosec=0):
                info = CameraInfo(header=_header(sec, nanosec), width=w, height=h)
                info.k = [f, 0.0, w / 2, 0.0, f, h / 2, 0.0, 0.0, 1.0]
                dmsg = Image(header=_header(sec, nanosec), height=h, width=w, encoding="16UC1", step=w * 2)
                dmsg.data = depth_mm.tobytes()
                info_pub.publish(info)
                depth_pub.publish(dmsg)

            def command():
                cmd.publish(String(data="pick the red block"))
                _wait_status(n, status, proc, lambda s: s.command == "pick the red block")

            def frame(sec, nanosec=0):
                img_pub.publish(convert.rgb_to_image_msg(scene.image, _header(sec, nanosec)))
                assert spin_until(n, lambda: any(m.header.stamp.sec == sec for m in dets), 30, proc), \
                    node_log(proc)[-3000:]

            depth_at(7)
            spin_until(n, lambda: False, 0.5, proc)
            command()
            frame(7)
            assert spin_until(n, lambda: d3 and debug, 30, proc), node_log(proc)[-3000:]
            assert d3[0].header.stamp.sec == 7
            det = d3[0].detections[0]
            assert det.results[0].hypothesis.class_id == "red block"
            assert det.bbox.center.position.z == pytest.approx(0.8, abs=0.02)
            x0, y0, x1, y1 = truth.box_xyxy
            expect_x = ((x0 + x1) / 2 - w / 2) * 0.8 / f
            assert det.bbox.center.position.x == pytest.approx(expect_x, abs=0.03)
            assert debug[0].header.stamp.sec == 7 and debug[0].encoding == "rgb8"
            # one-shot: the command is cleared after one frame
            _wait_status(n, status, proc, lambda s: s.command == "")
            img_pub.publish(convert.rgb_to_image_msg(scene.image, _header(8)))
            spin_until(n, lambda: False, 1.5, proc)
            assert not any(m.header.stamp.sec == 8 for m in dets)

            # a frame 2 s after the only depth image: detections, but no 3D from a depth of another moment
            command()
            frame(9)
            assert spin_until(n, lambda: _diag_values(diag)[1].get("frames_without_depth") == "1", 10, proc)
            values = _diag_values(diag)[1]
            assert values["depth_refused.depth_stale"] == "1"
            assert not any(m.header.stamp.sec == 9 for m in d3)
            assert "no detections_3d for a frame" in node_log(proc) and "2.000 s older" in node_log(proc)

            # depth 30 ms after the frame: within the tolerance, paired
            command()
            depth_at(10, 30_000_000)
            spin_until(n, lambda: False, 0.3, proc)
            frame(10)
            assert spin_until(n, lambda: any(m.header.stamp.sec == 10 for m in d3), 10, proc)
            assert _diag_values(diag)[1]["frames_without_depth"] == "1"
    finally:
        assert stop_node(proc) == 0


def test_incompatible_qos_is_reported_not_silent(models, tmp_path):
    proc = _start(models, tmp_path, "-p", "image_reliability:=reliable")
    try:
        with ros_node() as n:
            status = []
            n.create_subscription(DetectorStatus, "detect_node/status", status.append, LATCHED)
            _wait_status(n, status, proc, lambda s: s.ready)
            n.create_publisher(Image, "image", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
            assert spin_until(n, lambda: "incompatible" in node_log(proc), 15, proc), node_log(proc)[-2000:]
            assert "image_reliability" in node_log(proc)
    finally:
        assert stop_node(proc) == 0


def test_unconfigured_node_is_visible_answers_and_recovers(models, tmp_path):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    missing = tmp_path / "nope"
    proc = start_node("detect_node",
                      ["--params-file", _params_file(), "-p", f"model_dir:={missing}",
                       "-p", "diagnostics_period_s:=0.2"],
                      log_path=tmp_path / "detect_node.log")
    try:
        with ros_node() as n:
            status, diag = [], []
            n.create_subscription(DetectorStatus, "detect_node/status", status.append, LATCHED)
            n.create_subscription(DiagnosticArray, "/diagnostics", diag.append, 10)
            get_state = n.create_client(GetState, "detect_node/get_state")
            change = n.create_client(ChangeState, "detect_node/change_state")
            set_params = n.create_client(SetParameters, "detect_node/set_parameters")
            detect = n.create_client(Detect, "detect_node/detect")
            for cli in (get_state, change, set_params, detect):
                assert cli.wait_for_service(timeout_sec=30)

            def call(cli, req):
                fut = cli.call_async(req)
                assert spin_until(n, fut.done, 30, proc)
                return fut.result()

            # unconfigured: status and diagnostics say so with the reason, the log says how to fix it
            _wait_status(n, status, proc, lambda s: s.state == "unconfigured" and s.last_error)
            manifest = str(missing / "manifest.json")
            assert manifest in status[-1].last_error and not status[-1].ready
            assert spin_until(n, lambda: _diag_values(diag)[0] is not None, 10, proc)
            st, values = _diag_values(diag)
            assert st.level == DiagnosticStatus.ERROR and st.message.startswith("configure failed: ")
            assert manifest in st.message and values["state"] == "unconfigured"
            log = node_log(proc)
            assert "configure failed" in log and manifest in log and "tinyvlm models" in log
            # the service answers at once instead of blocking
            res = call(detect, Detect.Request(command="pick the red block"))
            assert not res.success and "unconfigured" in res.message and manifest in res.message
            assert call(get_state, GetState.Request()).current_state.label == "unconfigured"

            value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(models))
            assert call(set_params, SetParameters.Request(
                parameters=[Parameter(name="model_dir", value=value)])).results[0].successful

            def transition(tid):
                return call(change, ChangeState.Request(transition=Transition(id=tid))).success

            assert transition(Transition.TRANSITION_CONFIGURE)
            _wait_status(n, status, proc, lambda s: s.state == "inactive" and s.last_error == "")
            res = call(detect, Detect.Request(command="pick the red block"))
            assert not res.success and "inactive" in res.message
            assert transition(Transition.TRANSITION_ACTIVATE)
            assert call(get_state, GetState.Request()).current_state.label == "active"
            _wait_status(n, status, proc, lambda s: s.state == "active" and s.ready)
            assert transition(Transition.TRANSITION_DEACTIVATE)
            assert call(get_state, GetState.Request()).current_state.label == "inactive"
            _wait_status(n, status, proc, lambda s: s.state == "inactive" and not s.ready)
            assert proc.poll() is None
    finally:
        assert stop_node(proc) == 0
