"""The grounding language: commands as people say them -> targets, constraints and the chosen objects.

* :mod:`.parse`: text -> :class:`ParsedCommand` (targets with attributes, qualifiers, ordinals, counts,
  relations, exclusions, thresholds; destination; what was not understood).
* :mod:`.resolve`: per-phrase candidates of one frame -> the chosen target(s), or a failure reason;
  shared by every engine.
* :mod:`.history`: the earlier targets "it" and "the other one" refer to.

docs/commands.md is the grammar and the semantics.  No rclpy, no model imports.
"""

from tinyvlm_ros.grounding.command import (CommandError, Destination, ParsedCommand, Relation, RELATIONS,
                                           Target)
from tinyvlm_ros.grounding.history import CommandHistory, HistoryEntry
from tinyvlm_ros.grounding.lexicon import QUALIFIERS
from tinyvlm_ros.grounding.parse import parse_command, parse_targets, parse_threshold_table

__all__ = ["CommandError", "CommandHistory", "Destination", "HistoryEntry", "ParsedCommand", "QUALIFIERS",
           "RELATIONS", "Relation", "Target", "parse_command", "parse_targets",
           "parse_threshold_table"]
