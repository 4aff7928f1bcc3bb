"""detect_node with tracking on, as a real process over real DDS, with the known-answer models.

The camera is the installed scene_publisher playing a generated moving sequence
(tinyvlm_ros.testing.sequences) with its ground truth on ``ground_truth``; the
test talks to the node only through topics, like a planner would.
"""

import statistics
import time

import pytest

from ros_helpers import SOURCE_DIR, install_prefix, node_log, ros_node, spin_until, start_node, stop_node
from tinyvlm_ros.detection_fields import parse_detection_id
from tinyvlm_ros.geometry import box_iou
from tinyvlm_ros.testing.sequences import render, sequence

rclpy = pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header, String  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from tinyvlm_ros.msg import DetectionInfo, DetectorStatus  # noqa: E402
from tinyvlm_ros.ros import convert  # noqa: E402

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Raw 640x480 frames cross best-effort DDS whole only through the large shared-memory segment (see the
# profile); both the camera and the node get it.
LARGE_FRAMES = {"FASTRTPS_DEFAULT_PROFILES_FILE": str(SOURCE_DIR / "config" / "fastdds_large_frames.xml")}
FRAME_ENDS = ("frames_processed", "frames_dropped", "frames_skipped_no_command", "frames_bad",
              "frames_failed")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tinyvlm_ros.testing.models import make_known_answer_set

    return make_known_answer_set(tmp_path_factory.mktemp("models") / "known")


def _detect_node(models, tmp_path, *extra):
    params = str(install_prefix() / "share" / "tinyvlm_ros" / "config" / "detect.yaml")
    args = ["--params-file", params, "-p", f"model_dir:={models}", "-p", "diagnostics_period_s:=0.2",
            "-p", "tracking:=true"]
    for item in extra:
        args += ["-p", item]
    return start_node("detect_node", args, log_path=tmp_path / "detect_node.log", env=LARGE_FRAMES)


def _camera(tmp_path, name, rate_hz, start=0, count=0):
    return start_node("scene_publisher", ["-p", f"sequence:={name}", "-p", f"rate_hz:={float(rate_hz)}",
                                          "-p", f"sequence_start:={start}", "-p", f"count:={count}"],
                      log_path=tmp_path / "scene_publisher.log", env=LARGE_FRAMES)


def _key(header):
    return header.stamp.sec, header.stamp.nanosec


class Planner:
    """The test side: sends commands, records detections, their info, the truth, status and diagnostics."""

    def __init__(self, node):
        self.node = node
        self.command_pub = node.create_publisher(String, "command", RELIABLE)
        self.detections, self.info, self.truth = {}, {}, {}
        self.status, self.diag = [], []
        node.create_subscription(Detection2DArray, "detections",
                                 lambda m: self.detections.__setitem__(_key(m.header), m), 50)
        node.create_subscription(DetectionInfo, "detections_info",
                                 lambda m: self.info.__setitem__(_key(m.header), m), 50)
        node.create_subscription(Detection2DArray, "ground_truth",
                                 lambda m: self.truth.__setitem__(_key(m.header), m), 50)
        node.create_subscription(DetectorStatus, "detect_node/status", self.status.append, LATCHED)
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diag.append, 10)

    def wait_ready(self, proc, timeout=60):
        ok = spin_until(self.node, lambda: self.status and self.status[-1].ready and
                        self.command_pub.get_subscription_count() > 0, timeout, proc)
        assert ok, f"detect_node not active within {timeout} s:\n{node_log(proc)[-3000:]}"

    def command(self, text, proc):
        before = self.status[-1].command_id if self.status else 0
        self.command_pub.publish(String(data=text))
        ok = spin_until(self.node, lambda: self.status[-1].command == text and
                        self.status[-1].command_id > before, 15, proc)
        assert ok, f"command {text!r} not acknowledged; last status {self.status[-1]}"
        return self.status[-1].command_id

    def diag_values(self):
        for arr in reversed(self.diag):
            for st in arr.status:
                if st.name == "/detect_node: detector":
                    return {kv.key: kv.value for kv in st.values}
        return {}

    def wait_diag(self, proc, predicate, timeout=30):
        ok = spin_until(self.node, lambda: predicate(self.diag_values()), timeout, proc)
        assert ok, f"diagnostics never satisfied the condition; last: {self.diag_values()}"
        return self.diag_values()

    def frames(self, command_id):
        """(truth, detections, info) of every published frame of ``command_id``, in stamp order."""
        out = []
        for key in sorted(self.info):
            info = self.info[key]
            if info.command_id == command_id and key in self.detections:
                out.append((self.truth.get(key), self.detections[key], info))
        return out


