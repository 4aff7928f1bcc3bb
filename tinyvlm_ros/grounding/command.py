"""What a command means, as data: targets, their constraints, the destination, what was not understood.

:func:`tinyvlm_ros.grounding.parse.parse_command` fills these; the resolver
(:mod:`tinyvlm_ros.grounding.resolve`) reads them; the node reports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Tuple

from tinyvlm_ros.grounding.lexicon import QUALIFIER_TEXT

Box = Tuple[float, float, float, float]
ORDINAL_SUFFIX = {1: "st", 2: "nd", 3: "rd"}
_ORDINAL_WORDS = {1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh",
                  8: "eighth", 9: "ninth", 10: "tenth"}

#: Relation kinds the resolver decides (docs/commands.md defines each one).
RELATIONS = ("left_of", "right_of", "above", "below", "near", "nearest", "far", "in", "on", "from", "between")
RELATION_TEXT = {"left_of": "left of", "right_of": "right of", "above": "above", "below": "below",
                 "near": "next to", "nearest": "nearest to", "far": "farthest from", "in": "in", "on": "on",
                 "from": "in or on", "between": "between"}


class CommandError(ValueError):
    """A command that cannot be grounded as written.

    It names no object, uses an unknown relation, or refers to an earlier target that does not
    exist.  The message says what to write instead.
    """


@dataclass
class Relation:
    """A spatial relation of a target to one or two reference objects.

    Attributes:
        kind: one of :data:`RELATIONS`.
        references: the reference noun phrases (two for ``between``, or one with ``count == 2``:
            "between the two balls").
        words: the relation as written ("to the left of").
    """

    kind: str
    references: List["Target"]
    words: str = ""

    def describe(self) -> str:
        refs = " and ".join(r.describe() for r in self.references)
        return f"{RELATION_TEXT[self.kind]} {refs}"


@dataclass
class Target:
    """One noun phrase of a command: a target, a reference object or an excluded object.

    Attributes:
        phrase: what the matcher compares crops with ("red cup", "toy robot"): attributes kept,
            articles, qualifiers, counts and ordinals removed, plurals singular.
        attributes: colour and material words of the phrase (["red"]).
        qualifiers: spatial or size qualifiers from :data:`~tinyvlm_ros.grounding.lexicon.QUALIFIERS`.
        noun: the phrase without its attributes, the kind of object ("cup", "toy robot").
        threshold: score threshold written in the command ("cup:0.4"), None: the engine's default.
        ordinal: position asked for (2 = second), counted along ``direction``; negative counts from
            the far end (-1 = last); 0 = no ordinal.
        direction: the ordering an ordinal counts along (a qualifier name, or "" = the relation's
            ranking when there is a relation, else from the left).
        count: how many objects are asked for; 1 = one ("the cup"), 0 = every instance ("all the
            cups", "the cups"), N = the N first ("two apples", "both cups").
        relation: a relation to other objects ("the cup right of the plate"), or None.
        exclude: things the target must not be ("any block except the blue one").
        same_as_box: "it": prefer the instance at this box (the previous target's), if there is one.
        other_than_box: "the other one": not the instance at this box.
        other_than_target: "the red block and the other one": not the instance chosen for the
            target with this index in the same command (-1: none).
        history: how the phrase came from an earlier command ("it", "other"), "" when written out.
    """

    phrase: str
    attributes: List[str] = field(default_factory=list)
    qualifiers: List[str] = field(default_factory=list)
    noun: str = ""
    threshold: Optional[float] = None
    ordinal: int = 0
    direction: str = ""
    count: int = 1
    relation: Optional[Relation] = None
    exclude: List["Target"] = field(default_factory=list)
    same_as_box: Optional[Box] = None
    other_than_box: Optional[Box] = None
    other_than_target: int = -1
    history: str = ""

    @property
    def constrained(self) -> bool:
        """Say whether the target asks for more than "some instance of the phrase"."""
        return bool(self.qualifiers or self.ordinal or self.relation or self.count > 1 or self.exclude
                    or self.other_than_box is not None or self.other_than_target >= 0)

    def phrases(self) -> List[str]:
        """Every phrase resolving this target needs scored: itself, its references, its exclusions."""
        out = [self.phrase]
        if self.relation is not None:
            for r in self.relation.references:
                out += r.phrases()
        for e in self.exclude:
            out += e.phrases()
        return list(dict.fromkeys(out))

    def describe(self) -> str:
        """One-line English reading of the phrase and its constraints ("the 2nd apple from the left")."""
        if self.count == 0:
            text = f"every {self.phrase}"
        elif self.count > 1:
            text = f"{self.count} x {self.phrase}"
        elif self.ordinal:
            n = self.ordinal
            word = ("last" if n == -1 else f"{ordinal_word(-n)} to last") if n < 0 else ordinal_word(n)
            along = {"": "from the left", "left": "from the left", "right": "from the right",
                     "top": "from the top", "bottom": "from the bottom", "center": "from the center",
                     "largest": "by size, largest first", "smallest": "by size, smallest first"}
            how = along[self.direction]
            if not self.direction and self.relation is not None:
                how = "by the relation's ranking"
            text = f"the {word} {self.phrase} {how}"
        else:
            text = self.phrase
        quals = [QUALIFIER_TEXT[q] for q in self.qualifiers if not (self.ordinal and q == self.direction)]
        if quals and self.count == 0 and set(self.qualifiers) - {"largest", "smallest"}:
            text += f" (in the {' '.join(self.qualifiers)} part of the frame)"
        elif quals:
            text += f" ({', '.join(quals)})"
        if self.relation is not None:
            text += f" {self.relation.describe()}"
        if self.exclude:
            text += " except " + " and ".join(e.describe() for e in self.exclude)
        if self.history == "it":
            text += " (the previous target)"
        elif self.other_than_box is not None:
            text += " (not the previous target)"
        elif self.other_than_target >= 0:
            text += f" (not the one chosen for target {self.other_than_target + 1})"
        if self.threshold is not None:
            text += f" [threshold {self.threshold:g}]"
        return text

    def to_dict(self) -> dict:
        """JSON-ready view (nested references and exclusions included)."""
        d = {"phrase": self.phrase, "noun": self.noun, "attributes": list(self.attributes),
             "qualifiers": list(self.qualifiers), "count": self.count}
        if self.ordinal:
            d.update(ordinal=self.ordinal, direction=self.direction or "")
        if self.threshold is not None:
            d["threshold"] = self.threshold
        if self.relation is not None:
            d["relation"] = {"kind": self.relation.kind, "words": self.relation.words,
                             "references": [r.to_dict() for r in self.relation.references]}
        if self.exclude:
            d["exclude"] = [e.to_dict() for e in self.exclude]
        if self.history:
            d["history"] = self.history
        if self.other_than_target >= 0:
            d["other_than_target"] = self.other_than_target
        return d


def ordinal_word(n: int) -> str:
    """1 -> "first", 2 -> "second", ... 10 -> "tenth", 11 -> "11th"."""
    return _ORDINAL_WORDS.get(n) or ordinal_text(n)


def ordinal_text(n: int) -> str:
    """1 -> "1st", 2 -> "2nd", 11 -> "11th"."""
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}{ORDINAL_SUFFIX.get(n % 10, 'th')}"


@dataclass
class Destination:
    """Where a placing verb puts its object ("in the bowl"); reported, never detected as a target.

    Attributes:
        preposition: as written ("in", "onto", "next to").
        place: the place's noun phrase, or None for a direction ("to the left").
        text: the whole destination as written.
    """

    preposition: str
    place: Optional[Target]
    text: str

    def to_dict(self) -> dict:
        """JSON-ready view."""
        return {"preposition": self.preposition, "place": self.place.phrase if self.place else "",
                "text": self.text}


@dataclass
class ParsedCommand:
    """A parsed command: the text, its targets in spoken order and what was not used.

    Attributes:
        text: the command as given.
        targets: what to find, in spoken order (at least one).
        destination: where a placing verb puts the targets, or None.
        reference: how a reference to an earlier command was resolved ("'it' = red block, the
            previous target"), "" when there was none.
        not_understood: words or parts of the command the grounding did not use.
        warnings: readings the user should know about (non-English text, assumptions such as
            "counting from the left").
    """

    text: str
    targets: List[Target]
    destination: Optional[Destination] = None
    reference: str = ""
    not_understood: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    @property
    def phrases(self) -> List[str]:
        """Return the target phrases, in spoken order (what a planner asked for)."""
        return [t.phrase for t in self.targets]

    @property
    def understood(self) -> str:
        """One line saying what the command was read as."""
        parts = ["; ".join(t.describe() for t in self.targets)]
        if self.destination is not None:
            parts.append(f"destination: {self.destination.text}")
        if self.reference:
            parts.append(self.reference)
        return " | ".join(parts)

    def all_phrases(self) -> List[str]:
        """Every phrase to score on a frame: targets, reference objects and excluded objects."""
        out: List[str] = []
        for t in self.targets:
            out += t.phrases()
        return list(dict.fromkeys(out))

    def noun_phrases(self) -> List[Target]:
        """Every noun phrase the frame is searched for: targets, reference objects, excluded objects."""
        out: List[Target] = []

        def visit(t: Target) -> None:
            out.append(t)
            if t.relation is not None:
                for r in t.relation.references:
                    visit(r)
            for e in t.exclude:
                visit(e)

        for t in self.targets:
            visit(t)
        return out

    def phrase_thresholds(self, default: float) -> Dict[str, float]:
        """Score threshold per phrase: the one written in the command ("cup:0.4"), else ``default``.

        A threshold written for a phrase applies wherever that phrase is used (target, reference or
        exclusion), so one phrase has one list of instances per frame.
        """
        out = {p: float(default) for p in self.all_phrases()}
        for t in self.noun_phrases():
            if t.threshold is not None:
                out[t.phrase] = float(t.threshold)
        return out

    def default_thresholds(self, table: Mapping[str, float]) -> List[str]:
        """Give the phrases of ``table`` its threshold where the command wrote none for them.

        ``table`` maps a phrase (as :func:`parse_threshold_table` normalises it) to a threshold;
        a threshold written in the command wins.  Returns the phrases that took one from the table.
        """
        nodes = self.noun_phrases()
        written = {t.phrase for t in nodes if t.threshold is not None}
        applied: List[str] = []
        for t in nodes:
            if t.phrase in table and t.phrase not in written:
                t.threshold = float(table[t.phrase])
                applied.append(t.phrase)
        return list(dict.fromkeys(applied))

    def to_dict(self) -> dict:
        """JSON-ready view of the whole parse."""
        return {"text": self.text, "understood": self.understood,
                "targets": [t.to_dict() for t in self.targets],
                "destination": self.destination.to_dict() if self.destination else None,
                "reference": self.reference, "not_understood": list(self.not_understood),
                "warnings": list(self.warnings)}
