"""Choose the object(s) a parsed command means among one frame's candidates: one rule set for every engine.

An engine scores its regions against every phrase the command needs
(:meth:`ParsedCommand.phrase_thresholds`: targets, reference objects, excluded
objects), keeps per phrase the instances above that phrase's threshold
(deduplicated), and calls :func:`resolve`.  The resolver decides from boxes,
areas and scores only, so the host engine (mask boxes) and the MCU engine
(grid-cell boxes) ground a command the same way.

Per target, in this order (docs/commands.md, "How a target is chosen"):

1. instances = the target phrase's candidates; none -> nothing found (no failure);
2. drop objects already chosen for an earlier target of the command, and for "the
   other one" the previous target's object (box IoU >= 0.3 with its box);
3. exclusions: an unconstrained excluded phrase ("not the red one") removes each
   instance that is the same object as one of its own instances scoring at least as
   high for it as the instance scores for the target phrase; a constrained one ("not
   the one on the left") is resolved like a target and its chosen objects removed;
4. relation: the reference phrase is resolved like a target (its own qualifiers and
   ordinal; a plural reference = any of its instances); the reference objects are
   removed from the instances; the others are kept if they stand in the relation
   (rules in :mod:`.relations`) and ranked by how well;
5. order: by the ordinal's direction, else the qualifiers' cost, else the relation's
   rank, else score; "it" first puts the instance at the previous target's box;
6. select: the ordinal's position, or the first N (count), or all ("all"), or the
   first; the rest follow as candidates.

Same object: the same engine region, or box IoU >= 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from tinyvlm_ros.geometry import box_area, box_centre, box_iou
from tinyvlm_ros.grounding.relations import between_rank, relation_rank
from tinyvlm_ros.grounding.command import ParsedCommand, RELATION_TEXT, Target, ordinal_word
from tinyvlm_ros.grounding.parse import singular

Box = Tuple[float, float, float, float]

#: Two candidates with at least this box IoU are the same object.
SAME_OBJECT_IOU = 0.5
#: A candidate with at least this box IoU with a remembered box is the remembered object.
SAME_PLACE_IOU = 0.3


@dataclass
class Candidate:
    """One instance of a phrase in the frame.

    Attributes:
        box: (x0, y0, x1, y1) pixels of the frame.
        score: the engine's score for the phrase (host: calibrated probability; MCU: cosine).
        area: object area in pixels (the mask's when known), None: the box's.
        region: the engine's id of the region the score is for; candidates of different phrases
            with the same region are the same object (None when the engine cannot tell).
    """

    box: Box
    score: float
    area: Optional[float] = None
    region: Optional[int] = None

    @property
    def size(self) -> float:
        return float(self.area) if self.area is not None else box_area(self.box)


@dataclass
class Choice:
    """A candidate chosen for a target, ranked after it, or used as a reference object.

    ``role`` is "target", "candidate" or "reference" (never published).
    """

    target_index: int
    phrase: str
    candidate: Candidate
    role: str


@dataclass
class Resolution:
    """What :func:`resolve` decided for one frame.

    Attributes:
        chosen: every target's chosen object(s) (role "target", in spoken order), then the other
            instances (role "candidate", per target in spoken order, ranked).  Empty on failure.
        failure: why the command cannot be grounded in this frame, "" when it can.
        references: the reference objects relations were decided against (for display).
    """

    chosen: List[Choice] = field(default_factory=list)
    failure: str = ""
    references: List[Choice] = field(default_factory=list)


class GroundingFailure(Exception):
    """Internal: a target's constraints cannot be met in this frame (the message is the reason)."""


def same_object(a: Candidate, b: Candidate) -> bool:
    """Say whether two candidates are one object: same region, or box IoU >= :data:`SAME_OBJECT_IOU`."""
    if a.region is not None and a.region == b.region:
        return True
    return box_iou(a.box, b.box) >= SAME_OBJECT_IOU


def plural(phrase: str, n: int) -> str:
    """Pluralise a phrase for n != 1 ("red apple" -> "red apples"; plain English rules on the last word)."""
    head, _, last = phrase.rpartition(" ")
    if n == 1 or not last.isalpha() or singular(last + "s") != last:
        return phrase
    if last.endswith(("s", "x", "z", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def _visible(phrase: str, n: int) -> str:
    return f"{n} {plural(phrase, n)} {'is' if n == 1 else 'are'} visible"


_Pick = Tuple[List[Candidate], List[Candidate]]  # (chosen, the other instances ranked)


class _Resolver:
    def __init__(self, candidates: Mapping[str, Sequence[Candidate]], frame_hw: Tuple[int, int]) -> None:
        self.cands = candidates
        self.h, self.w = float(frame_hw[0]), float(frame_hw[1])
        if self.h <= 0 or self.w <= 0:
            raise ValueError(f"frame size must be positive, got {frame_hw}")
        self.references: List[Tuple[str, Candidate]] = []

    def instances(self, phrase: str) -> List[Candidate]:
        if phrase not in self.cands:
            raise ValueError(f"no candidate list for phrase {phrase!r}; score every phrase of "
                             "ParsedCommand.phrase_thresholds()")
        return list(self.cands[phrase])

    # -- ordering ---------------------------------------------------------------------------------
    def qualifier_cost(self, qualifiers: Sequence[str], inst: Sequence[Candidate]) -> List[float]:
        """Lower is better: sum of the qualifiers' normalised positions/sizes."""
        biggest = max((c.size for c in inst), default=1.0) or 1.0
        out = []
        for c in inst:
            cx, cy = box_centre(c.box)
            cx, cy = cx / self.w, cy / self.h
            rel = c.size / biggest
            cost = 0.0
            for q in qualifiers:
                cost += {"left": cx, "right": 1.0 - cx, "top": cy, "bottom": 1.0 - cy,
                         "center": ((cx - 0.5) ** 2 + (cy - 0.5) ** 2) ** 0.5,
                         "largest": 1.0 - rel, "smallest": rel}[q]
            out.append(cost)
        return out

    def in_region(self, q: str, c: Candidate) -> bool:
        """Say whether ``c`` is in the part of the frame a qualifier names ("all on the left": left half)."""
        cx, cy = box_centre(c.box)
        cx, cy = cx / self.w, cy / self.h
        return {"left": cx < 0.5, "right": cx > 0.5, "top": cy < 0.5, "bottom": cy > 0.5,
                "center": abs(cx - 0.5) < 1 / 6 and abs(cy - 0.5) < 1 / 6}.get(q, True)

    # -- one target -------------------------------------------------------------------------------
    def target(self, t: Target, taken: Sequence[Candidate] = (),
               earlier: Optional[Dict[int, List[Candidate]]] = None) -> _Pick:
        """(chosen, other instances ranked) for one target; raises GroundingFailure."""
        inst = self.instances(t.phrase)
        if not inst:
            return [], []
        visible = len(inst)
        inst = [c for c in inst if not any(same_object(c, x) for x in taken)]
        if not inst:
            raise GroundingFailure(f"every visible {t.phrase} is already chosen for an earlier target "
                                   f"({_visible(t.phrase, visible)})")
        if t.other_than_target >= 0 and earlier is not None:
            before = earlier.get(t.other_than_target, [])
            inst = [c for c in inst if not any(same_object(c, x) for x in before)]
        if t.other_than_box is not None:
            inst = [c for c in inst if box_iou(c.box, t.other_than_box) < SAME_PLACE_IOU]
        if (t.other_than_box is not None or t.other_than_target >= 0) and not inst:
            raise GroundingFailure(f"the other {t.phrase} was asked for but {_visible(t.phrase, visible)}")
        inst = self.exclude(t, inst)
        if not inst:
            raise GroundingFailure(f"every visible {t.phrase} is excluded ("
                                   f"{' and '.join(e.describe() for e in t.exclude)}); "
                                   f"{_visible(t.phrase, visible)}")
        rank: Dict[int, float] = {}
        if t.relation is not None:
            inst, rank = self.relate(t, inst, visible)
        order = self.order(t, inst, rank)
        return self.select(t, order)

    def exclude(self, t: Target, inst: List[Candidate]) -> List[Candidate]:
        for e in t.exclude:
            if e.constrained:
                gone, _ = self.target(e)
                inst = [c for c in inst if not any(same_object(c, x) for x in gone)]
            else:
                ex = self.instances(e.phrase)
                inst = [c for c in inst if not any(same_object(c, x) and x.score >= c.score for x in ex)]
        return inst

    def relate(self, t: Target, inst: List[Candidate],
               visible: int) -> Tuple[List[Candidate], Dict[int, float]]:
        rel = t.relation
        if rel is None:
            return inst, {}
        ref_sets: List[List[Candidate]] = []
        for r in rel.references:
            if not self.instances(r.phrase):
                raise GroundingFailure(f"the {r.phrase} that '{t.phrase} {RELATION_TEXT[rel.kind]} "
                                       f"{r.phrase}' refers to is not visible")
            chosen, others = self.target(r)
            if r.count == 0:
                chosen = chosen + others  # "next to the plates": any plate
            ref_sets.append(chosen)
            self.references += [(r.phrase, c) for c in chosen]
        refs = [c for s in ref_sets for c in s]
        inst = [c for c in inst if not any(same_object(c, x) for x in refs)]
        if not inst:
            raise GroundingFailure(f"the only {t.phrase} visible is the reference object itself")
        if rel.kind == "between":
            pairs = [(ref_sets[0][0], ref_sets[1][0])] if len(ref_sets) == 2 else \
                [(ref_sets[0][0], ref_sets[0][1])] if len(ref_sets[0]) >= 2 else []
            if not pairs:
                raise GroundingFailure(f"'between' needs two {plural(rel.references[0].phrase, 2)} but "
                                       f"{_visible(rel.references[0].phrase, len(ref_sets[0]))}")
        kept: List[Candidate] = []
        rank: Dict[int, float] = {}
        for c in inst:
            if rel.kind == "between":
                fits = [between_rank(c.box, a.box, b.box) for a, b in pairs]
            else:
                fits = [relation_rank(rel.kind, c.box, r.box) for r in refs]
            fits = [f for f in fits if f is not None]
            if fits:
                kept.append(c)
                rank[id(c)] = min(fits)
        if not kept:
            what = " and ".join(f"the {r.phrase}" for r in rel.references)
            raise GroundingFailure(f"no {t.phrase} is {RELATION_TEXT[rel.kind]} {what} "
                                   f"({_visible(t.phrase, visible)})")
        return kept, rank

    def order(self, t: Target, inst: List[Candidate], rank: Dict[int, float]) -> List[Candidate]:
        by_score = sorted(inst, key=lambda c: -c.score)
        if t.ordinal:
            d = t.direction
            if d:
                cost = self.qualifier_cost([d], by_score)
                order = [c for _, c in sorted(zip(cost, by_score), key=lambda kv: kv[0])]
            elif rank:
                order = sorted(by_score, key=lambda c: rank[id(c)])
            else:
                order = sorted(by_score, key=lambda c: box_centre(c.box)[0])
        elif t.qualifiers:
            cost = self.qualifier_cost(t.qualifiers, by_score)
            order = [c for _, c in sorted(zip(cost, by_score), key=lambda kv: kv[0])]
        elif rank:
            order = sorted(by_score, key=lambda c: rank[id(c)])
        else:
            order = by_score
        if t.same_as_box is not None and order:
            best = max(order, key=lambda c: box_iou(c.box, t.same_as_box))
            if box_iou(best.box, t.same_as_box) >= SAME_PLACE_IOU:
                order = [best] + [c for c in order if c is not best]
        return order

    def select(self, t: Target, order: List[Candidate]) -> Tuple[List[Candidate], List[Candidate]]:
        n = len(order)
        if t.same_as_box is not None and order and box_iou(order[0].box, t.same_as_box) >= SAME_PLACE_IOU:
            return order[:1], order[1:]
        if t.ordinal:
            k = t.ordinal - 1 if t.ordinal > 0 else n + t.ordinal
            if not 0 <= k < n:
                word = ordinal_word(t.ordinal) if t.ordinal > 0 else (
                    "last" if t.ordinal == -1 else f"{ordinal_word(-t.ordinal)} to last")
                how = f" from the {t.direction}" if t.direction in ("left", "right", "top", "bottom") else (
                    f" by size ({t.direction} first)" if t.direction else "")
                raise GroundingFailure(f"the {word} {t.phrase}{how} was asked for but "
                                       f"{_visible(t.phrase, n)}")
            return [order[k]], order[:k] + order[k + 1:]
        if t.count == 0:
            keep = [c for c in order if all(self.in_region(q, c) for q in t.qualifiers)]
            if not keep:
                raise GroundingFailure(f"no {t.phrase} is in the {' '.join(t.qualifiers)} part of the frame "
                                       f"({_visible(t.phrase, n)})")
            return keep, []
        if t.count > 1:
            if n < t.count:
                raise GroundingFailure(f"{t.count} {plural(t.phrase, t.count)} were asked for but "
                                       f"{_visible(t.phrase, n)}")
            return order[:t.count], order[t.count:]
        return order[:1], order[1:]


def resolve(parsed: ParsedCommand, candidates: Mapping[str, Sequence[Candidate]],
            frame_hw: Tuple[int, int]) -> Resolution:
    """Choose the command's target object(s) among one frame's candidates.

    Args:
        parsed: the command.
        candidates: per phrase of ``parsed.phrase_thresholds()``, its instances in this frame (above
            the phrase's threshold, one per object).
        frame_hw: (height, width) of the frame the boxes are in (for the qualifiers).

    Returns:
        A :class:`Resolution`: chosen targets first (spoken order), then ranked candidates; or a
        failure reason and no detections when the command's constraints cannot be met.
    """
    r = _Resolver(candidates, frame_hw)
    for phrase in parsed.all_phrases():
        r.instances(phrase)  # every list is there before any decision
    targets: List[Choice] = []
    others: List[Choice] = []
    earlier: Dict[int, List[Candidate]] = {}
    failures: List[str] = []
    for ti, t in enumerate(parsed.targets):
        taken = [c.candidate for c in targets]
        try:
            chosen, rest = r.target(t, taken, earlier)
        except GroundingFailure as exc:
            failures.append(str(exc))
            continue
        earlier[ti] = chosen
        targets += [Choice(ti, t.phrase, c, "target") for c in chosen]
        others += [Choice(ti, t.phrase, c, "candidate") for c in rest]
    refs = [Choice(-1, p, c, "reference") for p, c in r.references]
    if failures:
        return Resolution([], "; ".join(failures), refs)
    # an object chosen for one target is not listed again as another target's candidate
    others = [o for o in others if not any(same_object(o.candidate, x.candidate) for x in targets)]
    seen: List[Tuple[Candidate, int]] = []
    unique = []
    for o in others:
        if not any(same_object(o.candidate, s) and o.target_index == i for s, i in seen):
            unique.append(o)
            seen.append((o.candidate, o.target_index))
    return Resolution(targets + unique, "", refs)
