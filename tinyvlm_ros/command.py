"""Turn a spoken-style robot command into target phrases and spatial qualifiers.

``"grab the red cup on the left"`` becomes one :class:`Target` with phrase
``"red cup"``, attribute ``"red"`` and qualifier ``"left"``.  Parsing is a
small deterministic rule set (no model, no network): strip politeness and the
leading verb, split on "and" and commas, drop articles, pull out qualifier
words.  The matcher sees the phrase; the detector uses the qualifiers to rank.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple, Union

#: Qualifiers the detector knows how to rank by.
QUALIFIERS = ("left", "right", "top", "bottom", "center", "largest", "smallest")

#: Word (or word pair) -> qualifier.  Longer phrases are matched first.
_QUALIFIER_WORDS = {
    "left": "left", "leftmost": "left", "left-hand": "left", "left-most": "left",
    "right": "right", "rightmost": "right", "right-hand": "right", "right-most": "right",
    "top": "top", "topmost": "top", "upper": "top", "uppermost": "top", "above": "top",
    "bottom": "bottom", "bottommost": "bottom", "lower": "bottom", "lowest": "bottom", "below": "bottom",
    "center": "center", "centre": "center", "middle": "center", "central": "center",
    "largest": "largest", "biggest": "largest", "big": "largest", "large": "largest",
    "smallest": "smallest", "tiniest": "smallest", "small": "smallest", "little": "smallest",
}

#: Leading verbs (longest first when matched); they carry no visual meaning.
_VERBS = (
    "pick up", "pick out", "pick", "take", "grab", "get", "fetch", "bring me", "bring", "give me",
    "hand me", "hand", "pass me", "pass", "show me", "show", "find", "locate", "detect", "point to",
    "point at", "look for", "search for", "where is", "where are", "where's", "select", "lift", "move",
    "reach for", "reach", "hold", "collect", "segment", "highlight", "put away", "identify",
)

_POLITE = (
    "please", "could you", "can you", "would you", "will you", "kindly", "robot", "hey", "now",
    "i want you to", "i need", "i want", "go and", "go", "for me", "thanks", "thank you", "quickly",
)

_ARTICLES = {"the", "a", "an", "some", "that", "this", "those", "these", "my", "your", "its", "any", "one"}

#: Filler around qualifiers: "on the left side of the table".
_FILLER = {"on", "in", "at", "to", "of", "side", "part", "corner", "image", "picture", "frame", "table",
           "most", "one", "ones", "hand"}

#: Prepositions that start a location phrase ("on the table"), cut from the target phrase.
_PLACE_PREPOSITIONS = {"on", "in", "at", "from", "near", "under", "beside", "behind", "inside", "onto", "by",
                       "next", "over", "underneath", "beneath"}

#: Colour words reported as attributes (the phrase keeps them too).
COLOUR_WORDS = (
    "red", "green", "blue", "yellow", "purple", "orange", "pink", "black", "white", "grey", "gray",
    "brown", "cyan", "magenta", "violet", "silver", "gold", "golden", "beige", "transparent", "clear",
    "dark", "light",
)

_MATERIAL_WORDS = ("wooden", "metal", "metallic", "plastic", "glass", "paper", "rubber", "steel")


@dataclass
class Target:
    """One thing the command asks for.

    Attributes:
        phrase: what the matcher compares crops with ("red cup").
        attributes: colour and material words found in the phrase (["red"]).
        qualifiers: spatial or size qualifiers from :data:`QUALIFIERS`.
        noun: the last word of the phrase, the head noun ("cup").
    """

    phrase: str
    attributes: List[str] = field(default_factory=list)
    qualifiers: List[str] = field(default_factory=list)
    noun: str = ""


@dataclass
class ParsedCommand:
    """A parsed command: the original text and its targets, in spoken order."""

    text: str
    targets: List[Target]

    @property
    def phrases(self) -> List[str]:
        return [t.phrase for t in self.targets]


def _strip_prefixes(words: List[str], prefixes: Sequence[str]) -> List[str]:
    """Drop any of ``prefixes`` (multi-word allowed) from the front, repeatedly."""
    split = sorted((p.split() for p in prefixes), key=len, reverse=True)
    changed = True
    while changed and words:
        changed = False
        for p in split:
            if words[:len(p)] == p:
                words = words[len(p):]
                changed = True
                break
    return words


def _strip_suffixes(words: List[str], suffixes: Sequence[str]) -> List[str]:
    split = sorted((p.split() for p in suffixes), key=len, reverse=True)
    changed = True
    while changed and words:
        changed = False
        for p in split:
            if len(words) >= len(p) and words[-len(p):] == p:
                words = words[:-len(p)]
                changed = True
                break
    return words


def _parse_part(words: List[str]) -> Tuple[List[str], List[str]]:
    """Split one target's words into (phrase words, qualifiers)."""
    words = _strip_prefixes(words, _POLITE + _VERBS)
    qualifiers: List[str] = []
    kept: List[str] = []
    for w in words:
        q = _QUALIFIER_WORDS.get(w)
        if q is not None:
            if q not in qualifiers:
                qualifiers.append(q)
            continue
        kept.append(w)
    if qualifiers:
        # the filler words only mean something next to a qualifier ("on the left side")
        kept = [w for w in kept if w not in _FILLER]
    kept = [w for w in kept if w not in _ARTICLES]
    kept = _strip_suffixes(kept, _POLITE)
    # "the pen on the table": the place is context, the crop shows only the pen
    for i, w in enumerate(kept):
        if i > 0 and w in _PLACE_PREPOSITIONS:
            kept = kept[:i]
            break
    return kept, qualifiers


