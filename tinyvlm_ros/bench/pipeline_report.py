"""Render ``tinyvlm bench pipeline`` JSON reports as the pipeline section of docs/benchmarks.md.

Every figure comes from the reports; the only numbers written here are the
goals of issue 13 that the figures are held against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

START, END = "<!-- pipeline-bench:start -->", "<!-- pipeline-bench:end -->"

#: Goals (issue 13): fast p50 at SAM input 1024, speed ratios, re-query, peak RSS.
GOAL_FAST_S = 1.0
GOAL_PEER_OVER_FAST = 50.0
GOAL_THOROUGH_OVER_FAST = 8.0
GOAL_PEER_OVER_THOROUGH = 4.0
GOAL_REQUERY_S = 0.05
GOAL_RSS_MB = 1536.0

_STAGES = ("encoder", "saliency", "decoder", "masks", "crops", "visual", "text", "match", "masks_out")


def _f(v: Optional[float], digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _size(r: Dict[str, Any]) -> str:
    return r["models"]["sam_input"]


def _prompts(m: Dict[str, Any]) -> str:
    parts = [f"{_f(m['decoder_calls'], 1)}"]
    detail = [f"{k.rsplit('_', 1)[-1]}: {_f(m[k], 1)}" for k in sorted(m) if k.startswith("decoder_window_")
              and not k.endswith("_range")]
    if "decoder_full" in m and detail:
        detail.append(f"whole grid: {_f(m['decoder_full'], 1)}")
    return parts[0] + (f" ({', '.join(detail)})" if detail else "")


def _pipelines(r: Dict[str, Any]) -> List[str]:
    return [k for k in ("peer", "thorough", "fast") if k in r]


def render(reports: Sequence[Dict[str, Any]], sources: Sequence[str], commands: Sequence[str]) -> str:
    """Return the markdown section (without the markers) for the reports of one benchmark run."""
    reports = sorted(reports, key=lambda r: -int(_size(r)))
    lines: List[str] = []
    add = lines.append
    kinds = sorted({r["models"]["kind"] for r in reports})
    add("## Pipeline benchmark")
    add("")
    add(f"Model sets: **{', '.join(k.upper() for k in kinds)}**. "
        + ("Random weights: the real MobileSAM and TinyCLIP architectures with seeded random weights, so "
           "every graph costs what the real one costs, but masks and scores mean nothing; the decoder's "
           "output values are replaced by the photos' annotated regions (ours and the stock recipe alike), "
           "and the decoder graphs still run on every prompt. " if "random" in kinds else "")
        + f"Written by `tinyvlm bench pipeline-report` from {', '.join(f'`{s}`' for s in sources)}.")
    add("")
    r0 = reports[0]
    wl = r0["workload"]
    add(f"Workload: {wl['name']}, {len(wl['frames'])} frames ({', '.join(wl['frames'])}; "
        f"sizes {', '.join(sorted(set(wl['frame_sizes'])))}), each through every pipeline before the next "
        f"frame; the stock recipe on the first {wl['peer_frames']}.")
    add("")
    m = r0["machine"]
    add(f"Machine: {m['cpus']} CPUs ({m['processor']}, {m['platform']}), {m['threads']} threads per graph.")
    for r in reports:
        add(f"Load average (1, 5, 15 min) at SAM input {_size(r)}: before {r['machine']['load_avg'][0]}, "
            f"after {r['machine']['load_avg'][1]} (`uptime`: {r['machine']['uptime'][0]!r}).")
    add("")
    add("### Per frame")
    add("")
    add("| SAM input | pipeline | runtimes | p50 s/frame | p95 s | CPU s (p50) | decoder prompts / frame "
        "| masks / frame | crops / frame |")
    add("|---|---|---|---|---|---|---|---|---|")
    for r in reports:
        for name in _pipelines(r):
            p = r[name]
            label = {"peer": "stock recipe (PyTorch)", "fast": "ours, fast",
                     "thorough": "ours, thorough"}[name]
            rt = "torch" if name == "peer" else r["models"]["backend"]
            add(f"| {_size(r)} | {label} | {rt} | {_f(p['p50_s'])} | {_f(p['p95_s'])} | "
                f"{_f(p['cpu_p50_s'])} | "
                f"{_prompts(p)} | {_f(p['masks'], 1)} | {_f(p['crops'], 1)} |")
    add("")
    if "peer" in r0:
        add(f"Stock recipe: {r0['peer']['recipe']}.")
        add("")
    add("### Ratios (same frames, same run)")
    add("")
    add("| SAM input | stock / fast | stock / thorough | thorough / fast | same in CPU seconds |")
    add("|---|---|---|---|---|")
    for r in reports:
        q = r["ratios"]
        add(f"| {_size(r)} | {_f(q.get('peer/fast'), 1)}x | {_f(q.get('peer/thorough'), 1)}x | "
            f"{_f(q.get('thorough/fast'), 1)}x | {_f(q.get('peer/fast_cpu'), 1)}x, "
            f"{_f(q.get('peer/thorough_cpu'), 1)}x, "
            f"{_f(q.get('thorough/fast_cpu'), 1)}x |")
    add("")
    add("### Stages (p50 seconds per frame)")
    add("")
    add("| SAM input | pipeline | " + " | ".join(_STAGES) + " |")
    add("|---|---|" + "---|" * len(_STAGES))
    for r in reports:
        for name in _pipelines(r):
            st = r[name]["stages_p50_s"]
            add(f"| {_size(r)} | {name} | " + " | ".join(_f(st.get(s), 3) for s in _STAGES) + " |")
    add("")
    add("`decoder` is the segmenter's prompt loop (decoder graphs, filters, candidates); for the stock "
        "recipe `masks` is the generator after its encoder pass (decoder, upsampling, filters, NMS).")
    add("")
    add("### Prompts and crops per photo")
    add("")
    for r in reports:
        names = _pipelines(r)
        add(f"SAM input {_size(r)}:")
        add("")
        add("| photo | " + " | ".join(f"{n}: prompts / crops" for n in names) + " |")
        add("|---|" + "---|" * len(names))
        by_frame: Dict[str, Dict[str, str]] = {}
        for n in names:
            for row in r[n]["per_frame"]:
                by_frame.setdefault(row["frame"], {})[n] = f"{row['decoder_calls']} / {row['crops']}"
        for frame, cells in by_frame.items():
            add(f"| {frame} | " + " | ".join(cells.get(n, "-") for n in names) + " |")
        add("")
    add("### Re-query and memory")
    add("")
    add("| SAM input | re-query, new phrase | re-query, known phrase | peak RSS fast alone | "
        "peak RSS thorough alone | peak RSS of the benchmark process |")
    add("|---|---|---|---|---|---|")
    for r in reports:
        rss = r.get("peak_rss_mb") or {}
        add(f"| {_size(r)} | {_f(r['requery_p50_s'] * 1000, 1)} ms | "
            f"{_f(r['requery_cached_text_p50_s'] * 1000, 1)} ms | {_f(rss.get('fast'), 0)} MB | "
            f"{_f(rss.get('thorough'), 0)} MB | {_f(r['peak_rss_mb_process'], 0)} MB |")
    add("")
    _agreement(lines, reports)
    _goals(lines, reports)
    add("### Commands")
    add("")
    add("```")
    for c in list(commands) + [r.get("command", "") for r in reports if r.get("command")]:
        add(c)
    add("```")
    return "\n".join(lines) + "\n"


def _agreement(lines: List[str], reports: Sequence[Dict[str, Any]]) -> None:
    add = lines.append
    if not any("agreement" in r for r in reports):
        return
    add("### Agreement of the speed-ups")
    add("")
    add("Windowed decoder against whole-grid decoding (the real graphs' outputs, fast mode's candidate "
        "prompts on the first frames; every multimask output, compared on the window):")
    add("")
    add("| SAM input | window (cells) | mask IoU median / p5 / min | logit sign agreement min | "
        "predicted-IoU abs diff median / max | outputs |")
    add("|---|---|---|---|---|---|")
    for r in reports:
        for w, a in r.get("agreement", {}).get("window_vs_whole_grid", {}).items():
            iou, sign, dq = a["mask_iou"], a["sign_agreement"], a["iou_pred_abs_diff"]
            if not iou:
                continue
            add(f"| {_size(r)} | {w} | {_f(iou['median'], 3)} / {_f(iou['p5'], 3)} / {_f(iou['min'], 3)} | "
                f"{_f(sign['min'], 3)} | {_f(dq['median'], 3)} / {_f(dq['max'], 3)} | {iou['n']} |")
    add("")
    add("Runtimes and int8 against fp32 ONNX Runtime, per graph call on the first frame:")
    add("")
    add("| SAM input | graph | variant | wall ms | CPU ms | call | agreement with fp32 ONNX Runtime |")
    add("|---|---|---|---|---|---|---|")
    for r in reports:
        for graph, rows in r.get("agreement", {}).get("runtimes", {}).items():
            for row in rows:
                agree = ", ".join(f"{k} {v:.4g}" for k, v in row.items()
                                  if k not in ("variant", "file", "wall_ms", "cpu_ms", "unit")) or "reference"
                add(f"| {_size(r)} | {graph} | {row['variant']} | {_f(row['wall_ms'], 1)} | "
                    f"{_f(row['cpu_ms'], 1)} | {row['unit']} | {agree} |")
    add("")


def _goals(lines: List[str], reports: Sequence[Dict[str, Any]]) -> None:
    add = lines.append
    big = [r for r in reports if _size(r) == "1024"]
    if not big:
        return
    r = big[0]
    q = r["ratios"]
    rss = r.get("peak_rss_mb") or {}

    def verdict(ok: Optional[bool]) -> str:
        if ok is None:
            return "not judged (not measured, or a busy machine)"
        return "**met**" if ok else "**missed**"

    def at_least(v: Optional[float], goal: float) -> Optional[bool]:
        return None if v is None else v >= goal

    def at_most(v: Optional[float], goal: float) -> Optional[bool]:
        return None if v is None else v <= goal

    fast = r.get("fast", {}).get("p50_s")
    load = r["machine"]["load_avg"][0]
    # a wall-time goal for an idle machine is not judged on a busy one (load above half its CPUs)
    idle = bool(load) and load[0] <= 0.5 * r["machine"]["cpus"]
    rows = [
        (f"fast p50 <= {GOAL_FAST_S:g} s per frame (idle 2-core machine)",
         f"{_f(fast)} s at load {load[0] if load else '-'} ({_f(r.get('fast', {}).get('cpu_p50_s'))} CPU s)",
         at_most(fast, GOAL_FAST_S) if idle else None),
        (f"fast >= {GOAL_PEER_OVER_FAST:g}x the stock recipe", f"{_f(q.get('peer/fast'), 1)}x",
         at_least(q.get("peer/fast"), GOAL_PEER_OVER_FAST)),
        (f"fast >= {GOAL_THOROUGH_OVER_FAST:g}x thorough", f"{_f(q.get('thorough/fast'), 1)}x",
         at_least(q.get("thorough/fast"), GOAL_THOROUGH_OVER_FAST)),
        (f"thorough >= {GOAL_PEER_OVER_THOROUGH:g}x the stock recipe", f"{_f(q.get('peer/thorough'), 1)}x",
         at_least(q.get("peer/thorough"), GOAL_PEER_OVER_THOROUGH)),
        (f"re-query <= {GOAL_REQUERY_S * 1000:g} ms", f"{_f(r['requery_p50_s'] * 1000, 1)} ms",
         at_most(r["requery_p50_s"], GOAL_REQUERY_S) if idle else None),
    ]
    for mode in ("fast", "thorough"):
        rows.append((f"peak RSS {mode} <= {GOAL_RSS_MB:g} MB", f"{_f(rss.get(mode), 0)} MB",
                     at_most(rss.get(mode), GOAL_RSS_MB)))
    add("### Goals at SAM input 1024 (issue 13)")
    add("")
    add("| goal | measured | |")
    add("|---|---|---|")
    for goal, measured, ok in rows:
        add(f"| {goal} | {measured} | {verdict(ok)} |")
    add("")
    add("Wall-time goals assume an idle machine; on a loaded one compare the ratios and CPU seconds.")
    add("")


def update_markdown(path: Path, reports: Sequence[Dict[str, Any]], sources: Sequence[str],
                    commands: Sequence[str]) -> None:
    """Replace the text between the pipeline markers of ``path`` (append the section if it has none)."""
    path = Path(path)
    text = path.read_text() if path.is_file() else "# Benchmarks\n\n"
    section = f"{START}\n{render(reports, sources, commands)}{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
