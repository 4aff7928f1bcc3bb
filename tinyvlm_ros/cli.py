"""The ``tinyvlm`` command line: ``detect``, ``models``, ``bench``, ``mcu``, ``eval``, ``ros``.

Each area registers its own subcommands from its own module, so this file only
routes.  A module that cannot be imported (an optional extra missing, or rclpy
for ``ros``) leaves its commands out instead of breaking the others; ``tinyvlm
--help`` says which and why.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

#: (group or None for top level, module with ``register(subparsers)``)
_COMMAND_MODULES = [
    (None, "tinyvlm_ros.engine.cli"),
    ("models", "tinyvlm_ros.models.cli"),
    ("bench", "tinyvlm_ros.bench.pipeline_cli"),
    ("bench", "tinyvlm_ros.bench.bag_cli"),
    ("bench", "tinyvlm_ros.bench.node"),
    ("mcu", "tinyvlm_ros.mcu.cli"),
    ("mcu", "tinyvlm_ros.distill.train"),
    ("eval", "tinyvlm_ros.eval.cli"),
    ("ros", "tinyvlm_ros.ros.cli"),
]

_GROUP_HELP = {
    "models": "fetch, export and generate models",
    "bench": "benchmarks: pipeline and bag replay",
    "mcu": "microcontroller engine: emulate, talk to, distill",
    "eval": "accuracy on annotated photos (run) and prompt coverage without weights (coverage)",
    "ros": "talk to a running detect_node: send a command, call Detect, echo detections",
}


class UserError(Exception):
    """An error caused by the user's input: printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinyvlm", description=__doc__.splitlines()[0])
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups = {}
    unavailable = []
    for group, modname in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(modname)
        except ImportError as exc:
            unavailable.append(f"{'tinyvlm ' + group if group else modname}: {exc}")
            continue
        if group is None:
            mod.register(top)
            continue
        if group not in groups:
            # a module may describe its group's workflow (shown by `tinyvlm GROUP --help`)
            gp = top.add_parser(group, help=_GROUP_HELP.get(group, ""),
                                description=getattr(mod, "GROUP_DESCRIPTION", None),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
            groups[group] = gp.add_subparsers(dest=f"{group}_command", metavar="SUBCOMMAND")
            gp.set_defaults(func=lambda args, _gp=gp: (_gp.print_help(), 2)[1])
        mod.register(groups[group])
    if unavailable:
        parser.epilog = "unavailable here (a dependency is missing):\n  " + "\n  ".join(unavailable)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        rc = func(args)
    except (UserError, ValueError, FileNotFoundError) as exc:
        print(f"tinyvlm: error: {exc}", file=sys.stderr)
        return 2
    except TimeoutError as exc:   # a bounded wait ran out: nothing answered
        print(f"tinyvlm: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
