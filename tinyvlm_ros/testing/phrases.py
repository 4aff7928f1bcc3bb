"""Phrases users type or say to a robot, and what keyboards and speech-to-text make of them.

The tokenizer's golden corpus (``tools/gen_tokenizer_golden.py`` records open_clip's
ids for it; ``test/test_tokenizer.py`` and the fidelity report compare ours):
curly quotes and apostrophes, ligatures, full-width text, decomposed accents,
superscripts and vulgar fractions, circled numbers, emoji, mixed scripts, HTML
entities, mojibake, odd whitespace, and phrases long enough to be cut at the
context length, next to plain robot commands.
"""

from __future__ import annotations

import unicodedata
from typing import List

#: Plain robot commands; each also gets the variants of :func:`variants`.
COMMANDS = [
    "pick the pen", "grab the red cup", "the cup right of the plate", "take the scissors",
    "put the spoon next to the bowl", "hand me the screwdriver", "pick up the blue block on the left",
    "find my keys", "the mug behind the laptop", "take the green apple", "grab the tape measure",
    "pick the second bottle from the right", "move the box to the shelf", "where is the remote?",
    "bring me the coffee cup", "pick the small yellow ball", "the knife, not the fork",
    "take the one near the sink", "grab the cable and the charger", "pick the largest orange",
    "a photo of a red block.", "a photo of the background.", "a photo of an object.",
    "Pick The PEN!", "  grab\tthe   cup  ", "pick the pen.\nthen the cup",
    "take the 3D-printed bracket", "the M8 bolt (stainless)", "pick the 10 mm socket",
    "grab the USB-C cable", "the cup at 2 o'clock", "it's the O'Neil's 3D-printer_v2",
]

