"""Detection queries with a known answer: a phrase, a scene, and whether the scene holds it.

Half the queries ask for an object the scene shows, half for one it does not; both kinds have
*hard* distractors (an object of the phrase's colour with another shape, one of its shape in
another colour), so a box for an absent phrase is a real false positive, not luck.

Outcomes (one box at most per query, as the firmware's chosen target):

* present, box of IoU >= 0.5 with an object the phrase names: true positive;
* present, another box: a false positive and a miss; present, no box: a miss;
* absent, any box: a false positive; absent, no box: a true negative.

Accuracy is the share of present queries answered with the right box (= recall with one box per
query); precision is true positives over all boxes returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from tinyvlm_ros.geometry import box_iou
from tinyvlm_ros.testing.scenes import (ATTRIBUTE_COLOURS, ATTRIBUTE_SHAPES, COLOURS, PATTERNS, SHAPES, Scene,
                                        make_attribute_scene, make_scene)

BoxXYXY = Tuple[float, float, float, float]


@dataclass
class Query:
    """One question: find ``phrase`` in ``scene`` (``present`` says whether it is there)."""

    scene: Scene
    phrase: str
    present: bool


def _vocab(world: str) -> Tuple[List[str], List[str]]:
    if world == "attributes":
        return list(ATTRIBUTE_COLOURS), list(ATTRIBUTE_SHAPES)
    return list(COLOURS), list(SHAPES)


def make_query(seed: int, phrase: str, present: bool, world: str, n_objects: int = 4) -> Query:
    """Draw a 640x480 scene for one query: the named object (or not) among hard distractors."""
    rng = np.random.default_rng(seed)
    colours, shapes = _vocab(world)
    colour, shape = phrase.split()
    pairs: List[Tuple[str, str]] = [(colour, shape)] if present else []
    others_s = [s for s in shapes if s != shape]
    others_c = [c for c in colours if c != colour]
    pairs.append((colour, str(rng.choice(others_s))))
    pairs.append((str(rng.choice(others_c)), shape))
    while len(pairs) < n_objects:
        pair = (str(rng.choice(colours)), str(rng.choice(shapes)))
        if pair != (colour, shape) and pair not in pairs:
            pairs.append(pair)
    order = rng.permutation(len(pairs))
    pairs = [pairs[i] for i in order]
    if world == "attributes":
        objects = [(c, s, str(rng.choice(PATTERNS))) for c, s in pairs]
        scene = make_attribute_scene(seed=seed, objects=objects)
    else:
        scene = make_scene(seed=seed, labels=[f"{c} {s}" for c, s in pairs])
    return Query(scene, phrase, present)


def query_set(seed0: int, n: int, phrases: Sequence[str], world: str) -> List[Query]:
    """``n`` queries over ``phrases`` (cycled in a seeded order), alternately present and absent."""
    if not phrases:
        raise ValueError("no phrases to query")
    rng = np.random.default_rng(seed0)
    order = [str(p) for p in rng.permutation(list(phrases))]
    return [make_query(seed0 + i, order[(i // 2) % len(order)], i % 2 == 0, world) for i in range(n)]


def outcome(box: Optional[BoxXYXY], query: Query) -> Dict[str, int]:
    """Count (tp, fp, fn, tn) of one query's answer (see the module docstring)."""
    if box is None:
        return {"tp": 0, "fp": 0, "fn": int(query.present), "tn": int(not query.present)}
    hit = query.present and any(box_iou(box, o.box_xyxy) >= 0.5 for o in query.scene.find(query.phrase))
    return {"tp": int(hit), "fp": int(not hit), "fn": int(query.present and not hit), "tn": 0}


def summarize(boxes: Sequence[Optional[BoxXYXY]], queries: Sequence[Query]) -> Dict[str, float]:
    """Accuracy, precision, recall and the counts behind them over a list of answered queries."""
    n = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    for box, q in zip(boxes, queries):
        for k, v in outcome(box, q).items():
            n[k] += v
    present = sum(q.present for q in queries)
    absent = len(queries) - present
    returned = n["tp"] + n["fp"]
    return {
        "accuracy": n["tp"] / present if present else float("nan"),
        "precision": n["tp"] / returned if returned else float("nan"),
        "recall": n["tp"] / present if present else float("nan"),
        "absent_fp_rate": (sum(1 for b, q in zip(boxes, queries) if b is not None and not q.present) / absent
                           if absent else float("nan")),
        "present": present, "absent": absent, **n,
    }