def parse_command(command: str) -> ParsedCommand:
    """Parse a command such as ``"pick the pen"`` into targets.

    Args:
        command: free text; case and punctuation do not matter.

    Returns:
        A :class:`ParsedCommand` with at least one target.

    Raises:
        TypeError: ``command`` is not a string.
        ValueError: nothing in the command names an object.
    """
    if not isinstance(command, str):
        raise TypeError(f"command must be a string, got {type(command).__name__}")
    text = command.strip()
    if not text:
        raise ValueError("empty command: say what to find, e.g. 'pick the pen'")
    norm = text.lower().replace("&", " and ")
    # keep letters, digits, hyphens and the separators; everything else is a space
    norm = re.sub(r"[^a-z0-9\-,;'\s]", " ", norm)
    norm = norm.replace("'s ", " ").replace("'", "")
    parts = re.split(r"\s*[,;]\s*|\s+and\s+|\s+then\s+|\s+as well as\s+|\s+plus\s+", norm)
    targets: List[Target] = []
    for part in parts:
        words = [w.strip("-") for w in part.split()]
        words = [w for w in words if w]
        if not words:
            continue
        kept, qualifiers = _parse_part(words)
        if not kept:
            if qualifiers and targets:
                # "the cup and the one on the left" is rare; a bare qualifier after a
                # target ("pick the ball, the left one") refines the previous target.
                for q in qualifiers:
                    if q not in targets[-1].qualifiers:
                        targets[-1].qualifiers.append(q)
            continue
        phrase = " ".join(kept)
        attributes = [w for w in kept if w in COLOUR_WORDS or w in _MATERIAL_WORDS]
        targets.append(Target(phrase=phrase, attributes=attributes, qualifiers=qualifiers, noun=kept[-1]))
    # "the red and blue ball": a part made only of attributes borrows the next part's noun
    for i in range(len(targets) - 2, -1, -1):
        t, nxt = targets[i], targets[i + 1]
        if len(t.attributes) == len(t.phrase.split()) and nxt.noun not in t.attributes:
            t.phrase = f"{t.phrase} {nxt.noun}"
            t.noun = nxt.noun
    if not targets:
        raise ValueError(f"command {command!r} names no object; say what to find, e.g. 'pick the pen'")
    return ParsedCommand(text=text, targets=targets)


def parse_targets(command_or_targets: Union[str, Sequence[str]]) -> ParsedCommand:
    """Parse either one command string or a list of target phrases.

    A list is taken as already split: each item is parsed on its own (so
    ``["ball on the left", "red block"]`` keeps the qualifier of the first).
    """
    if isinstance(command_or_targets, str):
        return parse_command(command_or_targets)
    if not isinstance(command_or_targets, Sequence):
        raise TypeError("command must be a string or a sequence of target phrases, "
                        f"got {type(command_or_targets).__name__}")
    targets: List[Target] = []
    for item in command_or_targets:
        targets.extend(parse_command(item).targets)
    if not targets:
        raise ValueError("empty target list: give at least one phrase, e.g. ['pen']")
    return ParsedCommand(text=", ".join(str(t) for t in command_or_targets), targets=targets)
