"""Generated table-top scenes whose right answers are known.

Every test, demo and benchmark that needs a known answer draws its frames here:
flat coloured shapes ("red block", "blue ball", "green triangle") on a
textured grey table.  The same seed always gives the same frame, byte for byte.

:func:`make_attribute_scene` draws the richer world of the attribute teacher
(:mod:`tinyvlm_ros.testing.attribute_models`): more colours (:data:`ATTRIBUTE_COLOURS`),
more shapes, some of them not square (:data:`ATTRIBUTE_SHAPES`), a wide range of sizes, and a
surface pattern (:data:`PATTERNS`) drawn relative to the object's own size, so a crop of the
object shows the same pattern whatever its size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

#: Colour words and their RGB values.  Hues are far apart so a colour
#: classifier can tell them apart under the mild noise added below.
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (30, 60, 220),
    "yellow": (235, 210, 30),
    "purple": (140, 40, 180),
    "orange": (245, 130, 20),
}

#: Shape words.  "block" is an axis-aligned square, "ball" a disc, "triangle"
#: an upright isosceles triangle.
SHAPES = ("block", "ball", "triangle")

#: Colours of attribute scenes: the six above plus three more, each far (in RGB) from the others and
#: from the others' darkened pattern shade (:data:`PATTERN_SHADE`).
ATTRIBUTE_COLOURS = dict(COLOURS, pink=(245, 120, 190), cyan=(30, 200, 210), lime=(160, 230, 40))
#: Shapes of attribute scenes and their box aspect (width / height): "bar" a wide rectangle,
#: "pillar" a tall one, "oval" a wide ellipse.
ATTRIBUTE_SHAPES = {"block": 1.0, "ball": 1.0, "triangle": 1.0, "bar": 2.0, "pillar": 0.5, "oval": 2.0}
#: Surface patterns: "striped" has vertical stripes, "banded" horizontal ones, "checkered" both;
#: the dark part is the colour times :data:`PATTERN_SHADE`; four periods across the object.
PATTERNS = ("plain", "striped", "banded", "checkered")
PATTERN_SHADE = 0.6
PATTERN_PERIODS = 4


@dataclass
class SceneObject:
    """One object of a generated scene and its exact answer."""

    colour: str
    shape: str
    box_xyxy: Tuple[int, int, int, int]
    mask: np.ndarray
    pattern: str = "plain"

    @property
    def label(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass
class Scene:
    """An HxWx3 uint8 RGB frame and the objects drawn in it."""

    image: np.ndarray
    objects: List[SceneObject]

    def find(self, label: str) -> List[SceneObject]:
        return [o for o in self.objects if o.label == label]


def shape_mask(shape: str, h: int, w: int, x0: int, y0: int, size: int) -> np.ndarray:
    """Return the HxW bool mask of one ``shape`` whose ``size``-pixel square box starts at (x0, y0)."""
    yy, xx = np.mgrid[0:h, 0:w]
    if shape == "block":
        m = (xx >= x0) & (xx < x0 + size) & (yy >= y0) & (yy < y0 + size)
    elif shape == "ball":
        r = size / 2.0
        cx, cy = x0 + r - 0.5, y0 + r - 0.5
        m = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    elif shape == "triangle":
        # apex at top centre, base at the bottom row of the box
        rel_y = (yy - y0 + 0.5) / size
        half = rel_y * size / 2.0
        cx = x0 + size / 2.0
        m = (yy >= y0) & (yy < y0 + size) & (np.abs(xx + 0.5 - cx) <= half)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    return m


def table_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Return an HxWx3 float array of the textured grey table: low-frequency shading plus pixel noise."""
    # separable: the same float32 values as on a full mesh grid, without building one
    xx = np.arange(width, dtype=np.float32)[None, :]
    yy = np.arange(height, dtype=np.float32)[:, None]
    base = 150 + 20 * np.sin(xx / 97.0 + rng.uniform(0, 6)) * np.cos(yy / 71.0)
    img = np.repeat(base[..., None], 3, axis=2)
    img += rng.normal(0, 4, img.shape)
    return img