def _idle(v):
    return bool(v) and int(v["frames_received"]) == sum(int(v[k]) for k in FRAME_ENDS)


def _truth_box(truth_msg, identity):
    """The ground-truth box of ``identity`` in a ground_truth message (ids "0/<identity>"), or None."""
    if truth_msg is None:
        return None
    for d, (_, _, box) in zip(truth_msg.detections, convert.msg_to_boxes(truth_msg)):
        if parse_detection_id(d.id)[1] == identity:
            return box
    return None


def _check_frame(cid, det_msg, info):
    """Every published frame: ids "<command_id>/<track_id>" matching the info, all tracked."""
    assert det_msg.header == info.header
    assert len(info.track_ids) == len(det_msg.detections) == len(info.sources) == len(info.verified_age_s)
    for d, tid in zip(det_msg.detections, info.track_ids):
        assert parse_detection_id(d.id) == (cid, tid) and tid >= 1
    assert all(s == DetectionInfo.SOURCE_TRACKED for s in info.sources)
    assert all(age >= 0.0 for age in info.verified_age_s)
    if det_msg.detections:
        assert info.roles[0] == "target"


def test_one_id_for_the_target_across_keyframes_every_frame_published_and_new_ids_for_a_new_command(
        models, tmp_path):
    proc = _detect_node(models, tmp_path, "tracking_keyframe_period_s:=0.5")
    camera = None
    try:
        with ros_node() as n:
            p = Planner(n)
            p.wait_ready(proc)
            cid = p.command("pick the red block", proc)
            camera = _camera(tmp_path, "slide", 10.0)
            # several keyframes while the red block slides
            v = p.wait_diag(proc, lambda v: int(v.get("tracking.keyframes", 0)) >= 4
                            and len([f for f in p.frames(cid) if f[1].detections and f[0]]) >= 25, timeout=60)
            assert v["tracking"] == "on"
            frames = p.frames(cid)
            for _, det_msg, info in frames:
                _check_frame(cid, det_msg, info)
                # stamped with the camera frame's header: the truth of that very frame has the same stamp
            with_target = [f for f in frames if f[1].detections]
            ids = {info.track_ids[0] for _, _, info in with_target}
            assert len(ids) == 1, f"the target changed id: {ids}"
            assert all(d.results[0].hypothesis.class_id == "red block" for _, m, _ in with_target
                       for d in m.detections[:1])
            ious = []
            for truth, det_msg, _ in with_target:
                box = _truth_box(truth, sequence("slide").target_identity)
                if box is not None:
                    ious.append(box_iou(convert.msg_to_boxes(det_msg)[0][2], box))
            assert len(ious) >= 20 and statistics.median(ious) >= 0.6, ious
            # published for every tracked frame, far more often than the engine ran
            tracked, keyframes = int(v["tracking.frames_tracked"]), int(v["tracking.keyframes"])
            assert tracked >= 2 * keyframes, v
            assert len(frames) >= 0.8 * min(tracked, int(v["frames_processed"])) - 2
            st = p.status[-1]
            assert st.tracking and st.keyframes >= 4 and st.frames_tracked >= st.keyframes

            # a new command: tracks start over, and the same object gets a new id
            old_max = max(tid for _, _, info in frames for tid in info.track_ids)
            cid2 = p.command("find the red block", proc)
            ok = spin_until(n, lambda: len([f for f in p.frames(cid2) if f[1].detections]) >= 5, 30, proc)
            assert ok, node_log(proc)[-3000:]
            new = [f for f in p.frames(cid2) if f[1].detections]
            for _, det_msg, info in new:
                _check_frame(cid2, det_msg, info)
                assert min(info.track_ids) > old_max
            assert len({info.track_ids[0] for _, _, info in new}) == 1

            # every frame received is accounted for
            assert stop_node(camera) == 0
            camera = None
            v = p.wait_diag(proc, _idle)
            assert int(v["frames_processed"]) == int(v["tracking.frames_tracked"])
            assert v["frames_bad"] == "0" and v["frames_failed"] == "0" and v["tracking.engine_errors"] == "0"
    finally:
        if camera is not None:
            stop_node(camera)
        assert stop_node(proc) == 0, node_log(proc)[-3000:]


