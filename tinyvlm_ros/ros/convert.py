"""Message <-> array conversions for the nodes (thin wrappers over :mod:`tinyvlm_ros.imaging`)."""

from __future__ import annotations

from typing import Iterable, List, Sequence

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from tinyvlm_ros import imaging
from tinyvlm_ros.types import Detection


def image_msg_to_rgb(msg: Image) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` to HxWx3 uint8 RGB (ValueError on bad input)."""
    return imaging.image_to_rgb(msg.height, msg.width, msg.encoding, msg.is_bigendian, msg.step,
                                bytes(msg.data))


def compressed_msg_to_rgb(msg: CompressedImage) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` to RGB (ValueError on bad input)."""
    return imaging.decode_compressed(msg.format, bytes(msg.data))


def rgb_to_image_msg(rgb: np.ndarray, header: Header, encoding: str = "rgb8") -> Image:
    """Build a ``sensor_msgs/Image`` from RGB with the given header."""
    h, w, enc, step, data = imaging.rgb_to_image(rgb, encoding)
    msg = Image(header=header, height=h, width=w, encoding=enc, is_bigendian=0, step=step)
    msg.data = data
    return msg


def mono8_msg(label_image: np.ndarray, header: Header) -> Image:
    """Build a mono8 ``sensor_msgs/Image`` from an HxW uint8 array (e.g. a label image)."""
    lab = np.ascontiguousarray(label_image, dtype=np.uint8)
    msg = Image(header=header, height=lab.shape[0], width=lab.shape[1], encoding="mono8",
                is_bigendian=0, step=lab.shape[1])
    msg.data = lab.tobytes()
    return msg


def detections_to_msg(detections: Sequence[Detection], header: Header,
                      id_prefix: str = "") -> Detection2DArray:
    """Build a ``vision_msgs/Detection2DArray``: one Detection2D per object, same header.

    ``results[0].hypothesis.class_id`` is the target phrase and ``score`` its
    calibrated score; the box is centre + size in pixels; ``id`` is unique
    within the message (its index, optionally prefixed).
    """
    out = Detection2DArray(header=header)
    for i, det in enumerate(detections):
        d = Detection2D(header=header)
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = det.label
        hyp.hypothesis.score = float(det.score)
        cx, cy = det.center
        hyp.pose.pose.position.x = float(cx)
        hyp.pose.pose.position.y = float(cy)
        d.results.append(hyp)
        d.bbox.center.position.x = float(cx)
        d.bbox.center.position.y = float(cy)
        w, h = det.size
        d.bbox.size_x = float(w)
        d.bbox.size_y = float(h)
        d.id = f"{id_prefix}{i}"
        out.detections.append(d)
    return out


def msg_to_boxes(msg: Detection2DArray) -> List[tuple]:
    """Return ``(class_id, score, (x0, y0, x1, y1))`` for each detection of a message."""
    boxes = []
    for d in msg.detections:
        cx, cy = d.bbox.center.position.x, d.bbox.center.position.y
        w, h = d.bbox.size_x, d.bbox.size_y
        label = d.results[0].hypothesis.class_id if d.results else ""
        score = d.results[0].hypothesis.score if d.results else 0.0
        boxes.append((label, score, (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)))
    return boxes


def label_image(detections: Iterable[Detection], height: int, width: int) -> np.ndarray:
    """Paint an HxW uint8 label image: 0 background, i+1 where detection i is."""
    lab = np.zeros((height, width), np.uint8)
    for i, det in reversed(list(enumerate(detections))):
        if i >= 255:
            continue
        if det.mask is not None and det.mask.shape == (height, width):
            lab[det.mask] = i + 1
        else:
            x0, y0, x1, y1 = (int(round(v)) for v in det.box_xyxy)
            lab[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = i + 1
    return lab
