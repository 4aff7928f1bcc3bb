"""Model inputs equal to upstream's on real photos: MobileSAM's resize + normalisation, open_clip's transform.

The references are the upstream functions themselves (segment-anything's
``ResizeLongestSide.apply_image`` and ``Sam.preprocess``, open_clip's
``image_transform``), run on scikit-image's bundled photos; skipped with the
reason when the export extra or scikit-image is absent.
"""

from types import SimpleNamespace

import numpy as np
import pytest

from export_extra import require_export_extra
from tinyvlm_ros.engine.preprocess import (clip_fill, clip_pixel_values, mask_crop, resize_longest_side_shape,
                                           sam_input, square_region)
from tinyvlm_ros.models.export import CLIP_MEAN, CLIP_STD, SAM_PIXEL_MEAN, SAM_PIXEL_STD

skdata = pytest.importorskip("skimage.data", reason="real photos come from scikit-image (requirements.txt)")
torch, export = require_export_extra()
open_clip = export.import_open_clip()
from segment_anything.modeling import Sam  # noqa: E402
from segment_anything.utils.transforms import ResizeLongestSide  # noqa: E402

PHOTOS = {"coffee": skdata.coffee, "chelsea": skdata.chelsea, "astronaut": skdata.astronaut}


def _photo(name):
    img = PHOTOS[name]()
    return np.ascontiguousarray(img[:, :, :3])


def _upstream_sam(image, size):
    resized = ResizeLongestSide(size).apply_image(image)
    x = torch.as_tensor(resized).permute(2, 0, 1).contiguous()[None]
    fake = SimpleNamespace(pixel_mean=torch.tensor(SAM_PIXEL_MEAN).view(-1, 1, 1),
                           pixel_std=torch.tensor(SAM_PIXEL_STD).view(-1, 1, 1),
                           image_encoder=SimpleNamespace(img_size=size))
    return Sam.preprocess(fake, x).numpy(), resized


@pytest.mark.parametrize("name", list(PHOTOS))
@pytest.mark.parametrize("size", [1024, 512, 256])  # enlarge, and shrink (Pillow's antialiasing)
def test_sam_input_equals_mobilesam_predictor_preprocessing(name, size):
    image = _photo(name)
    ref, resized = _upstream_sam(image, size)
    ours, scale = sam_input(image, size, SAM_PIXEL_MEAN, SAM_PIXEL_STD)
    assert resized.shape[:2] == resize_longest_side_shape(*image.shape[:2], size)
    assert ours.shape == ref.shape == (1, 3, size, size) and ours.dtype == np.float32
    assert scale == pytest.approx(size / max(image.shape[:2]))
    assert np.array_equal(ours, ref)  # same resampler, same arithmetic: bit for bit


def test_opencv_resizing_would_not_match():
    # the reason for Pillow: OpenCV's bilinear (what the segmenter used) differs on real pixels
    import cv2

    image = _photo("coffee")
    ref, resized = _upstream_sam(image, 1024)
    cv = cv2.resize(image, resized.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    assert (cv != resized).mean() > 0.01


def _upstream_clip(canvas):
    from PIL import Image

    transform = open_clip.image_transform(224, is_train=False, mean=CLIP_MEAN, std=CLIP_STD)
    return transform(Image.fromarray(canvas)).numpy()[None]


@pytest.mark.parametrize("box", [(150, 80, 420, 330), (30, 200, 90, 260), (0, 0, 600, 400)])
def test_clip_crop_equals_open_clip_transform_of_the_square(box):
    image = _photo("coffee")
    fill = clip_fill(CLIP_MEAN)
    sx0, sy0, side = square_region(box, 0.1)
    # upstream's reference input: the same square cut from the frame padded with the fill colour
    pad = side
    padded = np.empty((image.shape[0] + 2 * pad, image.shape[1] + 2 * pad, 3), np.uint8)
    padded[:] = fill
    padded[pad:-pad, pad:-pad] = image
    canvas = padded[sy0 + pad:sy0 + pad + side, sx0 + pad:sx0 + pad + side]
    ref = _upstream_clip(np.ascontiguousarray(canvas))
    ours = clip_pixel_values(mask_crop(image, box, 224, fill)[None], CLIP_MEAN, CLIP_STD)
    assert ours.shape == ref.shape == (1, 3, 224, 224)
    assert np.abs(ours - ref).max() < 1e-6


def test_masked_crop_keeps_upstream_pixels_inside_and_the_fill_outside():
    image = _photo("coffee")
    h, w = image.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    mask = (xx - 300) ** 2 + (yy - 200) ** 2 < 110 ** 2  # a disc: the cup's rim
    box = (190, 90, 410, 310)
    fill = clip_fill(CLIP_MEAN)
    plain = mask_crop(image, box, 224, fill)
    masked = mask_crop(image, box, 224, fill, mask)
    kept = (masked != fill).any(axis=2)
    assert 0.5 < kept.mean() < 0.75                       # about pi/4 of the square (10 % margin)
    assert np.array_equal(masked[kept], plain[kept])      # inside: exactly open_clip's pixels
    px = clip_pixel_values(masked[None], CLIP_MEAN, CLIP_STD)
    assert np.abs(px[0][:, ~kept]).max() < 0.01           # outside: CLIP's mean, ~0 once normalised

    # the same mask given as a sampler (how the matcher passes low-res logits) gives the same crop
    def sampler(region, size):
        x0, y0, side = region
        c = (np.arange(size) + 0.5) * side / size
        return (x0 + c[None, :] - 300) ** 2 + (y0 + c[:, None] - 200) ** 2 < 110 ** 2
    agree = (mask_crop(image, box, 224, fill, sampler) == masked).all(axis=2)
    assert agree.mean() > 0.99                            # up to the disc's edge cells