def test_an_occluded_target_comes_back_with_its_id(models, tmp_path):
    spec = sequence("occlude")
    hidden = [f.index for f in render(spec) if f.find(spec.target_identity) is None]
    assert hidden, "the occlusion sequence must hide its target"
    # played at 15 Hz, the 30 Hz sequence runs at half speed: the occlusion lasts ~1 s of stamp time,
    # and the camera starts 4 s before it (discovery, the first keyframes)
    start, stop = max(0, hidden[0] - 60), min(spec.frames, hidden[-1] + 24)
    proc = _detect_node(models, tmp_path, "tracking_max_track_age_s:=2.5")
    camera = None
    try:
        with ros_node() as n:
            p = Planner(n)
            p.wait_ready(proc)
            cid = p.command("pick the red block", proc)
            camera = _camera(tmp_path, "occlude", 15.0, start=start, count=stop - start)
            # the camera stops publishing after `count` frames (the first ones may go before discovery)
            assert spin_until(n, lambda: len(p.truth) > 0, 30, proc), "no frames from the camera"
            heard = -1
            while len(p.truth) != heard:
                heard = len(p.truth)
                spin_until(n, lambda: False, 1.5, proc)
            p.wait_diag(proc, _idle)
            spin_until(n, lambda: False, 0.5, proc)
            frames = [f for f in p.frames(cid) if f[0] is not None]
            for _, det_msg, info in frames:
                _check_frame(cid, det_msg, info)
            seen = [_truth_box(t, spec.target_identity) is not None for t, _, _ in frames]
            first_hidden = seen.index(False)
            back = first_hidden + seen[first_hidden:].index(True)
            before = {info.track_ids[0] for _, m, info in frames[:first_hidden] if m.detections}
            after = {info.track_ids[0] for _, m, info in frames[back:] if m.detections}
            assert len(before) == 1, f"the target changed id before the occlusion: {before}"
            assert after == before, f"target id before the occlusion {before}, after {after}"
            # never the occluder as the target meanwhile
            assert all(m.detections[0].results[0].hypothesis.class_id == "red block"
                       for _, m, _ in frames if m.detections)
    finally:
        if camera is not None:
            stop_node(camera)
        assert stop_node(proc) == 0, node_log(proc)[-3000:]


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))


