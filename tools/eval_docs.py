"""The measured sections of docs/eval.md: prompt coverage and runs on the shipped photos.

Runs, as a user would type them:

* ``tinyvlm eval coverage`` at SAM input 1024 and 512 (no weights needed);
* ``tinyvlm eval run`` on the shipped photos with the known-answer set and with
  the random-weight real architectures (MobileSAM 1024 + TinyCLIP 61M-32; made
  once under out/models/ and reused, as ``make bench`` does);

then replaces the sections between the ``eval-coverage`` and ``eval-runs``
markers of docs/eval.md with the tables and the exact commands, and copies the
JSON results to docs/eval/.  Every figure in those sections comes from these
runs; the machine's load is recorded next to the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinyvlm_ros.eval.cli import (COVERAGE_END, COVERAGE_START, coverage_markdown,  # noqa: E402
                                  replace_section)

RUNS_START = "<!-- eval-runs:start -->"
RUNS_END = "<!-- eval-runs:end -->"


def tinyvlm(*args: Any) -> List[str]:
    return [sys.executable, "-m", "tinyvlm_ros.cli", *map(str, args)]


def shown(cmd: List[str]) -> str:
    """Return the command as a reader types it, paths relative to the repository."""
    return ("tinyvlm " + " ".join(shlex.quote(c) for c in cmd[3:])).replace(str(ROOT) + "/", "")


def run(cmd: List[str], timeout: float = 3600.0) -> None:
    print("$ " + shown(cmd), flush=True)
    subprocess.run(cmd, check=True, timeout=timeout, cwd=ROOT)


def _fmt(v: Optional[float], nd: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "eval_docs")
    ap.add_argument("--models", type=Path, default=ROOT / "out" / "models",
                    help="where the test model sets are made (once) and reused")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs" / "eval.md")
    ap.add_argument("--thorough", action="store_true", help="also run the random set in thorough mode (slow)")
    args = ap.parse_args(argv)
    out, docs_data = args.out, args.docs.parent / "eval"
    out.mkdir(parents=True, exist_ok=True)
    docs_data.mkdir(parents=True, exist_ok=True)

    # prompt coverage, no weights
    cov_md = []
    for size in (1024, 512):
        js = out / f"coverage_{size}.json"
        cmd = tinyvlm("eval", "coverage", "--sam-input", size, "--json", js)
        run(cmd)
        result = json.loads(js.read_text())
        cov_md.append(f"### SAM input {size}\n\n" + coverage_markdown(result, shown(cmd)))
        shutil.copy(js, docs_data / js.name)
    replace_section(args.docs, COVERAGE_START, COVERAGE_END, "\n".join(cov_md))

    # the whole path on the shipped photos: known-answer and random-weight real architectures
    sets = [("known-answer", args.models / "known-answer", ["models", "make-test"]),
            ("random-1024", args.models / "random-1024",
             ["models", "make-test", "--random", "--clip", "61m-32", "--sam-input", "1024"])]
    rows, commands = [], []
    for name, path, make in sets:
        if not (path / "manifest.json").is_file():
            mk = tinyvlm(make[0], make[1], path, *make[2:])
            run(mk)
            commands.append(shown(mk))
        modes = ["fast", "thorough"] if (name.startswith("random") and args.thorough) else ["fast"]
        if name == "known-answer":
            modes = ["fast", "thorough"]
        for mode in modes:
            res = out / f"{name}-{mode}"
            cmd = tinyvlm("eval", "run", "--models", path, "--mode", mode, "--out", res, "--restart",
                          "--quiet")
            run(cmd)
            commands.append(shown(cmd))
            summary = json.loads((res / "summary.json").read_text())
            shutil.copy(res / "summary.json", docs_data / f"run_{name}_{mode}.json")
            rows.append((summary, res))
    lines = ["| model set | kind | mode | decoder | photos | commands | frame p50 [s] | frame CPU p50 [s] "
             "| re-query p50 [s] | prompts / frame | masks / frame | crops / frame | load (1 min) |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s, res in rows:
        st = s["settings"]
        lat, work = s["latency_s"], s["work_per_frame"]
        loads = [r["load_avg_1min"] for r in s["per_photo"] if r.get("load_avg_1min") is not None]
        load = f"{min(loads):.1f}-{max(loads):.1f}" if loads else "n/a"
        lines.append(f"| {st['models']} | {st['kind']} | {st['mode']} | {st.get('workload')} | {s['photos']} "
                     f"| {s['commands']} | {_fmt(lat['frame_p50'])} | {_fmt(lat.get('frame_cpu_p50'))} "
                     f"| {_fmt(lat['requery_p50'], 3)} | {work['decoder_calls']} | {work['masks']} "
                     f"| {work['crops']} | {load} |")
    first_lines = [f"- `{(res / 'report.md').relative_to(ROOT) if res.is_relative_to(ROOT) else res}`: "
                   f"{(res / 'report.md').read_text().splitlines()[0].lstrip('# ')}" for _, res in rows]
    body = ("No crash on any photo or command; cost per frame (the first command on a photo pays for "
            "segmentation and crops, later commands re-use them).  These model sets carry no accuracy: "
            "the reports' first lines say so.\n\n" + "\n".join(lines) + "\n\n"
            + f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, shared "
            "(timings move with the load shown; CPU seconds less so).  Reports:\n\n" + "\n".join(first_lines)
            + "\n\nCommands (`make eval-docs` runs them all):\n\n```bash\n" + "\n".join(commands) + "\n```\n")
    replace_section(args.docs, RUNS_START, RUNS_END, body)
    print(f"updated {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
