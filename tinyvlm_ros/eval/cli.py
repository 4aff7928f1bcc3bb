"""``tinyvlm eval run`` (an engine on annotated photos) and ``tinyvlm eval coverage`` (no weights needed)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from tinyvlm_ros.eval.dataset import SIZE_CLASSES, Dataset, shipped_photos

#: Markers of the generated coverage section in a Markdown file (``--markdown``).
COVERAGE_START = "<!-- eval-coverage:start -->"
COVERAGE_END = "<!-- eval-coverage:end -->"


def register(subparsers: "argparse._SubParsersAction") -> None:
    """Add ``run`` and ``coverage`` to the ``eval`` group."""
    p = subparsers.add_parser("run", help="run an engine on annotated photos and commands; write a report",
                              description=_run.__doc__.splitlines()[0])
    _data_args(p)
    p.add_argument("--commands", type=Path, help="commands file (JSON; default: generated from the "
                                                 "category names, see docs/eval.md)")
    p.add_argument("--models", type=Path, help="model set directory (default: the cache's default set)")
    p.add_argument("--mode", choices=("fast", "thorough"), default="fast",
                   help="segmentation mode (default fast)")
    p.add_argument("--backend", choices=("local", "mcu"), default="local", help="engine (default local)")
    p.add_argument("--serial-port", default="", help="MCU port or pyserial URL (backend mcu)")
    p.add_argument("--mcu-model-dir", default="", help="trained MCU encoder directory (backend mcu)")
    p.add_argument("--mcu-allow-random-model", action="store_true",
                   help="backend mcu without --mcu-model-dir: run the firmware's random built-in encoder "
                        "(tests the wiring; the report says random)")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default 2)")
    p.add_argument("--workload", choices=("auto", "natural", "oracle"), default="auto",
                   help="natural: the decoder's own masks; oracle: the decoder graph runs on every prompt "
                        "but answers with the annotated regions (cost of random-weight sets); auto "
                        "(default): oracle for random-weight sets, else natural")
    p.add_argument("--threshold", type=float, default=None, help="calibrated score threshold (default: the "
                                                                 "engine's)")
    p.add_argument("--max-absent", type=int, default=None,
                   help="at most this many absent-object commands per photo (default: all checked absent)")
    p.add_argument("--photos", nargs="*", help="only these photo file names")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default out/eval/<models>-<backend>-<mode>)")
    p.add_argument("--restart", action="store_true",
                   help="discard an earlier run in --out instead of resuming")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)

    p = subparsers.add_parser("coverage", description=_coverage.__doc__.splitlines()[0],
                              help="prompt coverage of fast and thorough mode on annotated photos")
    _data_args(p)
    p.add_argument("--sam-input", type=int, default=1024, help="SAM input side the prompts are placed for "
                                                               "(default 1024, MobileSAM's)")
    p.add_argument("--fast-grid", type=int, default=None, help="override fast mode's coverage grid")
    p.add_argument("--json", type=Path, help="write the full result (every object) here")
    p.add_argument("--markdown", type=Path, help="replace the section between the eval-coverage markers of "
                                                 "this Markdown file with the tables")
    p.set_defaults(func=_coverage)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--annotations", type=Path, default=None,
                   help="COCO instances JSON (default: the photos shipped with the package)")
    p.add_argument("--images", type=Path, default=None,
                   help="image directory (default: the JSON's directory)")


def _dataset(args: argparse.Namespace) -> Dataset:
    return Dataset(args.annotations or shipped_photos()[1], args.images)


def _command_line() -> str:
    return "tinyvlm " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["eval"] else ""


def _run(args: argparse.Namespace) -> int:
    """Run an engine on annotated photos and their commands; write report.md, summary.json and plots."""
    from tinyvlm_ros.backends import default_model_dir, make_engine
    from tinyvlm_ros.eval import commands as cmds
    from tinyvlm_ros.eval.metrics import summarise
    from tinyvlm_ros.eval.report import write_report
    from tinyvlm_ros.eval.run import evaluate
    from tinyvlm_ros.models.manifest import load_manifest

    ds = _dataset(args)
    if args.photos:
        missing = sorted(set(args.photos) - {i.file_name for i in ds.images})
        if missing:
            raise ValueError(f"--photos: {missing} not in {ds.annotations}")
        ds.images = [i for i in ds.images if i.file_name in args.photos]
    if args.commands:
        commands = cmds.load_commands(args.commands, ds)
    else:
        commands = {img.file_name: cmds.generate(img, max_absent=args.max_absent) for img in ds.images}
    models = args.models or default_model_dir()
    model_set = load_manifest(models, verify_hashes=False)
    engine = make_engine({"backend": args.backend, "model_dir": str(models), "mode": args.mode,
                          "threads": args.threads, "serial_port": args.serial_port,
                          "mcu_model_dir": args.mcu_model_dir,
                          "mcu_allow_random_model": args.mcu_allow_random_model})
    workload = args.workload
    if workload == "auto":
        workload = "oracle" if model_set.kind == "random" and args.backend == "local" else "natural"
    before_photo = None
    if workload == "oracle":
        before_photo = _install_oracle(engine, ds)
    out = args.out or Path("out") / "eval" / f"{model_set.name}-{args.backend}-{args.mode}"
    settings: Dict[str, Any] = {
        "annotations": str(Path(ds.annotations).resolve()), "models": model_set.name,
        "model_dir": str(Path(models).resolve()),
        "kind": _kind(args, model_set.kind),
        "mode": args.mode, "backend": args.backend, "workload": workload, "score_threshold": args.threshold,
        "engine": {k: str(v) for k, v in engine.describe().items()}, "command_line": _command_line()}
    try:
        records = evaluate(ds, engine, commands, out, settings=settings, score_threshold=args.threshold,
                           restart=args.restart, progress=not args.quiet, log=print,
                           before_photo=before_photo)
    finally:
        close = getattr(engine, "close", None)
        if callable(close):
            close()
    # the first run's settings (a resumed run keeps them), with this invocation's command line
    settings = {**json.loads((out / "run.json").read_text()), "command_line": settings["command_line"]}
    summary = summarise(ds, records)
    report = write_report(settings, summary, out)
    print(report.read_text().splitlines()[0])
    hr = summary["hit_rate"]
    print(f"hit rate plain {hr.get('plain')}, qualified {hr.get('qualified')}, absent {hr.get('absent')}; "
          f"frame p50 {summary['latency_s']['frame_p50']} s; report: {report}")
    return 0


def _kind(args: argparse.Namespace, set_kind: str) -> str:
    """Kind of what runs: the model set's, or for the MCU "mcu+" the weakest of its encoder and text tower."""
    if args.backend == "local":
        return set_kind
    if not args.mcu_model_dir:
        return "mcu+random"  # the firmware's built-in encoder has random weights
    # a trained MCU encoder is as good as the teacher set it was distilled from and matched against
    return f"mcu+{set_kind}"


