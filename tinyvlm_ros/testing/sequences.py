"""Generated moving sequences with known boxes and identities, for tracking tests and benchmarks.

A sequence is a table-top scene (the look of :mod:`tinyvlm_ros.testing.scenes`) filmed
by a camera at ``rate_hz``: objects slide along straight segments between
waypoints, may pass in front of each other (a higher ``layer`` is drawn on top)
or leave the picture, and the camera itself may pan over a larger table.
Every frame comes with the ground truth of each object that is at least
:data:`MIN_VISIBLE` visible: its identity, label and the tight box of its
*visible* pixels (what a detector could find).  A hidden object is absent from
the truth, as in the MOT benchmarks' visibility rule.

Frames are rendered one at a time (:func:`render`), so a long sequence costs
one frame of memory.  The same spec always gives the same frames, byte for
byte.

The named sequences (:data:`SEQUENCES`) each test one thing a tracker must
survive; ``target_occlusions`` says how many times the target disappears (the
benchmark allows one identity switch per such event).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from tinyvlm_ros.testing.scenes import COLOURS, SHAPES, shape_mask, table_texture

#: An object less visible than this (fraction of its own area) is absent from the truth.
MIN_VISIBLE = 0.5
#: Stamp of the first frame (a fixed time: the same spec gives the same stamps).
START_NS = 1_700_000_000 * 1_000_000_000
#: Standard deviation of the per-frame sensor noise, grey levels.
SENSOR_NOISE = 2.0
#: Distinct noise fields the frames take in turn (a prime, so no short pattern lines up with motion).
NOISE_FIELDS = 7


@dataclass(frozen=True)
class Mover:
    """One object and its path.

    Attributes:
        identity: ground-truth id (unique in the sequence, >= 1).
        label: ``"<colour> <shape>"`` as in :mod:`tinyvlm_ros.testing.scenes`.
        size: side of the object's square box in pixels.
        waypoints: ``(t_s, x, y)`` positions of the box's top-left corner on the table, in time order;
            the object moves in straight lines between them and rests before the first and after the last.
        layer: drawing order; higher layers cover lower ones.
    """

    identity: int
    label: str
    size: int
    waypoints: Tuple[Tuple[float, float, float], ...]
    layer: int = 0


@dataclass(frozen=True)
class SequenceSpec:
    """A moving scene: objects, camera path, command and what it tests.

    Attributes:
        name: short name ("slide").
        description: one line for reports.
        command: the standing command ("pick the red block").
        target_label: the label the command asks for; objects with it are the relevant truth.
        movers: the objects.
        duration_s: length of the sequence.
        camera: ``(t_s, x, y)`` waypoints of the camera's top-left corner on the table (pans).
        target_identity: the object the command's answer should stay on (detection 0).
        target_occlusions: how many times the target is hidden (below :data:`MIN_VISIBLE`) or leaves.
        rate_hz, width, height: camera rate and frame size.
        seed: texture seed.
    """

    name: str
    description: str
    command: str
    target_label: str
    movers: Tuple[Mover, ...]
    duration_s: float
    target_identity: int
    camera: Tuple[Tuple[float, float, float], ...] = ((0.0, 0.0, 0.0),)
    target_occlusions: int = 0
    rate_hz: float = 30.0
    width: int = 640
    height: int = 480
    seed: int = 0

    @property
    def frames(self) -> int:
        return int(round(self.duration_s * self.rate_hz))

    def stamp_ns(self, index: int) -> int:
        """Stamp of frame ``index``."""
        return START_NS + int(round(index * 1e9 / self.rate_hz))


@dataclass
class TruthObject:
    """Ground truth of one visible object in one frame."""

    identity: int
    label: str
    box_xyxy: Tuple[int, int, int, int]
    visible: float


@dataclass
class SequenceFrame:
    """One rendered frame: HxWx3 uint8 RGB image, stamp and the visible objects' truth."""

    index: int
    stamp_ns: int
    image: np.ndarray
    truth: List[TruthObject] = field(default_factory=list)

    def find(self, identity: int) -> Optional[TruthObject]:
        for t in self.truth:
            if t.identity == identity:
                return t
        return None


