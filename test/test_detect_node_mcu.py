"""detect_node with ``backend:=mcu`` over real DDS, talking to the real firmware.

Under QEMU (Cortex-M4) the node publishes Detection2DArray for a command; with
the host build on a pseudo-terminal the MCU is killed mid-run and restarted: the
node stays up, reports itself degraded, and recovers.  The firmware here runs
its built-in random-weight encoder, which the node refuses unless
``mcu_allow_random_model`` says this is a wiring test; its boxes carry no meaning
(the trained encoder is tested at the end and in test_mcu_distill.py).  In
device-camera mode the MCU captures its own frames and the node stamps the
detections with the capture time translated into ROS time.
"""

import shutil
import time

import pytest

from ros_helpers import node_log, ros_node, spin_until, start_node, stop_node
from tinyvlm_ros.testing import scenes

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header, String  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from test_detect_node import LATCHED, RELIABLE, _params_file  # noqa: E402
from tinyvlm_ros.mcu.emulate import Emulator  # noqa: E402
from tinyvlm_ros.msg import DetectorStatus  # noqa: E402
from tinyvlm_ros.ros import convert  # noqa: E402
from rclpy.time import Time  # noqa: E402


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tinyvlm_ros.testing.models import make_known_answer_set

    return make_known_answer_set(tmp_path_factory.mktemp("models") / "known")


def _mcu_node(models, url, log, *extra, allow_random=True):
    # the known-answer set's text tower has 16 dims: the table keeps all of them
    args = ["--params-file", _params_file(), "-p", "backend:=mcu", "-p", f"serial_port:={url}",
            "-p", f"model_dir:={models}", "-p", "matryoshka_dim:=16", "-p", "mcu_score_threshold:=0.01",
            "-p", "mcu_timeout_s:=1.0", "-p", "diagnostics_period_s:=0.2", *extra]
    if allow_random:  # the firmware's built-in encoder has random weights: wiring tests say so
        args += ["-p", "mcu_allow_random_model:=true"]
    return start_node("detect_node", args, log_path=log)


class Client:
    def __init__(self, n):
        self.n = n
        self.img = n.create_publisher(Image, "image", RELIABLE)
        self.cmd = n.create_publisher(String, "command", RELIABLE)
        self.dets, self.status, self.diag = [], [], []
        n.create_subscription(Detection2DArray, "detections", self.dets.append, 10)
        n.create_subscription(DetectorStatus, "detect_node/status", self.status.append, LATCHED)
        n.create_subscription(DiagnosticArray, "/diagnostics", self.diag.append, 10)
        self.sec = 100

    def ready(self, proc, command):
        assert spin_until(self.n, lambda: self.status and self.status[-1].ready, 60, proc), \
            node_log(proc)[-3000:]
        assert spin_until(self.n, lambda: self.cmd.get_subscription_count() > 0, 10, proc)
        self.cmd.publish(String(data=command))
        assert spin_until(self.n, lambda: self.status[-1].command == command, 10, proc)

    def frame(self, rgb, proc, timeout=30):
        self.sec += 1
        header = Header(frame_id="camera")
        header.stamp.sec = self.sec
        self.img.publish(convert.rgb_to_image_msg(rgb, header))
        ok = spin_until(self.n, lambda: any(m.header.stamp.sec == self.sec for m in self.dets), timeout, proc)
        return next(m for m in self.dets if m.header.stamp.sec == self.sec) if ok else None

    def diag_value(self, key):
        for arr in reversed(self.diag):
            for st in arr.status:
                values = {kv.key: kv.value for kv in st.values}
                if key in values:
                    return st, values[key]
        return None, None


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm not installed (apt.sh)")
def test_node_detects_through_firmware_under_qemu(models, tmp_path):
    scene = scenes.make_scene(31, 320, 240, labels=["red block", "blue ball"])
    with Emulator("qemu-m4", start_timeout=60) as emu:
        proc = _mcu_node(models, emu.url, tmp_path / "node.log")
        try:
            with ros_node() as n:
                c = Client(n)
                c.ready(proc, "pick the red block")
                msg = c.frame(scene.image, proc, timeout=60)
                assert msg is not None, f"no Detection2DArray from the MCU backend:\n{node_log(proc)[-3000:]}"
                assert msg.header.frame_id == "camera"
                for d in msg.detections:
                    assert d.results[0].hypothesis.class_id == "red block"
                    assert 0 <= d.bbox.center.position.x <= 320 and 0 <= d.bbox.center.position.y <= 240
                assert spin_until(n, lambda: c.diag_value("model.model_id")[1] is not None, 10, proc)
                assert c.diag_value("model.backend")[1] == "mcu"
        finally:
            assert stop_node(proc) == 0, node_log(proc)[-3000:]


def test_mcu_killed_mid_run_degrades_then_recovers(models, tmp_path):
    scene = scenes.make_scene(32, 320, 240, labels=["red block", "blue ball"])
    link = tmp_path / "mcu-pty"
    emu = Emulator("host", link_path=str(link))
    emu.start()
    proc = _mcu_node(models, str(link), tmp_path / "node.log")
    try:
        with ros_node() as n:
            c = Client(n)
            c.ready(proc, "pick the red block")
            assert c.frame(scene.image, proc) is not None
            emu.kill()                                   # the MCU is unplugged
            assert c.frame(scene.image, proc, timeout=8) is None
            assert spin_until(n, lambda: (c.diag_value("fps")[0] is not None and
                                          c.diag_value("fps")[0].message.startswith("degraded")), 15, proc), \
                node_log(proc)[-3000:]
            assert proc.poll() is None                   # the node stays up
            emu.restart()                                # plugged back in: a new boot
            got = None
            for _ in range(10):
                got = c.frame(scene.image, proc, timeout=5)
                if got is not None:
                    break
            assert got is not None, f"node did not recover after the MCU came back:\n{node_log(proc)[-3000:]}"
            assert spin_until(n, lambda: not c.diag_value("fps")[0].message.startswith("degraded"), 10, proc)
    finally:
        emu.stop()
        assert stop_node(proc) == 0, node_log(proc)[-3000:]


