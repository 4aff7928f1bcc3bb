"""A camera stand-in: publishes generated scenes with known answers.

Topics:
    image (sensor_msgs/Image, rgb8) or image/compressed (sensor_msgs/CompressedImage)
    ground_truth (vision_msgs/Detection2DArray): the exact boxes, same header.

Frame k is ``scenes.make_scene(seed + k, width, height, n_objects)``, so a
subscriber can recompute any frame it receives.  With ``sequence`` set it plays
a generated moving sequence instead (:mod:`tinyvlm_ros.testing.sequences`:
slide, cross, occlude, pan), one sequence frame per tick from
``sequence_start``, starting over at its end; the ground truth then carries
each object's identity as its id (``"0/<identity>"``).  Used by the demo and
tests.
"""

from __future__ import annotations

import sys
from typing import Iterator, List, Optional

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from tinyvlm_ros import imaging
from tinyvlm_ros.testing import scenes, sequences
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
        self.declare_parameter("sequence", "", ParameterDescriptor(
            description="play this generated moving sequence instead of still scenes (slide, cross, occlude, "
                        "pan)"))
        self.declare_parameter("sequence_start", 0, ParameterDescriptor(
            description="first frame of the sequence to play"))
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
        name = str(p("sequence").value)
        self._spec = sequences.sequence(name) if name else None
        self._start = int(p("sequence_start").value)
        if self._spec is not None and not 0 <= self._start < self._spec.frames:
            raise ValueError(f"sequence_start must be within [0, {self._spec.frames}), got {self._start}")
        self._frames: Optional[Iterator[sequences.SequenceFrame]] = None
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
        if self._spec is not None:
            image, truth = self._next_sequence_frame()
        else:
            scene = scenes.make_scene(self._seed + self._k, self._w, self._h, self._n, labels=self._labels)
            image = scene.image
            truth = [Detection(o.label, 1.0, tuple(float(v) for v in o.box_xyxy)) for o in scene.objects]
        header = Header(frame_id=self._frame_id, stamp=self.get_clock().now().to_msg())
        if self._compressed:
            fmt, data = imaging.encode_compressed(image, "png")
            msg = CompressedImage(header=header, format=fmt)
            msg.data = data
            self._pub.publish(msg)
        else:
            self._pub.publish(convert.rgb_to_image_msg(image, header))
        self._gt.publish(convert.detections_to_msg(truth, header))
        self._k += 1

    def _next_sequence_frame(self):
        """Return (image, truth detections with track_id = identity) of the next sequence frame."""
        frame = next(self._frames, None) if self._frames is not None else None
        if frame is None:   # first tick, or the sequence ended: (re)start it
            self._frames = sequences.render(self._spec, start=self._start)
            frame = next(self._frames)
        truth = [Detection(o.label, 1.0, tuple(float(v) for v in o.box_xyxy), track_id=o.identity)
                 for o in frame.truth]
        return frame.image, truth


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
