"""``tinyvlm bench pipeline``: reference recipe vs fast mode, numbers to stdout and JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tinyvlm_ros.bench.pipeline import WORKLOADS, run_pipeline_benchmark
from tinyvlm_ros.models.registry import default_model_set_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pipeline`` to the ``bench`` subcommands."""
    p = subparsers.add_parser("pipeline", help="time thorough (reference recipe) vs fast on 640x480 frames")
    p.add_argument("--models", type=Path, default=None,
                   help=f"model-set directory (default {default_model_set_dir()})")
    p.add_argument("--frames", type=int, default=8, help="timed frames per mode (default 8)")
    p.add_argument("--workload", choices=WORKLOADS, default="auto",
                   help="realistic: region masks in place of the decoder's output values, so random "
                        "weights give the reference recipe's 20-40 masks per frame; natural: the decoder's "
                        "own masks; auto (default): realistic for random-weight sets")
    p.add_argument("--regions", type=int, default=24,
                   help="regions per frame, realistic workload (default 24)")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads per session (default 2)")
    p.add_argument("--json", type=Path, required=True, help="write the report here")
    p.set_defaults(func=_cmd_pipeline)


def _cmd_pipeline(args: argparse.Namespace) -> int:
    models = args.models or default_model_set_dir()
    report = run_pipeline_benchmark(models, frames=args.frames, workload=args.workload, regions=args.regions,
                                    threads=args.threads, log=lambda s: print(s, file=sys.stderr, flush=True))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    for name in ("reference", "fast"):
        r = report.get(name)
        if r:
            print(f"{name:9s} p50 {r['p50_s']:.3f} s  p95 {r['p95_s']:.3f} s  cpu {r['cpu_p50_s']:.2f} s  "
                  f"{r['decoder_calls']:.1f} decoder prompts  {r['crops']:.1f} crops per frame")
    if "speedup_p50" in report:
        print(f"speedup   {report['speedup_p50']:.1f}x (p50)")
    print(f"requery   p50 {report['requery_p50_s'] * 1000:.1f} ms (new phrase), "
          f"{report['requery_cached_text_p50_s'] * 1000:.1f} ms (cached text)")
    fast_rss = report["peak_rss_mb"]
    print(f"peak RSS  {fast_rss if fast_rss is None else round(fast_rss)} MB fast mode alone, "
          f"{report['peak_rss_mb_process']:.0f} MB this process (both modes)")
    print(f"models    {report['models']['models']} ({report['models']['kind']}), workload "
          f"{report['workload']['name']}")
    print(f"report    {args.json}")
    return 0