def path_position(waypoints: Sequence[Tuple[float, float, float]], t: float) -> Tuple[float, float]:
    """Position at time ``t`` on a piecewise-linear path of ``(t_s, x, y)`` waypoints."""
    if not waypoints:
        raise ValueError("a path needs at least one (t, x, y) waypoint")
    if t <= waypoints[0][0]:
        return waypoints[0][1], waypoints[0][2]
    for (t0, x0, y0), (t1, x1, y1) in zip(waypoints, waypoints[1:]):
        if t <= t1:
            a = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
            return x0 + a * (x1 - x0), y0 + a * (y1 - y0)
    return waypoints[-1][1], waypoints[-1][2]


def _check(spec: SequenceSpec) -> None:
    ids = [m.identity for m in spec.movers]
    if len(set(ids)) != len(ids) or min(ids, default=1) < 1:
        raise ValueError(f"sequence {spec.name!r}: mover identities must be unique and >= 1, got {ids}")
    if spec.target_identity not in ids:
        raise ValueError(f"sequence {spec.name!r}: target identity {spec.target_identity} is not a mover")
    for m in spec.movers:
        parts = m.label.split()
        if len(parts) != 2 or parts[0] not in COLOURS or parts[1] not in SHAPES:
            raise ValueError(f"mover label must be '<colour> <shape>', got {m.label!r}")
        if any(b[0] < a[0] for a, b in zip(m.waypoints, m.waypoints[1:])):
            raise ValueError(f"mover {m.identity}: waypoints must be in time order")
    if not spec.rate_hz > 0 or spec.duration_s <= 0:
        raise ValueError(f"sequence {spec.name!r}: rate and duration must be positive")


