"""A camera stand-in: publishes generated scenes with known answers.

Topics:
    image (sensor_msgs/Image, rgb8) or image/compressed (sensor_msgs/CompressedImage)
    ground_truth (vision_msgs/Detection2DArray): the exact boxes, same header.

Frame k is ``scenes.make_scene(seed + k, width, height, n_objects)``, so a
subscriber can recompute any frame it receives.  Used by the demo and tests.
"""

from __future__ import annotations

import sys
from typing import List, Optional

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from tinyvlm_ros import imaging
from tinyvlm_ros.testing import scenes
from tinyvlm_ros.ros import convert
from tinyvlm_ros.types import Detection


class ScenePublisher(Node):
    """Publishes one generated scene per timer tick."""

    def __init__(self) -> None:
        super().__init__("scene_publisher")
        self.declare_parameter("rate_hz", 5.0, ParameterDescriptor(description="frames per second"))
        self.declare_parameter("seed", 0, ParameterDescriptor(description="seed of frame 0"))
        self.declare_parameter("width", 640, ParameterDescriptor(description="frame width in pixels"))
        self.declare_parameter("height", 480, ParameterDescriptor(description="frame height in pixels"))
        self.declare_parameter("n_objects", 4, ParameterDescriptor(description="objects per scene"))
        self.declare_parameter("labels", [""], ParameterDescriptor(
            description="exact objects to draw, e.g. ['red block', 'blue ball']; empty = random"))
        self.declare_parameter("compressed", False, ParameterDescriptor(description="publish jpeg"))
        self.declare_parameter("frame_id", "camera", ParameterDescriptor(description="header.frame_id"))
        self.declare_parameter("count", 0, ParameterDescriptor(description="stop after N frames (0: never)"))
        p = self.get_parameter
        self._rate = float(p("rate_hz").value)
        if self._rate <= 0:
            raise ValueError(f"rate_hz must be > 0, got {self._rate}")
        self._seed = int(p("seed").value)
        self._w, self._h = int(p("width").value), int(p("height").value)
        self._n = int(p("n_objects").value)
        labels: List[str] = [s for s in p("labels").value if s]
        self._labels: Optional[List[str]] = labels or None
        self._compressed = bool(p("compressed").value)
        self._frame_id = str(p("frame_id").value)
        self._count = int(p("count").value)
        self._k = 0
        if self._compressed:
            self._pub = self.create_publisher(CompressedImage, "image/compressed", qos_profile_sensor_data)
        else:
            self._pub = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self._gt = self.create_publisher(Detection2DArray, "ground_truth", 10)
        self._timer = self.create_timer(1.0 / self._rate, self._tick)
        self.get_logger().info(
            f"publishing {self._w}x{self._h} scenes at {self._rate:g} Hz from seed {self._seed} "
            f"({'compressed' if self._compressed else 'raw'})")

    def _tick(self) -> None:
        if self._count and self._k >= self._count:
            self._timer.cancel()
            return
        scene = scenes.make_scene(self._seed + self._k, self._w, self._h, self._n, labels=self._labels)
        header = Header(frame_id=self._frame_id, stamp=self.get_clock().now().to_msg())
        if self._compressed:
            fmt, data = imaging.encode_compressed(scene.image, "png")
            msg = CompressedImage(header=header, format=fmt)
            msg.data = data
            self._pub.publish(msg)
        else:
            self._pub.publish(convert.rgb_to_image_msg(scene.image, header))
        truth = [Detection(o.label, 1.0, tuple(float(v) for v in o.box_xyxy)) for o in scene.objects]
        self._gt.publish(convert.detections_to_msg(truth, header))
        self._k += 1


def main(args: Optional[List[str]] = None) -> int:
    rclpy.init(args=args)
    node = None
    try:
        node = ScenePublisher()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except ValueError as exc:
        print(f"scene_publisher: {exc}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
