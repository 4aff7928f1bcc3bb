"""The relation tests of the grounding, from box geometry (:mod:`tinyvlm_ros.geometry`).

Boxes are (x0, y0, x1, y1) pixels of one frame, y pointing down, x1/y1
exclusive.  Each relation test returns a rank (lower = fits better) or None
when the candidate does not stand in that relation to the reference; the exact
rules are written down in docs/commands.md ("Relations").
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

from tinyvlm_ros.geometry import box_area, box_centre as centre
from tinyvlm_ros.geometry import box_containment as containment, box_gap as gap

Box = Tuple[float, float, float, float]

#: Half-angle of the cone a direction relation accepts: "left of" = within 60 degrees of straight left.
CONE_DEG = 60.0
_CONE = math.tan(math.radians(CONE_DEG))


def long_side(b: Sequence[float]) -> float:
    """Return the longer side of a box."""
    return max(b[2] - b[0], b[3] - b[1])


def direction_rank(kind: str, c: Sequence[float], r: Sequence[float]) -> Optional[float]:
    """Rank "left of", "right of", "above", "below".

    The centre distance if ``c``'s centre lies in the 60-degree cone on that side of ``r``'s
    centre, else None.
    """
    (cx, cy), (rx, ry) = centre(c), centre(r)
    along, across = {"left_of": (rx - cx, cy - ry), "right_of": (cx - rx, cy - ry),
                     "above": (ry - cy, cx - rx), "below": (cy - ry, cx - rx)}[kind]
    if along <= 0 or abs(across) > _CONE * along:
        return None
    return math.hypot(along, across)


def near_rank(c: Sequence[float], r: Sequence[float]) -> Optional[float]:
    """Rank "next to" / "near": the gap if it is at most the longer side of either box, else None."""
    g = gap(c, r)
    if g > max(long_side(c), long_side(r)):
        return None
    return g + 1e-3 * math.dist(centre(c), centre(r))


def nearest_rank(c: Sequence[float], r: Sequence[float]) -> float:
    """Rank "nearest to": the gap (ties broken by centre distance); always satisfied."""
    return gap(c, r) + 1e-3 * math.dist(centre(c), centre(r))


def far_rank(c: Sequence[float], r: Sequence[float]) -> float:
    """Rank "farthest from": minus the centre distance; always satisfied."""
    return -math.dist(centre(c), centre(r))


def in_rank(c: Sequence[float], r: Sequence[float]) -> Optional[float]:
    """Rank "in": at least half of ``c`` inside ``r`` and ``c`` the smaller box; rank = -containment."""
    k = containment(c, r)
    if k < 0.5 or box_area(c) >= box_area(r):
        return None
    return -k


def on_rank(c: Sequence[float], r: Sequence[float]) -> Optional[float]:
    """on: drawn over ``r`` like "in" (a top-down view), or resting on ``r``'s top edge (a side view).

    Resting: ``c``'s bottom edge within [-15 %, +35 %] of ``r``'s height around ``r``'s top edge,
    ``c``'s centre above ``r``'s, and at least 30 % of ``c``'s width over ``r``.
    """
    inside = in_rank(c, r)
    if inside is not None:
        return inside
    h = r[3] - r[1]
    w = c[2] - c[0]
    over = max(0.0, min(c[2], r[2]) - max(c[0], r[0]))
    if h <= 0 or w <= 0 or over < 0.3 * w or centre(c)[1] >= centre(r)[1]:
        return None
    off = c[3] - r[1]
    if not -0.15 * h <= off <= 0.35 * h:
        return None
    return abs(off) / h


def between_rank(c: Sequence[float], a: Sequence[float], b: Sequence[float]) -> Optional[float]:
    """Rank "between a and b".

    ``c``'s centre must project strictly inside the segment joining their centres and lie at most
    half that segment's length from it; rank = (distance from the segment + distance of the
    projection from the midpoint) / segment length.
    """
    (px, py), (ax, ay), (bx, by) = centre(c), centre(a), centre(b)
    vx, vy = bx - ax, by - ay
    length2 = vx * vx + vy * vy
    if length2 <= 0:
        return None
    t = ((px - ax) * vx + (py - ay) * vy) / length2
    if not 0.0 < t < 1.0:
        return None
    length = math.sqrt(length2)
    off = abs((px - ax) * vy - (py - ay) * vx) / length
    if off > 0.5 * length:
        return None
    return off / length + abs(t - 0.5)


def relation_rank(kind: str, c: Sequence[float], r: Sequence[float]) -> Optional[float]:
    """Rank of candidate box ``c`` for a one-reference relation ``kind`` to reference box ``r``."""
    if kind in ("left_of", "right_of", "above", "below"):
        return direction_rank(kind, c, r)
    rules = {"near": near_rank, "nearest": nearest_rank, "far": far_rank, "in": in_rank, "on": on_rank,
             "from": on_rank}  # "the apple from the bowl": in it or on it, which is what "on" accepts
    if kind not in rules:
        raise ValueError(f"relation {kind!r} takes two references or is unknown")
    return rules[kind](c, r)
