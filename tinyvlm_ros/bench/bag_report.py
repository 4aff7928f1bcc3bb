"""The bag replay's Markdown report and PNG plots (matplotlib, Agg backend, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from tinyvlm_ros.bench.bag_results import ResultSink

PLOTS = {
    "latency": "latency_over_time.png",
    "histogram": "latency_histogram.png",
    "detections": "detections_per_frame.png",
}


def write_plots(sink: ResultSink, out_dir: Path, title: str = "") -> List[str]:
    """Write the three PNG plots into ``out_dir``; return their file names."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed on a robot or CI
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    lat = np.frombuffer(sink.latency_ms, np.float64) if len(sink.latency_ms) else np.zeros(0)
    lat_idx = np.frombuffer(sink.latency_index, np.int64) if len(sink.latency_index) else np.zeros(0)
    ndet_idx = np.frombuffer(sink.ok_index, np.int64) if len(sink.ok_index) else np.zeros(0)
    ndet = np.frombuffer(sink.n_dets, np.int64) if len(sink.n_dets) else np.zeros(0)
    lost = np.frombuffer(sink.lost_index, np.int64) if len(sink.lost_index) else np.zeros(0)
    written = []

    def save(plot: str, xlabel: str, ylabel: str, plot_title: str) -> None:
        # the same labels, grid and file handling for every plot
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(plot_title)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / PLOTS[plot])
        plt.close(fig)
        written.append(PLOTS[plot])

    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=100)
    if lat.size:
        ax.plot(lat_idx, lat, lw=0.8, color="tab:blue", label="latency")
        for q, style in ((50, "--"), (95, ":")):
            ax.axhline(np.percentile(lat, q), color="tab:red", ls=style, lw=1, label=f"p{q}")
        ax.legend(loc="upper right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no processed frames", ha="center", va="center", transform=ax.transAxes)
    save("latency", "frame", "latency [ms]", f"Latency over the bag {title}".strip())

    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=100)
    if lat.size:
        ax.hist(lat, bins=min(50, max(5, int(np.sqrt(lat.size)))), color="tab:blue", alpha=0.8)
    save("histogram", "latency [ms]", "frames", "Latency histogram")

    fig, ax = plt.subplots(figsize=(8, 2.8), dpi=100)
    top = max(1, int(ndet.max())) if ndet.size else 1
    if ndet.size:
        # markers, not a line: a line would draw over the frames that got no answer
        ax.plot(ndet_idx, ndet, ".", ms=3 if ndet.size > 500 else 5, color="tab:green", label="processed")
    if lost.size:
        ax.plot(lost, np.full(lost.size, -0.3), "x", ms=3 if lost.size > 500 else 5, color="tab:red",
                label=f"dropped/corrupt ({lost.size})")
    if ndet.size or lost.size:
        ax.legend(loc="upper right", fontsize=8)
    ax.set_ylim(-0.6, top + 0.6)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.xaxis.get_major_locator().set_params(integer=True)
    save("detections", "frame", "detections", "Detections per frame")
    return written


def _fmt(v: Any, unit: str = "", nd: int = 1) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{nd}f}{unit}"
    return f"{v}{unit}"


def render_markdown(summary: Dict[str, Any], plots: List[str]) -> str:
    """Markdown text of the report: headline table, accuracy, engine, plots, files."""
    lat = summary["latency_ms"]
    lines = [
        f"# Bag replay: {Path(summary['bag']).name} ({summary['mode']})",
        "",
        f"Command: `{summary['command']}` on `{summary['image_topic']}`, finished {summary['finished']}.",
        "",
        "| frames | processed | dropped | corrupt | p50 | p95 | p99 | throughput | CPU | peak RSS |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {summary['frames']} | {summary['processed']} | {summary['dropped']} | {summary['corrupt']} "
        f"| {_fmt(lat['p50'], ' ms')} | {_fmt(lat['p95'], ' ms')} | {_fmt(lat['p99'], ' ms')} "
        f"| {_fmt(summary['throughput_fps'], ' fps')} | {_fmt(summary['cpu_percent'], ' %', 0)} "
        f"| {_fmt(summary['peak_rss_mb'], ' MiB', 0)} |",
        "",
    ]
    if summary["mode"] == "live":
        rate = _fmt(summary.get("rate_hz"), " Hz") if summary.get("rate_hz") else "the recorded rate"
        lines += [f"Live over DDS into detect_node at {rate}; "
                  "latency is detections received minus the image stamp set at publish; a frame the node "
                  "skipped while busy counts as dropped.  CPU and RSS above are the player's; "
                  f"detect_node's: CPU {_fmt(summary.get('node_cpu_percent'), ' %', 0)}, "
                  f"peak RSS {_fmt(summary.get('node_peak_rss_mb'), ' MiB', 0)}.", ""]
    else:
        lines += ["Offline: frames straight into the engine as fast as it goes; latency is decode + detect.",
                  ""]
    gt = summary.get("ground_truth")
    if gt:
        lines += [
            f"## Accuracy against the bag's ground truth (IoU >= {gt['iou_threshold']})",
            "",
            "| frames | precision | recall | mean IoU | TP | FP | FN |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            f"| {gt['frames']} | {_fmt(gt['precision'], '', 3)} | {_fmt(gt['recall'], '', 3)} "
            f"| {_fmt(gt['mean_iou'], '', 3)} | {gt['tp']} | {gt['fp']} | {gt['fn']} |",
            "",
            "Only ground-truth objects named in the command count; dropped frames count as misses.",
            "",
        ]
    else:
        lines += ["No ground truth in this bag: accuracy not measured.", ""]
    lines += ["## Engine and machine", ""]
    for k, v in sorted(summary.get("engine", {}).items()):
        lines.append(f"- {k}: {v}")
    mach = summary.get("machine", {})
    lines.append(f"- machine: {mach.get('processor', '?')}, {mach.get('cpus', '?')} CPUs, "
                 f"{mach.get('platform', '?')}")
    if summary.get("command_line"):
        lines += ["", f"Command line: `{summary['command_line']}`"]
    lines += ["", "## Plots", ""]
    for name in plots:
        lines += [f"![{name}]({name})", ""]
    lines += ["## Files", "",
              "- `summary.json`: the numbers above",
              "- `frames.csv`: one row per image (status, latency, best detection, TP/FP/FN)",
              f"- `{summary.get('output_bag_name', 'bag/')}`: the input bag plus `/tinyvlm/detections`", ""]
    return "\n".join(lines)


def write_report(summary: Dict[str, Any], sink: ResultSink, out_dir: Path) -> Path:
    """Write the plots and report.md; return the report's path."""
    plots = write_plots(sink, out_dir, title=f"({summary['mode']})")
    path = Path(out_dir) / "report.md"
    path.write_text(render_markdown(summary, plots))
    return path
