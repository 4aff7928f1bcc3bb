"""Write config/detect.yaml and README's parameter table from tinyvlm_ros/params.py.

Run after changing a parameter: ``python tools/gen_params_docs.py``.  A test
(test/test_params.py) fails while the two are out of step with the table.
"""

import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinyvlm_ros import params  # noqa: E402


def _yaml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return repr(v)


def _limits(p: params.Param) -> str:
    if p.choices:
        return " | ".join(p.choices)
    if p.range:
        return f"{p.range[0]:g} to {p.range[1]:g}"
    return ""


def config_yaml() -> str:
    lines = ["# Default parameters of detect_node (launch/detect.launch.py loads this file).",
             "# Generated from tinyvlm_ros/params.py by tools/gen_params_docs.py.",
             "/**:", "  ros__parameters:"]
    for p in params.PARAMS:
        doc = p.description + (f" [{_limits(p)}]" if _limits(p) else "")
        doc += " (applied at configure)" if p.reconfigure else ""
        lines += ["    # " + line for line in textwrap.wrap(doc, 96)]
        lines.append(f"    {p.name}: {_yaml_value(p.default)}")
    return "\n".join(lines) + "\n"


def readme_table() -> str:
    rows = ["| parameter | default | meaning |", "|---|---|---|"]
    for p in params.PARAMS:
        d = '`""`' if p.default == "" else f"`{_yaml_value(p.default).strip(chr(34))}`"
        extra = f" ({_limits(p)})" if _limits(p) else ""
        extra += "; applied at configure" if p.reconfigure else ""
        rows.append(f"| `{p.name}` | {d} | {p.description}{extra} |")
    return "\n".join(rows)


def main() -> int:
    (ROOT / "config" / "detect.yaml").write_text(config_yaml())
    readme = (ROOT / "README.md").read_text()
    start = readme.index("| parameter | default | meaning |")
    end = readme.index("\n\n", start)
    (ROOT / "README.md").write_text(readme[:start] + readme_table() + readme[end:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
