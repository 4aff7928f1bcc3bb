"""``tinyvlm detect IMAGE -c "pick the pen"``: run the host detector on one image, print JSON.

The JSON says how the command was understood (``understood``, ``not_understood``,
``warnings``, ``destination``), the detections (detection 0 = the chosen target,
``role`` "target" or "candidate") and ``failure`` when the command cannot be
grounded in the image; the same lines go to stderr for a person reading along.
Exit code: 0 done (also when nothing was found), 1 the command cannot be grounded in
this image (``failure``), 2 a usage error (bad image, models, or a command that
names no object).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

import cv2

from tinyvlm_ros.grounding import ParsedCommand
from tinyvlm_ros.types import DetectionResult


def register(subparsers: "argparse._SubParsersAction") -> None:
    """Add the top-level ``detect`` subcommand."""
    p = subparsers.add_parser("detect", help="detect a command's targets in an image (prints JSON)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("image", help="image file (PNG, JPEG, ...)")
    p.add_argument("-c", "--command", required=True, help='what to find, e.g. "pick the pen"')
    p.add_argument("--models", default=None,
                   help="model set directory (default: the cache's default set, see `tinyvlm models list`)")
    p.add_argument("--mode", choices=("fast", "thorough"), default="fast",
                   help="fast (default) or thorough (the reference recipe)")
    p.add_argument("--out", default=None, help="write an annotated PNG here")
    p.add_argument("--threshold", type=float, default=None, help="calibrated score threshold in [0, 1]")
    p.add_argument("--max", type=int, default=None, dest="max_detections", help="most detections")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads (default 2)")
    p.add_argument("--matryoshka-dim", type=int, default=None, help="CLIP embedding prefix length")
    p.add_argument("--providers", default=None,
                   help="runtimes in order of preference: cpu (default), openvino, openvino-bf16, cuda, "
                        "tensorrt, coreml (comma-separated; cpu is the fallback)")
    p.add_argument("--decoder-window", type=int, default=None,
                   help="first window of the windowed SAM decoder in embedding cells (default 16; "
                        "0 = whole grid)")
    p.set_defaults(func=run)


#: How each kind of model set is named on the line ``tinyvlm detect`` prints first (manifest ``kind``).
_KIND_NOTE = {
    "real": "REAL",
    "random": "RANDOM-WEIGHT (detections are meaningless; for timing only)",
    "known-answer": "KNOWN-ANSWER (generated test models: colour and shape words only)",
}


def _warn_unknown_words(targets: Sequence[str]) -> None:
    """Say which target words a known-answer set cannot match, instead of a silent empty answer."""
    from tinyvlm_ros.testing.models import COLOUR_NAMES, SHAPE_WORDS, unknown_words

    unknown = [w for phrase in targets for w in unknown_words(phrase)]
    if unknown:
        shapes = [w for words in SHAPE_WORDS.values() for w in words]
        print(f"tinyvlm detect: warning: outside the known-answer vocabulary: "
              f"{', '.join(repr(w) for w in unknown)}; a phrase with such a word matches nothing. These "
              f"models know colours "
              f"({', '.join(COLOUR_NAMES)}) and shapes ({', '.join(shapes)}).", file=sys.stderr)


def result_to_dict(result: DetectionResult) -> dict:
    """JSON-ready view of a result (masks summarised by their pixel count)."""
    return {
        "targets": list(result.targets),
        "failure": result.failure,
        "detections": [
            {"label": d.label, "role": d.role, "score": round(float(d.score), 4),
             "box_xyxy": [round(float(v), 1) for v in d.box_xyxy], "target_index": int(d.target_index),
             "mask_pixels": int(d.mask.sum()) if d.mask is not None else None}
            for d in result.detections],
        "timings": {k: round(float(v), 4) for k, v in result.timings.items()},
        "work": {k: int(v) for k, v in result.work.items()},
    }


def understanding_to_dict(parsed: ParsedCommand) -> dict:
    """JSON-ready view of how a command was understood."""
    d = parsed.to_dict()
    return {"understood": d["understood"], "not_understood": d["not_understood"], "warnings": d["warnings"],
            "destination": d["destination"], "reference": d["reference"], "parsed_targets": d["targets"]}


def report_understanding(parsed: ParsedCommand, result: DetectionResult, err=None) -> None:
    """One line each for a person: what was understood, not understood, warnings, the failure."""
    import sys

    err = sys.stderr if err is None else err
    err.write(f"understood: {parsed.understood}\n")
    if parsed.not_understood:
        err.write(f"not understood: {', '.join(repr(w) for w in parsed.not_understood)}\n")
    for w in parsed.warnings:
        err.write(f"warning: {w}\n")
    if result.failure:
        err.write(f"failure: {result.failure}\n")


def run(args: argparse.Namespace, out=None) -> int:
    """Entry point of ``tinyvlm detect``; returns the exit code."""
    from tinyvlm_ros.engine.detector import Detector  # keeps `tinyvlm --help` fast

    from tinyvlm_ros.annotate import draw
    from tinyvlm_ros.backends import default_model_dir
    from tinyvlm_ros.grounding import parse_command
    from tinyvlm_ros.imaging import read_image_file

    # --models, else the cache's default set (as the node does)
    models = args.models or str(default_model_dir())
    parsed = parse_command(args.command)  # a command that names nothing fails before models load
    image = read_image_file(args.image)
    extra = {} if args.decoder_window is None else {"decoder_window": args.decoder_window}
    det = Detector.from_dir(models, mode=args.mode, threads=args.threads, matryoshka_dim=args.matryoshka_dim,
                            providers=args.providers, **extra)
    result = det.detect(image, parsed, score_threshold=args.threshold,
                        max_detections=args.max_detections, return_masks=bool(args.out))
    info = det.describe()
    print(f"tinyvlm detect: {_KIND_NOTE.get(info['kind'], info['kind'])} model set {info['models']} "
          f"({info['model_dir']})", file=sys.stderr)
    if info["kind"] == "known-answer":
        _warn_unknown_words(result.targets)
    doc = {"image": str(args.image), "command": args.command, "mode": args.mode,
           "models": info["models"], "model_kind": info["kind"], "runtimes": info["runtimes"],
           **understanding_to_dict(parsed), **result_to_dict(result)}
    report_understanding(parsed, result)
    if args.out:
        rgb = draw(image, result.detections)
        if not cv2.imwrite(str(args.out), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise ValueError(f"cannot write annotated image to {args.out}")
        doc["annotated"] = str(args.out)
    text = json.dumps(doc, indent=2)
    if out is None:
        print(text)
    else:
        out.write(text + "\n")
    return 1 if result.failure else 0
