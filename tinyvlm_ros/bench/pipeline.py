"""Pipeline benchmark: our fast and thorough modes against the stock PyTorch recipe, interleaved.

Every frame goes through each of our modes (one detector, its frame cache
cleared before every timed call, so each mode pays for its own encoder pass)
and then, with ``peer``, through the stock recipe of :mod:`.peer`, before the
next frame: the ratios compare the same frames under the same machine load.
Per mode it reports wall-time p50/p95 and CPU seconds per frame, per-stage
p50s, decoder prompts (and how many were decoded on windows or the whole
grid), masks and CLIP crops per frame and per photo; then the cost of a new
command on a processed frame (re-query), the peak RSS of each of our modes in
a fresh process, and the measured agreement of every speed-up that claims to
keep answers: the windowed decoder against whole-grid decoding and each
runtime or int8 variant against ONNX Runtime fp32 (:mod:`.agreement`).

The workload is the package's real photos (:mod:`.workload`); with a random-weight
model set the decoder's output values come from the photos' annotated regions.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from tinyvlm_ros.bench.workload import WORKLOADS, Oracle, install_oracle, make_frames

OUR_MODES = ("fast", "thorough")
#: Work counters copied from each detection result into the report (means per frame).
_WORK_KEYS = ("decoder_calls", "decoder_full", "crops", "masks")


@dataclass
class _ModeStats:
    seconds: List[float] = field(default_factory=list)
    cpu_seconds: List[float] = field(default_factory=list)
    work: Dict[str, List[int]] = field(default_factory=dict)
    stages: Dict[str, List[float]] = field(default_factory=dict)
    per_frame: List[Dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, seconds: float, cpu: float, work: Dict[str, int],
            stages: Dict[str, float]) -> None:
        self.seconds.append(seconds)
        self.cpu_seconds.append(cpu)
        for k, v in work.items():
            self.work.setdefault(k, []).append(int(v))
        for k, v in stages.items():
            self.stages.setdefault(k, []).append(float(v))
        self.per_frame.append({"frame": name, "s": round(seconds, 4), "cpu_s": round(cpu, 4),
                               **{k: int(v) for k, v in work.items()}})

    def summary(self) -> Dict[str, Any]:
        s = np.array(self.seconds)
        out: Dict[str, Any] = {
            "p50_s": round(float(np.percentile(s, 50)), 4),
            "p95_s": round(float(np.percentile(s, 95)), 4),
            "cpu_p50_s": round(float(np.median(self.cpu_seconds)), 4),
            "frames": len(self.seconds),
            "stages_p50_s": {k: round(float(np.median(v)), 4) for k, v in sorted(self.stages.items())},
            "per_frame": self.per_frame,
        }
        for k, v in sorted(self.work.items()):
            out[k] = round(float(np.mean(v)), 2)
            out[f"{k}_range"] = [int(min(v)), int(max(v))]
        return out


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MB.

    Linux: VmHWM of /proc/self/status, which belongs to this program's memory
    map (``ru_maxrss`` of an exec'd child can carry its parent's peak).
    Elsewhere: ``ru_maxrss`` (KiB on Linux, bytes on macOS).
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if platform.system() == "Darwin" else peak / 1024.0


def mode_peak_rss_mb(models: os.PathLike, mode: str, workload: str, threads: int, providers: Optional[str],
                     decoder_window: int, timeout_s: float = 900.0) -> Optional[float]:
    """Peak RSS in MB of a fresh process that runs only ``mode`` (two frames); None if it failed.

    Runtimes keep the memory of their largest batches for the process's life,
    so a mode's footprint can only be measured in a process that ran nothing else.
    """
    code = ("import json, sys; from tinyvlm_ros.bench.pipeline import run_pipeline_benchmark as r; "
            "print(json.dumps(r(sys.argv[1], frames=1, workload=sys.argv[2], threads=int(sys.argv[3]), "
            "modes=(sys.argv[4],), providers=sys.argv[5] or None, decoder_window=int(sys.argv[6]), "
            "rss_subprocess=False, agreement=False)['peak_rss_mb_process']))")
    try:
        out = subprocess.run([sys.executable, "-c", code, str(models), workload, str(threads), mode,
                              providers or "", str(decoder_window)],
                             capture_output=True, text=True, timeout=timeout_s, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return None


def _load() -> Optional[List[float]]:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _ratio(num: Sequence[float], den: Sequence[float]) -> Optional[float]:
    if not num or not den:
        return None
    return round(float(np.median(num)) / max(float(np.median(den)), 1e-9), 2)


def run_pipeline_benchmark(models: os.PathLike, *, frames: int = 8, workload: str = "photos",
                           threads: int = 2, modes: Sequence[str] = OUR_MODES, peer: bool = False,
                           peer_frames: Optional[int] = None, providers: Optional[str] = None,
                           decoder_window: Optional[int] = None, peer_points_per_side: int = 16,
                           rss_subprocess: bool = True,
                           agreement: bool = True,
                           log: Callable[[str], None] = lambda s: None) -> Dict[str, Any]:
    """Time ``frames`` frames through our ``modes`` (and the stock recipe); return the report.

    Args:
        models: model-set directory (see docs/models.md).
        frames: timed frames per mode (one untimed warm-up frame precedes them).
        workload: "photos" (the shipped real photos) or "scenes" (generated, for known-answer sets).
        threads: intra-op threads per graph, and torch threads of the stock recipe.
        modes: our modes to time ("fast", "thorough").
        peer: also time the stock recipe (:mod:`.peer`, needs the export extra and a random set).
        peer_frames: time the stock recipe on only the first this many frames (it is slow);
            ratios are taken over those frames only.
        providers: runtimes of our graphs in order of preference ("openvino,cpu"; None: CPU).
        decoder_window: first window of the windowed decoder (None: the detector's default; 0: off).
        peer_points_per_side: the stock recipe's point grid (16 as measured in issue 13).
        rss_subprocess: measure each mode's peak RSS in a fresh process.
        agreement: measure the agreement of the windowed decoder, runtimes and int8 graphs.
        log: progress callback, one line per frame.

    Returns:
        ``{"fast": {...}, "thorough": {...}, "peer": {...}, "ratios", "requery_p50_s",
        "peak_rss_mb", "agreement", "models", "workload", "machine"}``; per mode ``p50_s``,
        ``p95_s``, ``cpu_p50_s`` (CPU seconds of all threads per frame, less sensitive than wall
        time to other processes on a shared machine), work means and ranges, ``stages_p50_s``
        and ``per_frame``.

    Raises:
        ValueError: bad arguments. FileNotFoundError: no model set at ``models``.
    """
    from tinyvlm_ros.engine.detector import Detector
    from tinyvlm_ros.engine.segmenter import DEFAULT_DECODER_WINDOW

    if workload not in WORKLOADS:
        raise ValueError(f"--workload must be one of {', '.join(WORKLOADS)}, got {workload!r}")
    for m in modes:
        if m not in OUR_MODES:
            raise ValueError(f"unknown mode {m!r}; ours are {', '.join(OUR_MODES)}")
    models = Path(models)
    if not (models / "manifest.json").is_file():
        raise FileNotFoundError(f"no model set at {models} (manifest.json missing); make one with "
                                f"`tinyvlm models make-test {models} --random` or `tinyvlm models export`")
    window = DEFAULT_DECODER_WINDOW if decoder_window is None else int(decoder_window)
    load_before, uptime_before = _load(), _uptime()
    t0 = time.perf_counter()
    det = Detector.from_dir(models, mode="fast", threads=threads, providers=providers, decoder_window=window)
    load_s = time.perf_counter() - t0
    kind = det.model_set.kind
    use_oracle = kind == "random"
    frame_list = make_frames(workload, frames, oracle=use_oracle)
    seg = det.segmenter
    oracle = None
    if use_oracle:
        oracle = Oracle(seg.input_size, seg.low_size)
        install_oracle(seg, oracle)

    stock = None
    n_peer = 0
    if peer:
        if kind != "random":
            raise ValueError(f"--peer needs a random-weight model set (this one is {kind}): the stock recipe "
                             "builds the same architectures with random weights and the same region oracle")
        from tinyvlm_ros.bench.peer import StockRecipe

        # the same oracle object: it answers for the frame both pipelines are on
        stock = StockRecipe(seg.input_size, _clip_name(det.model_set.name), threads=threads, oracle=oracle,
                            points_per_side=peer_points_per_side)
        n_peer = frames if peer_frames is None else max(1, min(frames, int(peer_frames)))

    stats = {m: _ModeStats() for m in modes}
    peer_stats = _ModeStats()
    requery: List[float] = []
    requery_cached: List[float] = []
    for i in range(-1, len(frame_list)):  # frame -1 warms the runtimes up (first-run allocations)
        frame = frame_list[max(i, 0)]
        if oracle is not None:
            oracle.set_frame(frame)
        line = []
        for mode in modes:
            det.clear_cache()
            t, c = time.perf_counter(), time.process_time()
            res = det.detect(frame.image, frame.command, mode=mode)
            dt, dc = time.perf_counter() - t, time.process_time() - c
            if i < 0:
                continue
            work = {k: res.work.get(k, 0) for k in _WORK_KEYS}
            work.update({k: v for k, v in res.work.items() if k.startswith("decoder_window_")})
            stats[mode].add(frame.name, dt, dc, work, res.timings)
            line.append(f"{mode} {dt:.2f}s {work['decoder_calls']} prompts {work['crops']} crops")
        if i < 0:
            continue
        # Re-query the frame (the last mode's cache): a phrase never asked before runs the text tower;
        # the frame's own command again costs only matching.
        t = time.perf_counter()
        det.detect(frame.image, f"{frame.requery} {i}", mode=modes[-1])
        requery.append(time.perf_counter() - t)
        t = time.perf_counter()
        det.detect(frame.image, frame.command, mode=modes[-1])
        requery_cached.append(time.perf_counter() - t)
        if stock is not None and i < n_peer:
            t, c = time.perf_counter(), time.process_time()
            out = stock.run(frame.image, frame.command.split(" ", 2)[-1])
            dt, dc = time.perf_counter() - t, time.process_time() - c
            peer_stats.add(frame.name, dt, dc, {"decoder_calls": out["prompts"], "crops": out["crops"],
                                                "masks": out["masks"]}, out["timings"])
            line.append(f"peer {dt:.1f}s {out['masks']} masks")
        log(f"frame {i + 1}/{len(frame_list)} {frame.name}: " + ", ".join(line)
            + f", requery {requery[-1] * 1000:.0f} ms")

    sam = det.model_set.sam
    report: Dict[str, Any] = {"models": {"kind": kind, **det.describe(), "load_s": round(load_s, 3),
                                         "decoder": sam.decoder.name,
                                         "decoder_window_graph": sam.decoder_window.name
                                         if sam.decoder_window else None,
                                         "visual": det.model_set.clip.visual.name}}
    for mode in modes:
        report[mode] = stats[mode].summary()
    ratios: Dict[str, Optional[float]] = {}
    if stock is not None:
        report["peer"] = {**peer_stats.summary(), "recipe": (
            f"segment-anything SamAutomaticMaskGenerator(points_per_side={stock.points_per_side}) on "
            "MobileSAM "
            f"(random weights) + open_clip TinyCLIP {stock.clip_name} on every mask crop, PyTorch "
            f"{stock.torch.__version__}, {threads} threads")}
        for mode in modes:
            ratios[f"peer/{mode}"] = _ratio(peer_stats.seconds, stats[mode].seconds[:n_peer])
            ratios[f"peer/{mode}_cpu"] = _ratio(peer_stats.cpu_seconds, stats[mode].cpu_seconds[:n_peer])
    if "fast" in stats and "thorough" in stats:
        ratios["thorough/fast"] = _ratio(stats["thorough"].seconds, stats["fast"].seconds)
        ratios["thorough/fast_cpu"] = _ratio(stats["thorough"].cpu_seconds, stats["fast"].cpu_seconds)
    report["ratios"] = ratios
    report["requery_p50_s"] = round(float(np.median(requery)), 4)
    report["requery_cached_text_p50_s"] = round(float(np.median(requery_cached)), 4)
    report["peak_rss_mb_process"] = round(peak_rss_mb(), 1)
    if rss_subprocess:
        report["peak_rss_mb"] = {m: mode_peak_rss_mb(models, m, workload, threads, providers, window)
                                 for m in modes}
    if agreement:
        from tinyvlm_ros.bench.agreement import measure_agreement

        report["agreement"] = measure_agreement(det, frame_list[:min(2, len(frame_list))], threads=threads)
    report["workload"] = {"name": workload, "oracle": use_oracle, "frames": [f.name for f in frame_list],
                          "frame_sizes": [f"{f.image.shape[1]}x{f.image.shape[0]}" for f in frame_list],
                          "peer_frames": n_peer}
    report["machine"] = {"cpus": os.cpu_count(), "threads": threads, "platform": platform.platform(),
                         "processor": platform.processor() or platform.machine(),
                         "load_avg": [load_before, _load()], "uptime": [uptime_before, _uptime()]}
    return report


def _clip_name(set_name: str) -> str:
    """Return the TinyCLIP registry name of a set named "<sam>+<clip>" (as the exporter names them)."""
    if "+" not in set_name:
        raise ValueError(f"cannot tell the CLIP variant of model set {set_name!r} (expected '<sam>+<clip>')")
    return set_name.split("+", 1)[1]
