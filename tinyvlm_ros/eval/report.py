"""report.md, summary.json and PNG plots of an evaluation run.

The report's first line names the model set and its kind (real, random or
known-answer weights): a random-weight run measures cost and that the path
works, never accuracy, and says so before any number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from tinyvlm_ros.bench.bag_results import write_json

KIND_NOTES = {
    "real": "real weights: the numbers below measure this model set on these photos",
    "random": "RANDOM WEIGHTS: every accuracy number below is meaningless; the run measures cost "
              "(latency, prompts, masks, crops) and that the whole path works on real photos",
    "known-answer": "KNOWN-ANSWER TEST MODELS (colour and shape words, built for generated scenes): "
                    "the accuracy numbers below are not an accuracy result",
}
WORKLOAD_NOTES = {
    "natural": "Decoder: the model set's own masks.",
    "oracle": "Decoder: ORACLE. The decoder graph runs on every prompt (its cost is real) but its masks are "
              "replaced by the annotated regions under each prompt (tinyvlm_ros/eval/oracle.py), so masks, "
              "crops and matching see ground-truth regions: the cost is that of a trained SAM's workload, "
              "the accuracy numbers are not a measurement of any model.",
}
PLOTS = {"categories": "hit_rate_by_category.png", "latency": "latency.png", "sizes": "recall_by_size.png"}


def title_line(settings: Dict[str, Any], photos: int) -> str:
    """First line of the report: model set, its kind and what the kind means."""
    kind = settings.get("kind") or "unknown"
    # an MCU run's kind is "mcu+<kind of the host set whose text tower it uses>"
    note = KIND_NOTES.get(kind.split("+")[-1], "kind unknown: treat the numbers as unverified")
    if settings.get("backend") == "mcu":
        return (f"# Evaluation of model set `{settings.get('models')}` (kind: {kind}; MCU engine with this "
                f"set's text tower; {note}), {photos} photos")
    return (f"# Evaluation of model set `{settings.get('models')}` (kind: {kind}; {note}), "
            f"{settings.get('backend', 'local')} engine, {settings.get('mode')} mode, {photos} photos")


def _fmt(v: Optional[float], pct: bool = False, nd: int = 3) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f} %" if pct else f"{v:.{nd}f}"


def write_plots(summary: Dict[str, Any], out_dir: Path, caption: str = "") -> List[str]:
    """Write the plots into ``out_dir``, each captioned (model set and kind); return their file names."""
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    written = []

    def save(fig, name: str) -> None:
        # the caption travels with the picture: a plot of a random-weight run says so
        fig.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=7, color="tab:red")
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        fig.savefig(Path(out_dir) / PLOTS[name])
        plt.close(fig)
        written.append(PLOTS[name])

    cats = summary["per_category"]
    names = list(cats)
    fig, ax = plt.subplots(figsize=(7, 0.3 * max(4, len(names)) + 1), dpi=100)
    if names:
        rates = [cats[n]["hit_rate"] or 0.0 for n in names]
        ax.barh(range(len(names)), rates, color="tab:blue")
        ax.set_yticks(range(len(names)), [f"{n} ({cats[n]['commands']})" for n in names], fontsize=8)
        ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("hit rate (first detection right, IoU >= 0.5)")
    ax.set_title("Hit rate per category (commands)")
    ax.grid(alpha=0.3, axis="x")
    save(fig, "categories")

    lat = summary["latency_s"]
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    frame = np.array(lat["frame"]) * 1000.0
    if frame.size:
        ax.hist(frame, bins=max(5, min(30, frame.size)), color="tab:blue", alpha=0.8,
                label="first command (frame)")
        ax.axvline(np.median(frame), color="tab:red", ls="--", lw=1, label="p50")
        ax.legend(fontsize=8)
    ax.set_xlabel("latency [ms]")
    ax.set_ylabel("photos")
    ax.set_title("Frame latency")
    ax.grid(alpha=0.3)
    save(fig, "latency")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=100)
    sz = summary["object_recall_by_size"]
    a1.bar(list(sz), [sz[s]["recall"] or 0.0 for s in sz], color="tab:green")
    a1.set_ylim(0, 1)
    a1.set_title("Object recall by COCO size")
    kinds = summary["hit_rate"]
    a2.bar(list(kinds), [kinds[k] or 0.0 for k in kinds], color="tab:orange")
    a2.set_ylim(0, 1)
    a2.set_title("Hit rate by command kind")
    for a in (a1, a2):
        a.grid(alpha=0.3, axis="y")
    save(fig, "sizes")
    return written


def render_markdown(settings: Dict[str, Any], summary: Dict[str, Any], plots: List[str]) -> str:
    """Return the report's Markdown."""
    s = summary
    hr = s["hit_rate"]
    lat = s["latency_s"]
    work = s["work_per_frame"]
    thr = settings.get("score_threshold")
    absent = s["absent"]
    kinds = ", ".join(f"{n} {k}" for k, n in s["commands_by_kind"].items())
    lines = [
        title_line(settings, s["photos"]),
        "",
        f"Annotations: `{settings.get('annotations')}`; {s['commands']} commands ({kinds}); score threshold "
        f"{thr if thr is not None else 'engine default'}.",
        "",
        WORKLOAD_NOTES.get(settings.get("workload", "natural"), ""),
        "",
        "## Commands",
        "",
        "| hit rate: plain | qualified | absent (nothing returned) | precision | recall | TP | FP | FN |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {_fmt(hr.get('plain'), True)} | {_fmt(hr.get('qualified'), True)} "
        f"| {_fmt(hr.get('absent'), True)} | {_fmt(s['precision'])} | {_fmt(s['recall'])} "
        f"| {s['tp']} | {s['fp']} | {s['fn']} |",
        "",
        f"Absent objects: {absent['with_detections']} of {absent['commands']} commands for a category not "
        f"in the photo returned something (false-positive rate {_fmt(absent['false_positive_rate'], True)}, "
        f"{_fmt(absent['mean_detections'], nd=2)} detections per command)"
        + ("" if absent["verified"] else "; the annotations do not say which categories are absent "
           "(no neg_category_ids), so these photos may hold unannotated instances") + ".",
        "",
        f"Command side: for {s['parse']['target_is_category']} of {s['parse']['commands']} commands the "
        f"parsed target is the category name ({_fmt(s['parse']['rate'], True)}).",
    ]
    if s["parse"]["failures"]:
        lines += ["", "| photo | command | category | parsed targets |", "|---|---|---|---|"]
        lines += [f"| {f['image']} | {f['command']} | {f['category']} | {f['parsed']} |"
                  for f in s["parse"]["failures"]]
    lines += ["", "## Objects by size (plain commands)", "", "| size | objects | found | recall |",
              "|---|---:|---:|---:|"]
    for size, v in s["object_recall_by_size"].items():
        lines.append(f"| {size} | {v['objects']} | {v['found']} | {_fmt(v['recall'], True)} |")
    lines += ["", "## Per category", "", "| category | commands | hit rate | precision | recall |",
              "|---|---:|---:|---:|---:|"]
    for name, v in s["per_category"].items():
        lines.append(f"| {name} | {v['commands']} | {_fmt(v['hit_rate'], True)} | {_fmt(v['precision'])} "
                     f"| {_fmt(v['recall'])} |")
    lines += ["", "## Cost", "",
              f"Frame (first command on a photo): p50 {_fmt(lat['frame_p50'])} s, "
              f"p95 {_fmt(lat['frame_p95'])} s (CPU p50 {_fmt(lat.get('frame_cpu_p50'))} s, all threads); "
              "re-query (another command on the same photo): "
              f"p50 {_fmt(lat['requery_p50'])} s, p95 {_fmt(lat['requery_p95'])} s.  Per frame on average: "
              f"{work['decoder_calls']} decoder prompts, {work['masks']} masks, {work['crops']} CLIP crops.",
              "",
              "| photo | decoder prompts | masks | crops | frame latency [s] | CPU [s] | load (1 min) |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in s["per_photo"]:
        load = f"{r['load_avg_1min']:.2f}" if r.get("load_avg_1min") is not None else "n/a"
        cpu = f"{r['cpu_s']:.3f}" if r.get("cpu_s") is not None else "n/a"
        lines.append(f"| {r['image']} | {r['decoder_calls']} | {r['masks']} | {r['crops']} "
                     f"| {r['latency_s']:.3f} | {cpu} | {load} |")
    if s["errors"]:
        lines += ["", "## Commands the engine refused", ""]
        lines += [f"- {e['image']}: `{e['command']}`: {e['error']}" for e in s["errors"]]
    lines += ["", "## Engine", ""]
    lines += [f"- {k}: {v}" for k, v in sorted(settings.get("engine", {}).items())]
    if settings.get("command_line"):
        lines += ["", f"Command line: `{settings['command_line']}`"]
    lines += ["", "## Plots", ""] + [f"![{p}]({p})\n" for p in plots]
    lines += ["## Files", "", "- `summary.json`: the numbers above and the settings",
              "- `results.jsonl`: one line per photo: every command, its parsed targets, detections, "
              "latency and work counters", "- `run.json`: the settings a rerun must match to resume", ""]
    return "\n".join(lines)


def write_report(settings: Dict[str, Any], summary: Dict[str, Any], out_dir: Path) -> Path:
    """Write summary.json, the plots and report.md into ``out_dir``; return the report's path."""
    out_dir = Path(out_dir)
    write_json(out_dir / "summary.json", {"settings": settings, **summary})
    caption = f"model set {settings.get('models')}, kind {settings.get('kind')}"
    if settings.get("kind") != "real":
        caption += ": not an accuracy result"
    plots = write_plots(summary, out_dir, caption)
    path = out_dir / "report.md"
    path.write_text(render_markdown(settings, summary, plots))
    return path
