"""Benchmark a distilled encoder on seen and unseen phrases and write ``docs/distill.md``.

For every prefix length, detection queries (:mod:`tinyvlm_ros.distill.queries`: half ask for an
object the scene shows, half for one it does not) over the *seen* phrases and, separately, the
*unseen* ones (:mod:`tinyvlm_ros.distill.split`) run through

* the firmware (host build or under QEMU) via :class:`~tinyvlm_ros.mcu.trained_model.DistilledMcuEngine`,
* the bit-exact numpy reference (int8; its box must equal the firmware's, query by query),
* the float student with the float projection (fp32),

and give accuracy (right box, IoU >= 0.5), precision and recall with false positives counted.
Every figure on the page comes from the JSON files the runs wrote.

``python -m tinyvlm_ros.distill.evaluate --distilled DIR [--target host|qemu-m4] [--queries 120]``
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from tinyvlm_ros.distill.data import resize_input
from tinyvlm_ros.distill.queries import Query, query_set, summarize
from tinyvlm_ros.distill.split import HELD_OUT_COLOUR, HELD_OUT_PAIRS, unseen_phrases
from tinyvlm_ros.mcu.blob import unpack_model
from tinyvlm_ros.mcu.trained_model import engine_inputs, load_distilled
from tinyvlm_ros.testing.attribute_models import feature_names

#: Seeds of the benchmark queries: apart from training (0..), calibration (7000..) and tests.
SEED0 = 20000
UNSEEN_SEED0 = 60000
SPLITS = ("seen", "unseen")
PREFIX_CURVE = "distill_prefix_curve.png"


def benchmark_queries(meta: dict, n: int) -> Dict[str, List[Query]]:
    """Make the seen and unseen query sets of a distilled model (unseen empty in the basic world)."""
    world = meta.get("world", "basic")
    seen = list(meta.get("seen_phrases") or [])
    out = {"seen": query_set(SEED0, n, seen, world)}
    unseen = unseen_phrases(world)
    out["unseen"] = query_set(UNSEEN_SEED0, n, unseen, world) if unseen else []
    return out


def float_model(root: Path):
    """Float student and float text projection (numpy [D, E]) from the training checkpoint."""
    import torch

    from tinyvlm_ros.distill.student import Student, TextProjection
    from tinyvlm_ros.distill.train import CHECKPOINT

    state = torch.load(root / CHECKPOINT, weights_only=True)
    student = Student()
    student.load_state_dict(state["student"])
    w = state["proj"]["weight"].numpy().astype(np.float32)
    proj = TextProjection(w.shape[0], student.embed_dim)
    proj.load_state_dict(state["proj"])
    return student, w


def top_region_hits(embeddings: Sequence[np.ndarray], queries: Sequence[Query], rows: Dict[str, np.ndarray],
                    dims: int, int8: bool) -> float:
    """Share of present queries whose best-scoring region lies on an object the phrase names (no threshold).

    The threshold-free view of a prefix: it ranks regions only, so per-prefix threshold calibration
    does not enter.
    """
    from tinyvlm_ros.distill.objective import prefix_scores
    from tinyvlm_ros.mcu.blob import quantize_table
    from tinyvlm_ros.mcu.reference import score_regions

    hits = []
    for emb, q in zip(embeddings, queries):
        if not q.present:
            continue
        gh, gw = emb.shape[:2]
        row = rows[q.phrase][None, :]
        if int8:
            sc = np.asarray(score_regions(emb, quantize_table(row, dims), [0]), np.float64)
            sc = sc.reshape(-1)[:gh * gw]
        else:
            sc = prefix_scores(emb, row, dims)[:, 0]
        iy, ix = np.unravel_index(int(np.argmax(sc)), (gh, gw))
        h, w = q.scene.image.shape[:2]
        cx, cy = (ix + 0.5) * w / gw, (iy + 0.5) * h / gh
        hits.append(any(o.box_xyxy[0] <= cx < o.box_xyxy[2] and o.box_xyxy[1] <= cy < o.box_xyxy[3]
                        for o in q.scene.find(q.phrase)))
    return float(np.mean(hits)) if hits else float("nan")


def run_benchmark(root: Path, target: str = "host", n_queries: int = 120, dims: Optional[List[int]] = None,
                  progress: bool = True) -> dict:
    """Answer the seen and unseen queries per prefix: firmware, int8 reference and fp32 student."""
    from tqdm import tqdm

    from tinyvlm_ros.distill.data import Teacher
    from tinyvlm_ros.distill.quantize import int8_embeddings, query_boxes
    from tinyvlm_ros.distill.student import student_embeddings
    from tinyvlm_ros.mcu.emulate import Emulator, build

    dm = load_distilled(root)
    model = unpack_model(dm.model_path.read_bytes())
    dims = dims or dm.dims
    sets = benchmark_queries(dm.meta, n_queries)
    phrases = sorted({q.phrase for qs in sets.values() for q in qs})
    teacher = Teacher(dm.teacher)
    text = dict(zip(phrases, teacher.embed_phrases(phrases)))
    # the exported (int8-refitted) projection
    rows_q = {p: dm.project(t[None, :])[0] for p, t in text.items()}
    student, proj_f = float_model(root)
    rows_f = {p: (t / np.linalg.norm(t)) @ proj_f for p, t in text.items()}
    small = {k: np.stack([resize_input(q.scene.image, model.in_w, model.in_h) for q in qs]) if qs else None
             for k, qs in sets.items()}
    emb_q = {k: list(int8_embeddings(model, v)) if v is not None else [] for k, v in small.items()}
    emb_f = {k: list(student_embeddings(student, v)) if v is not None else [] for k, v in small.items()}
    build(target)
    result: Dict[str, dict] = {}
    for m in dims:
        inputs = engine_inputs(root, dims=m)
        thr, cw = inputs.score_threshold, inputs.cover_weight
        rec: Dict[str, dict] = {"threshold": thr, "cover_weight": cw}
        t0 = time.monotonic()
        with Emulator(target, model=str(dm.model_path)) as emu:
            # a short reply timeout: under QEMU a reply occasionally never arrives, and the link's
            # retry (answered from the firmware's reply cache) is then cheaper than a long wait
            with inputs.engine(emu.url, timeout=5.0, max_detections=1) as engine:
                for split, qs in sets.items():
                    if not qs:
                        continue
                    ref = query_boxes(emb_q[split], qs, rows_q, m, thr, True, cover_weight=cw)
                    fp32 = query_boxes(emb_f[split], qs, rows_f, m, thr, False, cover_weight=cw)
                    fw, same = [], 0
                    for q, rb in tqdm(list(zip(qs, ref)), desc=f"{target} dims {m} {split}",
                                      disable=not progress, leave=False):
                        res = engine.detect(q.scene.image, f"pick the {q.phrase}")
                        box = tuple(res.detections[0].box_xyxy) if res.detections else None
                        fw.append(box)
                        same += int((box is None and rb is None) or (
                            box is not None and rb is not None and np.allclose(box, rb, atol=1e-3)))
                    rec[split] = {"firmware": summarize(fw, qs), "int8": summarize(ref, qs),
                                  "fp32": summarize(fp32, qs), "firmware_equals_reference": same,
                                  "n": len(qs),
                                  "top_region_int8": top_region_hits(emb_q[split], qs, rows_q, m, True),
                                  "top_region_fp32": top_region_hits(emb_f[split], qs, rows_f, m, False)}
                rec["link"] = dict(engine.link.stats)
        rec["seconds"] = round(time.monotonic() - t0, 1)
        result[str(m)] = rec
    return {"target": target, "n_queries": n_queries, "model_bytes": dm.model_path.stat().st_size,
            "default_dim": dm.default_dim, "prefix": result, "distill": dm.meta,
            "unseen_phrases": [q for q in unseen_phrases(dm.meta.get("world", "basic"))]}


# ---------------------------------------------------------------------------------------------- page
def _pct(x: float) -> str:
    return "-" if x is None or x != x else f"{100 * x:.1f} %"


def _cell(s: dict) -> str:
    """Accuracy / precision of one summary, with its counts."""
    return f"{_pct(s['accuracy'])} / {_pct(s['precision'])} ({s['tp']} TP, {s['fp']} FP)"


def goals(bench: dict) -> List[str]:
    """State the issue's goals, each as met or missed by how much, from one benchmark (int8 reference)."""
    p = bench["prefix"]
    acc = {int(m): {s: r[s]["int8"]["accuracy"] for s in SPLITS if s in r} for m, r in p.items()}
    f32 = {int(m): {s: r[s]["fp32"]["accuracy"] for s in SPLITS if s in r} for m, r in p.items()}
    lines = []

    def verdict(gap: float, limit: float) -> str:
        return "met" if gap <= limit + 1e-9 else f"missed by {gap - limit:.1f} points"

    if 64 in acc and "unseen" in acc[64]:
        gap = 100 * (acc[64]["seen"] - acc[64]["unseen"])
        lines.append(f"* Unseen within 10 points of seen at 64 dims: seen {_pct(acc[64]['seen'])}, unseen "
                     f"{_pct(acc[64]['unseen'])} (gap {gap:.1f} points): **{verdict(gap, 10)}**.")
    if 64 in acc and 128 in acc:
        for s in acc[64]:
            gap = 100 * (acc[128][s] - acc[64][s])
            lines.append(f"* 64 dims within 3 points of 128 ({s}): {_pct(acc[64][s])} vs {_pct(acc[128][s])} "
                         f"(gap {gap:.1f} points): **{verdict(gap, 3)}**.")
    for m in sorted(acc):
        for s in acc[m]:
            gap = 100 * (f32[m][s] - acc[m][s])
            lines.append(f"* int8 within 1 point of fp32 at {m} dims ({s}): int8 {_pct(acc[m][s])}, fp32 "
                         f"{_pct(f32[m][s])} (gap {gap:.1f} points): **{verdict(gap, 1)}**.")
    ms = sorted(acc)
    flat = False
    if len(ms) > 1:
        for s in acc[ms[0]]:
            spread = 100 * (acc[ms[-1]][s] - acc[ms[0]][s])
            curve = ", ".join(f"{m}: {_pct(acc[m][s])}" for m in ms)
            flat |= spread < 3
            lines.append(f"* Trade-off curve ({s}, int8): {curve}; {ms[-1]} minus {ms[0]} dims = "
                         f"{spread:.1f} points "
                         + ("(a real trade-off)." if spread >= 3 else
                            "(no trade-off: the shortest prefix is not worse)."))
    if len(ms) > 1 and "top_region_int8" in p[str(ms[0])].get("seen", {}):
        for s in acc[ms[0]]:
            top = {m: p[str(m)][s]["top_region_int8"] for m in ms}
            curve = ", ".join(f"{m}: {_pct(top[m])}" for m in ms)
            lines.append(f"* Threshold-free curve ({s}, int8, best region on the object): {curve}; "
                         f"{ms[-1]} minus {ms[0]} dims = {100 * (top[ms[-1]] - top[ms[0]]):.1f} points.")
    if flat and bench["distill"].get("world") == "attributes":
        from tinyvlm_ros.testing.attribute_models import COLOUR_NAMES, SHAPE_NAMES

        named = len(COLOUR_NAMES) + len(SHAPE_NAMES)
        room = "have room for" if named <= ms[0] else "nearly have room for"
        lines.append(f"* Where a curve shows no trade-off: the queries name colour and shape only, {named} "
                     f"directions of the teacher's space, and {ms[0]} dims {room} them (the pattern "
                     "directions, which no query names, are what a short prefix gives up).  The "
                     "differences between prefixes are then those of the per-prefix threshold calibration "
                     "and of the query sample; accuracy is limited at every prefix by the image side "
                     "(shape and box extent at the MCU's input size), not by the prefix.")
    return lines


