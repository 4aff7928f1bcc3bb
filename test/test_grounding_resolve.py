"""Choosing the target from one frame's candidates: relations, ordinals, counts, exclusion, history, failures.

Pure geometry: hand-placed boxes on a 640x480 frame, commands parsed by the real parser.
"""

import pytest

from tinyvlm_ros.grounding import CommandHistory, parse_command
from tinyvlm_ros.grounding.relations import (between_rank, direction_rank, in_rank, near_rank, on_rank,
                                             relation_rank)
from tinyvlm_ros.grounding.resolve import Candidate, resolve, same_object
from tinyvlm_ros.types import Detection

HW = (480, 640)


def box(cx, cy, s=40):
    return (cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2)


def run(text, cands, history=None, hw=HW):
    parsed = parse_command(text, history)
    lists = {p: cands.get(p, []) for p in parsed.all_phrases()}
    return resolve(parsed, lists, hw)


def first_x(res):
    return (res.chosen[0].candidate.box[0] + res.chosen[0].candidate.box[2]) / 2


def roles(res):
    return [c.role for c in res.chosen]


# three apples in a row (x = 100, 300, 500) and a plate at x = 390 (30 px from the middle apple, 50 from
# the right one)
APPLES = [Candidate(box(100, 240), 0.9), Candidate(box(300, 240), 0.7), Candidate(box(500, 240), 0.95)]
PLATE = [Candidate(box(390, 240, 80), 0.9)]
ROW = {"apple": APPLES, "plate": PLATE}


@pytest.mark.parametrize("text, x", [
    ("the first apple from the left", 100),
    ("the second apple from the left", 300),
    ("the third apple from the left", 500),
    ("the second apple from the right", 300),
    ("the last apple from the left", 500),
    ("the last apple on the left", 100),
    ("the leftmost apple", 100),
    ("the rightmost apple", 500),
    ("the apple", 500),  # best score
    ("the apple right of the plate", 500),
    ("the apple left of the plate", 300),  # the nearer of the two on the left
    ("the apple farthest from the plate", 100),
    ("the apple nearest to the plate", 300),
    ("the apple between the two apples", 300),
    ("the apple between the first apple from the left and the plate", 300),
])
def test_one_target_among_instances(text, x):
    res = run(text, ROW)
    assert res.failure == ""
    assert first_x(res) == x
    assert res.chosen[0].role == "target"
    assert all(c.role == "candidate" for c in res.chosen[1:])


def test_candidates_follow_in_the_ordering():
    res = run("the second apple from the left", ROW)
    assert [first_x_of(c) for c in res.chosen] == [300, 100, 500]
    assert roles(res) == ["target", "candidate", "candidate"]
    res = run("the apple", ROW)
    assert [c.candidate.score for c in res.chosen] == [0.95, 0.9, 0.7]


def first_x_of(choice):
    return (choice.candidate.box[0] + choice.candidate.box[2]) / 2


@pytest.mark.parametrize("text, reason", [
    ("the fourth apple from the left",
     "the fourth apple from the left was asked for but 3 apples are visible"),
    ("the second to last apple from the right",
     None),  # fits: three apples
    ("four apples", "4 apples were asked for but 3 apples are visible"),
    ("the apple above the plate", "no apple is above the plate (3 apples are visible)"),
    ("the apple in the plate", "no apple is in the plate (3 apples are visible)"),
    ("the apple next to the bowl", "the bowl that 'apple next to bowl' refers to is not visible"),
    ("the apple left of the second plate from the left",
     "the second plate from the left was asked for but 1 plate is visible"),
])
def test_failures_say_why(text, reason):
    res = run(text, ROW)
    if reason is None:
        assert res.failure == "" and first_x(res) == 300
    else:
        assert res.failure == reason
        assert res.chosen == []


def test_absent_target_is_no_failure():
    res = run("the third pear from the left", ROW)
    assert res.failure == "" and res.chosen == []


def test_counts():
    res = run("two apples on the left", ROW)
    assert roles(res) == ["target", "target", "candidate"]
    assert sorted(first_x_of(c) for c in res.chosen[:2]) == [100, 300]
    res = run("all the apples", ROW)
    assert roles(res) == ["target"] * 3
    res = run("all apples on the right", ROW)
    assert [first_x_of(c) for c in res.chosen] == [500]
    res = run("all apples on the bottom", ROW)
    assert "no apple is in the bottom part" in res.failure
    res = run("both apples", {"apple": APPLES[:2]})
    assert roles(res) == ["target", "target"]


