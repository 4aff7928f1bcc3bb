"""The words the command grammar knows, by role (docs/commands.md lists them too).

Everything that is not listed here is a content word: it stays in the noun
phrase the matcher compares crops with.  Multi-word entries are matched
longest first.  Lists are plain data so the parser, the docs and the tests
read the same vocabulary.
"""

from __future__ import annotations

from typing import Dict, Tuple

#: Spatial and size qualifiers the resolver ranks by (one home for the names).
QUALIFIERS = ("left", "right", "top", "bottom", "center", "largest", "smallest")

#: Adjective -> qualifier ("the leftmost cup", "the big plate", "the top drawer").
QUALIFIER_WORDS: Dict[str, str] = {
    "left": "left", "leftmost": "left", "left-most": "left", "left-hand": "left", "lefthand": "left",
    "right": "right", "rightmost": "right", "right-most": "right", "right-hand": "right",
    "righthand": "right",
    "top": "top", "topmost": "top", "top-most": "top", "upper": "top", "uppermost": "top", "highest": "top",
    "upmost": "top",
    "bottom": "bottom", "bottommost": "bottom", "bottom-most": "bottom", "lower": "bottom",
    "lowest": "bottom",
    "lowermost": "bottom",
    "center": "center", "centre": "center", "middle": "center", "central": "center", "centermost": "center",
    "centremost": "center", "midmost": "center",
    "largest": "largest", "biggest": "largest", "big": "largest", "large": "largest", "bigger": "largest",
    "larger": "largest", "huge": "largest", "giant": "largest",
    "smallest": "smallest", "tiniest": "smallest", "small": "smallest", "little": "smallest",
    "tiny": "smallest", "smaller": "smallest", "littlest": "smallest",
}

#: How a qualifier reads in the one-line summary.
QUALIFIER_TEXT = {"left": "leftmost", "right": "rightmost", "top": "topmost", "bottom": "bottommost",
                  "center": "nearest the center", "largest": "largest", "smallest": "smallest"}

#: Colour words, reported as attributes (the phrase keeps them: the matcher needs them).
COLOUR_WORDS = frozenset((
    "red", "green", "blue", "yellow", "purple", "orange", "pink", "black", "white", "grey", "gray",
    "brown", "cyan", "magenta", "violet", "silver", "gold", "golden", "beige", "transparent", "clear",
    "dark", "light", "navy", "turquoise", "teal", "maroon", "tan",
))

#: Material words, reported as attributes.
MATERIAL_WORDS = frozenset((
    "wooden", "wood", "metal", "metallic", "plastic", "glass", "paper", "rubber", "steel", "cardboard",
    "ceramic", "fabric", "leather", "cotton", "aluminium", "aluminum", "foam",
))

#: Nouns of the frame or the work surface: "on the left side of the table" qualifies, it names no object.
FRAME_WORDS = frozenset(("image", "picture", "frame", "photo", "view", "scene", "screen", "camera", "table",
                         "desk", "workspace", "bench", "workbench", "surface", "counter", "tabletop",
                         "worktop"))

#: Nouns after a qualifier that only say "part of the frame": "on the left side", "in the top corner".
PART_WORDS = frozenset(("side", "corner", "part", "end", "edge", "half", "area", "region", "hand", "row",
                        "one", "ones"))

#: Relation phrase -> relation kind.  The resolver defines each kind (docs/commands.md).
RELATION_WORDS: Dict[str, str] = {
    "left of": "left_of", "to the left of": "left_of", "on the left of": "left_of",
    "on the left side of": "left_of", "to the left side of": "left_of", "at the left of": "left_of",
    "left side of": "left_of", "on the left hand side of": "left_of", "on the left-hand side of": "left_of",
    "leftward of": "left_of", "west of": "left_of",
    "right of": "right_of", "to the right of": "right_of", "on the right of": "right_of",
    "on the right side of": "right_of", "to the right side of": "right_of", "at the right of": "right_of",
    "right side of": "right_of", "on the right hand side of": "right_of",
    "on the right-hand side of": "right_of", "rightward of": "right_of", "east of": "right_of",
    "above": "above", "over": "above", "on top of": "above", "atop": "above", "higher than": "above",
    "on the top of": "above", "at the top of": "above",
    "below": "below", "under": "below", "underneath": "below", "beneath": "below", "lower than": "below",
    "at the bottom of": "below", "under neath": "below",
    "next to": "near", "near": "near", "near to": "near", "nearby": "near", "beside": "near", "by": "near",
    "close to": "near", "adjacent to": "near", "alongside": "near", "at": "near", "by the side of": "near",
    "touching": "near", "besides": "near",
    "nearest to": "nearest", "closest to": "nearest", "nearest": "nearest", "closest": "nearest",
    "far from": "far", "farthest from": "far", "furthest from": "far", "away from": "far",
    "farthest": "far", "furthest": "far",
    "in": "in", "inside": "in", "within": "in", "inside of": "in",
    "on": "on", "upon": "on",
    "between": "between", "in between": "between", "betwixt": "between",
    "from": "from", "out of": "from", "off": "from", "from inside": "from", "from within": "from",
}

