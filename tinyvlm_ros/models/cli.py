"""``tinyvlm models``: list, fetch, export, convert-checkpoint and make-test.

Only argument wiring lives here; torch and open_clip are imported inside the
export functions, so ``list`` and ``fetch`` work with the runtime alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinyvlm_ros.models import registry


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` subcommands to ``subparsers``."""
    p = subparsers.add_parser("list", help="list known checkpoints and whether they are cached")
    p.add_argument("--cache", type=Path, help="cache directory (default $TINYVLM_MODELS or "
                   "~/.cache/tinyvlm_ros)")
    p.set_defaults(func=_cmd_list)

    p = subparsers.add_parser("fetch", help="download checkpoints with checksums and progress bars")
    p.add_argument("names", nargs="*", help="registry names or aliases (default: all), e.g. 61m-32 mobilesam")
    p.add_argument("--cache", type=Path, help="cache directory")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per connect/read (default 30)")
    p.add_argument("--mirror", help="base URL serving the checkpoint files by name (local mirror)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_fetch)

    p = subparsers.add_parser("export", help="export MobileSAM + TinyCLIP checkpoints to an ONNX model set "
                              "(needs torch, open_clip_torch, segment-anything)")
    p.add_argument("--sam", type=Path, required=True, help="MobileSAM checkpoint (mobile_sam.pt)")
    p.add_argument("--clip", default="61m-32", help="TinyCLIP variant: 8m-16, 39m-16, 61m-32 (default)")
    p.add_argument("--clip-ckpt", type=Path, required=True, help="TinyCLIP checkpoint (.pt)")
    p.add_argument("--out", type=Path, required=True, help="output model-set directory")
    p.add_argument("--sam-input", type=int, default=1024, choices=(1024, 512),
                   help="SAM encoder input size S (default 1024)")
    p.add_argument("--int8", action="store_true",
                   help="also write int8 decoder and CLIP visual graphs; each is used only when it agrees "
                   "with fp32 on calibration images (the manifest records the agreement)")
    p.add_argument("--calibration", type=Path,
                   help="with --int8: directory of PNG/JPEG photos like your robot's to measure int8 on "
                   "(default: the package's photos, else generated scenes)")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX-vs-torch output check")
    p.set_defaults(func=_cmd_export)

    p = subparsers.add_parser("convert-checkpoint", help="write a tensors-only copy of a training checkpoint "
                              "that pickles Python objects (needs torch)")
    p.add_argument("src", type=Path, help="checkpoint to read (e.g. a TinyCLIP epoch_N.pt)")
    p.add_argument("dst", type=Path, help="tensors-only checkpoint to write (then give it to export)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow unpickling SRC: it runs the code the file names, so only for a file "
                   "whose origin you trust")
    p.set_defaults(func=_cmd_convert_checkpoint)

    p = subparsers.add_parser("make-test", help="write test model sets: known-answer (default) or "
                              "--random real architectures")
    p.add_argument("out", type=Path, help="output model-set directory")
    p.add_argument("--random", action="store_true",
                   help="real MobileSAM/TinyCLIP architectures with random weights (needs torch)")
    p.add_argument("--clip", default="61m-32", help="TinyCLIP variant for --random (default 61m-32)")
    p.add_argument("--sam-input", type=int, default=1024, choices=(1024, 512),
                   help="SAM encoder input size for --random (default 1024)")
    p.add_argument("--int8", action="store_true", help="with --random: also write int8 graphs")
    p.add_argument("--seed", type=int, default=0, help="random seed for --random")
    p.set_defaults(func=_cmd_make_test)


def _cmd_list(args: argparse.Namespace) -> int:
    for spec in registry.MODELS.values():
        path = registry.checkpoint_path(spec, args.cache)
        state = "cached " if path.exists() else "missing"
        print(f"{spec.name:17s} {state} ~{spec.approx_mb:5.0f} MB  {spec.description}")
        print(f"{'':17s} {path}")
    print(f"cache: {registry.cache_dir(args.cache)}  (override with --cache or ${registry.CACHE_ENV})")
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from tinyvlm_ros.models import fetch

    specs = registry.resolve_many(args.names)
    outcomes = fetch.fetch(specs, args.cache, timeout=args.timeout, progress=not args.quiet,
                           mirror=args.mirror)
    fetch.print_outcomes(outcomes)
    report = fetch.missing_report(outcomes, args.cache)
    if report:
        print(report, file=sys.stderr)
        return 1
    return 0


def _import_export():
    """Import the exporter, turning a missing export extra into a user-facing error."""
    from tinyvlm_ros.models import export

    try:
        export.import_open_clip()
        export.import_segment_anything()
    except ImportError as exc:
        raise FileNotFoundError(f"{exc} (the export extra: pip install 'tinyvlm_ros[export]'; see "
                                "docs/models.md)") from exc
    return export


def _cmd_export(args: argparse.Namespace) -> int:
    export = _import_export()
    calibration = None
    if args.calibration is not None:
        from tinyvlm_ros.models.int8_check import calibration_from_dir

        calibration = calibration_from_dir(args.calibration)
    out = export.export_model_set(args.out, sam_ckpt=args.sam, clip=args.clip, clip_ckpt=args.clip_ckpt,
                                  sam_input=args.sam_input, int8=args.int8, check=not args.no_check,
                                  calibration=calibration)
    print(f"model set written to {out}")
    return 0


def _cmd_convert_checkpoint(args: argparse.Namespace) -> int:
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise FileNotFoundError("convert-checkpoint needs torch (the export extra: pip install "
                                "'tinyvlm_ros[export]')") from exc
    from tinyvlm_ros.models.checkpoint import convert_checkpoint

    convert_checkpoint(args.src, args.dst, trust_pickle=args.trust_pickle)
    return 0


def _cmd_make_test(args: argparse.Namespace) -> int:
    if args.random:
        export = _import_export()
        out = export.export_model_set(args.out, clip=args.clip, sam_input=args.sam_input,
                                      int8=args.int8, random_seed=args.seed)
        print(f"random-weight model set written to {out}")
        return 0
    try:
        from tinyvlm_ros.testing.models import make_known_answer_set
    except ImportError as exc:
        raise FileNotFoundError(
            "the known-answer model generator (tinyvlm_ros/testing/models.py) is not in this "
            f"checkout ({exc}); merge the detector branch, or use `make-test DIR --random`") from exc
    out = make_known_answer_set(args.out)
    print(f"known-answer model set written to {out or args.out}")
    return 0
