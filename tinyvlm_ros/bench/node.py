"""Node benchmark: what detect_node adds on top of the detector, over real DDS.

``tinyvlm bench node`` starts the installed ``detect_node`` as its own process,
publishes generated 640x480 scenes at a fixed rate with a standing command,
and measures

- end-to-end latency: image header stamp (set when published) to the moment
  the detections arrive back in this process, both on this machine's clock;
- node overhead: the node's own figure from /diagnostics, i.e. decoding the
  image, building and publishing the messages, and bookkeeping, excluding the
  engine call (``overhead_p50_ms``/``overhead_p95_ms``);
- engine time inside the node, frames processed and dropped.

rclpy is imported inside the functions, so this module imports without ROS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np


def _node_executable() -> Path:
    from ament_index_python.packages import get_package_prefix

    return Path(get_package_prefix("tinyvlm_ros")) / "lib" / "tinyvlm_ros" / "detect_node"


def run(models: Optional[Path] = None, frames: int = 60, rate_hz: float = 5.0, width: int = 640,
        height: int = 480, command: str = "pick the red block", mode: str = "fast",
        reliability: str = "best_effort", dds_profile: Optional[Path] = None,
        timeout_s: float = 120.0) -> Dict[str, Any]:
    """Run the benchmark and return its figures (see the module docstring).

    ``dds_profile`` is a Fast DDS XML profile used by both processes (e.g. the
    package's config/fastdds_large_frames.xml); None keeps Fast DDS defaults.
    """
    if dds_profile is not None:
        if not Path(dds_profile).is_file():
            raise FileNotFoundError(f"no Fast DDS profile at {dds_profile}")
        os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(dds_profile)
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header, String
    from vision_msgs.msg import Detection2DArray

    from tinyvlm_ros.testing import scenes
    from tinyvlm_ros.msg import DetectorStatus
    from tinyvlm_ros.ros import convert

    tmp = tempfile.TemporaryDirectory(prefix="tinyvlm-bench-node-")
    if models is None:
        from tinyvlm_ros.testing.models import make_known_answer_set

        models = make_known_answer_set(Path(tmp.name) / "known")
    log = open(Path(tmp.name) / "detect_node.log", "wb")
    proc = subprocess.Popen([str(_node_executable()), "--ros-args", "-p", f"model_dir:={models}",
                             "-p", f"mode:={mode}", "-p", "diagnostics_period_s:=0.5",
                             "-p", f"image_reliability:={reliability}"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    rclpy.init()
    node = rclpy.create_node("tinyvlm_bench_node")
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    sent: Dict[tuple, float] = {}
    latency = []
    diag: Dict[str, str] = {}
    status = []

    def on_det(msg) -> None:
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        if key in sent:
            latency.append(time.time() - sent[key])

    def on_diag(msg) -> None:
        for st in msg.status:
            if st.name == "/detect_node: detector":   # the node's fully qualified name
                diag.clear()
                diag.update({kv.key: kv.value for kv in st.values})

    node.create_subscription(Detection2DArray, "detections", on_det, 100)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    node.create_subscription(DetectorStatus, "detect_node/status", status.append, latched)
    img_pub = node.create_publisher(Image, "image", reliable)
    cmd_pub = node.create_publisher(String, "command", reliable)

    def spin_until(pred, limit) -> bool:
        end = time.monotonic() + limit
        while time.monotonic() < end:
            if pred():
                return True
            if proc.poll() is not None:
                raise RuntimeError(f"detect_node exited with {proc.returncode}; see {log.name}")
            ex.spin_once(timeout_sec=0.02)
        return pred()

    try:
        if not spin_until(lambda: status and status[-1].ready and img_pub.get_subscription_count() > 0,
                          timeout_s):
            raise TimeoutError(f"detect_node did not become active within {timeout_s:g} s")
        cmd_pub.publish(String(data=command))
        if not spin_until(lambda: status[-1].command == command, 10):
            raise TimeoutError("detect_node did not take the command")
        labels = ["red block", "blue ball", "green triangle", "yellow block"]
        pool = [scenes.make_scene(1000 + i, width, height, labels=labels).image for i in range(8)]
        period = 1.0 / rate_hz
        t_next = time.monotonic()
        for i in range(frames):
            header = Header(frame_id="camera")
            now = time.time()
            header.stamp.sec, header.stamp.nanosec = int(now), int((now % 1) * 1e9)
            sent[(header.stamp.sec, header.stamp.nanosec)] = now
            img_pub.publish(convert.rgb_to_image_msg(pool[i % len(pool)], header))
            t_next += period
            spin_until(lambda: time.monotonic() >= t_next, period + 1.0)
        spin_until(lambda: False, 3.0)   # let the last frames and a diagnostics period arrive
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        node.destroy_node()
        rclpy.try_shutdown()
        log.close()
        tmp.cleanup()

    lat = np.array(latency) if latency else np.array([np.nan])
    last = status[-1] if status else None

    def ms(key: str) -> float:
        return float(diag.get(key, "nan"))

    return {
        "frames_sent": frames, "rate_hz": rate_hz, "size": [width, height], "mode": mode,
        "image_reliability": reliability, "dds_profile": str(dds_profile) if dds_profile else "default",
        "frames_received": int(last.frames_received) if last else 0,
        "frames_processed": int(last.frames_processed) if last else 0,
        "frames_dropped": int(last.frames_dropped) if last else 0,
        "detections_received": len(latency),
        "e2e_latency_p50_ms": float(np.percentile(lat, 50) * 1e3),
        "e2e_latency_p95_ms": float(np.percentile(lat, 95) * 1e3),
        "node_overhead_p50_ms": ms("overhead_p50_ms"), "node_overhead_p95_ms": ms("overhead_p95_ms"),
        "engine_p50_ms": ms("engine_p50_ms"), "engine_p95_ms": ms("engine_p95_ms"),
        "models": str(models) if models else "known-answer (generated)",
    }


def register(subparsers) -> None:
    """Add ``tinyvlm bench node``."""
    p = subparsers.add_parser("node", help="detect_node overhead and end-to-end latency over real DDS")
    p.add_argument("--models", type=Path, default=None,
                   help="model set (default: generated known-answer set)")
    p.add_argument("--reliability", choices=("best_effort", "reliable"), default="best_effort",
                   help="the node's image subscription QoS")
    p.add_argument("--dds-profile", type=Path, default=None,
                   help="Fast DDS XML profile for both processes (see config/fastdds_large_frames.xml)")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--rate", type=float, default=5.0, help="images per second")
    p.add_argument("--mode", choices=("fast", "thorough"), default="fast")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    if args.frames < 1 or args.rate <= 0:
        raise ValueError("--frames must be >= 1 and --rate > 0")
    out = run(args.models, frames=args.frames, rate_hz=args.rate, mode=args.mode,
              reliability=args.reliability, dds_profile=args.dds_profile)
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0