#: Spatial relations that cannot be decided from one image, with the reason given to the user.
UNSUPPORTED_RELATIONS: Dict[str, str] = {
    "behind": "needs depth order", "in front of": "needs depth order", "before": "needs depth order",
    "in back of": "needs depth order",
    "across from": "needs the viewer's position", "opposite": "needs the viewer's position",
    "opposite to": "needs the viewer's position", "opposite of": "needs the viewer's position",
    "facing": "needs object orientation", "around": "is not a position",
    "beyond": "needs depth order", "against": "needs contact", "among": "needs a group",
    "amongst": "needs a group", "amid": "needs a group", "outside": "is not supported yet",
    "outside of": "is not supported yet", "along": "is not a position",
    "through": "is not a position", "past": "is not a position",
}

#: Prepositions that start a destination after a placing verb ("put the apple in the bowl").
DESTINATION_ONLY = ("to", "into", "onto", "toward", "towards", "in to", "on to")

#: Verbs whose object is moved somewhere: their last place phrase is a destination, not a relation.
PLACING_VERBS = frozenset((
    "put", "place", "set", "drop", "move", "stack", "insert", "transfer", "deliver", "carry", "throw",
    "toss", "slide", "push", "put down", "set down", "bring", "give", "hand", "pass", "put back", "return",
    "lay", "dump", "pour",
))

#: Leading verbs (multi-word first when matched); they carry no visual meaning.
VERBS = (
    "pick up", "pick out", "pick", "take out", "take", "grab", "get", "fetch", "bring me", "bring",
    "give me", "give", "hand me", "hand", "pass me", "pass", "show me", "show", "find", "locate", "detect",
    "point to", "point at", "point out", "look at", "look for", "search for", "where is", "where are",
    "select", "choose", "lift up", "lift", "move", "reach for", "reach", "hold", "collect", "segment",
    "highlight", "put away", "identify", "track", "follow", "see", "spot", "touch", "tap", "push", "press",
    "pull", "open", "close", "shut", "turn on", "turn off", "switch on", "switch off", "inspect", "check",
    "count", "clean", "wipe", "remove", "pour", "fill", "use", "grasp", "seize", "catch", "retrieve",
    "obtain", "sort", "stack", "throw", "toss", "drop", "put down", "put back", "put", "place", "set down",
    "set", "insert", "transfer", "deliver", "carry", "slide", "return", "lay", "dump", "get me", "find me",
    "locate me", "what is", "is there", "are there", "do you see", "can you see", "picking up", "picking",
    "grabbing", "getting", "fetching", "bringing", "taking", "handing", "passing", "finding", "moving",
    "putting", "placing", "lifting", "holding", "opening", "closing", "pushing", "pulling",
)

#: Verbs that are almost never nouns: they end a noun phrase ("pick the cup put it in the bowl").
CLAUSE_VERBS = frozenset(("pick", "grab", "take", "put", "place", "bring", "fetch", "give", "lift", "find",
                          "locate", "show", "select", "choose", "grasp", "retrieve", "collect", "insert",
                          "deliver", "get"))

