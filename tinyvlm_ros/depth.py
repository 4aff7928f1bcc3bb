"""3D boxes from a detection's mask, a depth image and the camera intrinsics.

Grasp planners want where the object is, not only where it is in the image.
Each mask's pixels are back-projected with the pinhole model; the box is the
5th-95th percentile extent of those points, so flying pixels at object edges
do not inflate it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

import numpy as np

from tinyvlm_ros.geometry import box_mask

if TYPE_CHECKING:  # pragma: no cover
    from tinyvlm_ros.types import Detection


def depth_to_metres(height: int, width: int, encoding: str, is_bigendian: int, step: int, data: bytes,
                    scale: float = 0.001) -> np.ndarray:
    """Decode a depth image (16UC1/mono16 in units of ``scale`` m, or 32FC1 in m) to HxW float32 m.

    Invalid pixels (0, NaN, inf) become NaN.

    Raises:
        ValueError: unsupported encoding or a buffer that does not match.
    """
    if encoding in ("16UC1", "mono16"):
        dtype, bpp = (">u2" if is_bigendian else "<u2"), 2
    elif encoding == "32FC1":
        dtype, bpp = (">f4" if is_bigendian else "<f4"), 4
    else:
        raise ValueError(f"unsupported depth encoding {encoding!r}; use 16UC1 or 32FC1")
    if height <= 0 or width <= 0 or step < width * bpp or len(data) < step * height:
        raise ValueError(f"depth buffer does not match {width}x{height} {encoding} with step {step}")
    rows = np.frombuffer(data, np.uint8, count=step * height).reshape(height, step)[:, :width * bpp]
    d = rows.copy().view(dtype).reshape(height, width).astype(np.float32)
    if bpp == 2:
        d *= np.float32(scale)
    d[~np.isfinite(d) | (d <= 0)] = np.nan
    return d


def mask_points(depth_m: np.ndarray, mask: np.ndarray, k: Sequence[float]) -> np.ndarray:
    """Back-project the masked pixels with valid depth to an Nx3 array in the camera frame.

    Args:
        depth_m: HxW float32 metres (NaN = invalid).
        mask: boolean mask at the colour image's resolution; resized (nearest)
            when the depth image differs.
        k: the 9 values of ``sensor_msgs/CameraInfo.k`` (row-major 3x3), for the
            depth image's resolution.
    """
    h, w = depth_m.shape
    if mask.shape != (h, w):
        ys = (np.arange(h) * mask.shape[0] / h).astype(int)
        xs = (np.arange(w) * mask.shape[1] / w).astype(int)
        mask = mask[ys][:, xs]
    fx, cx, fy, cy = float(k[0]), float(k[2]), float(k[4]), float(k[5])
    if fx <= 0 or fy <= 0:
        raise ValueError(f"camera_info has no focal length (fx={fx}, fy={fy})")
    v, u = np.nonzero(mask & np.isfinite(depth_m))
    z = depth_m[v, u]
    return np.stack([(u + 0.5 - cx) * z / fx, (v + 0.5 - cy) * z / fy, z], axis=1)


def box_from_points(points: np.ndarray, min_points: int = 10
                    ) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Return (centre xyz, size xyz) of the 5th-95th percentile box, or None if too few points."""
    if points.shape[0] < min_points:
        return None
    lo = np.percentile(points, 5, axis=0)
    hi = np.percentile(points, 95, axis=0)
    return (lo + hi) / 2.0, np.maximum(hi - lo, 0.0)


def detection_boxes(depth_m: np.ndarray, detections: Sequence["Detection"], k: Sequence[float],
                    frame_hw: Tuple[int, int]) -> List[Optional[Tuple[np.ndarray, np.ndarray]]]:
    """Return (centre xyz, size xyz) per detection from its mask (or box); None where too few points.

    Args:
        depth_m: HxW float32 metres of the depth image paired with the colour frame.
        detections: detections of the colour frame (masks at its resolution).
        k: ``CameraInfo.k`` of the depth image.
        frame_hw: the colour frame's (height, width).
    """
    out: List[Optional[Tuple[np.ndarray, np.ndarray]]] = []
    for det in detections:
        mask = det.mask if det.mask is not None and det.mask.shape == tuple(frame_hw) else \
            box_mask(det.box_xyxy, frame_hw)
        out.append(box_from_points(mask_points(depth_m, mask, k)))
    return out