def test_reference_is_never_a_target():
    balls = [Candidate(box(100, 100), 0.9, region=1), Candidate(box(160, 100), 0.8, region=2),
             Candidate(box(500, 100), 0.85, region=3)]
    red = [Candidate(box(100, 100), 0.95, region=1)]
    res = run("the ball next to the red ball", {"ball": balls, "red ball": red})
    assert first_x(res) == 160
    assert all(c.candidate.region != 1 for c in res.chosen)
    assert [r.candidate.region for r in res.references] == [1] and res.references[0].role == "reference"


def test_reference_qualifier_picks_the_reference():
    plates = [Candidate(box(100, 300, 60), 0.9), Candidate(box(500, 300, 140), 0.8)]
    cups = [Candidate(box(100, 200), 0.9), Candidate(box(500, 180), 0.9)]
    assert first_x(run("the cup next to the big plate", {"cup": cups, "plate": plates})) == 500
    assert first_x(run("the cup next to the small plate", {"cup": cups, "plate": plates})) == 100
    assert first_x(run("the cup above the left plate", {"cup": cups, "plate": plates})) == 100


def test_plural_reference_means_any_instance():
    plates = [Candidate(box(100, 300, 60), 0.9), Candidate(box(500, 300, 60), 0.8)]
    cups = [Candidate(box(100, 200), 0.5), Candidate(box(320, 60), 0.9)]
    # "next to the plate" = the best plate only; "next to the plates" = any plate
    assert run("the cup next to the plate", {"cup": cups, "plate": plates}).failure == ""
    assert first_x(run("the cup next to the plates", {"cup": cups, "plate": plates})) == 100
    res = run("the cup next to the plate", {"cup": cups, "plate": plates[1:]})
    assert res.failure.startswith("no cup is next to the plate")


def test_exclusion_by_score_on_the_same_region():
    # two blocks: region 1 is blue (its "blue block" score beats its "block" score), region 2 is red
    blocks = [Candidate(box(100, 100), 0.9, region=1), Candidate(box(300, 100), 0.8, region=2)]
    blue = [Candidate(box(100, 100), 0.95, region=1), Candidate(box(300, 100), 0.6, region=2)]
    res = run("any block except the blue one", {"block": blocks, "blue block": blue})
    assert first_x(res) == 300 and len(res.chosen) == 1
    # the red one also passes the threshold for "blue block" (0.6) but is described better by "block"
    res = run("the block that is not blue", {"block": blocks, "blue block": blue})
    assert first_x(res) == 300
    res = run("any block except the blue one", {"block": blocks[:1], "blue block": blue[:1]})
    assert res.failure.startswith("every visible block is excluded")


def test_exclusion_by_overlap_across_engines_boxes():
    # no shared regions (the MCU engine): overlap decides, the score comparison still applies
    blocks = [Candidate((90, 90, 130, 130), 0.7), Candidate((290, 90, 330, 130), 0.8)]
    red = [Candidate((292, 88, 334, 128), 0.9)]
    res = run("don't pick the red block, pick a block", {"block": blocks, "red block": red})
    assert first_x(res) == 110


def test_constrained_exclusion_is_resolved_like_a_target():
    res = run("any apple except the one on the left", ROW)
    assert first_x(res) == 500 and all(first_x_of(c) != 100 for c in res.chosen)
    # "the one next to the plate" is one object: the apple nearest the plate (x = 300)
    res = run("the apple, not the one next to the plate", ROW)
    assert [first_x_of(c) for c in res.chosen] == [500, 100]


def _history(text, target_box):
    h = CommandHistory()
    h.record(parse_command(text), [Detection("apple", 0.9, target_box)])
    return h


def test_it_is_the_same_object_even_when_it_no_longer_scores_best():
    h = _history("the leftmost apple", box(100, 240))
    res = run("pick it", ROW, h)
    assert first_x(res) == 100
    moved = {"apple": [Candidate(box(110, 250), 0.5), Candidate(box(500, 240), 0.95)]}
    assert first_x(run("grab it", moved, h)) == 110


