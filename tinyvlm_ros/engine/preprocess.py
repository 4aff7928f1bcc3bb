"""Model inputs made the way the upstream models' own code makes them.

The networks were trained (and their authors' predictors run) on images
resized by Pillow, and a trained network notices the resampler: OpenCV's
bilinear and area filters moved a MobileSAM embedding to cosine 0.995 (worst
location 0.978) on weights with a realistic spread.  So the resampling here is
Pillow's, with upstream's sizes and rounding, and the results are equal to
upstream's to the last bit (tests/test_preprocess.py checks it against the
upstream code path on a real photo):

* :func:`sam_input` is segment-anything's ``ResizeLongestSide.apply_image``
  (torchvision ``to_pil_image`` + ``resize``: Pillow bilinear, which
  antialiases when it shrinks; target side ``int(x * scale + 0.5)``) followed by
  ``Sam.preprocess`` (``(x - mean) / std``, zero padding bottom/right).
* :func:`mask_crop` + :func:`clip_pixel_values` are open_clip's validation
  transform (``Resize(R, bicubic)`` on the shorter side, ``CenterCrop(R)``,
  ``ToTensor``, ``Normalize``) applied to a square crop around a mask, so the
  resize is Pillow bicubic and the centre crop is a no-op.  The one intended
  difference from scoring the plain crop is the mask itself: after the resize,
  pixels outside the mask are set to CLIP's mean colour (zero once
  normalised), so a neighbour never votes for an object, and every pixel
  inside the mask is exactly upstream's.  Outside the frame the square is
  padded with the same colour before the resize, as a crop of a padded image
  would be.

The mask-aware crop has one implementation, used by the host matcher and by
the MCU distillation data (``tinyvlm_ros.distill.data``).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from PIL import Image

#: A mask for :func:`mask_crop`: a bool HxW mask of the frame, or a function that
#: samples the mask over a square region (x0, y0, side) of the frame at R x R.
CropMask = Union[np.ndarray, Callable[[Tuple[int, int, int], int], np.ndarray]]


def resize_longest_side_shape(height: int, width: int, target: int) -> Tuple[int, int]:
    """(new_height, new_width) with the longest side ``target``, rounded as segment-anything rounds."""
    scale = target * 1.0 / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def pil_resize(image: np.ndarray, width: int, height: int, resample: int) -> np.ndarray:
    """Resize HxWx3 uint8 with Pillow's filter ``resample`` (``Image.BILINEAR``, ...) into a new array."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 image, got {image.dtype} {image.shape}")
    if image.shape[:2] == (height, width):
        return image.copy()
    return np.array(Image.fromarray(image).resize((int(width), int(height)), resample))


def sam_input(image: np.ndarray, size: int, mean: Sequence[float],
              std: Sequence[float]) -> Tuple[np.ndarray, float]:
    """Make MobileSAM's encoder input from an HxWx3 uint8 RGB frame.

    Returns:
        (float32 [1, 3, size, size] normalised and zero padded, scale = size / max(H, W)).
    """
    h, w = image.shape[:2]
    nh, nw = resize_longest_side_shape(h, w, size)
    resized = pil_resize(image, nw, nh, Image.BILINEAR)
    x = np.zeros((1, 3, size, size), np.float32)
    # channel planes written in place: no HxWx3 float copy and no transpose of the padded square
    for c in range(3):
        plane = x[0, c, :nh, :nw]
        np.subtract(resized[:, :, c], np.float32(mean[c]), out=plane, dtype=np.float32)
        np.divide(plane, np.float32(std[c]), out=plane)
    return x, size / float(max(h, w))


def square_region(box: Sequence[float], margin: float, min_side: float = 8.0) -> Tuple[int, int, int]:
    """Square (x0, y0, side) in frame pixels centred on ``box``, grown by ``margin`` x its longer side."""
    x0, y0, x1, y1 = box
    side = int(np.ceil(max(max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin), min_side)))
    return (int(np.floor((x0 + x1) / 2.0 - side / 2.0)), int(np.floor((y0 + y1) / 2.0 - side / 2.0)), side)


def mask_crop(image: np.ndarray, box: Sequence[float], size: int, fill: np.ndarray,
              mask: Optional[CropMask] = None, margin: float = 0.1) -> np.ndarray:
    """Mask-aware square crop, resized like open_clip's transform.

    Args:
        image: HxWx3 uint8 RGB frame.
        box: (x0, y0, x1, y1) of the object in frame pixels.
        size: output side R.
        fill: uint8 RGB colour outside the mask and outside the frame (CLIP's mean colour,
            which is zero after normalisation).
        mask: None (keep every pixel), a bool HxW frame mask, or a function
            ``(region, R) -> bool [R, R]`` sampling the mask over the square region
            (x0, y0, side) at the output resolution (for masks held at another resolution).
        margin: context around the box, as a fraction of its longer side.

    Returns:
        uint8 [R, R, 3] RGB: every pixel inside the mask is exactly what open_clip's transform
        makes of the plain square crop; pixels outside it are ``fill``.
    """
    h, w = image.shape[:2]
    region = square_region(box, margin)
    sx0, sy0, side = region
    canvas = np.empty((side, side, 3), np.uint8)
    canvas[:] = fill
    ix0, iy0, ix1, iy1 = max(0, sx0), max(0, sy0), min(w, sx0 + side), min(h, sy0 + side)
    if ix1 > ix0 and iy1 > iy0:
        canvas[iy0 - sy0:iy1 - sy0, ix0 - sx0:ix1 - sx0] = image[iy0:iy1, ix0:ix1]
    # open_clip: Resize(R) on the shorter side then CenterCrop(R); on a square that is one resize
    out = pil_resize(canvas, size, size, Image.BICUBIC)
    if mask is not None:
        # the fill goes in after the resize, so no kept pixel is blended with it
        inside = mask(region, size) if callable(mask) else _frame_mask_at(mask, region, size)
        out[~inside] = fill
    return out


def _frame_mask_at(mask: np.ndarray, region: Tuple[int, int, int], size: int) -> np.ndarray:
    """Bool HxW frame mask over a square region, at R x R: a cell is inside when most of it is."""
    h, w = mask.shape[:2]
    sx0, sy0, side = region
    canvas = np.zeros((side, side), np.float32)
    ix0, iy0, ix1, iy1 = max(0, sx0), max(0, sy0), min(w, sx0 + side), min(h, sy0 + side)
    if ix1 > ix0 and iy1 > iy0:
        canvas[iy0 - sy0:iy1 - sy0, ix0 - sx0:ix1 - sx0] = mask[iy0:iy1, ix0:ix1]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(canvas, (size, size), interpolation=interp) >= 0.5


def clip_fill(mean: Sequence[float]) -> np.ndarray:
    """Return CLIP's mean colour as uint8 RGB: the fill of a mask-aware crop (about zero once normalised)."""
    return np.round(np.asarray(mean, np.float64) * 255.0).astype(np.uint8)


def clip_pixel_values(crops: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Uint8 [N, R, R, 3] RGB -> float32 [N, 3, R, R] as ``ToTensor`` + ``Normalize`` compute it."""
    x = crops.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