def make_scene(seed: int = 0, width: int = 640, height: int = 480, n_objects: int = 4,
               labels: Optional[Sequence[str]] = None,
               min_size: Optional[int] = None, max_size: Optional[int] = None) -> Scene:
    """Draw a scene of ``n_objects`` non-overlapping coloured shapes.

    Args:
        seed: RNG seed; the same arguments always give the same scene.
        width, height: frame size in pixels.
        n_objects: how many objects when ``labels`` is not given.
        labels: exact objects to draw ("red block", ...), in drawing order.
        min_size, max_size: object size range in pixels (default 1/10 and 1/4
            of the shorter side).

    Returns:
        A :class:`Scene`; boxes are (x0, y0, x1, y1) with x1/y1 exclusive and
        are the tight boxes of the drawn masks.
    """
    if width < 32 or height < 32:
        raise ValueError(f"scene must be at least 32x32, got {width}x{height}")
    rng = np.random.default_rng(seed)
    short = min(width, height)
    lo = min_size or max(8, short // 10)
    hi = max_size or max(lo + 1, short // 4)
    if labels is None:
        names = []
        used = set()
        while len(names) < n_objects:
            c = str(rng.choice(list(COLOURS)))
            s = str(rng.choice(SHAPES))
            if (c, s) in used and len(used) < len(COLOURS) * len(SHAPES):
                continue
            used.add((c, s))
            names.append(f"{c} {s}")
        labels = names
    img = table_texture(rng, height, width)
    occupied = np.zeros((height, width), bool)
    objects: List[SceneObject] = []
    for label in labels:
        colour, shape = _split_label(label)
        for _ in range(200):
            size = int(rng.integers(lo, hi + 1))
            x0 = int(rng.integers(2, width - size - 2))
            y0 = int(rng.integers(2, height - size - 2))
            m = shape_mask(shape, height, width, x0, y0, size)
            pad = np.zeros_like(occupied)
            pad[max(0, y0 - 6):y0 + size + 6, max(0, x0 - 6):x0 + size + 6] = True
            if not (occupied & pad).any():
                break
        else:
            raise ValueError(f"could not place {label!r} without overlap; use fewer or smaller objects")
        occupied |= m
        objects.append(_paint(img, rng, colour, shape, m))
    return Scene(np.clip(img, 0, 255).astype(np.uint8), objects)


def place_scene(placements: Sequence[Tuple[str, float, float, int]], width: int = 640, height: int = 480,
                seed: int = 0) -> Scene:
    """Draw objects exactly where a test wants them ("the second red block from the left").

    Args:
        placements: per object (label, centre x, centre y, size in pixels), e.g.
            ``[("red block", 100, 240, 60), ("red block", 300, 240, 60)]``.
        width, height: frame size in pixels.
        seed: RNG seed of the table texture and pixel noise.

    Returns:
        A :class:`Scene` with the objects in the order given.

    Raises:
        ValueError: an unknown label, an object outside the frame, or two objects closer than 6 px.
    """
    rng = np.random.default_rng(seed)
    img = table_texture(rng, height, width)
    occupied = np.zeros((height, width), bool)
    objects: List[SceneObject] = []
    for label, cx, cy, size in placements:
        colour, shape = _split_label(label)
        x0, y0 = int(round(cx - size / 2.0)), int(round(cy - size / 2.0))
        if x0 < 0 or y0 < 0 or x0 + size > width or y0 + size > height:
            raise ValueError(f"{label!r} at ({cx}, {cy}) size {size} does not fit in {width}x{height}")
        m = shape_mask(shape, height, width, x0, y0, int(size))
        pad = np.zeros_like(occupied)
        pad[max(0, y0 - 6):y0 + size + 6, max(0, x0 - 6):x0 + size + 6] = True
        if (occupied & pad).any():
            raise ValueError(f"{label!r} at ({cx}, {cy}) touches another object; keep 6 px apart")
        occupied |= m
        objects.append(_paint(img, rng, colour, shape, m))
    return Scene(np.clip(img, 0, 255).astype(np.uint8), objects)


def _split_label(label: str) -> Tuple[str, str]:
    parts = label.split()
    if len(parts) != 2 or parts[0] not in COLOURS or parts[1] not in SHAPES:
        raise ValueError(f"scene label must be '<colour> <shape>', got {label!r}")
    return parts[0], parts[1]


def _paint(img: np.ndarray, rng: np.random.Generator, colour: str, shape: str, m: np.ndarray) -> SceneObject:
    """Fill mask ``m`` of the float image with the colour (plus noise); return the object and its box."""
    rgb = np.array(COLOURS[colour], np.float32)
    img[m] = rgb + rng.normal(0, 5, (int(m.sum()), 3))
    ys, xs = np.nonzero(m)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return SceneObject(colour, shape, box, m)


def attribute_mask(shape: str, h: int, w: int, x0: int, y0: int, bw: int, bh: int) -> np.ndarray:
    """Return the HxW bool mask of an attribute-scene ``shape`` in the box (x0, y0, bw, bh)."""
    if shape not in ATTRIBUTE_SHAPES:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(ATTRIBUTE_SHAPES)}")
    m = np.zeros((h, w), bool)
    if shape == "triangle":
        local = shape_mask(shape, bh, bw, 0, 0, bw)
    elif shape in ("ball", "oval"):
        yy, xx = np.mgrid[0:bh, 0:bw]
        rx, ry = bw / 2.0, bh / 2.0
        local = ((xx - (rx - 0.5)) / rx) ** 2 + ((yy - (ry - 0.5)) / ry) ** 2 <= 1.0
    else:
        local = np.ones((bh, bw), bool)
    m[y0:y0 + bh, x0:x0 + bw] = local[:max(0, min(bh, h - y0)), :max(0, min(bw, w - x0))]
    return m


def pattern_shade(pattern: str, box: Tuple[int, int, int, int], ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Brightness factor (1 or :data:`PATTERN_SHADE`) of ``pattern`` over a box at pixels (ys, xs)."""
    x0, y0, x1, y1 = box
    px = np.floor((xs - x0) * 2 * PATTERN_PERIODS / max(1, x1 - x0)).astype(int) % 2
    py = np.floor((ys - y0) * 2 * PATTERN_PERIODS / max(1, y1 - y0)).astype(int) % 2
    dark = {"plain": np.zeros(len(xs), bool), "striped": px == 1, "banded": py == 1,
            "checkered": (px ^ py) == 1}.get(pattern)
    if dark is None:
        raise ValueError(f"unknown pattern {pattern!r}; known: {', '.join(PATTERNS)}")
    return np.where(dark, PATTERN_SHADE, 1.0).astype(np.float32)


def make_attribute_scene(seed: int = 0, width: int = 640, height: int = 480, n_objects: int = 4,
                         objects: Optional[Sequence[Tuple[str, str, str]]] = None,
                         min_size: Optional[int] = None, max_size: Optional[int] = None) -> Scene:
    """Draw a scene of attribute objects (colour, shape, pattern) that do not overlap.

    Args:
        seed: RNG seed; the same arguments always give the same scene.
        width, height: frame size in pixels.
        n_objects: how many objects when ``objects`` is not given (distinct colour-shape pairs).
        objects: exact (colour, shape, pattern) triples to draw, in drawing order.
        min_size, max_size: range of the box's longer side in pixels (default 1/8 and 1/3 of the
            shorter frame side).

    Returns:
        A :class:`Scene`; ``SceneObject.label`` is "colour shape" (the pattern is in ``.pattern``).
    """
    if width < 64 or height < 64:
        raise ValueError(f"scene must be at least 64x64, got {width}x{height}")
    rng = np.random.default_rng(seed)
    short = min(width, height)
    lo = min_size or max(12, short // 8)
    hi = max_size or max(lo + 1, short // 3)
    if objects is None:
        chosen: List[Tuple[str, str, str]] = []
        while len(chosen) < n_objects:
            c = str(rng.choice(list(ATTRIBUTE_COLOURS)))
            s = str(rng.choice(list(ATTRIBUTE_SHAPES)))
            if any(c == a and s == b for a, b, _ in chosen):
                continue
            chosen.append((c, s, str(rng.choice(PATTERNS))))
        objects = chosen
    img = table_texture(rng, height, width)
    occupied = np.zeros((height, width), bool)
    out: List[SceneObject] = []
    for colour, shape, pattern in objects:
        if colour not in ATTRIBUTE_COLOURS or shape not in ATTRIBUTE_SHAPES or pattern not in PATTERNS:
            raise ValueError(f"unknown attribute object {(colour, shape, pattern)!r}")
        aspect = ATTRIBUTE_SHAPES[shape]
        for _ in range(200):
            size = int(rng.integers(lo, hi + 1))
            bw = size if aspect >= 1 else max(6, int(round(size * aspect)))
            bh = size if aspect <= 1 else max(6, int(round(size / aspect)))
            x0 = int(rng.integers(2, width - bw - 2))
            y0 = int(rng.integers(2, height - bh - 2))
            if not occupied[max(0, y0 - 6):y0 + bh + 6, max(0, x0 - 6):x0 + bw + 6].any():
                m = attribute_mask(shape, height, width, x0, y0, bw, bh)
                break
        else:
            raise ValueError(f"could not place {colour} {shape} without overlap; "
                             "use fewer or smaller objects")
        occupied |= m
        rgb = np.array(ATTRIBUTE_COLOURS[colour], np.float32)
        ys, xs = np.nonzero(m)
        box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        shade = pattern_shade(pattern, box, ys, xs)
        img[m] = rgb * shade[:, None] + rng.normal(0, 5, (int(m.sum()), 3))
        out.append(SceneObject(colour, shape, box, m, pattern))
    return Scene(np.clip(img, 0, 255).astype(np.uint8), out)
