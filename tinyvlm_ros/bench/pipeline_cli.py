"""``tinyvlm bench pipeline``: our modes (and the stock recipe) on real photos, numbers to stdout and JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tinyvlm_ros.bench.pipeline import OUR_MODES, run_pipeline_benchmark
from tinyvlm_ros.bench.workload import WORKLOADS
from tinyvlm_ros.models.registry import default_model_set_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pipeline`` and ``pipeline-report`` to the ``bench`` subcommands."""
    p = subparsers.add_parser("pipeline", help="time fast and thorough (and --peer: the stock PyTorch "
                              "recipe) on the shipped photos, interleaved")
    p.add_argument("--models", type=Path, default=None,
                   help=f"model-set directory (default {default_model_set_dir()})")
    p.add_argument("--frames", type=int, default=8, help="timed frames per mode (default 8)")
    p.add_argument("--workload", choices=WORKLOADS, default="photos",
                   help="photos (default): the shipped real photos, with their annotated regions in place of "
                        "the decoder's output values for random-weight sets; scenes: generated scenes (for "
                        "known-answer sets)")
    p.add_argument("--modes", default=",".join(OUR_MODES), help="our modes to time (default fast,thorough)")
    p.add_argument("--peer", action="store_true",
                   help="also time the stock recipe: segment-anything's automatic mask generator on "
                        "MobileSAM + open_clip TinyCLIP on every crop, in PyTorch (export extra, "
                        "random-weight sets)")
    p.add_argument("--peer-frames", type=int, default=None,
                   help="time the stock recipe on only the first N frames (it is slow; default all)")
    p.add_argument("--peer-points-per-side", type=int, default=16,
                   help="the stock recipe's point grid per side (default 16, as issue 13 measured it)")
    p.add_argument("--providers", default=None,
                   help="runtimes of our graphs in order of preference, e.g. openvino,cpu (default cpu)")
    p.add_argument("--decoder-window", type=int, default=None,
                   help="first window of the windowed decoder in embedding cells (0 = whole grid only)")
    p.add_argument("--no-agreement", action="store_true", help="skip the agreement measurements")
    p.add_argument("--no-rss", action="store_true", help="skip the per-mode peak RSS subprocesses")
    p.add_argument("--threads", type=int, default=2, help="threads per graph (default 2)")
    p.add_argument("--json", type=Path, required=True, help="write the report here")
    p.set_defaults(func=_cmd_pipeline)

    p = subparsers.add_parser("pipeline-report", help="write the pipeline section of a markdown file from "
                              "`bench pipeline` JSON reports")
    p.add_argument("reports", type=Path, nargs="+", help="JSON reports of `tinyvlm bench pipeline`")
    p.add_argument("--markdown", type=Path, required=True,
                   help="file to update between <!-- pipeline-bench:start --> and "
                        "<!-- pipeline-bench:end -->")
    p.add_argument("--command", action="append", default=[],
                   help="a command line that produced the reports, listed in the section (repeatable)")
    p.set_defaults(func=_cmd_report)


def _cmd_pipeline(args: argparse.Namespace) -> int:
    models = args.models or default_model_set_dir()
    modes = tuple(m.strip() for m in args.modes.split(",") if m.strip())
    report = run_pipeline_benchmark(models, frames=args.frames, workload=args.workload, threads=args.threads,
                                    modes=modes, peer=args.peer, peer_frames=args.peer_frames,
                                    providers=args.providers, decoder_window=args.decoder_window,
                                    peer_points_per_side=args.peer_points_per_side,
                                    rss_subprocess=not args.no_rss, agreement=not args.no_agreement,
                                    log=lambda s: print(s, file=sys.stderr, flush=True))
    report["command"] = " ".join(["tinyvlm"] + sys.argv[1:])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    m = report["models"]
    print(f"models    {m['kind'].upper()} set {m['models']} ({m['runtimes']})"
          + ("; random weights: decoder outputs are the photos' annotated regions" if m["kind"] == "random"
             else ""))
    for name in modes + (("peer",) if "peer" in report else ()):
        r = report[name]
        print(f"{name:9s} p50 {r['p50_s']:.3f} s  p95 {r['p95_s']:.3f} s  cpu {r['cpu_p50_s']:.2f} s  "
              f"{r['decoder_calls']:.1f} decoder prompts  {r['masks']:.1f} masks  "
              f"{r['crops']:.1f} crops per frame")
    for key, value in report["ratios"].items():
        print(f"ratio     {key}: {value}x")
    print(f"requery   p50 {report['requery_p50_s'] * 1000:.1f} ms (new phrase), "
          f"{report['requery_cached_text_p50_s'] * 1000:.1f} ms (cached text)")
    for mode, mb in (report.get("peak_rss_mb") or {}).items():
        print(f"peak RSS  {mode} alone: {mb if mb is None else round(mb)} MB")
    print(f"load      {report['machine']['load_avg']}")
    print(f"report    {args.json}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from tinyvlm_ros.bench.pipeline_report import update_markdown

    reports = [json.loads(p.read_text()) for p in args.reports]
    update_markdown(args.markdown, reports, [str(p) for p in args.reports], args.command)
    print(f"wrote the pipeline section of {args.markdown}")
    return 0