def save_prefix_curve(bench: dict, path: Path) -> None:
    """Accuracy and precision vs prefix (seen/unseen, int8/fp32) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = bench["prefix"]
    ms = sorted(int(m) for m in p)
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for s, style in (("seen", "-"), ("unseen", "--")):
        for kind, marker in (("int8", "o"), ("fp32", "s")):
            if s not in p[str(ms[0])]:
                continue
            for a, metric in zip(ax, ("accuracy", "precision")):
                a.plot(ms, [100 * p[str(m)][s][kind][metric] for m in ms], style, marker=marker,
                       label=f"{s} {kind}")
    for a, metric in zip(ax, ("accuracy (right box, IoU >= 0.5)", "precision (false positives counted)")):
        a.set_xscale("log", base=2)
        a.set_xticks(ms)
        a.set_xticklabels([str(m) for m in ms])
        a.set_xlabel("Matryoshka prefix (dims)")
        a.set_ylabel("%")
        a.set_title(metric)
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


METHOD = """# Distilling the MCU's image encoder

`tinyvlm mcu distill` trains the firmware's int8 region encoder (`firmware/README.md`) from any model set
with CLIP's ONNX interface, quantizes it and writes what the MCU engine needs:

```
tinyvlm mcu distill --teacher MODEL_DIR [--make-teacher attributes] (--generate N | --images DIR) \\
    --dims 16,32,64,128 --out OUT [--epochs E] [--resume] [--default-dim 64]
```

