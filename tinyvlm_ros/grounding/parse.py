"""Text -> :class:`~tinyvlm_ros.grounding.command.ParsedCommand`: a small deterministic parser.

The command is tokenised (unicode letters kept as written, lower case,
contractions and a few misspelt function words expanded), then read clause by
clause: optional negation, optional verb, a list of noun phrases, each with
pre-modifiers (count, ordinal, qualifiers, attributes) and post-modifiers
(qualifier phrases, an ordinal's direction, a relation to reference noun
phrases, exclusions, a threshold), and, after a placing verb, a destination.
Words with no role in the grammar are content words of the noun phrase; words
the grammar skips are function words; anything left over is reported in
``not_understood``.  docs/commands.md is the grammar in prose.
"""

from __future__ import annotations

import copy
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

from tinyvlm_ros.grounding import lexicon as lx
from tinyvlm_ros.grounding.command import (CommandError, Destination, ParsedCommand, Relation, RELATION_TEXT,
                                           Target)
from tinyvlm_ros.grounding.history import CommandHistory

_EXAMPLE = "e.g. 'pick the pen'"
_SUPPORTED = ", ".join(sorted(set(RELATION_TEXT.values())))

_VERBS = lx.sorted_phrases(lx.VERBS)
_POLITE = lx.sorted_phrases(lx.POLITE)
_NEGATION = lx.sorted_phrases(lx.NEGATION_WORDS)
_EXCLUSION = lx.sorted_phrases(lx.EXCLUSION_WORDS)
_RELATIONS = lx.sorted_phrases(lx.RELATION_WORDS)
_UNSUPPORTED = lx.sorted_phrases(lx.UNSUPPORTED_RELATIONS)
_POSTURE = lx.sorted_phrases(lx.POSTURE_WORDS)
_INTENSIFIERS = lx.sorted_phrases(lx.INTENSIFIERS)
_DEICTIC = lx.sorted_phrases(lx.DEICTIC)
_IT = lx.sorted_phrases(lx.IT_WORDS)
_THEM = lx.sorted_phrases(lx.THEM_WORDS)
_OTHER = lx.sorted_phrases(lx.OTHER_WORDS)
_COUNTS = lx.sorted_phrases(lx.COUNT_WORDS)
_ORDINALS = lx.sorted_phrases(lx.ORDINAL_WORDS)
_CONJ = lx.sorted_phrases(lx.CONJUNCTIONS)
_BREAKS = lx.sorted_phrases(lx.CLAUSE_BREAKS)
_DEST = lx.sorted_phrases(lx.DESTINATION_ONLY)
_DIRECTION_LEAD = lx.sorted_phrases(("from", "counting from", "starting from", "going from", "starting at",
                                     "starting on", "counted from", "counting on"))
_EXTENSION = ("of", "with", "without", "containing", "holding", "full of", "filled with")
_EXTENSIONS = lx.sorted_phrases(_EXTENSION)
_PARTICLES = ("up", "down", "out", "back", "away", "again")
_INTERJECTIONS = ("no", "nope", "wait", "sorry", "oops", "actually", "oh", "um", "uh", "hmm", "yes", "yeah",
                  "ok", "okay")
#: Relation kinds a placing verb's place phrase may become a destination from.
_PLACEABLE = ("in", "on", "near", "above", "below", "left_of", "right_of", "between", "nearest")

#: Single words that end a noun phrase (beyond the multi-word tables checked separately).
_STOP_WORDS = frozenset(("of", "from", "to", "for", "with", "without", "is", "are", "was", "were", "that",
                         "which", "who", "whose", "where", "when", "and", "or", "but", "not", "no", "it",
                         "them", "then", "if", "because", "so", "as", "than", "into", "onto", "toward",
                         "towards", "containing", "holding", "filled", "full", "me", "please"))

_TOKEN_RE = re.compile(r"(?P<thr>[:=]\s*(?:\d*\.\d+|\d+(?:\.\d+)?))|(?P<word>[^\W_]+(?:['\-][^\W_]+)*)"
                       r"|(?P<sep>[,:])|(?P<end>[.;!?]+)|(?P<amp>[&+])")


@dataclass
class _Tok:
    word: str
    kind: str  # "w" word, "sep" comma, "end" sentence end, "thr" threshold
    raw: str
    value: float = 0.0
    src: int = -1  # which written word it came from ("don't" -> "do", "not" share one)


@dataclass
class _Rel:
    """A relation while it is being parsed; ``text`` is the whole phrase as written ("in the bowl")."""

    kind: str
    refs: List["_NP"]
    words: str
    via_that: bool
    text: str


@dataclass
class _NP:
    """A noun phrase while it is being built (becomes a :class:`Target`)."""

    start: int
    end: int = 0
    words: List[str] = field(default_factory=list)
    qualifiers: List[str] = field(default_factory=list)
    count: int = 1
    count_given: bool = False
    ordinal: int = 0
    direction: str = ""
    threshold: Optional[float] = None
    head_one: bool = False
    has_det: bool = False
    history: str = ""  # "it", "them", "other"
    any_det: bool = False
    relation: Optional["_Rel"] = None
    exclude: List["_NP"] = field(default_factory=list)
    owner: Optional["_NP"] = None  # the target an exclusion belongs to
    after_comma: bool = False
    alias: List[int] = field(default_factory=list)  # "it" = these earlier targets of the command
    other_than_target: int = -1
    same_as_box: Optional[tuple] = None
    other_than_box: Optional[tuple] = None

    def noun_words(self) -> List[str]:
        """Return the words naming the kind of object: all but the attributes before the last word."""
        return [w for w in self.words[:-1] if w not in lx.COLOUR_WORDS and w not in lx.MATERIAL_WORDS] + \
            self.words[-1:]

    def attribute_only(self) -> bool:
        """Say whether the phrase is only colour/material words ("red" in "the red and blue ball")."""
        return bool(self.words) and all(w in lx.COLOUR_WORDS or w in lx.MATERIAL_WORDS for w in self.words)

    def empty(self) -> bool:
        return not (self.words or self.head_one or self.history or self.qualifiers or self.ordinal
                    or self.count_given)


