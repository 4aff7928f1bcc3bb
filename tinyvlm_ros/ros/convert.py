"""Message <-> array conversions for the nodes (thin wrappers over :mod:`tinyvlm_ros.imaging`)."""

from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import (Detection2D, Detection2DArray, Detection3D, Detection3DArray,
                             ObjectHypothesisWithPose)

from tinyvlm_ros import imaging
from tinyvlm_ros.detection_fields import detection_fields
from tinyvlm_ros.geometry import box_mask
from tinyvlm_ros.msg import DetectionInfo
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
                      command_id: int = 0) -> Detection2DArray:
    """Build a ``vision_msgs/Detection2DArray``: one Detection2D per object, same header.

    Fields as :func:`tinyvlm_ros.detection_fields.detection_fields` computes them (the bag
    writer uses the same): ``results[0].hypothesis`` = target phrase and calibrated score,
    ``results[0].pose`` and bbox centre = box centre in pixels, ``id`` =
    ``"<command_id>/<object_id>"``.
    """
    out = Detection2DArray(header=header)
    for f in detection_fields(detections, command_id):
        d = Detection2D(header=header, id=f.id)
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = f.class_id
        hyp.hypothesis.score = f.score
        hyp.pose.pose.position.x, hyp.pose.pose.position.y = f.center
        d.results.append(hyp)
        d.bbox.center.position.x, d.bbox.center.position.y = f.center
        d.bbox.size_x, d.bbox.size_y = f.size
        out.detections.append(d)
    return out


def info_msg(detections: Sequence[Detection], header: Header, command_id: int, command: str,
             targets: Sequence[str]) -> DetectionInfo:
    """Build the ``tinyvlm_ros/DetectionInfo`` that accompanies :func:`detections_to_msg`'s message."""
    fields = detection_fields(detections, command_id)
    return DetectionInfo(header=header, command_id=int(command_id), command=command, targets=list(targets),
                         roles=[f.role for f in fields], track_ids=[f.track_id for f in fields],
                         sources=[f.source for f in fields],
                         verified_age_s=[f.verified_age_s for f in fields])


def detections_3d_msg(header: Header, detections: Sequence[Detection],
                      boxes: Sequence[Optional[Tuple[Sequence[float], Sequence[float]]]]) -> Detection3DArray:
    """Build a ``vision_msgs/Detection3DArray`` from (centre xyz, size xyz) per detection (None: skipped).

    ``id`` is the index of the detection in the matching Detection2DArray.
    """
    out = Detection3DArray(header=header)
    for i, (det, box) in enumerate(zip(detections, boxes)):
        if box is None:
            continue
        (cx, cy, cz), (sx, sy, sz) = box
        d3 = Detection3D(header=header, id=str(i))
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id, hyp.hypothesis.score = det.label, float(det.score)
        pos = hyp.pose.pose.position
        pos.x, pos.y, pos.z = float(cx), float(cy), float(cz)
        d3.results.append(hyp)
        centre = d3.bbox.center
        centre.position.x, centre.position.y, centre.position.z = float(cx), float(cy), float(cz)
        centre.orientation.w = 1.0
        d3.bbox.size.x, d3.bbox.size.y, d3.bbox.size.z = float(sx), float(sy), float(sz)
        out.detections.append(d3)
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
            lab[box_mask(det.box_xyxy, (height, width))] = i + 1
    return lab
