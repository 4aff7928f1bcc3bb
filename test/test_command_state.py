"""The node's command bookkeeping: standing command, command ids, refusals (tinyvlm_ros.command_state)."""

import pytest

from tinyvlm_ros.command_state import MAX_COMMAND_CHARS, CommandState, check_text, report
from tinyvlm_ros.grounding import parse_threshold_table
from tinyvlm_ros.types import Detection


def test_each_accepted_command_gets_the_next_id_and_a_repeat_keeps_it():
    s = CommandState()
    what, first = s.submit("pick the red block")
    assert what == "accepted" and first.id == 1 and first.report.targets == ["red block"]
    assert s.submit("  pick the red block ") == ("unchanged", first)
    what, second = s.submit("find the blue ball")
    assert what == "accepted" and second.id == 2
    svc = s.new("take the scissors")          # a service call takes a number too, the standing one stays
    assert svc.id == 3 and s.standing is second
    assert s.submit("") == ("cleared", None) and s.standing is None
    assert s.submit("   ") == ("idle", None)
    what, again = s.submit("find the blue ball")
    assert what == "accepted" and again.id == 4


def test_a_refused_command_clears_the_standing_one_and_says_why():
    s = CommandState()
    s.submit("pick the red block")
    what, cmd = s.submit("x" * (MAX_COMMAND_CHARS + 1))
    assert what == "invalid" and cmd is None and s.standing is None
    assert f"the limit is {MAX_COMMAND_CHARS}" in s.error
    s.submit("pick the red block")
    assert s.error == ""
    assert s.submit("please")[0] == "rejected" and "names no object" in s.error
    s.submit("pick the red block")
    assert s.submit("pick the cup behind the plate")[0] == "rejected" and "behind" in s.error
    assert s.standing is None
    assert s.submit("pick the \ufffd block")[0] == "invalid" and "UTF-8" in s.error
    with pytest.raises(ValueError):
        s.new("please")


def test_fail_and_finish_only_clear_the_command_they_name():
    s = CommandState()
    _, old = s.submit("pick the red block")
    _, new = s.submit("find the blue ball")
    assert not s.fail(old, "gone") and s.standing is new and s.error == ""
    assert s.fail(new, "the third ball was asked for but 1 is visible")
    assert s.standing is None and s.error.startswith("the third ball")
    _, cmd = s.submit("pick the red block")
    assert not s.finish(new) and s.finish(cmd) and s.standing is None


def test_report_says_what_was_understood_not_understood_and_warned():
    s = CommandState()
    _, cmd = s.submit("grab the red cup on the left because I like it")
    assert cmd.report.targets == ["red cup"]
    assert cmd.report.understood == cmd.parsed.understood and "leftmost" in cmd.report.understood
    assert cmd.report.not_understood == ["because I like it"]
    _, cmd = s.submit("grüne Tasse")
    assert cmd.report.targets == ["grüne tasse"]      # kept as written, with a warning
    assert any("English" in w for w in cmd.report.warnings)
    assert report(cmd.parsed) == cmd.report


def test_it_and_the_other_one_refer_to_the_last_command_of_either_path_where_it_was_last_seen():
    s = CommandState()
    with pytest.raises(ValueError, match="earlier target"):
        s.new("grab it")
    _, mug = s.submit("pick the mug")
    # a service call refers to the topic command; not run yet, so with no place to prefer
    first = s.new("grab it")
    (t,) = first.parsed.targets
    assert t.phrase == "mug" and t.history == "it" and t.same_as_box is None
    # its first result gives the place, a later one where it went; a result without it keeps the last
    s.record(first, [Detection("mug", 0.9, (10, 10, 50, 50))])
    s.record(first, [Detection("mug", 0.9, (12, 10, 52, 50)),
                     Detection("mug", 0.8, (200, 10, 240, 50), role="candidate")])
    s.record(first, [])
    s.record(mug, [Detection("mug", 0.9, (300, 10, 340, 50))])   # an older command: not what "it" is
    it = s.new("put it in the bowl")
    assert it.parsed.targets[0].same_as_box == (12.0, 10.0, 52.0, 50.0)
    s.record(it, [Detection("mug", 0.9, (14, 10, 54, 50))])
    _, other = s.submit("no, the other one")    # and the topic path to the service call
    assert other.parsed.targets[0].other_than_box == (14.0, 10.0, 54.0, 50.0)
    assert "previous target" in other.report.understood


def test_target_thresholds_apply_to_every_use_of_a_phrase_unless_the_command_gives_one():
    s = CommandState()
    s.set_thresholds(parse_threshold_table("cups:0.3, plate:0.2"))
    (t,) = s.new("the cup left of the plate").parsed.targets
    assert t.threshold == 0.3 and t.relation.references[0].threshold == 0.2
    (t,) = s.new("the plate right of the cup:0.6").parsed.targets
    assert t.threshold == 0.2 and t.relation.references[0].threshold == 0.6
    assert s.new("the cup:0.6").parsed.phrase_thresholds(0.5) == {"cup": 0.6}
    assert s.new("the red cup").parsed.phrase_thresholds(0.5) == {"red cup": 0.5}   # another phrase
    assert "threshold 0.3" in s.new("any cup except the blue one").report.understood
    s.set_thresholds({})
    assert s.new("the cup").parsed.targets[0].threshold is None


def test_check_text():
    assert check_text("  pick the pen ") == "pick the pen"
    with pytest.raises(TypeError):
        check_text(b"pick")