def test_a_frame_flood_with_tracking_keeps_memory_bounded_and_the_counts_add_up(models, tmp_path):
    spec = sequence("slide")
    frames = [convert.rgb_to_image_msg(f.image, Header(frame_id="camera")) for f in render(spec, stop=30)]
    proc = _detect_node(models, tmp_path, "image_reliability:=reliable")
    try:
        with ros_node() as n:
            p = Planner(n)
            image_pub = n.create_publisher(Image, "image", RELIABLE)
            p.wait_ready(proc)
            assert spin_until(n, lambda: image_pub.get_subscription_count() > 0, 10, proc)
            cid = p.command("pick the red block", proc)
            sent, t0 = 0, time.time()

            def send(k):
                msg = frames[k % len(frames)]
                now = time.time()
                msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
                image_pub.publish(msg)

            # warm up (the tracker's first frames allocate), then flood at ~60 Hz for 3 s
            while time.time() - t0 < 1.5:
                send(sent)
                sent += 1
                spin_until(n, lambda: False, 1 / 30, proc)
            rss0 = _rss_kb(proc.pid)
            t1 = time.time()
            while time.time() - t1 < 3.0:
                send(sent)
                sent += 1
                spin_until(n, lambda: False, 1 / 60, proc)
            grown = _rss_kb(proc.pid) - rss0
            v = p.wait_diag(proc, _idle)
            assert grown < 100_000, f"node memory grew by {grown} kB under a 60 Hz flood with tracking"
            received, processed = int(v["frames_received"]), int(v["frames_processed"])
            assert 0 < processed <= received <= sent
            assert int(v["frames_dropped"]) + processed <= received
            assert processed == int(v["tracking.frames_tracked"]) > int(v["tracking.keyframes"])
            assert len([f for f in p.frames(cid) if f[1].detections]) > 0
            assert proc.poll() is None
    finally:
        assert stop_node(proc) == 0, node_log(proc)[-3000:]


@pytest.mark.parametrize("extra, reason", [
    (("tracking_tracker:=bogus",), "unknown tracker 'bogus'"),
    (("backend:=mcu", "mcu_camera:=device", "serial_port:=socket://127.0.0.1:9"), "mcu_camera device"),
])
def test_unusable_tracking_settings_fail_configure_with_the_reason(models, tmp_path, extra, reason):
    proc = _detect_node(models, tmp_path, *extra)
    try:
        with ros_node() as n:
            status = []
            n.create_subscription(DetectorStatus, "detect_node/status", status.append, LATCHED)
            ok = spin_until(n, lambda: status and reason in status[-1].last_error, 30, proc)
            assert ok, f"no configure error naming {reason!r}; status {status[-1] if status else None}"
            assert status[-1].state == "unconfigured" and not status[-1].ready
    finally:
        assert stop_node(proc) == 0, node_log(proc)[-3000:]
    assert "configure failed" in node_log(proc)


def test_mcu_backend_tracks_through_the_same_engine_interface(models, tmp_path):
    # the host build of the firmware on a pseudo-terminal, its built-in random-weight encoder (wiring only:
    # its boxes mean nothing); keyframes go to the MCU, every frame is tracked and published on the host
    from tinyvlm_ros.mcu.emulate import Emulator
    from tinyvlm_ros.testing import scenes

    scene = scenes.make_scene(33, 320, 240, labels=["red block", "blue ball"])
    with Emulator("host") as emu:
        proc = _detect_node(models, tmp_path, "backend:=mcu", f"serial_port:={emu.url}", "matryoshka_dim:=16",
                            "mcu_score_threshold:=0.01", "mcu_timeout_s:=3.0", "mcu_allow_random_model:=true",
                            "image_reliability:=reliable")
        try:
            with ros_node() as n:
                p = Planner(n)
                image_pub = n.create_publisher(Image, "image", RELIABLE)
                p.wait_ready(proc)
                assert spin_until(n, lambda: image_pub.get_subscription_count() > 0, 10, proc)
                cid = p.command("pick the red block", proc)
                for k in range(20):
                    header = Header(frame_id="camera")
                    header.stamp.sec, header.stamp.nanosec = 500 + k // 10, (k % 10) * 100_000_000
                    image_pub.publish(convert.rgb_to_image_msg(scene.image, header))
                    spin_until(n, lambda: False, 0.1, proc)
                v = p.wait_diag(proc, lambda v: _idle(v) and int(v.get("tracking.keyframes", 0)) >= 1)
                assert v["tracking"] == "on" and v["model.backend"] == "mcu"
                assert v["tracking.engine_errors"] == "0" and v["frames_failed"] == "0"
                assert int(v["frames_processed"]) == int(v["tracking.frames_tracked"]) >= 1
                frames = p.frames(cid)
                assert len(frames) >= 0.8 * int(v["frames_processed"])
                for _, det_msg, info in frames:
                    _check_frame(cid, det_msg, info)
        finally:
            assert stop_node(proc) == 0, node_log(proc)[-3000:]
