"""Conversions between ROS image buffers (or image files) and RGB arrays, without cv_bridge.

These are plain functions over the fields of ``sensor_msgs/Image`` and
``sensor_msgs/CompressedImage`` so they can be tested without ROS and reused
by the node, the bag tools and the CLI.  Every rejection is a ``ValueError``
whose message says what was wrong with the input.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Tuple, Union

import numpy as np

#: encoding -> (channels, numpy dtype) for the packed encodings we decode.
_PLAIN = {
    "rgb8": (3, np.uint8),
    "bgr8": (3, np.uint8),
    "rgba8": (4, np.uint8),
    "bgra8": (4, np.uint8),
    "mono8": (1, np.uint8),
    "8UC1": (1, np.uint8),
    "8UC3": (3, np.uint8),
    "mono16": (1, np.uint16),
    "16UC1": (1, np.uint16),
}
#: YUV 4:2:2 encodings: 2 bytes per pixel, byte order of one pixel pair.
_YUV422 = {
    "yuv422": "uyvy",        # ROS's name for UYVY
    "uyvy": "uyvy",
    "yuv422_yuy2": "yuyv",   # YUYV / YUY2
    "yuyv": "yuyv",
}

SUPPORTED_ENCODINGS = tuple(sorted(list(_PLAIN) + list(_YUV422)))

#: Frames larger than this (in pixels) are rejected before any copy; a 8K
#: frame (7680x4320 = 33 Mpx) is accepted and downscaled by the detector.
MAX_PIXELS = 8192 * 8192


def image_to_rgb(height: int, width: int, encoding: str, is_bigendian: int, step: int,
                 data: bytes) -> np.ndarray:
    """Decode the fields of a ``sensor_msgs/Image`` into an HxWx3 uint8 RGB array.

    Handles row padding (``step`` > width * bytes per pixel) and big-endian
    16-bit data.  mono16 is scaled to 8 bits by its own maximum so that depth-
    like or 12-bit sensors stay visible.

    Raises:
        ValueError: empty frame, unknown encoding, ``step`` too small, or a
            buffer shorter than ``step * height``.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"empty image ({width}x{height})")
    if height * width > MAX_PIXELS:
        raise ValueError(f"image {width}x{height} is larger than the {MAX_PIXELS} pixel limit")
    enc = encoding.strip()
    if enc in _PLAIN:
        channels, dtype = _PLAIN[enc]
        bpp = channels * np.dtype(dtype).itemsize
    elif enc in _YUV422:
        bpp = 2
        if width % 2:
            raise ValueError(f"{enc} needs an even width, got {width}")
    else:
        raise ValueError(f"unsupported encoding {encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)}")
    row = width * bpp
    if step < row:
        raise ValueError(f"step {step} is smaller than width*bytes_per_pixel = {row} for {enc}")
    if len(data) < step * (height - 1) + row:
        raise ValueError(f"data has {len(data)} bytes, expected {step * height} "
                         f"(step {step} x height {height})")
    buf = np.frombuffer(data, dtype=np.uint8, count=min(len(data), step * height))
    if buf.size < step * height:  # last row may be unpadded
        buf = np.concatenate([buf, np.zeros(step * height - buf.size, np.uint8)])
    rows = buf.reshape(height, step)[:, :row]
    if enc in _YUV422:
        return _yuv422_to_rgb(rows.reshape(height, width // 2, 4), _YUV422[enc])
    channels, dtype = _PLAIN[enc]
    if dtype == np.uint16:
        px = rows.copy().view(">u2" if is_bigendian else "<u2").reshape(height, width).astype(np.float32)
        top = float(px.max()) or 1.0
        mono = np.clip(px * (255.0 / top), 0, 255).astype(np.uint8)
        return np.repeat(mono[..., None], 3, axis=2)
    px = rows.reshape(height, width, channels)
    if channels == 1:
        return np.repeat(px, 3, axis=2)
    if enc in ("bgr8", "bgra8"):
        return np.ascontiguousarray(px[..., 2::-1])
    return np.ascontiguousarray(px[..., :3])


def _yuv422_to_rgb(pairs: np.ndarray, order: str) -> np.ndarray:
    """Convert HxW/2x4 packed 4:2:2 pixel pairs to RGB (BT.601, video range)."""
    p = pairs.astype(np.float32)
    if order == "uyvy":
        u, y0, v, y1 = p[..., 0], p[..., 1], p[..., 2], p[..., 3]
    else:
        y0, u, y1, v = p[..., 0], p[..., 1], p[..., 2], p[..., 3]
    h, half = y0.shape
    y = np.empty((h, half * 2), np.float32)
    y[:, 0::2], y[:, 1::2] = y0, y1
    u = np.repeat(u, 2, axis=1) - 128.0
    v = np.repeat(v, 2, axis=1) - 128.0
    c = (y - 16.0) * 1.164
    rgb = np.stack([c + 1.596 * v, c - 0.392 * u - 0.813 * v, c + 2.017 * u], axis=2)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def rgb_to_image(rgb: np.ndarray, encoding: str = "rgb8") -> Tuple[int, int, str, int, bytes]:
    """Encode an HxWx3 uint8 RGB array as ``(height, width, encoding, step, data)``.

    Only ``rgb8``, ``bgr8`` and ``mono8`` are written: what cameras publish
    most and what every consumer reads.
    """
    check_rgb(rgb)
    if encoding == "rgb8":
        px = rgb
    elif encoding == "bgr8":
        px = rgb[..., ::-1]
    elif encoding == "mono8":
        px = (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    else:
        raise ValueError(f"cannot encode {encoding!r}; use rgb8, bgr8 or mono8")
    px = np.ascontiguousarray(px)
    h, w = rgb.shape[:2]
    return h, w, encoding, px.strides[0], px.tobytes()


def check_rgb(rgb: np.ndarray) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``rgb`` is a non-empty HxWx3 uint8 array."""
    if not isinstance(rgb, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(rgb).__name__}")
    if rgb.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got {rgb.dtype}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB array, got shape {rgb.shape}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"empty image {rgb.shape}")


def decode_compressed(fmt: str, data: bytes) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` payload (jpeg/png) to RGB.

    Raises:
        ValueError: empty or undecodable payload.
    """
    import cv2  # heavy; only the compressed path needs it

    if not data:
        raise ValueError("compressed image has no data")
    bgr = cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"could not decode compressed image (format {fmt!r}, {len(data)} bytes)")
    return np.ascontiguousarray(bgr[..., ::-1])


def encode_compressed(rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90) -> Tuple[str, bytes]:
    """Encode RGB as jpeg or png; returns ``(format, data)`` for a CompressedImage."""
    import cv2

    check_rgb(rgb)
    ext = {"jpeg": ".jpg", "jpg": ".jpg", "png": ".png"}.get(fmt)
    if ext is None:
        raise ValueError(f"unknown compressed format {fmt!r}; use jpeg or png")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if ext == ".jpg" else []
    ok, buf = cv2.imencode(ext, np.ascontiguousarray(rgb[..., ::-1]), params)
    if not ok:
        raise ValueError(f"could not encode image as {fmt}")
    return ("jpeg" if ext == ".jpg" else "png"), buf.tobytes()


def read_image_file(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an image file (PNG, JPEG, ...) as HxWx3 uint8 RGB.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not an image OpenCV can read.
    """
    import cv2

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image {p} not found")
    bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"image {p} cannot be read (not an image OpenCV understands)")
    return np.ascontiguousarray(bgr[..., ::-1])