def singular(word: str) -> str:
    """English singular of a plural noun ("apples" -> "apple"); other words unchanged."""
    if word in lx.PLURAL_ONLY or len(word) < 3 or not word.isalpha():
        return word
    if word in lx.IRREGULAR_PLURALS:
        return lx.IRREGULAR_PLURALS[word]
    if not word.endswith("s") or word.endswith(("ss", "us", "is", "as", "ys'")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    return word[:-1]


def tokenize(text: str) -> Tuple[List[_Tok], List[str]]:
    """Split a command into tokens; return them and the notes about corrected words.

    Letters are kept as written (NFC, lower case; never transliterated), so "grüne Tasse" stays
    "grüne tasse".  Apostrophes are unified, contractions expanded, a few misspelt function words
    corrected (each correction noted).
    """
    norm = unicodedata.normalize("NFC", text).replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    toks: List[_Tok] = []
    notes: List[str] = []
    for src, m in enumerate(_TOKEN_RE.finditer(norm)):
        start = len(toks)
        if m.group("thr"):
            toks.append(_Tok("", "thr", m.group("thr"), float(m.group("thr").lstrip(":= \t"))))
        elif m.group("sep"):
            toks.append(_Tok(",", "sep", m.group("sep")))
        elif m.group("end"):
            toks.append(_Tok(".", "end", m.group("end")))
        elif m.group("amp"):
            toks.append(_Tok("and", "w", m.group("amp")))
        else:
            raw = m.group("word").strip("-'")
            w = raw.lower()  # not casefold: "Straße" stays "straße"
            if not w:
                continue
            if w in lx.CONTRACTIONS:
                toks += [_Tok(p, "w", raw) for p in lx.CONTRACTIONS[w].split()]
            elif w in lx.TYPOS:
                notes.append(f"read {raw!r} as {lx.TYPOS[w]!r}")
                toks += [_Tok(p, "w", raw) for p in lx.TYPOS[w].split()]
            elif w.endswith("n't") and len(w) > 3:
                toks += [_Tok(w[:-3], "w", raw), _Tok("not", "w", raw)]
            else:
                toks.append(_Tok(w, "w", raw))
        for tok in toks[start:]:
            tok.src = src
    return toks, notes


class _Parser:
    """Recursive descent over the tokens of one command (see the module docstring)."""

    def __init__(self, toks: List[_Tok], history: Optional[CommandHistory]) -> None:
        self.t = toks
        self.n = len(toks)
        self.i = 0
        self.used = [False] * self.n
        self.history = history
        self.nps: List[_NP] = []
        self.targets: List[_NP] = []
        self.negated: List[_NP] = []
        self.destination: Optional[Tuple[str, Optional[_NP], str]] = None  # preposition, place, text
        self.warnings: List[str] = []
        self.reference_notes: List[str] = []

    # -- token helpers ---------------------------------------------------------------------------
    def word(self, i: Optional[int] = None) -> str:
        i = self.i if i is None else i
        return self.t[i].word if i < self.n and self.t[i].kind == "w" else ""

    def kind(self, i: Optional[int] = None) -> str:
        i = self.i if i is None else i
        return self.t[i].kind if i < self.n else ""

    def match(self, table, i: Optional[int] = None) -> int:
        """Length of the longest entry of ``table`` (word tuples) starting at token ``i``; 0 if none."""
        i = self.i if i is None else i
        if i >= self.n or self.t[i].kind != "w":
            return 0
        for entry in table.get(self.t[i].word, ()):
            k = len(entry)
            if i + k <= self.n and all(self.t[i + j].kind == "w" and self.t[i + j].word == entry[j]
                                       for j in range(k)):
                return k
        return 0

    def text(self, i: int, k: int) -> str:
        return " ".join(t.word for t in self.t[i:i + k])

    def take(self, k: int = 1) -> str:
        s = self.text(self.i, k)
        for j in range(self.i, min(self.n, self.i + k)):
            self.used[j] = True
        self.i += k
        return s

    def skip_noise(self) -> None:
        """Consume politeness, vocatives and list commas (no visual meaning)."""
        while self.i < self.n:
            k = self.match(_POLITE)
            if k:
                self.take(k)
                continue
            w = self.word()
            if w in lx.VOCATIVES and self._vocative(self.i):
                self.take()
                continue
            if self.kind() == "sep":
                self.take()
                continue
            break

    def _vocative(self, i: int) -> bool:
        """Say whether "robot" at ``i`` addresses the robot ("robot, pick ...", "hey robot", "..., robot")."""
        before = self.t[i - 1] if i > 0 else None
        after = self.t[i + 1] if i + 1 < self.n else None
        greeting = before is not None and before.word in ("hey", "hi", "ok", "okay", "hello")
        at_start = before is None or before.kind in ("sep", "end") or greeting
        at_end = after is None or after.kind in ("sep", "end")
        if at_start and (after is None or after.kind in ("sep", "end") or self.match(_VERBS, i + 1)
                         or self.match(_POLITE, i + 1) or self.match(_NEGATION, i + 1)):
            return True
        return at_end and before is not None and before.kind == "sep"

    def is_stop(self, i: int) -> bool:
        """Say whether token ``i`` cannot be a content word of a noun phrase."""
        tok = self.t[i] if i < self.n else None
        if tok is None or tok.kind != "w":
            return True
        w = tok.word
        if w in lx.CLAUSE_VERBS:
            # a verb needs an object: "pick" at the end of "pick the ice pick" is a noun
            nxt = self.t[i + 1] if i + 1 < self.n else None
            return not (nxt is None or nxt.kind in ("sep", "end") or self.match(_POLITE, i + 1)
                        or self.match(_CONJ, i + 1))
        if w in _STOP_WORDS or w in lx.DETERMINERS and w not in ("this", "that"):
            return True
        if w in lx.VOCATIVES and self._vocative(i):
            return True
        for table in (_RELATIONS, _UNSUPPORTED, _EXCLUSION, _POSTURE, _CONJ, _BREAKS, _DEICTIC, _POLITE,
                      _DIRECTION_LEAD):
            if self.match(table, i):
                return True
        return False

    # -- clauses ---------------------------------------------------------------------------------
    def parse(self) -> None:
        while self.i < self.n:
            start = self.i
            self.clause()
            if self.i == start:
                self.i += 1  # unusable token: stays unused and is reported

    def clause(self) -> None:
        self.skip_noise()
        while self.kind() == "end":
            self.take()
            self.skip_noise()
        while True:
            k_neg, k_break, k_conj = self.match(_NEGATION), self.match(_BREAKS), self.match(_CONJ)
            if k_break > k_neg or (k_conj and not k_neg):
                self.take(max(k_break, k_conj))
                self.skip_noise()
                continue
            break
        while self.word() in _INTERJECTIONS and self.kind(self.i + 1) in ("sep", "end"):
            self.take(2)  # "no, the other one": a correction, not a negation
            self.skip_noise()
        negative = False
        k = self.match(_NEGATION)
        if k:
            negative = True
            self.take(k)
            self.skip_noise()
        verb = ""
        verb_at = self.i
        k = self.match(_VERBS)
        if k and not self._verb_is_noun(k):
            verb = self.take(k)
            self.skip_noise()
            k = self.match(_NEGATION)
            if k and not negative:  # "pick not the red one but the blue one"
                negative = True
                self.take(k)
                self.skip_noise()
        placing = verb in lx.PLACING_VERBS
        after_comma = False
        boundary = False  # the loop ended at a consumed clause boundary
        parsed_any = False
        while True:
            np_ = self.noun_phrase()
            if np_ is None:
                break
            np_.after_comma = after_comma
            self.postmods(np_, placing)
            (self.negated if negative else self.targets).append(np_)
            parsed_any = True
            if not self.match(_CONJ):
                self.skip_polite_only()
            k = self.match(_CONJ)
            if k:
                j = self.i + k
                if self.match(_VERBS, j) or self.match(_NEGATION, j) or self.match(_POLITE, j):
                    self.take(k)
                    boundary = True
                    break
                conj = self.take(k)
                if conj == "or":
                    self.warnings.append("'or' is read as 'and': both are looked for")
                after_comma = False
                continue
            if self.kind() == "sep":
                j = self.i + 1
                self.take()
                if self.match(_VERBS, j) or self.match(_NEGATION, j) or self.match(_BREAKS, j) or \
                        self.match(_POLITE, j) or self.kind(j) in ("end", ""):
                    boundary = True
                    break
                after_comma = True
                continue
            break
        if placing and self.destination is None:
            self.destination_from_relation()
        if verb and not parsed_any:
            self._rewind(verb_at)  # a verb with no object: reported as not understood
            self.i = verb_at + len(verb.split())
            return
        if boundary or not parsed_any:
            return
        self.skip_polite_only()
        # leftovers up to the next clause boundary are not understood (left unused)
        while self.i < self.n and self.kind() not in ("sep", "end") and not self.match(_BREAKS) \
                and not (self.match(_VERBS) and self.word() in lx.CLAUSE_VERBS) \
                and not (self.match(_CONJ) and self.match(_VERBS, self.i + 1)):
            self.i += 1
        k = self.match(_CONJ)
        if k:
            self.take(k)

    def _verb_is_noun(self, k: int) -> bool:
        """Say whether a verb word is a noun here (followed by a relation: "the drop near the cup")."""
        j = self.i + k
        return j < self.n and self.t[j].kind == "w" and self.match(_RELATIONS, j) and \
            self.word(j) not in ("on", "in", "up", "out")

    def skip_polite_only(self) -> None:
        while True:
            k = self.match(_POLITE)
            if k and self.word() not in ("then", "and then"):
                self.take(k)
                continue
            if self.word() in lx.VOCATIVES and self._vocative(self.i):
                self.take()
                continue
            break

    # -- noun phrases ----------------------------------------------------------------------------
    def noun_phrase(self, reference: bool = False) -> Optional[_NP]:
        """Pre-modifiers and head of a noun phrase at the cursor, or None (cursor unchanged)."""
        start = self.i
        np_ = _NP(start=start)
        k = self.match(_OTHER)
        if k:
            np_.history = "other"
            self.take(k)
        else:
            k = self.match(_THEM) or self.match(_IT)
            if k and (k > 1 or self.word() not in ("that", "this", "those", "these", "same")
                      or self.is_stop(self.i + 1)):
                np_.history = "them" if self.match(_THEM) == k else "it"
                self.take(k)
                self.nps.append(np_)
                return np_
        while self.word() in lx.DETERMINERS and self.word() != "of":
            np_.any_det |= self.word() == "any"
            np_.has_det = True
            self.take()
        k = self.match(_COUNTS)
        if k:
            np_.count = lx.COUNT_WORDS[self.text(self.i, k)]
            np_.count_given = np_.has_det = True
            np_.any_det |= np_.count == 0
            self.take(k)
        elif self.word().isascii() and self.word().isdigit() and 2 <= int(self.word()) <= 99:
            np_.count = int(self.word())
            np_.count_given = True
            self.take()
        while self.word() in lx.DETERMINERS:
            self.take()
        k = self.match(_ORDINALS)
        if k and not (self.word() == "next" and self.match(_RELATIONS) > k):
            np_.ordinal = lx.ORDINAL_WORDS[self.text(self.i, k)]
            self.take(k)
        while self.i < self.n:
            w = self.word()
            if self.kind() != "w":
                break
            if w in lx.COUNT_WORDS and not np_.count_given and not np_.words:  # "the leftmost two cups"
                np_.count, np_.count_given = lx.COUNT_WORDS[w], True
                self.take()
                continue
            if w in ("one", "ones") and not np_.head_one:
                np_.head_one = True
                if w == "ones" and not np_.count_given:
                    np_.count = 0
                self.take()
                break
            if self.match(_RELATIONS) > 1 or (self.match(_INTENSIFIERS) and (
                    self.match(_RELATIONS, self.i + 1) or self.match(_UNSUPPORTED, self.i + 1))):
                break  # "right of", "left side of", "right next to"
            if w in lx.QUALIFIER_WORDS:
                q = lx.QUALIFIER_WORDS[w]
                if q not in np_.qualifiers:
                    np_.qualifiers.append(q)
                self.take()
                continue
            if w in lx.DISTANCE_ADJECTIVES and not np_.words and not self.is_stop(self.i + 1):
                self.warnings.append(f"'{w}' without a reference is not used: say e.g. '{w} to the plate'")
                self.i += 1  # left unused: reported as not understood
                continue
            if self.is_stop(self.i):
                break
            np_.words.append(w)
            self.take()
        if self.kind() == "thr":
            np_.threshold = self.t[self.i].value
            self.take()
        if np_.empty():
            self._rewind(start)
            return None
        np_.end = self.i
        if not reference:
            self.nps.append(np_)
        return np_

    # -- post-modifiers --------------------------------------------------------------------------
    def postmods(self, np_: _NP, placing: bool, allow_exclusion: bool = True) -> None:
        """Qualifier phrases, ordinal direction, relation, exclusions, extensions, threshold, destination."""
        try:
            self._postmods(np_, placing, allow_exclusion)
        finally:
            np_.end = max(np_.end, self.i)

    def _postmods(self, np_: _NP, placing: bool, allow_exclusion: bool) -> None:
        while self.i < self.n:
            start = self.i
            if self.word() in _PARTICLES and not self.match(_RELATIONS):  # "set the mug down on the coaster"
                self.take()
                continue
            if self.kind() == "thr":
                np_.threshold = self.t[self.i].value
                self.take()
                continue
            via_that = False
            k = self.match(_POSTURE)
            if k:
                via_that = True
                self.take(k)
            k = self.match(_INTENSIFIERS)
            if k and (self.match(_RELATIONS, self.i + k) or self.match(_UNSUPPORTED, self.i + k)) and \
                    not self.word(self.i + k) in lx.QUALIFIER_WORDS:
                self.take(k)
            if allow_exclusion and (self.match(_EXCLUSION) or (self.word() == "but" and np_.any_det)):
                k = self.match(_EXCLUSION) or 1
                self.take(k)
                ex = self.noun_phrase(reference=True) or _NP(start=self.i, head_one=True)
                self.postmods(ex, False, allow_exclusion=False)
                if ex.empty() or (ex.head_one and not ex.words and not ex.qualifiers and not ex.relation
                                  and not ex.ordinal and ex.start == self.i):
                    raise CommandError(f"'{self.text(start, self.i - start)}' does not say what to leave "
                                       "out; e.g. 'any block except the blue one'")
                ex.owner = np_
                np_.exclude.append(ex)
                self.nps.append(ex)
                continue
            k = self.match(_DIRECTION_LEAD)
            if k:
                j = self.i + k
                while self.word(j) in lx.DETERMINERS:
                    j += 1
                if self.word(j) in lx.QUALIFIER_WORDS:
                    q = lx.QUALIFIER_WORDS[self.word(j)]
                    self.take(j + 1 - self.i)
                    while self.word() in lx.PART_WORDS:
                        self.take()
                    if np_.ordinal:
                        np_.direction = q
                    elif q not in np_.qualifiers:
                        np_.qualifiers.append(q)
                    continue
            k = self.match(_UNSUPPORTED)
            if k:
                words = self.text(self.i, k)
                raise CommandError(f"the relation '{words}' {lx.UNSUPPORTED_RELATIONS[words]}, so it cannot "
                                   f"be grounded in one image; supported relations: {_SUPPORTED}")
            k = self.match(_RELATIONS)
            if k:
                words = self.text(self.i, k)
                kind = lx.RELATION_WORDS[words]
                if words == "besides":
                    self.warnings.append("read 'besides' as 'beside'")
                self.take(k)
                refs = self.reference_phrases(kind)
                if refs is None:
                    self._rewind(start)
                    break
                if self._is_place_only(refs):
                    self._qualify_from_place(np_, kind, refs[0], words, start)
                    continue
                if np_.relation is not None:
                    if placing and self.destination is None:
                        self.destination = (words, refs[0], self.text(start, self.i - start))
                        continue
                    extra = self.text(start, self.i - start)
                    self.warnings.append(f"only one relation per object is used; '{extra}' is not")
                    for j in range(start, self.i):
                        self.used[j] = False
                    continue
                np_.relation = _Rel(kind, refs, words, via_that, self.text(start, self.i - start))
                continue
            k = self.match(_DEST)
            if k and not placing and self.word() in ("to", "toward", "towards"):
                self.take(k)
                place = self.noun_phrase(reference=True)
                if place is not None and self._is_place_only([place]):
                    self._qualify_from_place(np_, "near", place, "to", start)
                    continue
                self._rewind(start)
                break
            if k and (placing or self.word() in ("into", "onto", "in to", "on to")):
                if not placing:
                    raise CommandError(f"'{self.word()}' names a destination, but the command has no placing "
                                       "verb; e.g. 'put the apple into the bowl'")
                prep = self.take(k)
                dest_start = self.i - k
                place = self.noun_phrase(reference=True)
                if place is not None and not place.words and not place.head_one:
                    place = None  # "to the left": a direction
                self.destination = (prep, place, self.text(dest_start, self.i - dest_start))
                continue
            k = self.match(_EXTENSIONS)
            partitive = np_.qualifiers or np_.ordinal or np_.head_one or np_.count_given
            if k and not np_.words and self.word() == "of" and partitive:
                # partitive: "the biggest of the blocks", "the second of the apples"
                self.take(k)
                whole = self.noun_phrase(reference=True)
                if whole is None or not whole.words:
                    self._rewind(start)
                    break
                np_.words = [singular(w) for w in whole.words]
                np_.head_one = False
                np_.qualifiers += [q for q in whole.qualifiers if q not in np_.qualifiers]
                continue
            if k and np_.words:
                self.take(k)
                ext = self.noun_phrase(reference=True)
                if ext is None or not ext.words:
                    self._rewind(start)
                    break
                if self._is_place_only([ext]):
                    continue  # "the cup nearest to the centre of the image": the frame adds nothing
                np_.words += [self.text(start, k)] + ext.words
                continue
            k = self.match(_DEICTIC)
            if k:
                self.i += k  # pointing: left unused, reported as not understood
                self.warnings.append("pointing words ('there', 'here') cannot be seen; say where, e.g. "
                                     "'on the left'")
                continue
            if via_that and self.word() in ("not", "no"):
                self.take()
                ex = self.noun_phrase(reference=True) or _NP(start=self.i, head_one=True)
                self.postmods(ex, False, allow_exclusion=False)
                if ex.empty():
                    raise CommandError("'that is not' must be followed by what the object is not; e.g. "
                                       "'the block that is not red'")
                ex.owner = np_
                np_.exclude.append(ex)
                self.nps.append(ex)
                continue
            if via_that and np_.words and self.kind() == "w" and not self.is_stop(self.i):
                # "the cup that is red": the attribute joins the phrase
                ext = self.noun_phrase(reference=True)
                if ext is not None:
                    np_.words = ext.words + np_.words if not ext.head_one else np_.words
                    np_.qualifiers += [q for q in ext.qualifiers if q not in np_.qualifiers]
                    continue
            self._rewind(start)
            break

    def _rewind(self, start: int) -> None:
        for j in range(start, self.i):
            self.used[j] = False
        self.i = start

    def reference_phrases(self, kind: str) -> Optional[List[_NP]]:
        """Parse the reference noun phrase(s) after a relation word; None when none follows."""
        first = self.noun_phrase(reference=True)
        if first is None:
            return None
        self._reference_direction(first)
        if kind != "between":
            return [first]
        k = self.match(_CONJ)
        if k and self.text(self.i, k) == "and":
            save = self.i
            self.take(k)
            second = self.noun_phrase(reference=True)
            if second is not None:
                self._reference_direction(second)
                return [first, second]
            self._rewind(save)
        plural_ref = bool(first.words) and singular(first.words[-1]) != first.words[-1]
        if first.count == 1 and not plural_ref:
            raise CommandError("'between' needs two objects: 'between the cup and the plate' or "
                               "'between the two balls'")
        if first.count in (0, 1):
            first.count, first.count_given = 2, True  # "between the blocks": two of them
        return [first]

    def _reference_direction(self, ref: _NP) -> None:
        """Take an ordinal's direction after a reference ("the second plate from the left")."""
        k = self.match(_DIRECTION_LEAD)
        if k and ref.ordinal:
            j = self.i + k
            while self.word(j) in lx.DETERMINERS:
                j += 1
            if self.word(j) in lx.QUALIFIER_WORDS:
                ref.direction = lx.QUALIFIER_WORDS[self.word(j)]
                self.take(j + 1 - self.i)

    @staticmethod
    def _is_place_only(refs: List[_NP]) -> bool:
        """Say whether a reference is a part of the frame ("the left side", "the table", "the top corner")."""
        r = refs[0]
        if len(refs) != 1 or r.history or r.ordinal or r.count_given:
            return False
        if r.head_one and not r.words and r.qualifiers:
            return True
        return all(w in lx.FRAME_WORDS or w in lx.PART_WORDS for w in r.words) and \
            (bool(r.words) or bool(r.qualifiers))

    def _qualify_from_place(self, np_: _NP, kind: str, place: _NP, words: str, start: int) -> None:
        """Turn "on the left side of the table" / "at the top" into qualifiers of ``np_``."""
        quals = list(place.qualifiers)
        implied = {"left_of": "left", "right_of": "right", "above": "top", "below": "bottom"}.get(kind)
        if implied and not quals:
            quals = [implied]
        if not quals:
            self.warnings.append(f"'{self.text(start, self.i - start)}' names the frame or the work surface: "
                                 "no constraint")
            return
        for q in quals:
            if np_.ordinal and not np_.direction and not np_.qualifiers:
                np_.direction = q
                # "the last block on the right" is the one at the right end: first counted from the right
                np_.ordinal = abs(np_.ordinal)
            elif q not in np_.qualifiers:
                np_.qualifiers.append(q)

    def destination_from_relation(self) -> None:
        """Make the target's last place phrase the destination of a placing verb ("put it in the bowl")."""
        if not self.targets:
            return
        np_ = self.targets[-1]
        if np_.relation is None:
            return
        rel = np_.relation
        if rel.via_that or rel.kind not in _PLACEABLE:
            return
        np_.relation = None
        self.destination = (rel.words, rel.refs[0], rel.text)


# -- building targets ------------------------------------------------------------------------------
class _Builder:
    """Turns parsed noun phrases into targets: borrowed nouns, history, plurals, checks."""

    def __init__(self, p: _Parser, history: Optional[CommandHistory]) -> None:
        self.p = p
        self.history = history
        self.last = history.last if history is not None else None

    def borrow(self, np_: _NP) -> Tuple[List[str], List[str]]:
        """Return (attributes, noun words) for a phrase without its own noun.

        Such phrases are "the blue one" or "red" in "the red and blue ball"; ([], []) when there is
        nothing to borrow from.
        An exclusion takes its target's; "one" the nearest earlier phrase's (else a later one's, else
        the previous command's target's); a bare attribute only the next phrase's, and only when that
        one has no determiner ("the red and blue ball", but "the orange and the apple" are two
        objects).  The caller keeps its own attributes when it has some ("the blue one" of "the red
        block" is a blue block) and takes the source's otherwise ("any red block except the one on the
        left" excludes a red block).
        """
        if np_.owner is not None:
            got = self.words_of(np_.owner)
            if got[1]:
                return got
        order = self.p.nps
        idx = order.index(np_) if np_ in order else len(order)
        sources = [o for o in order if o.words and not o.attribute_only() and not o.history]
        if not np_.head_one:
            nxt = order[idx + 1] if idx + 1 < len(order) else None
            if nxt is not None and nxt in sources and not nxt.has_det:
                return self.words_of(nxt)
            return [], []
        before = [o for o in reversed(order[:idx]) if o in sources]
        after = [o for o in order[idx + 1:] if o in sources]
        if before or after:
            return self.words_of((before + after)[0])
        if self.last is not None and self.last.targets:
            t = self.last.targets[0]
            self.p.reference_notes.append(f"'one' = {t.phrase}, from the previous command")
            noun = t.noun or t.phrase
            return list(t.attributes), noun.split()
        return [], []

    def words_of(self, np_: _NP) -> Tuple[List[str], List[str]]:
        """(attributes, singular noun words) of a phrase, borrowed ones included."""
        if np_.words and not np_.attribute_only():
            attrs = [w for w in np_.words[:-1] if w in lx.COLOUR_WORDS or w in lx.MATERIAL_WORDS]
            return attrs, [singular(w) for w in np_.noun_words()]
        if np_.owner is not None or np_.head_one:
            attrs, noun = self.borrow(np_)
            return (list(np_.words) or attrs), noun
        return [], []

    def target(self, np_: _NP, role: str) -> Target:
        words = list(np_.words)
        if np_.count_given or np_.head_one or np_.count != 1 or (words and singular(words[-1]) != words[-1]):
            if words:
                words[-1] = singular(words[-1])
        plural_head = bool(np_.words) and singular(np_.words[-1]) != np_.words[-1] and not np_.count_given
        if np_.head_one or np_.attribute_only() or not words:
            attrs, noun = self.borrow(np_)
            if noun:
                words = (words or attrs) + noun
            elif np_.head_one or not words:
                what = self.p.text(np_.start, max(1, np_.end - np_.start))
                raise CommandError(f"'{what}' names no object; say what to find, {_EXAMPLE}")
            # else the attribute word names the object itself ("the orange", "the glass")
        attributes = [w for w in words[:-1] if w in lx.COLOUR_WORDS or w in lx.MATERIAL_WORDS]
        noun = " ".join(w for w in words if w not in attributes)
        count = np_.count
        if plural_head and role != "exclude" and not np_.ordinal:
            count = 0
        t = Target(phrase=" ".join(words), attributes=attributes, qualifiers=list(np_.qualifiers), noun=noun,
                   threshold=np_.threshold, ordinal=np_.ordinal, direction=np_.direction, count=count)
        if t.threshold is not None and not 0.0 <= t.threshold <= 1.0:
            raise CommandError(f"threshold {t.threshold:g} for '{t.phrase}' must be in [0, 1]; "
                               "e.g. 'cup:0.4'")
        if np_.relation is not None:
            t.relation = self.relation(np_.relation)
        if t.ordinal:
            self._ordinal_direction(t)
        t.exclude = [self.target(e, "exclude") for e in np_.exclude]
        return t

    def relation(self, rel: _Rel) -> Relation:
        return Relation(rel.kind, [self.target(r, "reference") for r in rel.refs], rel.words)

    def _ordinal_direction(self, t: Target) -> None:
        if t.direction and t.direction in t.qualifiers:
            t.qualifiers.remove(t.direction)
        if not t.direction and len(t.qualifiers) == 1:
            t.direction = t.qualifiers.pop()
        if t.qualifiers:
            raise CommandError(f"an ordinal counts along one direction, but '{t.phrase}' has "
                               f"{', '.join([t.direction] + t.qualifiers)}; "
                               "e.g. 'the second cup from the left'")
        if not t.direction:
            how = "by distance to the reference" if t.relation is not None else "from the left"
            self.p.warnings.append(f"the {'ordinal' if t.ordinal > 0 else 'last'} of '{t.phrase}' is counted "
                                   f"{how} (no direction given)")

    def history_target(self, np_: _NP, earlier: List[Target]) -> List[Target]:
        """Targets for "it", "them" and "the other one" (earlier in this command, else the history)."""
        if np_.history in ("it", "them"):
            if earlier:
                return []  # "pick the apple and put it in the bowl": the apple, already a target
            if self.last is None or not self.last.targets:
                raise CommandError("'it' refers to an earlier target, but there is none; name the object, "
                                   f"{_EXAMPLE}")
            picks = self.last.targets if np_.history == "them" else self.last.targets[:1]
            boxes = self.last.boxes if np_.history == "them" else self.last.boxes[:1]
            out = []
            for t, box in zip(picks, boxes):
                c = copy.deepcopy(t)
                c.history = "it"
                if box is not None:
                    c.same_as_box = box
                c.other_than_box = None
                out.append(c)
            self.p.reference_notes.append(
                f"'{'them' if np_.history == 'them' else 'it'}' = {', '.join(t.phrase for t in picks)}, "
                f"the previous target{'s' if len(picks) > 1 else ''} ({self.last.text!r})")
            return out
        # "the other one" / "the other cup"
        own = [singular(w) for w in np_.words]
        own_noun = " ".join(w for w in own if w not in lx.COLOUR_WORDS and w not in lx.MATERIAL_WORDS)
        same_noun = [k for k, t in enumerate(earlier)
                     if not own or t.noun == own_noun or t.phrase == " ".join(own)]
        if same_noun:
            k = same_noun[-1]
            base = earlier[k]
            t = Target(phrase=" ".join(own) if own else base.phrase, qualifiers=list(np_.qualifiers),
                       attributes=[w for w in own if w in lx.COLOUR_WORDS or w in lx.MATERIAL_WORDS]
                       if own else list(base.attributes),
                       noun=base.noun, other_than_target=k, history="other")
            return [t]
        if self.last is None or not self.last.targets:
            raise CommandError("'the other one' refers to an earlier target, but there is none; name the "
                               f"object, {_EXAMPLE}")
        base, box = self.last.targets[0], self.last.boxes[0]
        if box is None:
            raise CommandError(f"'the other one' needs the position of the previous target ({base.phrase}), "
                               "but it was not found; name the object instead")
        phrase = " ".join(own) if own else base.phrase
        t = Target(phrase=phrase, attributes=[w for w in phrase.split() if w in lx.COLOUR_WORDS
                                              or w in lx.MATERIAL_WORDS],
                   qualifiers=list(np_.qualifiers), noun=base.noun, other_than_box=box, history="other")
        self.p.reference_notes.append(f"'the other one' = a {phrase} that is not the previous target "
                                      f"({self.last.text!r})")
        return [t]


def _merge_apposition(targets: List[Target], t: Target) -> bool:
    """Refine the previous target with a comma-separated "one" phrase ("pick the ball, the left one")."""
    if not targets:
        return False
    prev = targets[-1]
    if prev.noun != t.noun or prev.relation and t.relation or prev.ordinal and t.ordinal:
        return False
    prev.attributes += [a for a in t.attributes if a not in prev.attributes]
    prev.phrase = " ".join(prev.attributes + prev.noun.split()) if t.attributes else prev.phrase
    prev.qualifiers += [q for q in t.qualifiers if q not in prev.qualifiers]
    prev.relation = prev.relation or t.relation
    if t.ordinal:
        prev.ordinal, prev.direction = t.ordinal, t.direction
    prev.exclude += t.exclude
    if t.threshold is not None:
        prev.threshold = t.threshold
    return True


def _not_understood(p: _Parser) -> List[str]:
    """Contiguous runs of unused word tokens, as written."""
    out: List[str] = []
    run: List[str] = []
    last_src = -1
    for tok, used in zip(p.t, p.used):
        if not used and tok.kind in ("w", "thr"):
            if tok.src != last_src:
                run.append(tok.raw.strip())
            last_src = tok.src
            continue
        if run:
            out.append(" ".join(run))
        run = []
        last_src = -1
    if run:
        out.append(" ".join(run))
    return out


def _language_warnings(targets: Sequence[Target]) -> List[str]:
    out = []
    for t in targets:
        words = t.phrase.split()
        if any(not w.isascii() for w in words) or any(w in lx.FOREIGN_WORDS for w in words):
            out.append(f"'{t.phrase}' does not look like English; the matcher (TinyCLIP) reads English only, "
                       "so it may not find it")
    return out


def parse_command(command: str, history: Optional[CommandHistory] = None) -> ParsedCommand:
    """Parse a command such as ``"pick the second apple from the left"``.

    Args:
        command: free text; case, punctuation and politeness do not matter.
        history: earlier commands and their targets, for "it", "that one", "the other one".

    Returns:
        A :class:`ParsedCommand` with at least one target.

    Raises:
        TypeError: ``command`` is not a string.
        CommandError: (a ValueError) the command names no object, uses a relation that cannot be
            grounded, or refers to an earlier target that does not exist.
    """
    if not isinstance(command, str):
        raise TypeError(f"command must be a string, got {type(command).__name__}")
    text = command.strip()
    if not text:
        raise CommandError(f"empty command: say what to find, {_EXAMPLE}")
    toks, notes = tokenize(text)
    p = _Parser(toks, history)
    p.parse()
    b = _Builder(p, history)
    targets: List[Target] = []
    for np_ in p.targets:
        if np_.history:
            targets += b.history_target(np_, targets)
            if np_.history in ("it", "them") and targets:
                for t in targets[-1:]:
                    if np_.relation is not None and t.relation is None:
                        t.relation = b.relation(np_.relation)
                    t.qualifiers += [q for q in np_.qualifiers if q not in t.qualifiers]
                    t.exclude += [b.target(e, "exclude") for e in np_.exclude]
            elif np_.history == "other" and targets:
                t = targets[-1]
                if np_.relation is not None:
                    t.relation = b.relation(np_.relation)
                t.exclude += [b.target(e, "exclude") for e in np_.exclude]
            continue
        t = b.target(np_, "target")
        if np_.after_comma and np_.head_one and _merge_apposition(targets, t):
            continue
        targets.append(t)
    if not targets and p.negated and (b.last is None or not b.last.targets):
        raise CommandError("the command only says what not to pick; say what to pick, e.g. 'pick the "
                           "blue block, not the red one'")
    negated = [b.target(np_, "exclude") for np_ in p.negated if not np_.history]
    if not targets and negated:
        base = b.last.targets[0]
        targets = [Target(phrase=base.noun or base.phrase, noun=base.noun or base.phrase)]
        p.reference_notes.append(f"corrects the previous command ({b.last.text!r})")
    if not targets:
        raise CommandError(f"command {text!r} names no object; say what to find, {_EXAMPLE}")
    for t in targets:
        t.exclude += [copy.deepcopy(e) for e in negated if e.phrase != t.phrase or not t.exclude]
    destination = None
    if p.destination is not None:
        prep, place, where = p.destination
        named = place is not None and (place.words or place.head_one)
        place_t = b.target(place, "reference") if named else None
        destination = Destination(prep, place_t, where)
    warnings = notes + p.warnings + _language_warnings(targets)
    return ParsedCommand(text=text, targets=_unique(targets), destination=destination,
                         reference="; ".join(p.reference_notes), not_understood=_not_understood(p),
                         warnings=list(dict.fromkeys(warnings)))


def _unique(targets: List[Target]) -> List[Target]:
    """Drop repeated targets ("the pen and the pen")."""
    out: List[Target] = []
    for t in targets:
        if not any(o.to_dict() == t.to_dict() and o.same_as_box == t.same_as_box for o in out):
            out.append(t)
    return out


def parse_targets(command_or_targets: Union[str, Sequence[str], ParsedCommand],
                  history: Optional[CommandHistory] = None) -> ParsedCommand:
    """Parse one command string, or a list of target phrases each parsed on its own.

    A :class:`ParsedCommand` is returned unchanged, so engines accept all three forms.
    """
    if isinstance(command_or_targets, ParsedCommand):
        return command_or_targets
    if isinstance(command_or_targets, str):
        return parse_command(command_or_targets, history)
    if not isinstance(command_or_targets, Sequence):
        raise TypeError("command must be a string or a sequence of target phrases, "
                        f"got {type(command_or_targets).__name__}")
    parts = [parse_command(item, history) for item in command_or_targets]
    targets = [t for p in parts for t in p.targets]
    if not targets:
        raise CommandError("empty target list: give at least one phrase, e.g. ['pen']")
    return ParsedCommand(text=", ".join(str(t) for t in command_or_targets), targets=_unique(targets),
                         not_understood=[w for p in parts for w in p.not_understood],
                         warnings=list(dict.fromkeys(w for p in parts for w in p.warnings)))


def parse_threshold_table(text: str) -> Dict[str, float]:
    """Parse per-phrase score thresholds written as in a command: ``"cup:0.4, red block:0.7"``.

    Phrases are normalised as in a command ("Red Cups" -> "red cup"), so an entry matches the
    phrase a command is parsed into.  Empty text gives an empty table.

    Raises:
        CommandError: (a ValueError) an entry without a threshold, with more than a phrase
            (a qualifier, a relation, ...), with words that are not used, or a value outside [0, 1].
    """
    if not isinstance(text, str):
        raise TypeError(f"thresholds must be a string, got {type(text).__name__}")
    if not text.strip():
        return {}
    parsed = parse_command(text)
    example = "write phrase:threshold pairs, e.g. 'cup:0.4, red block:0.7'"
    if parsed.not_understood or parsed.destination is not None:
        what = ", ".join(parsed.not_understood) or "a place"
        raise CommandError(f"{text!r} is not a threshold table ({what} not understood); {example}")
    out: Dict[str, float] = {}
    for t in parsed.targets:
        if t.threshold is None:
            raise CommandError(f"'{t.phrase}' has no threshold; {example}")
        if t.constrained or t.history:
            raise CommandError(f"'{t.describe()}' is more than a phrase; {example}")
        out[t.phrase] = float(t.threshold)
    return out
