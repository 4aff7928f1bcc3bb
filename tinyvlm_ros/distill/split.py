"""Which phrases training may name (seen) and which only the evaluation asks for (unseen).

Two worlds of generated scenes can be distilled from:

* ``basic``: :func:`tinyvlm_ros.testing.scenes.make_scene` with the known-answer teacher
  (:mod:`tinyvlm_ros.testing.models`): 6 colours x 3 shapes, every phrase seen.
* ``attributes``: :func:`tinyvlm_ros.testing.scenes.make_attribute_scene` with the attribute teacher
  (:mod:`tinyvlm_ros.testing.attribute_models`): 9 colours x 6 shapes (x 4 patterns).  Unseen:
  every phrase with :data:`HELD_OUT_COLOUR` (a colour word never named in training) and the
  colour-shape combinations of :data:`HELD_OUT_PAIRS`, whose words are each seen in other phrases.
  Training scenes still *show* these objects; no training phrase names them.
"""

from __future__ import annotations

from typing import List, Tuple

from tinyvlm_ros.testing.scenes import ATTRIBUTE_COLOURS, ATTRIBUTE_SHAPES, COLOURS, SHAPES

WORLDS = ("basic", "attributes")
#: A colour word no training phrase contains.
HELD_OUT_COLOUR = "cyan"
#: Colour-shape combinations of seen words that no training phrase names (each seen colour once).
HELD_OUT_PAIRS: Tuple[Tuple[str, str], ...] = (
    ("red", "oval"), ("green", "bar"), ("blue", "triangle"), ("yellow", "ball"), ("purple", "pillar"),
    ("orange", "block"), ("pink", "triangle"), ("lime", "oval"))


def all_phrases(world: str) -> List[str]:
    """Every "colour shape" phrase of a world."""
    if world == "basic":
        return [f"{c} {s}" for c in COLOURS for s in SHAPES]
    if world == "attributes":
        return [f"{c} {s}" for c in ATTRIBUTE_COLOURS for s in ATTRIBUTE_SHAPES]
    raise ValueError(f"world must be one of {', '.join(WORLDS)}, got {world!r}")


def unseen_kind(phrase: str) -> str:
    """Why a phrase of the attributes world is unseen: "colour", "combination", or "" (seen)."""
    colour, shape = phrase.split()
    if colour == HELD_OUT_COLOUR:
        return "colour"
    if (colour, shape) in HELD_OUT_PAIRS:
        return "combination"
    return ""


def seen_phrases(world: str) -> List[str]:
    """Phrases training may name."""
    if world == "basic":
        return all_phrases(world)
    return [p for p in all_phrases(world) if not unseen_kind(p)]


def unseen_phrases(world: str) -> List[str]:
    """Phrases only the evaluation names (none in the basic world)."""
    if world == "basic":
        return []
    return [p for p in all_phrases(world) if unseen_kind(p)]
