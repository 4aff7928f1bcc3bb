"""Bag replay benchmarks for docs/benchmarks.md: offline (both storages, raw and compressed) and live.

Writes every run under out/bench_bags/ and replaces the section between the
``bag-bench`` markers of docs/benchmarks.md (creating the file if needed)
with the numbers, the machine, the exact command lines and the plots, copied
to docs/bench/bag/.  The live run needs the installed detect_node and the
ROS environment; without them it is left out and the section says so.
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
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
START = "<!-- bag-bench:start -->"
END = "<!-- bag-bench:end -->"
COMMAND = "pick the red block"


def run(cmd: List[str], env: Optional[Dict[str, str]] = None, timeout: float = 900.0) -> None:
    """Run a CLI command, echoing it; raise on failure."""
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, timeout=timeout, env=env)


def tinyvlm(*args: Any) -> List[str]:
    return [sys.executable, "-m", "tinyvlm_ros.cli", *map(str, args)]


def shown(cmd: List[str]) -> str:
    """Return the command as a reader would type it, paths relative to the repository."""
    return ("tinyvlm " + " ".join(shlex.quote(c) for c in cmd[3:])).replace(str(ROOT) + "/", "")


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "bench_bags")
    ap.add_argument("--docs", type=Path, default=ROOT / "docs" / "benchmarks.md")
    ap.add_argument("--models", type=Path, help="model set (default: real if cached, else known-answer)")
    ap.add_argument("--cache", type=Path, help="model cache")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--rate", type=float, default=10.0, help="recorded (and live replay) rate, Hz")
    ap.add_argument("--mode", choices=("fast", "thorough"), default="fast")
    ap.add_argument("--no-live", action="store_true", help="offline runs only")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from demo import detect_node_exe, pick_models

    if args.models:
        models, what = args.models, f"model set {args.models}"
    else:
        models, what = pick_models(args.cache)
    print(f"[bench] models: {what}", flush=True)
    out = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    runs: List[Dict[str, Any]] = []
    for storage, compressed in (("mcap", True), ("sqlite3", False), ("mcap", False), ("sqlite3", True)):
        kind = "compressed" if compressed else "raw"
        bag = out / f"bag-{storage}-{kind}"
        mk = tinyvlm("bench", "make-bag", bag, "--storage", storage, "--frames", args.frames,
                     "--rate", args.rate, *(["--compressed"] if compressed else []))
        run(mk)
        res = out / f"offline-{storage}-{kind}"
        cmd = tinyvlm("bench", "bag", bag, "-c", COMMAND, "--models", models, "--mode", args.mode,
                      "--out", res)
        run(cmd)
        runs.append({"name": f"offline {storage} {kind}", "make": shown(mk), "cmd": shown(cmd), "dir": res})

    live_note = ""
    if not args.no_live:
        try:
            exe = detect_node_exe()
            import rclpy  # noqa: F401
        except (FileNotFoundError, ImportError) as exc:
            live_note = f"Live run left out: {exc}."
        else:
            runs.append(live_run(exe, out, models, args))
    write_docs(args.docs, runs, what, live_note, args)
    print(f"[bench] wrote {args.docs}")
    return 0


def live_run(exe: Path, out: Path, models: Path, args: argparse.Namespace) -> Dict[str, Any]:
    """Start detect_node on the compressed mcap bag's topic and replay it live at the recorded rate."""
    from demo import stop

    from tinyvlm_ros.bench import bagio
    from tinyvlm_ros.bench.live import detect_node_args

    bag = out / "bag-mcap-compressed"
    ros_args = detect_node_args(bagio.TOPIC_IMAGE_COMPRESSED, models, compressed=True,
                                params={"mode": args.mode})
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    with open(out / "detect_node.log", "wb") as log:
        node = subprocess.Popen([str(exe), "--ros-args", *ros_args], stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    res = out / "live-mcap-compressed"
    cmd = tinyvlm("bench", "bag", bag, "--live", "-c", COMMAND, "--node-pid", node.pid, "--wait-node", 120,
                  "--out", res)
    try:
        run(cmd, env=env)
    finally:
        stop(node)
    display = shown(cmd).replace(f"--node-pid {node.pid}", "--node-pid $(pgrep -f detect_node)")
    node_cmd = f"detect_node --ros-args {' '.join(ros_args)}"
    return {"name": "live mcap compressed", "make": node_cmd, "cmd": display, "dir": res}


def _f(v: Optional[float], nd: int = 1) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def write_docs(docs: Path, runs: List[Dict[str, Any]], what: str, live_note: str,
               args: argparse.Namespace) -> None:
    """Replace the bag-bench section of ``docs`` with these runs."""
    plots_dir = docs.parent / "bench" / "bag"
    if plots_dir.exists():
        shutil.rmtree(plots_dir)
    plots_dir.mkdir(parents=True)
    lines = [START, "## Bag replay", "",
             f"Generated with `python tools/bench_bags.py` on {time.strftime('%Y-%m-%d', time.gmtime())}: "
             f"{args.frames} generated 640x480 scenes at {args.rate:g} Hz, command `{COMMAND}`, "
             f"mode `{args.mode}`, {what}.",
             "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
             f"{platform.platform()}, Python {platform.python_version()}.",
             "",
             "| run | frames | processed | dropped | p50 ms | p95 ms | p99 ms | fps | CPU % | peak RSS MiB "
             "| precision | recall | mean IoU |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        s = json.loads((Path(r["dir"]) / "summary.json").read_text())
        lat = s["latency_ms"]
        cpu, rss = s["cpu_percent"], s["peak_rss_mb"]
        if s["mode"] == "live":  # the node does the work; report its process
            cpu, rss = s.get("node_cpu_percent", cpu), s.get("node_peak_rss_mb", rss)
        lines.append(f"| {r['name']} | {s['frames']} | {s['processed']} | {s['dropped']} | {_f(lat['p50'])} "
                     f"| {_f(lat['p95'])} | {_f(lat['p99'])} | {_f(s['throughput_fps'])} | {_f(cpu, 0)} "
                     f"| {_f(rss, 0)} | {_f(s['precision'], 3)} | {_f(s['recall'], 3)} "
                     f"| {_f(s['mean_iou'], 3)} |")
    lines += ["", "Offline latency is decode + detect in one process as fast as it goes; live latency is "
              "image stamp (set when published) to detections received over DDS, CPU and RSS of detect_node.",
              ""]
    if live_note:
        lines += [live_note, ""]
    lines += ["Commands:", "", "```"]
    for r in runs:
        lines += [r["make"], r["cmd"]]
    lines += ["```", ""]
    for r in runs:
        tag = r["name"].replace(" ", "-")
        for png in ("latency_over_time.png", "latency_histogram.png"):
            src = Path(r["dir"]) / png
            if src.exists():
                shutil.copy(src, plots_dir / f"{tag}-{png}")
        lines.append(f"{r['name']}: ![latency](bench/bag/{tag}-latency_over_time.png)")
        lines.append("")
    lines.append(END)
    section = "\n".join(lines)
    text = docs.read_text() if docs.exists() else "# Benchmarks\n\n"
    if START in text and END in text:
        text = text[:text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    docs.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
