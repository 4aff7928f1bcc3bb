"""The node's command bookkeeping: standing command, command ids, refusals (tinyvlm_ros.command_state)."""

from dataclasses import dataclass, field
from typing import List

import pytest

from tinyvlm_ros.command_state import MAX_COMMAND_CHARS, CommandState, check_text, report


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
    assert what == "rejected" and cmd is None and s.standing is None
    assert f"the limit is {MAX_COMMAND_CHARS}" in s.error
    s.submit("pick the red block")
    assert s.error == ""
    assert s.submit("please")[0] == "rejected" and "names no object" in s.error
    assert s.submit("pick the \ufffd block")[0] == "rejected" and "UTF-8" in s.error
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


@dataclass
class _Parsed:
    text: str
    targets: List[object]
    understood: str = ""
    not_understood: List[str] = field(default_factory=list)

    @property
    def phrases(self):
        return [t.phrase for t in self.targets]


@dataclass
class _Target:
    phrase: str
    qualifiers: List[str] = field(default_factory=list)


def test_report_uses_the_parsers_understanding_when_it_has_one():
    s = CommandState()
    _, cmd = s.submit("grab the red cup on the left")
    assert cmd.report.targets == ["red cup"]
    assert "red cup" in cmd.report.understood and "left" in cmd.report.understood
    assert cmd.report.not_understood == []
    parsed = _Parsed("the cup right of the plate", [_Target("cup")], understood="cup, right of: plate",
                     not_understood=["quickly-ish"])
    r = report(parsed)
    assert r.targets == ["cup"] and r.understood == "cup, right of: plate"
    assert r.not_understood == ["quickly-ish"]
    custom = CommandState(parse=lambda text: parsed)
    assert custom.new("anything").report == r


def test_check_text():
    assert check_text("  pick the pen ") == "pick the pen"
    with pytest.raises(TypeError):
        check_text(b"pick")