#: Politeness, addressing and manner words anywhere in a command; no visual meaning.
POLITE = (
    "please", "kindly", "could you please", "could you", "can you please", "can you", "would you please",
    "would you kindly", "would you mind", "would you", "will you", "i want you to", "i need you to",
    "i would like you to", "i would like", "i want", "i need", "i am looking for", "i'm looking for",
    "help me", "help me to", "let us", "let's", "hey", "hi", "hello", "ok", "okay", "alright", "so", "now",
    "just", "go ahead and", "go and", "go", "for me", "thanks", "thank you", "thank you very much",
    "quickly", "carefully", "gently", "slowly", "right now", "asap", "real quick", "if you can",
    "if possible", "when you can", "try to", "up", "down", "out", "again", "also", "too", "as well",
    "and then", "then", "maybe", "perhaps", "the robot should", "you should", "you can", "you must",
    "to me", "me",
)

#: Vocatives: addressing the robot.  "robot" is a noun unless it stands alone at a command's edge.
VOCATIVES = frozenset(("robot", "bot", "buddy"))

#: Determiners and articles, dropped from the phrase.
DETERMINERS = frozenset(("the", "a", "an", "some", "this", "that", "these", "those", "my", "your", "our",
                         "his", "her", "their", "its", "any", "of", "whichever", "which"))

#: Count words -> number of objects asked for (0 = every instance).
COUNT_WORDS: Dict[str, int] = {
    "all": 0, "all of": 0, "every": 0, "each": 0, "all of the": 0, "every single": 0, "both": 2,
    "both of": 2, "a couple of": 2, "couple of": 2, "a pair of": 2,
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}

#: Ordinal words -> position (negative counts from the far end: -1 = last).
ORDINAL_WORDS: Dict[str, int] = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "1st": 1, "2nd": 2, "3rd": 3, "4th": 4, "5th": 5, "6th": 6, "7th": 7,
    "8th": 8, "9th": 9, "10th": 10, "last": -1, "second last": -2, "second-last": -2,
    "second to last": -2, "next to last": -2, "penultimate": -2, "third last": -3, "third-last": -3,
    "third to last": -3,
}

#: Words that start an exclusion of what follows ("any block except the blue one").
EXCLUSION_WORDS = (
    "except for", "except", "excluding", "but not", "and not", "not", "other than", "apart from",
    "aside from", "rather than", "instead of", "save for", "never", "minus", "but never",
)

#: Words that make a whole clause negative ("don't pick the red block").
NEGATION_WORDS = (
    "do not pick", "do not take", "do not grab", "do not touch", "do not get", "do not", "does not",
    "not", "never", "avoid", "ignore", "skip", "leave", "no", "instead of", "rather than", "except",
    "except for", "but not",
)

#: Words between a noun and its relation that add nothing ("the cup lying next to the plate").
POSTURE_WORDS = (
    "that is", "which is", "that are", "which are", "who is", "is", "are", "lying", "sitting", "standing",
    "placed", "located", "positioned", "resting", "kept", "found", "lying down", "sat", "situated",
    "that lies", "that sits", "that stands", "which lies", "which sits", "somewhere", "currently",
    "that can be seen", "you can see", "you see",
)

#: Intensifiers skipped right before a relation ("right next to", "directly above").
INTENSIFIERS = ("right", "just", "directly", "immediately", "exactly", "slightly", "very", "far", "way")

#: Pointing words: the robot cannot see where someone points, so these are reported as not understood.
DEICTIC = ("over there", "over here", "right there", "right here", "there", "here", "yonder")

#: Superlatives of distance with no reference ("the nearest cup"): nearest to what?
DISTANCE_ADJECTIVES = frozenset(("nearest", "closest", "farthest", "furthest", "near", "far", "nearby",
                                 "closer", "further", "farther"))

#: References to an earlier target.
IT_WORDS = ("it", "this one", "that one", "the same one", "the same", "same one", "same", "that", "this",
            "the same thing", "the previous one", "the one before", "that thing", "this thing")
THEM_WORDS = ("them", "those ones", "these ones", "the same ones", "those", "these", "both of them",
              "all of them")
OTHER_WORDS = ("the other one", "the other", "another one", "another", "other one", "the other ones")

#: Separators between noun phrases of one list.
CONJUNCTIONS = ("and", "as well as", "plus", "along with", "together with", "or", "and also")

#: Words that end a clause; the next clause may change verb or polarity.
CLAUSE_BREAKS = ("then", "and then", "after that", "afterwards", "next", "but", "but rather", "instead")