#: Hand-written phrases of every troublesome kind.
SPECIAL = [
    # curly quotes and apostrophes (phone keyboards, speech-to-text)
    "it\u2019s a \u201csmart\u201d quote", "grab Anna\u2019s mug", "don\u2019t touch the knife",
    "the \u2018red\u2019 one", "pick the \u201ctape measure\u201d", "we\u2019ll take the cup",
    "they\u2019d want the bowl", "I\u2019m looking for the pen", "you\u2019re holding the lid",
    "we\u2019ve lost the screw", "\u201eGerman quotes\u201c", "\u00abguillemets\u00bb and \u2039single\u203a",
    "a 5\u2032 11\u2033 shelf", "the `backtick` cup", "the \u00b4acute\u00b4 cup",
    "rock\u2019n\u2019roll mug",
    "\u201cpick the pen\u201d", "\u2018grab the cup\u2019", "it\u02bcs the lid", "O\u2019Neil\u2019s wrench",
    # ligatures
    "\ufb01ne", "the \ufb02ask", "o\ufb03ce chair", "the \ufb00 key", "ba\ufb04e", "the \ufb06ick",
    "\ufb01nd the \ufb02at \ufb01le",
    # full-width and ideographic space
    "\uff50\uff49\uff43\uff4b\u3000\uff54\uff48\uff45\u3000\uff50\uff45\uff4e", "\uff32\uff25\uff24 cup",
    "\uff11\uff12\uff13", "pick the cup\uff01", "what\uff1f", "\uff08the bowl\uff09", "\uff21\uff22\uff23",
    # decomposed accents and other combining marks
    "cafe\u0301", "cre\u0300me bru\u0302le\u0301e", "jalapen\u0303o", "Zoe\u0308's cup",
    "a\u030angstro\u0308m",
    "n\u0303", "the pin\u0303ata", "e\u0301e\u0301", "na\u0308i\u0308ve", "combining only \u0301\u0302",
    # composed accents and letters outside ASCII
    "caf\u00e9", "cr\u00e8me br\u00fbl\u00e9e", "Stra\u00dfe", "\u1e9e", "\u0130stanbul", "\u01c5",
    "\u00d8 8 mm drill", "\u00e6sir", "\u0153uvre", "fa\u00e7ade",
    # superscripts, subscripts, fractions, numbers of other scripts
    "2 m\u00b2", "5\u00bd inch bolt", "\u00be cup", "10\u00b3", "H\u2082O", "\u2153 of the box", "x\u00b9",
    "1\u20442", "\u0663 cups", "\u0967\u0968\u0969", "\u00b2\u00b3\u00b9", "3.14", "1,000,000", "50%",
    "$5.99", "\u20ac10", "\u00a35", "\u00a5100", "-5\u00b0C", "90\u00b0 angle", "\u00b1 2 mm",
    # circled, enclosed, roman numerals, math letters
    "\u2460", "item \u2461 on the left", "\u24b6", "\u2473", "\u24ea", "\u216b", "\u2177",
    "\U0001d41b\U0001d428\U0001d425\U0001d41d", "\u2122", "\u00ae cup", "\u2116 5",
    # emoji
    "the \U0001f34e", "pick the \u2615 cup", "\U0001f44d\U0001f3fd",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "\U0001f1e9\U0001f1ea flag", "\u2764\ufe0f", "1\ufe0f\u20e3", "\U0001f916 grab the cup",
    "\U0001f600\U0001f600",
    "cup\U0001f964", "\u2b50 star", "\u2705 done",
    # mixed scripts
    "pick the \u676f\u5b50", "\u043a\u0440\u0430\u0441\u043d\u0430\u044f \u0447\u0430\u0448\u043a\u0430",
    "\u03b7 \u03ba\u03bf\u03cd\u03c0\u03b1", "\u30ab\u30c3\u30d7", "\ucef5\uc744 \uc9d1\uc5b4",
    "\u0643\u0648\u0628", "\u0915\u092a", "the \u0441up (Cyrillic c)", "\u00bfd\u00f3nde est\u00e1 la taza?",
    "tasse \u00e0 caf\u00e9", "\u05db\u05d5\u05e1", "\u0e16\u0e49\u0e27\u0e22",
    "\u1f00\u03b3\u03b1\u03b8\u03cc\u03c2",
    "T\u00fcrk\u00e7e I\u0131\u0130i", "\u0399\u03a3\u03a4\u039f\u03a3", "\u4e2d\u6587 and English",
    # HTML entities
    "fish &amp; chips", "&lt;cup&gt;", "&amp;amp;", "&quot;quoted&quot;", "&#39;s cup", "a&nbsp;cup",
    "&eacute;clair", "&#x2019;", "cafe 42 &amp; co", "&copy; 2024",
    # mojibake ftfy repairs
    "caf\u00c3\u00a9", "don\u00e2\u20ac\u2122t", "\u00e2\u20ac\u0153smart\u00e2\u20ac\u009d",
    "cr\u00c3\u00a8me", "Stra\u00c3\u0178e",
    # whitespace and invisible characters
    "a\u00a0cup", "thin\u2009space", "zero\u200bwidth", "tab\there", "line\r\nbreak", "\u3000ideographic",
    "soft\u00adhyphen", "word\u2028sep", "\u001cfile sep", "bom\ufeffcup", "bell\u0007char", "nul\u0000char",
    "\u200e\u200fmarks", "  ", "",
    # special tokens, contractions and punctuation runs
    "<start_of_text>", "<END_OF_TEXT>", "hello<end_of_text>world", "it's", "IT'S", "'s", "''", "'''",
    "we'll", "they'd", "I'm", "you're", "we've", "can't won't", "l'\u00e9l\u00e8ve",
    "Tape-measure & scissors!!  ", "...", "?!?!", "a/b", "C++", "C#", "e-mail", "#hashtag", "@user",
    "http://example.com/a?b=c", "x_y_z", "__init__", "a--b", "(cup)", "[bowl]", "{lid}",
    # long phrases: cut to the context length with EOS kept
    "x" * 300, "pick " * 80, "the red cup on the left of the blue plate behind the green bottle " * 6,
    "\U0001f34e" * 60, "\u2460\u2461\u2462" * 40, "caf\u00e9 " * 90,
]


def variants(phrase: str) -> List[str]:
    """Return what keyboards, speech-to-text and copy-paste turn a command into."""
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else ("\u3000" if c == " " else c)
                        for c in phrase)
    return [
        phrase.replace("'", "\u2019"),
        fullwidth,
        phrase.upper(),
        unicodedata.normalize("NFD", phrase.replace("e", "\u00e9")),
        phrase + " \U0001f64f",
        "\u201c" + phrase + "\u201d",
    ]


def corpus() -> List[str]:
    """Every phrase of the golden test, in a stable order, without repeats."""
    phrases: List[str] = []
    for c in COMMANDS:
        phrases.append(c)
        phrases.extend(variants(c))
    phrases.extend(SPECIAL)
    return list(dict.fromkeys(phrases))
