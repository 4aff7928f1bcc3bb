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


def latency_bins(latency_ms: np.ndarray, max_bins: int = 40) -> np.ndarray:
    """Histogram bin edges a reader can use: a 1, 2 or 5 x 10^k ms width, edges on its multiples.

    The width is the Freedman-Diaconis width (robust to a few slow outliers), at most an eighth
    of the spread between the fastest frame and the 99th percentile (so a short run still gets
    several bars) and at least a ``max_bins``-th of it, rounded up to a round number.  At most
    ``max_bins`` bins: values beyond the last edge belong in the last bin (the caller clips).
    """
    lat = np.asarray(latency_ms, np.float64)
    lat = lat[np.isfinite(lat)]
    if lat.size == 0:
        return np.array([0.0, 1.0])
    lo, hi = float(lat.min()), float(lat.max())
    q25, q75, q99 = np.percentile(lat, [25, 75, 99])
    spread = float(q99) - lo
    if spread <= 0:
        width = 1.0   # every frame took the same time: one 1 ms bar
    else:
        fd = 2.0 * float(q75 - q25) / lat.size ** (1.0 / 3.0)
        width = max(min(fd, spread / 8.0), spread / max_bins)
    exp = np.floor(np.log10(width))
    width = next(m * 10.0 ** exp for m in (1.0, 2.0, 5.0, 10.0) if m * 10.0 ** exp >= width * (1 - 1e-9))
    first = np.floor(lo / width) * width
    n = min(max_bins, int(np.floor((hi - first) / width)) + 1)
    return first + width * np.arange(n + 1)


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
        edges = latency_bins(lat)
        width = edges[1] - edges[0]
        over = int((lat >= edges[-1]).sum())
        # the slowest frames beyond the last edge go into the last bar, which says so
        ax.hist(np.minimum(lat, edges[-1] - width / 2), bins=edges, color="tab:blue", alpha=0.8,
                edgecolor="white", linewidth=0.5)
        if over:
            ax.annotate(f"{over} at >= {edges[-1] - width:g} ms", (edges[-1] - width / 2, 0),
                        xytext=(0, 12), textcoords="offset points", ha="right", fontsize=8)
        for q, style in ((50, "--"), (95, ":")):
            ax.axvline(np.percentile(lat, q), color="tab:red", ls=style, lw=1, label=f"p{q}")
        ax.legend(loc="upper right", fontsize=8)
        ax.yaxis.get_major_locator().set_params(integer=True)
        hist_title = f"Latency histogram ({lat.size} frames, {width:g} ms bins)"
    else:
        ax.text(0.5, 0.5, "no processed frames", ha="center", va="center", transform=ax.transAxes)
        hist_title = "Latency histogram"
    save("histogram", "latency [ms]", "frames", hist_title)

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


def model_set_phrase(summary: Dict[str, Any]) -> str:
    """Which model set the numbers belong to, kind first: "known-answer model set known-answer-s512-d16"."""
    ms = summary.get("model_set") or {}
    name, kind = ms.get("name"), ms.get("kind")
    if name and kind:
        return f"{kind} model set {name}"
    if name:
        return f"model set {name} of unknown kind"
    engine = summary.get("engine") or {}
    what = engine.get("name") or engine.get("model") or engine.get("node") or "?"
    return f"no model set named (engine: {what})"


def render_markdown(summary: Dict[str, Any], plots: List[str]) -> str:
    """Markdown text of the report: headline table, accuracy, engine, plots, files."""
    lat = summary["latency_ms"]
    lines = [
        f"# Bag replay ({summary['mode']}) of {Path(summary['bag']).name} "
        f"with the {model_set_phrase(summary)}",
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
            "| frames | precision | recall, all frames | recall, processed frames | mean IoU | TP | FP "
            "| FN |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {gt['frames']} | {_fmt(gt['precision'], '', 3)} | {_fmt(gt['recall'], '', 3)} "
            f"| {_fmt(gt.get('recall_processed'), '', 3)} ({gt.get('processed_frames', 'n/a')} frames) "
            f"| {_fmt(gt['mean_iou'], '', 3)} | {gt['tp']} | {gt['fp']} | {gt['fn']} |",
            "",
            "Only ground-truth objects named in the command count.  Recall over all frames counts the "
            "objects of a dropped frame as missed (the robot got no answer for it); recall over processed "
            "frames is the detector's own, on the frames it answered.",
            "",
        ]
    else:
        lines += ["No ground truth in this bag: accuracy not measured.", ""]
    if summary.get("tracking"):
        from tinyvlm_ros.bench.tracking import markdown as tracking_markdown

        lines += tracking_markdown(summary["tracking"])
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