#: Frequent misspellings of function words (content words are never corrected).
TYPOS: Dict[str, str] = {
    "teh": "the", "hte": "the", "th": "the", "tge": "the", "thw": "the", "tthe": "the", "da": "the",
    "pls": "please", "plz": "please", "pleas": "please", "pleae": "please", "pleaes": "please",
    "plase": "please", "pleasee": "please", "plese": "please", "pleasse": "please",
    "cna": "can", "coudl": "could", "cuold": "could", "woudl": "would", "wold": "would",
    "adn": "and", "nad": "and", "annd": "and", "n": "and",
    "nxt": "next", "nex": "next", "rigth": "right", "rihgt": "right", "rght": "right", "lfet": "left",
    "lef": "left", "bewteen": "between", "betwen": "between", "betweeen": "between",
    "inbetween": "in between",
    "abvoe": "above", "abov": "above", "bellow": "below", "belwo": "below", "undr": "under", "udner": "under",
    "besdie": "beside", "besid": "beside", "secnod": "second", "secound": "second", "seccond": "second",
    "thrid": "third", "fisrt": "first", "frist": "first", "smalest": "smallest", "bigest": "biggest",
    "biggst": "biggest", "largets": "largest", "exept": "except", "excpet": "except", "excep": "except",
    "ecxept": "except", "dont": "do not", "donot": "do not", "doesnt": "does not", "isnt": "is not",
    "arent": "are not", "thats": "that is", "whats": "what is", "wheres": "where is", "lets": "let us",
    "leftmots": "leftmost", "rightmots": "rightmost", "nearst": "nearest", "closet": "closest",
    "ont": "on", "fro": "for", "frmo": "from", "fomr": "from", "infront": "in front",
}

#: Contractions expanded before parsing (apostrophes already normalised to ').
CONTRACTIONS: Dict[str, str] = {
    "don't": "do not", "doesn't": "does not", "didn't": "did not", "isn't": "is not", "aren't": "are not",
    "that's": "that is", "it's": "it is", "what's": "what is", "where's": "where is", "here's": "here is",
    "there's": "there is", "i'd": "i would", "i'm": "i am", "let's": "let us", "can't": "can not",
    "won't": "will not", "you'd": "you would", "shouldn't": "should not", "mustn't": "must not",
    "wouldn't": "would not", "couldn't": "could not",
}

#: Nouns that are plural in form but name one object (never singularised).
PLURAL_ONLY = frozenset(("scissors", "pliers", "glasses", "tongs", "tweezers", "headphones", "earphones",
                         "binoculars", "jeans", "pants", "shorts", "trousers", "goggles", "sunglasses",
                         "clippers", "shears", "chopsticks", "news", "lens", "dice", "species", "series"))

#: Irregular plurals.
IRREGULAR_PLURALS: Dict[str, str] = {
    "knives": "knife", "leaves": "leaf", "loaves": "loaf", "shelves": "shelf", "halves": "half",
    "wolves": "wolf", "mice": "mouse", "feet": "foot", "teeth": "tooth", "geese": "goose", "men": "man",
    "women": "woman", "children": "child", "people": "person", "potatoes": "potato", "tomatoes": "tomato",
    "mangoes": "mango", "boxes": "box", "foxes": "fox", "buses": "bus", "batteries": "battery",
    "cherries": "cherry", "strawberries": "strawberry", "berries": "berry",
}

#: Function words of common non-English languages: a phrase holding one is probably not English.
FOREIGN_WORDS = frozenset((
    "der", "die", "das", "den", "dem", "ein", "eine", "einen", "und", "nicht", "bitte", "nimm", "links",
    "rechts", "le", "la", "les", "une", "des", "et", "pas", "prends", "gauche", "droite", "el", "los",
    "las", "una", "y", "por", "favor", "coge", "izquierda", "derecha", "il", "lo", "gli", "prendi",
    "sinistra", "destra", "het", "een", "pak", "och", "ett",
))


def sorted_phrases(phrases) -> Dict[str, Tuple[Tuple[str, ...], ...]]:
    """Index multi-word entries by their first word: word tuples, longest first (longest-match lookup)."""
    index: Dict[str, list] = {}
    for entry in sorted({tuple(p.split()) for p in phrases}, key=len, reverse=True):
        index.setdefault(entry[0], []).append(entry)
    return {w: tuple(v) for w, v in index.items()}