def test_it_falls_back_to_the_description_when_nothing_is_at_the_box():
    h = _history("the leftmost apple", box(600, 50))
    assert first_x(run("pick it", ROW, h)) == 100


def test_the_other_one():
    h = _history("the apple", box(500, 240))
    res = run("the other one", ROW, h)
    assert first_x(res) == 100 and all(first_x_of(c) != 500 for c in res.chosen)
    res = run("the other one", {"apple": APPLES[2:]}, h)
    assert res.failure == "the other apple was asked for but 1 apple is visible"
    res = run("the apple and the other one", ROW)
    assert roles(res)[:2] == ["target", "target"]
    assert [first_x_of(c) for c in res.chosen[:2]] == [500, 100]


def test_several_targets_targets_first_then_candidates():
    cands = {"apple": APPLES, "plate": PLATE, "pen": [Candidate(box(50, 50), 0.6)]}
    res = run("the rightmost apple and the pen", cands)
    assert [(c.phrase, c.role) for c in res.chosen] == [
        ("apple", "target"), ("pen", "target"), ("apple", "candidate"), ("apple", "candidate")]
    assert [c.target_index for c in res.chosen] == [0, 1, 0, 0]
    res = run("the rightmost apple and the fifth pen from the left", cands)
    assert res.failure.startswith("the fifth pen") and res.chosen == []


def test_an_object_is_chosen_for_one_target_only():
    one = [Candidate(box(100, 100), 0.9, region=7)]
    red = [Candidate(box(100, 100), 0.95, region=7)]
    taken = "every visible red block is already chosen for an earlier target (1 red block is visible)"
    assert run("the block and the red block", {"block": one, "red block": red}).failure == taken
    two = one + [Candidate(box(300, 100), 0.8, region=8)]
    # greedy, in spoken order: "the block" takes the best block (the red one) first
    assert run("the block and the red block", {"block": two, "red block": red}).failure == taken
    res = run("the red block and the block", {"block": two, "red block": red})
    assert [(c.phrase, c.candidate.region) for c in res.chosen] == [("red block", 7), ("block", 8)]


def test_missing_phrase_list_and_bad_frame():
    parsed = parse_command("the cup next to the plate")
    with pytest.raises(ValueError, match="plate"):
        resolve(parsed, {"cup": []}, HW)
    with pytest.raises(ValueError, match="frame size"):
        resolve(parsed, {"cup": [], "plate": []}, (0, 10))


def test_same_object():
    a = Candidate((0, 0, 10, 10), 0.5, region=3)
    assert same_object(a, Candidate((50, 50, 60, 60), 0.5, region=3))
    assert same_object(a, Candidate((1, 1, 11, 11), 0.5))
    assert not same_object(a, Candidate((6, 6, 16, 16), 0.5))


@pytest.mark.parametrize("kind, c, ok", [
    ("left_of", box(100, 240), True), ("left_of", box(500, 240), False),
    ("left_of", box(300, 50), False),  # far above: outside the 60-degree cone
    ("left_of", box(250, 150), True),  # up and left, inside the cone
    ("right_of", box(500, 240), True), ("above", box(320, 100), True), ("above", box(320, 400), False),
    ("below", box(320, 400), True), ("below", box(100, 250), False),
])
def test_direction_cone(kind, c, ok):
    r = box(320, 240)
    assert (direction_rank(kind, c, r) is not None) == ok


def test_near_in_on_between():
    plate = box(300, 300, 100)
    assert near_rank(box(380, 300, 40), plate) is not None  # touching
    assert near_rank(box(600, 60, 40), plate) is None  # far away
    assert in_rank(box(300, 300, 40), plate) is not None
    assert in_rank(box(300, 300, 140), plate) is None  # bigger than the container
    assert on_rank(box(300, 300, 40), plate) is not None  # top-down: drawn over it
    assert on_rank((280, 225, 320, 255), plate) is not None  # side view: resting on the top edge
    assert on_rank((280, 100, 320, 140), plate) is None  # hovering far above
    a, b = box(100, 100), box(500, 100)
    assert between_rank(box(300, 120), a, b) is not None
    assert between_rank(box(600, 100), a, b) is None
    assert between_rank(box(300, 400), a, b) is None
    assert between_rank(box(300, 100), a, b) < between_rank(box(200, 140), a, b)
    with pytest.raises(ValueError):
        relation_rank("between", a, b)
