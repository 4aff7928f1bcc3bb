"""What the detect node publishes per processed frame: detections, their info, masks, debug image, 3D.

Lifecycle publishers: created at configure, enabled by activate, disabled by
deactivate, destroyed at cleanup.  Every message of one frame carries that
frame's header, so a consumer pairs them by stamp.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from rclpy.lifecycle import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, Detection3DArray

from tinyvlm_ros import annotate, depth
from tinyvlm_ros.msg import DetectionInfo
from tinyvlm_ros.ros import convert
from tinyvlm_ros.types import Detection


class Outputs:
    """The per-frame publishers of the detect node."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._pubs: Dict[str, object] = {}

    @property
    def configured(self) -> bool:
        return bool(self._pubs)

    def configure(self, use_depth: bool) -> None:
        """Create the lifecycle publishers (disabled until the node is activated)."""
        make = self._node.create_lifecycle_publisher
        self._pubs = {
            "detections": make(Detection2DArray, "detections", 10),
            "detections_info": make(DetectionInfo, "detections_info", 10),
            "masks": make(Image, "masks", 10),
            "debug_image": make(Image, "debug_image", 1),
        }
        if use_depth:
            self._pubs["detections_3d"] = make(Detection3DArray, "detections_3d", 10)

    def cleanup(self) -> None:
        for pub in self._pubs.values():
            self._node.destroy_lifecycle_publisher(pub)
        self._pubs = {}

    def topic(self, name: str) -> str:
        """Fully resolved topic of output ``name`` (for log lines)."""
        pub = self._pubs.get(name)
        return pub.topic_name if pub is not None else self._node.resolve_topic_name(name)

    def publish(self, header: Header, rgb: Optional[np.ndarray], detections: Sequence[Detection],
                command_id: int, command: str, targets: Sequence[str], publish_masks: bool,
                frame_hw: Optional[Tuple[int, int]] = None) -> None:
        """Publish detections + their info (always together), the label image and the debug image.

        ``rgb`` is the processed frame; None when the node never saw the pixels (an MCU's own
        camera), then ``frame_hw`` sizes the label image and no debug image is drawn.
        """
        pubs = self._pubs
        if not pubs:
            return
        pubs["detections"].publish(convert.detections_to_msg(detections, header, command_id))
        pubs["detections_info"].publish(convert.info_msg(detections, header, command_id, command, targets))
        hw = rgb.shape[:2] if rgb is not None else frame_hw
        if publish_masks and hw is not None:
            pubs["masks"].publish(convert.mono8_msg(convert.label_image(detections, *hw), header))
        if rgb is not None and pubs["debug_image"].get_subscription_count() > 0:
            pubs["debug_image"].publish(convert.rgb_to_image_msg(annotate.draw(rgb, detections), header))

    @property
    def wants_3d(self) -> bool:
        return "detections_3d" in self._pubs

    def publish_3d(self, header: Header, frame_hw: Sequence[int], detections: Sequence[Detection],
                   depth_msg: Image, info: CameraInfo, depth_scale: float) -> None:
        """Publish the 3D boxes of a frame from the depth image and camera_info paired with it.

        Raises:
            ValueError: the depth image or camera_info cannot be used (the reason says why).
        """
        d = depth.depth_to_metres(depth_msg.height, depth_msg.width, depth_msg.encoding,
                                  depth_msg.is_bigendian, depth_msg.step, bytes(depth_msg.data), depth_scale)
        boxes = depth.detection_boxes(d, detections, info.k, (int(frame_hw[0]), int(frame_hw[1])))
        out_header = Header(stamp=header.stamp, frame_id=depth_msg.header.frame_id or header.frame_id)
        self._pubs["detections_3d"].publish(convert.detections_3d_msg(out_header, detections, boxes))
