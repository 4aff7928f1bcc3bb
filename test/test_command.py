"""Command parsing: verbs, articles and politeness go, phrases and qualifiers stay."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyvlm_ros.command import QUALIFIERS, parse_command, parse_targets


@pytest.mark.parametrize("text, phrases", [
    ("pick the pen", ["pen"]),
    ("take the scissors", ["scissors"]),
    ("the pen", ["pen"]),
    ("Pick up the Pen.", ["pen"]),
    ("could you please grab a screwdriver", ["screwdriver"]),
    ("find a screwdriver and a tape measure", ["screwdriver", "tape measure"]),
    ("bring me the red cup, the blue bowl and a spoon", ["red cup", "blue bowl", "spoon"]),
    ("pen", ["pen"]),
    ("pick the pen please", ["pen"]),
])
def test_phrases(text, phrases):
    assert parse_command(text).phrases == phrases


def test_attributes_and_qualifier():
    cmd = parse_command("grab the red cup on the left")
    (t,) = cmd.targets
    assert t.phrase == "red cup"
    assert t.attributes == ["red"]
    assert t.qualifiers == ["left"]
    assert t.noun == "cup"


@pytest.mark.parametrize("text, qualifier", [
    ("the ball on the left", "left"),
    ("pick the rightmost block", "right"),
    ("take the block at the top of the table", "top"),
    ("the cup at the bottom", "bottom"),
    ("the ball in the middle", "center"),
    ("grab the biggest box", "largest"),
    ("the smallest ball", "smallest"),
])
def test_each_qualifier(text, qualifier):
    (t,) = parse_command(text).targets
    assert qualifier in QUALIFIERS
    assert t.qualifiers == [qualifier]
    assert t.phrase in ("ball", "block", "cup", "box")


def test_qualifiers_are_per_target():
    cmd = parse_command("find the ball on the left and the largest block")
    assert [t.phrase for t in cmd.targets] == ["ball", "block"]
    assert [t.qualifiers for t in cmd.targets] == [["left"], ["largest"]]


def test_trailing_bare_qualifier_refines_previous_target():
    cmd = parse_command("pick the ball, the left one")
    assert cmd.phrases == ["ball"]
    assert cmd.targets[0].qualifiers == ["left"]


@pytest.mark.parametrize("text", ["", "   ", "pick", "the", "please pick up the", "!!!",
                                  "pick the one on the left"])
def test_meaningless_commands_raise(text):
    with pytest.raises(ValueError, match="e.g."):
        parse_command(text)


def test_non_string_raises_type_error():
    with pytest.raises(TypeError):
        parse_command(3)


def test_target_list():
    cmd = parse_targets(["ball on the left", "red block"])
    assert cmd.phrases == ["ball", "red block"]
    assert cmd.targets[0].qualifiers == ["left"]
    with pytest.raises(ValueError):
        parse_targets([])
    with pytest.raises(TypeError):
        parse_targets(5)


def test_deterministic():
    a = parse_command("grab the red cup on the left and a pen")
    b = parse_command("grab the red cup on the left and a pen")
    assert a == b


_NOUNS = st.sampled_from(["pen", "scissors", "red cup", "tape measure", "blue ball", "screwdriver"])
_VERBS = st.sampled_from(["", "pick ", "pick up ", "take ", "grab ", "please find ", "could you bring me "])
_ARTS = st.sampled_from(["", "the ", "a ", "an "])
_QUALS = st.sampled_from([("", None), (" on the left", "left"), (" at the top", "top"),
                          (" in the middle", "center"), (" on the right side", "right")])


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.tuples(_ARTS, _NOUNS, _QUALS), min_size=1, max_size=3), _VERBS,
       st.sampled_from([" and ", ", "]))
def test_generated_commands_round_trip(parts, verb, sep):
    text = verb + sep.join(art + noun + qtext for art, noun, (qtext, _) in parts)
    cmd = parse_command(text)
    assert cmd.phrases == [noun for _, noun, _ in parts]
    assert [t.qualifiers for t in cmd.targets] == [[q] if q else [] for _, _, (_, q) in parts]


@settings(max_examples=150, deadline=None, database=None)
@given(st.text(max_size=60))
def test_any_text_parses_or_raises_value_error(text):
    try:
        cmd = parse_command(text)
    except ValueError:
        return
    assert cmd.targets and all(t.phrase.strip() for t in cmd.targets)


def test_shared_noun_and_place_phrases():
    assert parse_command("grab the red and blue ball").phrases == ["red ball", "blue ball"]
    assert parse_command("pick the pen on the table").phrases == ["pen"]
    cmd = parse_command("take the cup next to the plate on the left")
    assert cmd.phrases == ["cup"] and cmd.targets[0].qualifiers == ["left"]