* **Teacher** (`tinyvlm_ros/testing/attribute_models.py`, `--make-teacher attributes`): a generated
  known-answer CLIP-interface model set.  Its visual tower measures colour, shape and surface pattern of a
  mask-aware crop and maps the soft attribute scores through a fixed orthonormal codebook (one direction per
  attribute value, spread over all dimensions); its text tower *sums* the directions of a phrase's words,
  so a combination no one named has the embedding of exactly the objects it describes.
* **Split** (`tinyvlm_ros/distill/split.py`): training names only the *seen* phrases.  Unseen: every
  phrase with a colour word never named in training, and whole colour-shape combinations of seen words.
  Training scenes still show those objects: the student learns them from the teacher's image embeddings.
* **Targets** (`data.py`): the teacher's visual tower on mask-aware crops of every object of a generated
  scene; each region's target is the coverage-weighted mix of the objects over it and the bare table.
* **Loss** (`objective.py`), for every prefix m (both sides cut to m dims, renormalised): cosine to the
  projected teacher region embedding; a contrastive term (each object region's softmax over the batch's
  projected teacher region embeddings must match the teacher's region-to-region softmax); a logistic
  detection term on the seen phrases only, whose target is the fraction of the region the phrase's objects
  cover; and a structure term that keeps the projection P from collapsing the teacher's geometry.
* **Quantization** (`quantize.py`): cross-layer range equalization, then CFQ (each layer calibrated on the
  int8 outputs of the already-quantized layers, bias correction against the float path); the text
  projection is refitted against the frozen int8 image side.  Thresholds are calibrated on seen-phrase
  queries (right boxes minus false positives), never on the benchmark queries or on unseen phrases.
* **Output** (`OUT/`): `model.tvm`, `text_projection.npy`, `distill.json`, `checkpoint.pt`, `history.json`,
  `curves.png`; at run time `tinyvlm_ros/mcu/trained_model.py` (numpy only).

"""

NOTES = """
## What the numbers mean

* **Queries** (`tinyvlm_ros/distill/queries.py`): each asks for one phrase in a generated 640x480 scene.
  Half the scenes hold an object the phrase names, half do not; both have hard distractors (the phrase's
  colour on another shape, its shape in another colour).  One box per query (the firmware's chosen target).
* **Accuracy** = right box (IoU >= 0.5 with an object the phrase names) over queries whose object is
  present (with one box per query this is also the recall).  **Precision** = right boxes over all boxes
  returned: a box for an absent object, or a wrong box, is a false positive.
* **int8** is the bit-exact numpy reference of the firmware with the exported (refitted) projection;
  **fp32** the float student with the float projection at the same thresholds.  **Firmware** columns ran
  the blob in the firmware (host build: the same C code compiled for the host; QEMU: Cortex-M4) through
  `DistilledMcuEngine`; "= ref" counts queries whose firmware box equals the reference's exactly.
* **Prefixes**: the attribute teacher has one direction per attribute value (colours, shapes, patterns,
  plus neutral and other), so a prefix shorter than that count must share directions between attributes.
* Table bytes: 24-byte header + (4-byte scale + dims) per phrase row.
"""


def write_markdown(benches: List[dict], path: Path, distill_command: str) -> None:
    """Write the benchmarks (one per firmware target) as a Markdown page, with the commands behind them."""
    if not benches:
        raise ValueError("no benchmark results to write")
    main = benches[0]
    meta = main["distill"]
    world = meta.get("world", "basic")
    prefixes = sorted(int(m) for m in main["prefix"])
    epochs = (meta.get("history_last") or {}).get("epoch", "?")
    seen = meta.get("seen_phrases") or []
    unseen = main.get("unseen_phrases") or []
    lines = [
        "# Results: seen vs unseen phrases, accuracy and precision per prefix, int8 vs fp32, firmware",
        "",
        f"Model set: **known-answer** (generated teacher `{meta.get('teacher_name', '?')}`, "
        f"{meta['teacher_dim']}-dim embedding, {world} world), not a real CLIP."
        + (f"  Its embedding has {len(feature_names())} word-addressable directions "
           f"({', '.join(feature_names())})." if world == "attributes" else ""),
        "",
        "Produced by:",
        "",
        "```",
        distill_command,
    ] + [b["command"] for b in benches] + [
        "```",
        "",
        f"Firmware model blob: {main['model_bytes']} bytes, {meta['macs'] / 1e6:.2f} M MACs per frame, "
        f"{meta['input'][0]}x{meta['input'][1]} input, {meta['grid'][0]}x{meta['grid'][1]} regions x "
        f"{meta['embed_dim']} dims.  Training: {meta['n_train']} generated scenes "
        f"(+{meta['n_val']} held out), {epochs} epochs.  Thresholds calibrated on {meta['n_scenes']} "
        "seen-phrase queries of their own.",
        "",
        f"Seen phrases ({len(seen)}, the only ones training names): {', '.join(seen)}.",
        "",
    ]
    if unseen:
        pairs = ", ".join(f"{c} {s}" for c, s in HELD_OUT_PAIRS)
        lines += [f"Unseen phrases ({len(unseen)}): every phrase with **{HELD_OUT_COLOUR}** "
                  "(a colour word never "
                  f"named in training) and the combinations {pairs} (each word seen in other phrases).", ""]
    for split in SPLITS:
        if split not in main["prefix"][str(prefixes[0])]:
            continue
        n = main["prefix"][str(prefixes[0])][split]["n"]
        lines += [
            f"## {split.capitalize()} phrases: accuracy / precision "
            f"({n} queries, half with the object absent)",
            "",
            "| prefix | fp32 student | int8 reference | "
            + " | ".join(f"{b['target']} firmware" for b in benches)
            + " | threshold | best region on the object, no threshold (int8 / fp32) "
            "| table bytes per 100 phrases |",
            "|---|---|---|" + "---|" * len(benches) + "---|---|---|",
        ]
        for m in prefixes:
            r = main["prefix"][str(m)]
            cells = []
            for b in benches:
                rb = b["prefix"].get(str(m), {}).get(split)
                if rb is None:
                    cells.append("-")
                    continue
                cells.append(f"{_cell(rb['firmware'])}, = ref {rb['firmware_equals_reference']}/{rb['n']}")
            star = " (default)" if m == main["default_dim"] else ""
            lines.append(f"| {m}{star} | {_cell(r[split]['fp32'])} | {_cell(r[split]['int8'])} | "
                         + " | ".join(cells) + f" | {r['threshold']:.3f} | "
                         f"{_pct(r[split].get('top_region_int8'))} / "
                         f"{_pct(r[split].get('top_region_fp32'))} | "
                         f"{24 + 100 * (4 + m)} |")
        lines.append("")
    lines += ["## Goals (int8 reference, accuracy)", ""] + goals(main) + [
        "",
        "## Curves",
        "",
        f"![accuracy and precision per prefix]({PREFIX_CURVE})",
        "",
        "![loss, cosine and accuracy per epoch](distill_curves.png)",
        "",
        "Top: benchmark accuracy and precision per prefix (seen and unseen, int8 and fp32).  "
        "Bottom: training "
        "loss (sum over prefixes), student-teacher cosine and region top-1 over the seen phrases on held-out "
        "frames, per epoch.",
        "",
        "## Regions: top-1 over the seen phrases, held-out frames "
        "(regions at least half covered by one object)",
        "",
        "| prefix | fp32 | int8 (CFQ) | float-int8 cosine | top-1 agreement |",
        "|---|---|---|---|---|",
    ]
    for m, p in meta["prefix"].items():
        lines.append(f"| {m} | {_pct(p['region_acc_float'])} | {_pct(p['region_acc_int8'])} | "
                     f"{p['float_int8_cosine']:.4f} | {_pct(p['top1_agreement'])} |")
    path.write_text(METHOD + "\n".join(lines) + "\n" + NOTES)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distilled", required=True, help="output directory of tinyvlm mcu distill")
    parser.add_argument("--target", default="host", choices=["host", "qemu-m4", "qemu-m7", "qemu-m55"])
    parser.add_argument("--queries", type=int, default=120, help="queries per split (seen, unseen)")
    parser.add_argument("--dims", default="", help="prefixes to run (default: all trained)")
    parser.add_argument("--markdown", default="",
                        help="write this Markdown page (docs/distill.md) from every bench_*.json in the dir")
    parser.add_argument("--distill-command", default="", help="the distill command line, for the page")
    parser.add_argument("--render-only", action="store_true", help="only rewrite --markdown from the JSONs")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    root = Path(args.distilled)
    dims = [int(d) for d in args.dims.split(",") if d] or None
    if not args.render_only:
        bench = run_benchmark(root, args.target, args.queries, dims, progress=not args.quiet)
        given = list(argv) if argv is not None else sys.argv[1:]
        bench["command"] = "python -m tinyvlm_ros.distill.evaluate " + shlex.join(given)
        (root / f"bench_{args.target}.json").write_text(json.dumps(bench, indent=1))
        for m, r in bench["prefix"].items():
            for split in SPLITS:
                if split in r:
                    s = r[split]
                    print(f"dims {m} {split}: firmware acc {s['firmware']['accuracy']:.3f} "
                          f"prec {s['firmware']['precision']:.3f} | int8 acc {s['int8']['accuracy']:.3f} "
                          f"prec {s['int8']['precision']:.3f} | fp32 acc {s['fp32']['accuracy']:.3f} "
                          f"prec {s['fp32']['precision']:.3f} | "
                          f"fw == ref {s['firmware_equals_reference']}/{s['n']}")
    if args.markdown:
        # one column per target benchmarked into this directory (e.g. host for all prefixes, QEMU for one);
        # the bench with the most prefixes gives the fp32/int8 columns
        benches = [json.loads(p.read_text()) for p in sorted(root.glob("bench_*.json"))]
        benches.sort(key=lambda b: (-len(b["prefix"]), b["target"] != "host", b["target"]))
        page = Path(args.markdown)
        write_markdown(benches, page, args.distill_command)
        save_prefix_curve(benches[0], page.parent / PREFIX_CURVE)
        if (root / "curves.png").exists():
            shutil.copyfile(root / "curves.png", page.parent / "distill_curves.png")
        for line in goals(benches[0]):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
