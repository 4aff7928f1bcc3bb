"""``make demo``: start a camera stand-in and show messages flowing.

Until the detector lands this starts ``scene_publisher`` and prints the
ground-truth detections it publishes; the full demo replays a bag through
``detect_node``.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from vision_msgs.msg import Detection2DArray

    from ament_index_python.packages import get_package_prefix

    exe = Path(get_package_prefix("tinyvlm_ros")) / "lib" / "tinyvlm_ros" / "scene_publisher"
    proc = subprocess.Popen([str(exe), "--ros-args", "-p", "rate_hz:=2.0"], start_new_session=True)
    got = []
    rclpy.init()
    node = rclpy.create_node("tinyvlm_demo")
    node.create_subscription(Detection2DArray, "ground_truth", got.append, 10)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    deadline = time.monotonic() + 30
    shown = 0
    try:
        while len(got) < 3 and time.monotonic() < deadline and proc.poll() is None:
            ex.spin_once(timeout_sec=0.1)
            for msg in got[shown:]:
                shown += 1
                objs = ", ".join(f"{d.results[0].hypothesis.class_id} at "
                                 f"({d.bbox.center.position.x:.0f}, {d.bbox.center.position.y:.0f})"
                                 for d in msg.detections)
                print(f"[demo] frame {msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d}: {objs}")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=10)
        node.destroy_node()
        rclpy.try_shutdown()
    if not got:
        print("[demo] error: no message arrived within 30 s", file=sys.stderr)
        return 1
    print(f"[demo] {len(got)} messages received over DDS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
