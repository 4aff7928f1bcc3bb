"""Pipeline benchmark: reference recipe (``thorough``) against ``fast`` on 640x480 frames.

Both modes run on the same frames in one process with one detector (its frame
cache is cleared before every timed call, so each mode pays for its own
encoder pass).  Per mode it reports p50/p95 seconds per frame, per-stage p50s
and the work done per frame (decoder prompts, CLIP crops); then the cost of a
new command on an already-processed frame (re-query) and the peak RSS.

Workloads.  With random weights (``kind: random`` sets, used to measure the
real architectures' cost) SAM's masks are noise: the recipe's IoU/stability
filters may reject every mask, and fast mode's skip-by-coverage may collapse.
Timing that would flatter both modes, so the ``realistic`` workload keeps
every ONNX call real but replaces the decoder's *output values* with the masks
a trained SAM gives on a photo: the region under each prompt.  Each frame is a
generated table-top scene whose objects plus a Voronoi tiling of the table
form ``regions`` regions (default 24), which puts the reference recipe in the
20-40 masks per frame it produces on real photos.  The decoder graph still
runs on every prompt (its cost is measured), and everything downstream -
filters, NMS, crops, the CLIP towers, matching - is the detector's own code.
The ``natural`` workload uses the decoder's outputs as they are (meaningful
for real and known-answer sets).  ``auto`` picks realistic for random sets.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from tinyvlm_ros.eval.oracle import attach
from tinyvlm_ros.testing.scenes import make_scene

WORKLOADS = ("auto", "realistic", "natural")

#: Commands cycled over the frames; re-queries use a phrase not seen before on that frame.
COMMANDS = ("pick the red block", "take the blue ball", "grab the green triangle on the left",
            "find the yellow block", "the purple ball", "pick the orange triangle")
REQUERY = ("take the {c} {s}", "where is the {c} {s}")

FRAME_W, FRAME_H = 640, 480


def region_labels(scene, n_regions: int, seed: int) -> np.ndarray:
    """Label map (HxW int32) of a scene: one region per object, the table split into Voronoi cells.

    Regions are what a trained SAM returns for a point prompt on a photo: whole
    objects and table patches (shading, texture).  Labels are 0..n_regions-1.
    """
    h, w = scene.image.shape[:2]
    n_bg = max(1, n_regions - len(scene.objects))
    rng = np.random.default_rng(10_000 + seed)
    sites = np.stack([rng.uniform(0, w, n_bg), rng.uniform(0, h, n_bg)], 1).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = (xx[..., None] - sites[:, 0]) ** 2 + (yy[..., None] - sites[:, 1]) ** 2
    labels = np.argmin(d, axis=2).astype(np.int32)
    for i, obj in enumerate(scene.objects):
        labels[obj.mask] = n_bg + i
    return labels


@dataclass
class _ModeStats:
    seconds: List[float]
    cpu_seconds: List[float]
    decoder_calls: List[int]
    crops: List[int]
    masks: List[int]
    stages: Dict[str, List[float]]

    def summary(self) -> Dict[str, Any]:
        s = np.array(self.seconds)
        return {
            "p50_s": round(float(np.percentile(s, 50)), 4),
            "p95_s": round(float(np.percentile(s, 95)), 4),
            "cpu_p50_s": round(float(np.median(self.cpu_seconds)), 4),
            "decoder_calls": round(float(np.mean(self.decoder_calls)), 2),
            "crops": round(float(np.mean(self.crops)), 2),
            "masks": round(float(np.mean(self.masks)), 2),
            "decoder_calls_range": [int(min(self.decoder_calls)), int(max(self.decoder_calls))],
            "crops_range": [int(min(self.crops)), int(max(self.crops))],
            "stages_p50_s": {k: round(float(np.median(v)), 4) for k, v in sorted(self.stages.items())},
            "frames": len(self.seconds),
        }


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


def fast_only_peak_rss_mb(models: os.PathLike, workload: str, regions: int, threads: int,
                          timeout_s: float = 600.0) -> Optional[float]:
    """Peak RSS in MB of a fresh process that runs only fast mode (two frames); None if it failed.

    ONNX Runtime's arenas keep the memory of the reference recipe's big decoder
    batches for the process's life, so the default detector's footprint can only
    be measured in a process that never ran the reference recipe.
    """
    code = ("import json, sys; from tinyvlm_ros.bench.pipeline import run_pipeline_benchmark as r; "
            "print(json.dumps(r(sys.argv[1], frames=1, workload=sys.argv[2], regions=int(sys.argv[3]), "
            "threads=int(sys.argv[4]), modes=('fast',), fast_rss_subprocess=False)['peak_rss_mb_process']))")
    try:
        out = subprocess.run([sys.executable, "-c", code, str(models), workload, str(regions), str(threads)],
                             capture_output=True, text=True, timeout=timeout_s, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError, OSError):
        return None


def run_pipeline_benchmark(models: os.PathLike, *, frames: int = 8, workload: str = "auto",
                           regions: int = 24, threads: int = 2, modes: Sequence[str] = ("thorough", "fast"),
                           fast_rss_subprocess: bool = True,
                           log: Callable[[str], None] = lambda s: None) -> Dict[str, Any]:
    """Run ``frames`` 640x480 frames through the reference recipe and fast mode; return the report.

    Args:
        models: model-set directory (see docs/models.md).
        frames: timed frames per mode (one extra untimed warm-up frame precedes them).
        workload: "realistic", "natural" or "auto" (realistic for random-weight sets).
        regions: regions per frame in the realistic workload.
        threads: ONNX Runtime intra-op threads per session.
        modes: which modes to time ("thorough" is reported as "reference").
        fast_rss_subprocess: measure the fast-only footprint in a fresh process (``peak_rss_mb``).
        log: progress callback, one line per frame.

    Returns:
        ``{"reference": {...}, "fast": {...}, "requery_p50_s", "peak_rss_mb", "models", ...}``;
        per mode ``p50_s``, ``p95_s``, ``decoder_calls`` and ``crops`` (means per frame) and more;
        ``cpu_p50_s`` is CPU seconds of all threads per frame, less sensitive than wall time to
        other processes on a shared machine.

    Raises:
        ValueError: bad arguments. FileNotFoundError: no model set at ``models``.
    """
    from tinyvlm_ros.engine.detector import Detector

    if frames < 1:
        raise ValueError(f"--frames must be >= 1, got {frames}")
    if workload not in WORKLOADS:
        raise ValueError(f"--workload must be one of {', '.join(WORKLOADS)}, got {workload!r}")
    if regions < 2:
        raise ValueError(f"--regions must be >= 2, got {regions}")
    for m in modes:
        if m not in ("thorough", "fast"):
            raise ValueError(f"unknown mode {m!r}")
    models = Path(models)
    if not (models / "manifest.json").is_file():
        raise FileNotFoundError(f"no model set at {models} (manifest.json missing); make one with "
                                f"`tinyvlm models make-test {models} --random` or `tinyvlm models export`")

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    t0 = time.perf_counter()
    det = Detector.from_dir(models, mode="fast", threads=threads)
    load_s = time.perf_counter() - t0
    kind = det.model_set.kind
    if workload == "auto":
        workload = "realistic" if kind == "random" else "natural"
    region_decoder = None
    if workload == "realistic":
        region_decoder = attach(det.segmenter)

    stats = {m: _ModeStats([], [], [], [], [], {}) for m in modes}
    requery: List[float] = []
    requery_cached: List[float] = []
    colours = ("red", "green", "blue", "yellow", "purple", "orange")
    shapes = ("block", "ball", "triangle")
    for i in range(-1, frames):  # frame -1 warms up ONNX Runtime (first-run allocations)
        scene = make_scene(seed=1000 + i, width=FRAME_W, height=FRAME_H, n_objects=6)
        if region_decoder is not None:
            region_decoder.set_frame(region_labels(scene, regions, seed=i))
        command = COMMANDS[i % len(COMMANDS)]
        line = []
        for mode in modes:
            det.clear_cache()
            t, c = time.perf_counter(), time.process_time()
            res = det.detect(scene.image, command, mode=mode)
            dt, dc = time.perf_counter() - t, time.process_time() - c
            if i < 0:
                continue
            st = stats[mode]
            st.seconds.append(dt)
            st.cpu_seconds.append(dc)
            st.decoder_calls.append(int(res.work.get("decoder_calls", 0)))
            st.crops.append(int(res.work.get("crops", 0)))
            st.masks.append(int(res.work.get("masks", 0)))
            for k, v in res.timings.items():
                st.stages.setdefault(k, []).append(float(v))
            line.append(f"{mode} {dt:.3f}s {st.decoder_calls[-1]} prompts {st.crops[-1]} crops")
        # Re-query the last processed frame (fast mode's cache): a phrase never asked before runs
        # the text tower; the frame's first command again costs only matching.
        new_phrase = REQUERY[i % 2].format(c=colours[(i * 5 + 1) % 6], s=shapes[(i + 2) % 3]) + f" {i}"
        t = time.perf_counter()
        det.detect(scene.image, new_phrase, mode=modes[-1])
        if i >= 0:
            requery.append(time.perf_counter() - t)
        t = time.perf_counter()
        det.detect(scene.image, command, mode=modes[-1])
        if i >= 0:
            requery_cached.append(time.perf_counter() - t)
            log(f"frame {i + 1}/{frames}: " + ", ".join(line) + f", requery {requery[-1] * 1000:.1f} ms")

    report: Dict[str, Any] = {}
    names = {"thorough": "reference", "fast": "fast"}
    for mode in modes:
        report[names[mode]] = stats[mode].summary()
    if "reference" in report and "fast" in report:
        report["speedup_p50"] = round(report["reference"]["p50_s"] / max(report["fast"]["p50_s"], 1e-9), 2)
    report["requery_p50_s"] = round(float(np.median(requery)), 4)
    report["requery_cached_text_p50_s"] = round(float(np.median(requery_cached)), 4)
    # peak_rss_mb: the default (fast) detector alone, in a fresh process; the process peak below also
    # holds the reference recipe's decoder batches.
    report["peak_rss_mb_process"] = round(peak_rss_mb(), 1)
    report["peak_rss_mb"] = (fast_only_peak_rss_mb(models, workload, regions, threads)
                             if fast_rss_subprocess else None)
    report["models"] = {**det.describe(), "decoder": det.model_set.sam.decoder.name,
                        "visual": det.model_set.clip.visual.name, "load_s": round(load_s, 3)}
    report["workload"] = {"name": workload, "regions": regions if workload == "realistic" else None,
                          "frame": f"{FRAME_W}x{FRAME_H}", "frames": frames}
    # Load average before and after: other processes on a shared machine inflate every number.
    report["machine"] = {"cpus": os.cpu_count(), "threads": threads, "platform": platform.platform(),
                         "processor": platform.processor() or platform.machine(),
                         "load_avg_1min": [load_before,
                                           os.getloadavg()[0] if hasattr(os, "getloadavg") else None]}
    return report
