"""Run an engine over annotated photos and their commands; one JSON line per photo, resumable.

``results.jsonl`` in the output directory gets one line per finished photo
(every command's parsed targets, detections, latency and work counters),
flushed as it is written; ``run.json`` records the settings.  A rerun with
the same settings skips the photos already in ``results.jsonl``; a rerun with
different settings is refused (``restart`` starts over), so one results file
never mixes two model sets.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional

import numpy as np

from tinyvlm_ros.eval.commands import EvalCommand
from tinyvlm_ros.eval.dataset import Dataset, EvalImage
from tinyvlm_ros.types import Engine

RESULTS = "results.jsonl"
SETTINGS = "run.json"
#: Settings that must match for a rerun to continue a run (the rest is information).
_KEY_FIELDS = ("annotations", "models", "model_dir", "kind", "mode", "backend", "workload", "score_threshold",
               "commands_sha")


def commands_digest(commands: Dict[str, List[EvalCommand]]) -> str:
    """Short hash of every photo's command list, so a changed command set is noticed on resume."""
    text = json.dumps({k: [c.to_dict() for c in v] for k, v in sorted(commands.items())}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def parsed_targets(text: str) -> Optional[List[str]]:
    """Target phrases of a command as the node's parser reads it; None when it is not understood."""
    from tinyvlm_ros.grounding import parse_command

    try:
        return list(parse_command(text).phrases)
    except (ValueError, TypeError):
        return None


def read_results(out_dir: Path) -> List[Dict[str, Any]]:
    """Photo records already written (a torn last line from an interrupted run is ignored)."""
    path = Path(out_dir) / RESULTS
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def _prepare(out_dir: Path, settings: Dict[str, Any], restart: bool) -> List[Dict[str, Any]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SETTINGS
    if restart:
        for name in (RESULTS, SETTINGS):
            (out_dir / name).unlink(missing_ok=True)
    if path.is_file():
        old = json.loads(path.read_text())
        diff = [k for k in _KEY_FIELDS if old.get(k) != settings.get(k)]
        if diff:
            raise ValueError(f"{out_dir} holds a run with other settings ({', '.join(diff)} differ: "
                             f"{ {k: old.get(k) for k in diff} }); use another --out or --restart")
    else:
        path.write_text(json.dumps(settings, indent=2) + "\n")
    records = read_results(out_dir)
    # rewrite without a torn tail so appended lines start on a fresh line
    (out_dir / RESULTS).write_text("".join(json.dumps(r) + "\n" for r in records))
    return records


def run_commands(engine: Engine, image, commands: Iterable[EvalCommand],
                 score_threshold: Optional[float] = None) -> List[Dict[str, Any]]:
    """Run every command on one RGB frame; return one JSON-ready record per command.

    The first command pays for the frame (segmentation, crops); later ones reuse the engine's
    frame cache, as a robot's new command on the same view does.
    """
    out = []
    for cmd in commands:
        rec: Dict[str, Any] = {**cmd.to_dict(), "parsed": parsed_targets(cmd.text)}
        rec["parse_ok"] = rec["parsed"] == [cmd.category]
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            res = engine.detect(image, cmd.text, score_threshold=score_threshold)
        except ValueError as exc:  # a command the engine does not understand is a miss, not a crash
            rec.update(detections=[], latency_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0,
                       work={}, timings={}, error=str(exc), failure="")
            out.append(rec)
            continue
        rec["latency_s"] = round(time.perf_counter() - t0, 5)
        # CPU seconds of every thread of this process: less sensitive to a busy machine than wall time
        rec["cpu_s"] = round(time.process_time() - c0, 5)
        rec["detections"] = [{"label": d.label, "score": round(float(d.score), 4),
                              "box": [round(float(v), 2) for v in d.box_xyxy]} for d in res.detections]
        rec["work"] = {k: int(v) for k, v in res.work.items()}
        rec["timings"] = {k: round(float(v), 5) for k, v in res.timings.items()}
        rec["failure"] = getattr(res, "failure", "")
        rec["error"] = ""
        out.append(rec)
    return out


def evaluate(dataset: Dataset, engine: Engine, commands: Dict[str, List[EvalCommand]], out_dir: Path, *,
             settings: Dict[str, Any], score_threshold: Optional[float] = None, restart: bool = False,
             progress: bool = True, log: Callable[[str], None] = lambda s: None,
             before_photo: Optional[Callable[[EvalImage, np.ndarray], None]] = None) -> List[Dict[str, Any]]:
    """Run ``engine`` on every photo's commands, appending to ``out_dir/results.jsonl``.

    Args:
        dataset: the photos.
        engine: any :class:`~tinyvlm_ros.types.Engine`.
        commands: command list per photo file name (photos without one are skipped).
        out_dir: where run.json and results.jsonl live.
        settings: what identifies the run (see ``_KEY_FIELDS``); written to run.json.
        score_threshold: passed to the engine (None: its default).
        restart: discard a previous run in ``out_dir``.
        progress: show a progress bar.
        log: one line per photo.
        before_photo: called with each photo and its RGB pixels before its commands run (the
            decoder oracle takes the photo's regions here).

    Returns:
        Every photo record of the run, earlier ones included.

    Raises:
        ValueError: ``out_dir`` holds a run with other settings.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    settings = {**settings, "commands_sha": commands_digest(commands)}
    records = _prepare(out_dir, settings, restart)
    done = {r["image"] for r in records}
    todo = [img for img in dataset.images if img.file_name in commands and img.file_name not in done]
    if done:
        log(f"resuming: {len(done)} photos done, {len(todo)} to go")
    with open(out_dir / RESULTS, "a") as f:
        for img in tqdm(todo, desc="photos", unit="photo", disable=not progress):
            rgb = dataset.load(img)
            if before_photo is not None:
                before_photo(img, rgb)
            t0 = time.perf_counter()
            rec = {"image": img.file_name, "image_id": img.image_id, "width": img.width, "height": img.height,
                   "commands": run_commands(engine, rgb, commands[img.file_name], score_threshold),
                   "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
            rec["wall_s"] = round(time.perf_counter() - t0, 4)
            f.write(json.dumps(rec) + "\n")
            f.flush()
            os.fsync(f.fileno())
            records.append(rec)
            first = rec["commands"][0] if rec["commands"] else {}
            log(f"{img.file_name}: {len(rec['commands'])} commands in {rec['wall_s']:.2f} s, "
                f"{first.get('work', {}).get('decoder_calls', 0)} prompts")
    return records
