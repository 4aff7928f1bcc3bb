"""Old import path of the command parser; the grounding language lives in :mod:`tinyvlm_ros.grounding`."""

from tinyvlm_ros.grounding import (CommandError, ParsedCommand, QUALIFIERS, Target,  # noqa: F401
                                   parse_command, parse_targets)
