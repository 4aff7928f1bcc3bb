"""``tinyvlm models``: list, fetch, export, convert-checkpoint and make-test.

Only argument wiring lives here; torch and open_clip are imported inside the
export functions, so ``list`` and ``fetch`` work with the runtime alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tinyvlm_ros.models import manifest, registry

#: What ``tinyvlm models --help`` says above the subcommands.
GROUP_DESCRIPTION = f"""\
Get the model set the detector runs (ONNX graphs + manifest.json in a directory).

The default set, {registry.DEFAULT_SET_NAME}, is what detect_node, `tinyvlm detect` and
`tinyvlm bench` load when no model directory is given:
  tinyvlm models fetch           download its checkpoints: {", ".join(registry.DEFAULT_SET_NAME.split("+"))}
  tinyvlm models export --int8   turn them into the ONNX set in the cache (needs the export extra)
  tinyvlm models list            what is cached: checkpoints, and each model set with its kind
  tinyvlm models convert-checkpoint SRC DST --trust-pickle   a training checkpoint that pickles objects
Without downloads (tests, demos, timing):
  tinyvlm models make-test DIR            known-answer models (colour/shape words)
  tinyvlm models make-test DIR --random   the real architectures with random weights
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` subcommands to ``subparsers``."""
    p = subparsers.add_parser("list", help="list the known checkpoints, whether each is cached, and the "
                              "cache's model sets")
    p.add_argument("--cache", type=Path, help="cache directory (default $TINYVLM_MODELS or "
                   "~/.cache/tinyvlm_ros)")
    p.set_defaults(func=_cmd_list)

    p = subparsers.add_parser("fetch", help="download the default set's checkpoints (or NAMES, or all) "
                              "into the cache, checksummed and resumable")
    p.add_argument("names", nargs="*", help="registry names or aliases, e.g. 61m-32 mobilesam, or `all` "
                   f"(default: the default set {registry.DEFAULT_SET_NAME})")
    p.add_argument("--cache", type=Path, help="cache directory")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per connect/read (default 30)")
    p.add_argument("--mirror", help="base URL serving the checkpoint files by name (local mirror)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_fetch)

    p = subparsers.add_parser("export", help="turn the MobileSAM + TinyCLIP checkpoints into an ONNX model "
                              "set (needs the export extra: torch, open_clip_torch, segment-anything)")
    p.add_argument("--sam", type=Path, help="MobileSAM checkpoint (default: the cache's mobile_sam.pt)")
    p.add_argument("--clip", default="61m-32", help="TinyCLIP variant: 8m-16, 39m-16, 61m-32 (default)")
    p.add_argument("--clip-ckpt", type=Path, help="TinyCLIP checkpoint (default: the cache's, for --clip)")
    p.add_argument("--cache", type=Path, help="cache the defaults come from")
    p.add_argument("--out", type=Path, help="output model-set directory (default: the cache's "
                   "sets/mobilesam+tinyclip-<clip>, the default set for 61m-32)")
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

    p = subparsers.add_parser("make-test", help="write a model set without downloads: known-answer "
                              "(default) or --random weights in the real architectures")
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
    default = registry.default_model_set_dir(args.cache)
    sets = sorted(p.parent for p in default.parent.glob(f"*/{manifest.MANIFEST_NAME}"))
    for root in sets:
        try:
            kind = manifest.load_manifest(root, verify_hashes=False).kind
        except (ValueError, FileNotFoundError) as exc:
            kind = f"unusable: {exc}"
        print(f"model set {root.name}: {kind}{'  (the default set)' if root == default else ''}")
    if default not in sets:
        print(f"default set {default}: not there yet "
              "(`tinyvlm models fetch`, then `tinyvlm models export --int8`)")
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from tinyvlm_ros.models import fetch

    specs = registry.resolve_many(args.names)
    if not args.names:
        print(f"fetching the default model set {registry.DEFAULT_SET_NAME} (the one detect_node and "
              f"`tinyvlm detect` load): {', '.join(s.name for s in specs)}, "
              f"~{sum(s.approx_mb for s in specs):.0f} MB; name models or `all` for others", flush=True)
    outcomes = fetch.fetch(specs, args.cache, timeout=args.timeout, progress=not args.quiet,
                           mirror=args.mirror)
    fetch.print_outcomes(outcomes)
    report = fetch.missing_report(outcomes, args.cache)
    if report:
        print(report, file=sys.stderr)
        return 1
    clip = fetch.export_clip(specs)
    print("next, export the ONNX model set (needs the export extra: pip install -e '.[export]'):")
    print("\n".join(fetch.export_command(clip, args.cache)))
    if registry.set_name(clip) == registry.DEFAULT_SET_NAME:
        print("  (the default set: detect_node and `tinyvlm detect` then find it without a model_dir)")
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
    clip = registry.resolve(args.clip)
    if clip.family != "clip":
        raise ValueError(f"--clip must name a TinyCLIP model, got {args.clip!r}")
    sam = args.sam or registry.checkpoint_path(registry.MODELS["mobilesam"], args.cache)
    clip_ckpt = args.clip_ckpt or registry.checkpoint_path(clip, args.cache)
    out_dir = args.out or registry.model_set_dir(clip, args.cache)
    for ckpt in (sam, clip_ckpt):
        if not Path(ckpt).is_file():
            raise FileNotFoundError(f"checkpoint {ckpt} not found; `tinyvlm models fetch` downloads the "
                                    "default set's, or pass --sam / --clip-ckpt")
    export = _import_export()
    calibration = None
    if args.calibration is not None:
        from tinyvlm_ros.models.int8_check import calibration_from_dir

        calibration = calibration_from_dir(args.calibration)
    out = export.export_model_set(out_dir, sam_ckpt=sam, clip=args.clip, clip_ckpt=clip_ckpt,
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
    from tinyvlm_ros.testing.models import make_known_answer_set

    out = make_known_answer_set(args.out)
    print(f"known-answer model set written to {out or args.out}")
    return 0