def render(spec: SequenceSpec, start: int = 0, stop: Optional[int] = None) -> Iterator[SequenceFrame]:
    """Yield frames ``start .. stop-1`` (default: all) of ``spec``, one at a time."""
    _check(spec)
    stop = spec.frames if stop is None else min(stop, spec.frames)
    rng = np.random.default_rng(spec.seed)
    w, h = spec.width, spec.height
    cams = np.array([(x, y) for _, x, y in spec.camera], np.float64)
    # The table is as large as the camera's travel needs; the texture moves with the camera.
    table_w = w + int(np.ceil(cams[:, 0].max() - min(0.0, cams[:, 0].min()))) + 1
    table_h = h + int(np.ceil(cams[:, 1].max() - min(0.0, cams[:, 1].min()))) + 1
    table = np.clip(table_texture(rng, table_h, table_w), 0, 255).astype(np.float32)
    origin = (min(0.0, float(cams[:, 0].min())), min(0.0, float(cams[:, 1].min())))
    movers = sorted(spec.movers, key=lambda m: m.layer)
    # Each object carries its own fixed surface noise, so its texture moves with it.
    patches = []
    for m in movers:
        colour, shape = m.label.split()
        mask = shape_mask(shape, m.size, m.size, 0, 0, m.size)
        pix = np.array(COLOURS[colour], np.float32) + rng.normal(0, 5, (m.size, m.size, 3)).astype(np.float32)
        patches.append((mask, pix))
    # Sensor noise: a small bank of fields used in turn (drawing a fresh field costs more than the rest of
    # the frame); consecutive frames never share one, so they are never byte-identical.
    noise_bank = [rng.standard_normal((h, w, 3), dtype=np.float32) * SENSOR_NOISE
                  for _ in range(NOISE_FIELDS)]
    for index in range(start, stop):
        t = index / spec.rate_hz
        cx, cy = path_position(spec.camera, t)
        ox, oy = int(round(cx - origin[0])), int(round(cy - origin[1]))
        img = table[oy:oy + h, ox:ox + w].copy()
        labels = np.zeros((h, w), np.int32)
        regions: Dict[int, Tuple[int, int, int, int]] = {}
        for m, (mask, pix) in zip(movers, patches):
            px, py = path_position(m.waypoints, t)
            x0, y0 = int(round(px - cx)), int(round(py - cy))
            fx0, fy0 = max(0, x0), max(0, y0)
            fx1, fy1 = min(w, x0 + m.size), min(h, y0 + m.size)
            if fx1 <= fx0 or fy1 <= fy0:
                continue
            sub = mask[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
            img[fy0:fy1, fx0:fx1][sub] = pix[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0][sub]
            labels[fy0:fy1, fx0:fx1][sub] = m.identity
            regions[m.identity] = (fx0, fy0, fx1, fy1)
        frame = np.clip(img + noise_bank[index % NOISE_FIELDS], 0, 255).astype(np.uint8)
        truth = []
        for m, (mask, _) in zip(movers, patches):
            if m.identity not in regions:
                continue
            rx0, ry0, rx1, ry1 = regions[m.identity]
            ys, xs = np.nonzero(labels[ry0:ry1, rx0:rx1] == m.identity)
            visible = len(xs) / float(mask.sum())
            if visible >= MIN_VISIBLE:
                box = (rx0 + int(xs.min()), ry0 + int(ys.min()),
                       rx0 + int(xs.max()) + 1, ry0 + int(ys.max()) + 1)
                truth.append(TruthObject(m.identity, m.label, box, round(visible, 3)))
        yield SequenceFrame(index, spec.stamp_ns(index), frame, truth)


def _slide() -> SequenceSpec:
    return SequenceSpec(
        name="slide", description="three objects slide in different directions; nothing hides",
        command="pick the red block", target_label="red block", target_identity=1, duration_s=4.0,
        movers=(
            Mover(1, "red block", 70, ((0.0, 60, 190), (4.0, 500, 240))),
            Mover(2, "blue ball", 64, ((0.0, 520, 50), (4.0, 120, 90))),
            Mover(3, "green triangle", 72, ((0.0, 280, 380), (2.0, 380, 330), (4.0, 300, 360))),
        ))


def _cross() -> SequenceSpec:
    # Two identical red blocks pass each other 12 px apart: only motion tells them apart, and the
    # command's answer must stay on the one it started with.
    return SequenceSpec(
        name="cross",
        description="two identical red blocks pass each other 12 px apart; the target must not swap",
        command="pick the red block", target_label="red block", target_identity=1, duration_s=4.0,
        movers=(
            Mover(1, "red block", 64, ((0.0, 70, 170), (4.0, 500, 176))),
            Mover(2, "red block", 64, ((0.0, 500, 252), (4.0, 70, 252))),
            Mover(3, "blue ball", 60, ((0.0, 300, 380),)),
        ))


def _occlude() -> SequenceSpec:
    # A large purple block sweeps over the slowly moving target and hides it for about 0.5 s.
    return SequenceSpec(
        name="occlude", description="a large block passes in front of the target, hiding it ~0.5 s",
        command="pick the red block", target_label="red block", target_identity=1, duration_s=4.0,
        target_occlusions=1,
        movers=(
            Mover(1, "red block", 60, ((0.0, 250, 200), (4.0, 330, 200)), layer=0),
            Mover(2, "purple block", 110, ((0.0, 640, 175), (1.0, 640, 175), (3.5, 90, 175)), layer=1),
            Mover(3, "green ball", 60, ((0.0, 80, 360), (4.0, 200, 380))),
        ))


def _pan() -> SequenceSpec:
    # Static objects, moving camera: a second red block leaves the picture at the left edge
    # and comes back when the camera pans back.
    return SequenceSpec(
        name="pan", description="the camera pans right and back; a second red block leaves and re-enters",
        command="pick the red block", target_label="red block", target_identity=1, duration_s=4.0,
        camera=((0.0, 0.0, 0.0), (0.3, 0.0, 0.0), (1.8, 200.0, 15.0), (2.0, 200.0, 15.0),
                (3.5, 0.0, 0.0)),
        movers=(
            Mover(1, "red block", 66, ((0.0, 420, 200),)),
            Mover(2, "red block", 60, ((0.0, 150, 300),)),
            Mover(3, "yellow ball", 60, ((0.0, 600, 80),)),
            Mover(4, "blue triangle", 70, ((0.0, 330, 360),)),
        ))


#: The named sequences, in report order.
SEQUENCES: Dict[str, SequenceSpec] = {s.name: s for s in (_slide(), _cross(), _occlude(), _pan())}


def sequence(name: str) -> SequenceSpec:
    """Return the named sequence spec."""
    try:
        return SEQUENCES[name]
    except KeyError:
        raise ValueError(f"unknown sequence {name!r}; known: {', '.join(SEQUENCES)}") from None
