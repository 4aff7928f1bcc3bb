"""Image buffer conversions: every supported encoding, padding, endianness, rejections."""

import numpy as np
import pytest

from tinyvlm_ros import imaging


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)


@pytest.mark.parametrize("enc", ["rgb8", "bgr8"])
def test_round_trip(rgb, enc):
    h, w, e, step, data = imaging.rgb_to_image(rgb, enc)
    assert np.array_equal(imaging.image_to_rgb(h, w, e, 0, step, data), rgb)


def test_alpha_and_padding(rgb):
    bgra = np.concatenate([rgb[..., ::-1], np.full((5, 6, 1), 7, np.uint8)], axis=2)
    step = 6 * 4 + 8  # padded rows
    buf = np.zeros((5, step), np.uint8)
    buf[:, :24] = bgra.reshape(5, 24)
    assert np.array_equal(imaging.image_to_rgb(5, 6, "bgra8", 0, step, buf.tobytes()), rgb)


def test_mono16_big_and_little_endian():
    px = np.array([[0, 1000], [2000, 4000]], np.uint16)
    little = imaging.image_to_rgb(2, 2, "mono16", 0, 4, px.astype("<u2").tobytes())
    big = imaging.image_to_rgb(2, 2, "mono16", 1, 4, px.astype(">u2").tobytes())
    assert np.array_equal(little, big)
    assert little[1, 1, 0] == 255 and little[0, 0, 0] == 0 and little.shape == (2, 2, 3)


def test_yuv422_grey_is_grey():
    # Y=126 (grey), U=V=128 (no colour) for both byte orders
    uyvy = bytes([128, 126, 128, 126] * 2)
    yuyv = bytes([126, 128, 126, 128] * 2)
    a = imaging.image_to_rgb(1, 4, "yuv422", 0, 8, uyvy)
    b = imaging.image_to_rgb(1, 4, "yuv422_yuy2", 0, 8, yuyv)
    assert np.array_equal(a, b)
    assert np.ptp(a) == 0 and 120 <= a[0, 0, 0] <= 130


@pytest.mark.parametrize("args, match", [
    ((0, 0, "rgb8", 0, 0, b""), "empty"),
    ((2, 2, "bayer_rggb8", 0, 2, b"\0" * 4), "unsupported encoding"),
    ((2, 2, "rgb8", 0, 5, b"\0" * 12), "step 5 is smaller"),
    ((2, 2, "rgb8", 0, 6, b"\0" * 7), "data has 7 bytes"),
    ((1, 3, "yuv422", 0, 6, b"\0" * 6), "even width"),
])
def test_rejections(args, match):
    with pytest.raises(ValueError, match=match):
        imaging.image_to_rgb(*args)


def test_compressed_round_trip_and_garbage(rgb):
    fmt, data = imaging.encode_compressed(rgb, "png")
    assert fmt == "png"
    assert np.array_equal(imaging.decode_compressed(fmt, data), rgb)
    with pytest.raises(ValueError, match="could not decode"):
        imaging.decode_compressed("jpeg", b"not a jpeg at all")
    with pytest.raises(ValueError, match="no data"):
        imaging.decode_compressed("jpeg", b"")


def test_check_rgb_types():
    with pytest.raises(TypeError):
        imaging.check_rgb(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError):
        imaging.check_rgb(np.zeros((2, 2), np.uint8))