def test_random_model_refused_without_the_override(models, tmp_path):
    with Emulator("host") as emu:
        proc = _mcu_node(models, emu.url, tmp_path / "node.log", allow_random=False)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and "configure failed" not in node_log(proc):
                time.sleep(0.2)
            log = node_log(proc)
            assert "configure failed" in log and "mcu_model_dir" in log and "tinyvlm mcu distill" in log, log
            assert "active:" not in log and proc.poll() is None  # up, but never configured
        finally:
            assert stop_node(proc) == 0, node_log(proc)[-3000:]


def test_device_camera_detections_stamped_in_ros_time(models, tmp_path):
    # the MCU captures its own frames (the port's generated scene): no image topic, ROS-time stamps
    with Emulator("host") as emu:
        proc = _mcu_node(models, emu.url, tmp_path / "node.log", "-p", "mcu_camera:=device",
                         "-p", "mcu_camera_frame_id:=mcu_optical", "-p", "rate_limit_hz:=10.0")
        try:
            with ros_node() as n:
                c = Client(n)
                c.ready(proc, "pick the red block")
                t_cmd = n.get_clock().now().nanoseconds
                arrived = []
                n.create_subscription(Detection2DArray, "detections",
                                      lambda m: arrived.append(n.get_clock().now().nanoseconds), 10)
                assert spin_until(n, lambda: len(arrived) >= 4, 30, proc), node_log(proc)[-3000:]
                assert c.img.get_subscription_count() == 0  # nobody listens for images
                msgs = [m for m in c.dets if Time.from_msg(m.header.stamp).nanoseconds >= t_cmd - 10**8][-4:]
                assert len(msgs) == 4
                stamps = [Time.from_msg(m.header.stamp).nanoseconds for m in msgs]
                assert stamps == sorted(set(stamps)), "capture stamps must increase"
                # a capture happens after the command and before its detections arrive (up to the clock
                # translation's bound, well under a frame here)
                assert t_cmd - 50_000_000 < stamps[0] and stamps[-1] < max(arrived)
                assert all(m.header.frame_id == "mcu_optical" for m in msgs)
                boxes = [d for m in msgs for d in m.detections]
                assert boxes, "no boxes for the device's scene"
                for d in boxes:
                    assert d.results[0].hypothesis.class_id == "red block"
                    assert 0 <= d.bbox.center.position.x <= 96 and 0 <= d.bbox.center.position.y <= 96
                assert spin_until(n, lambda: c.diag_value("model.camera")[1] == "generated scene", 10, proc)
        finally:
            assert stop_node(proc) == 0, node_log(proc)[-3000:]


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="qemu-system-arm not installed (apt.sh)")
def test_distilled_encoder_end_to_end_through_the_node(tmp_path_factory, tmp_path):
    # distill -> CFQ int8 -> firmware blob -> QEMU Cortex-M4 -> detect_node -> Detection2DArray
    pytest.importorskip("torch")
    from tinyvlm_ros.distill.train import DEFAULT_DIMS, build_dataset, train
    from tinyvlm_ros.distill.quantize import benchmark_scene, export_distilled
    from tinyvlm_ros.testing.models import make_known_answer_set

    root = tmp_path_factory.mktemp("distill_node")
    teacher = make_known_answer_set(root / "teacher")
    out = root / "out"
    data = build_dataset(teacher, out, generate=24, seed=5, progress=False)
    student, proj, history = train(data, out, list(DEFAULT_DIMS), epochs=6, batch=8, lr=5e-3, progress=False)
    export_distilled(student, proj, data, out, list(DEFAULT_DIMS), teacher, default_dim=64, history=history,
                     n_calib=16, n_scenes=4, refit_steps=30)
    scene, target = benchmark_scene(7)
    with Emulator("qemu-m4", model=str(out / "model.tvm"), start_timeout=60) as emu:
        proc = start_node("detect_node", ["--params-file", _params_file(), "-p", "backend:=mcu",
                                          "-p", f"serial_port:={emu.url}", "-p", f"mcu_model_dir:={out}",
                                          "-p", f"model_dir:={teacher}", "-p", "mcu_score_threshold:=0.01",
                                          "-p", "mcu_timeout_s:=5.0", "-p", "diagnostics_period_s:=0.2",
                                          # 640x480 raw frames: reliable, see config/fastdds_large_frames.xml
                                          "-p", "image_reliability:=reliable"],
                          log_path=tmp_path / "node.log")
        try:
            with ros_node() as n:
                c = Client(n)
                c.ready(proc, f"pick the {target}")
                msg = c.frame(scene.image, proc, timeout=60)
                assert msg is not None, node_log(proc)[-3000:]
                assert msg.detections, "the distilled encoder found nothing through the node"
                assert msg.detections[0].results[0].hypothesis.class_id == target
                label, _, (x0, y0, x1, y1) = convert.msg_to_boxes(msg)[0]
                assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
        finally:
            assert stop_node(proc) == 0, node_log(proc)[-3000:]