def _install_oracle(engine: Any, ds: Dataset):
    """Make the local engine's decoder answer with each photo's annotated regions; return the photo hook."""
    from tinyvlm_ros.eval.oracle import attach, photo_regions

    seg = getattr(engine, "segmenter", None)
    if seg is None:
        raise ValueError("--workload oracle needs the local engine (the oracle replaces its SAM decoder)")
    oracle = attach(seg)

    def before_photo(img, rgb) -> None:
        oracle.set_frame(*photo_regions(rgb, [ds.mask(o.ann_id) for o in img.objects]))

    return before_photo


def coverage_markdown(result: Dict[str, Any], command: str) -> str:
    """Tables of a coverage result: per size class and per photo, with the command that made them."""
    s = result["summary"]
    lines = [f"Measured by `{command}` (SAM input {result['input_size']}; the oracle decoder answers every "
             "prompt with the annotated object under it, see below).", "",
             "| objects | count | fast: prompt inside | thorough (16x16 grid): prompt inside "
             "| fast: mask proposed | thorough: mask proposed |", "|---|---:|---:|---:|---:|---:|"]
    for size in SIZE_CLASSES + ("all",):
        f, t = s["fast"][size], s["thorough"][size]
        if not f["objects"]:
            continue

        def pct(v: Optional[float]) -> str:
            return "n/a" if v is None else f"{100 * v:.1f} %"

        lines.append(f"| {size} | {f['objects']} | {pct(f['covered_frac'])} ({f['covered']}) "
                     f"| {pct(t['covered_frac'])} ({t['covered']}) | {pct(f['proposed_frac'])} "
                     f"| {pct(t['proposed_frac'])} |")
    lines += ["", "| photo | objects | fast prompts | fast masks | thorough prompts | thorough masks |",
              "|---|---:|---:|---:|---:|---:|"]
    for r in result["photos"]:
        lines.append(f"| {r['image']} | {r['objects']} | {r['fast_prompts']} | {r['fast_masks']} "
                     f"| {r['thorough_prompts']} | {r['thorough_masks']} |")
    for mode in ("fast", "thorough"):
        missed = s[mode]["all"]["missed"]
        lines += ["", f"{mode.capitalize()} mode puts no prompt on: {', '.join(missed) or 'none'}."]
    return "\n".join(lines) + "\n"


def replace_section(path: Path, start: str, end: str, body: str) -> None:
    """Replace the text between two marker lines of a Markdown file (appending them if absent)."""
    text = path.read_text() if path.is_file() else ""
    block = f"{start}\n{body}{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _coverage(args: argparse.Namespace) -> int:
    """Measure whether fast and thorough mode put a decoder prompt on each annotated object (no weights)."""
    from tinyvlm_ros.eval.coverage import measure

    ds = _dataset(args)
    opts = {"fast_grid": args.fast_grid} if args.fast_grid else None
    result = measure(ds, input_size=args.sam_input, segmenter_options=opts, progress=print)
    s = result["summary"]
    for size in SIZE_CLASSES + ("all",):
        f, t = s["fast"][size], s["thorough"][size]
        print(f"{size:6s} objects {f['objects']:3d}  covered: fast {f['covered']:3d}, "
              f"thorough {t['covered']:3d}")
    command = _command_line() or "tinyvlm eval coverage"
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**result, "command": command}, indent=1) + "\n")
    if args.markdown:
        replace_section(args.markdown, COVERAGE_START, COVERAGE_END, coverage_markdown(result, command))
        print(f"updated {args.markdown}")
    return 0
