"""``tinyvlm bench make-bag`` and ``tinyvlm bench bag``: known-answer bags and bag replay benchmarks."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, Optional

from tinyvlm_ros.bench import bagio


def register(subparsers: Any) -> None:
    """Add ``make-bag`` and ``bag`` to the ``bench`` group."""
    p = subparsers.add_parser("make-bag", help="write a ROS 2 bag of generated scenes with ground truth",
                              description=_make_bag_doc())
    p.add_argument("out", type=Path, help="bag directory to create (must not exist)")
    p.add_argument("--storage", choices=bagio.STORAGES, default="mcap", help="bag storage (default mcap)")
    p.add_argument("--compressed", action="store_true", help="CompressedImage (jpeg) instead of raw Image")
    p.add_argument("--frames", type=int, help="number of frames (default 30; a sequence's own length)")
    p.add_argument("--rate", type=float, default=10.0, help="frame rate of the stamps in Hz (default 10)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    p.add_argument("--command", default="pick the red block", help="text on /command (default %(default)r)")
    p.add_argument("--size", default="640x480", help="frame size WxH (default 640x480)")
    p.add_argument("--encoding", choices=("rgb8", "bgr8", "mono8"), default="rgb8",
                   help="raw image encoding (default rgb8)")
    p.add_argument("--sequence", help="write a generated moving sequence instead (slide, cross, occlude, "
                   "pan: 640x480 at 30 Hz, its own command, identities in the ground truth); --frames cuts "
                   "it short, --rate/--seed/--size/--command do not apply")
    p.set_defaults(func=_cmd_make_bag)

    p = subparsers.add_parser("bag", help="replay a bag through the detector (offline or live) and report",
                              description="Replay a ROS 2 bag (sqlite3 or mcap, Image or CompressedImage) "
                              "through the detector and write summary.json, frames.csv, report.md, plots and "
                              "an output bag with the detections added on /tinyvlm/detections.")
    p.add_argument("bag", type=Path, help="bag directory, .db3 or .mcap file")
    p.add_argument("-c", "--command", help="command for every frame (default: the bag's /command)")
    p.add_argument("--image-topic", help="image topic (default: the bag's only image topic)")
    p.add_argument("--models", type=Path, help="model set directory (default: the cached default set)")
    p.add_argument("--mode", choices=("fast", "thorough"), default="fast", help="engine mode (default fast)")
    p.add_argument("--score-threshold", type=float, help="drop detections below this score")
    p.add_argument("--max-detections", type=int, help="at most this many detections per frame")
    p.add_argument("--live", action="store_true",
                   help="play the bag over DDS into a running detect_node and record its detections")
    p.add_argument("--rate", type=float, help="live: play at this frame rate instead of the recorded one")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--node-pid", type=int, help="live: pid of detect_node, to report its CPU and RSS")
    p.add_argument("--wait-node", type=float, default=20.0,
                   help="live: seconds to wait for detect_node's subscriptions (default 20)")
    p.add_argument("--publish-topic", help="live: publish images here (default: the bag's image topic)")
    p.add_argument("--command-topic", default="/command",
                   help="live: the node's command topic (default /command)")
    p.add_argument("--detections-topic", default="/detections",
                   help="live: the node's detections topic (default /detections)")
    p.add_argument("--answer-timeout", type=float, default=10.0,
                   help="live: a frame unanswered after this many seconds counts as dropped (default 10)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--no-bag", action="store_true", help="do not write the output bag")
    t = p.add_argument_group("tracking (--tracking)", "keyframe detection + tracking between keyframes, the "
                             "node's tracking:=true; report ids, detected vs tracked frames, MOTA/IDF1")
    t.add_argument("--tracking", action="store_true",
                   help="offline: run the tracking loop with the engine on keyframes; live: the node must "
                   "run with tracking:=true")
    t.add_argument("--engine-latency", type=float,
                   help="offline: engine answers come this many seconds after their frame (default: each "
                   "call's measured time)")
    t.add_argument("--keyframe-period", type=float, help="offline: tracking_keyframe_period_s (default 1.0)")
    t.add_argument("--max-track-age", type=float, help="offline: tracking_max_track_age_s (default 1.0)")
    t.add_argument("--reverify-period", type=float, help="offline: tracking_reverify_period_s (default 0)")
    t.add_argument("--tracker", help="offline: tracking_tracker (default flow)")
    t.add_argument("--target-identity", type=int,
                   help="ground-truth identity of the target (default: the object detection 0 first "
                   "lands on)")
    p.set_defaults(func=_cmd_bag)


def _make_bag_doc() -> str:
    return ("Write a ROS 2 bag of generated table-top scenes: images on /camera/image_raw (or "
            "/camera/image_raw/compressed), the command on /command and every object's exact box on "
            "/ground_truth (vision_msgs/Detection2DArray). Each frame holds a red block.")


def _parse_size(text: str) -> tuple:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 640x480, got {text!r}") from None
    return w, h


def _cmd_make_bag(args: argparse.Namespace) -> int:
    from tinyvlm_ros.bench.make_bag import make_bag, make_sequence_bag

    w, h = _parse_size(args.size)
    if args.out.exists():
        raise ValueError(f"{args.out} exists; make-bag writes a new bag")
    if args.sequence:
        from tinyvlm_ros.testing.sequences import sequence

        spec = sequence(args.sequence)
        frames = spec.frames if args.frames is None else min(args.frames, spec.frames)
        make_sequence_bag(args.out, args.sequence, storage=args.storage, compressed=args.compressed,
                          frames=frames, encoding=args.encoding)
        print(f"wrote {args.out} ({args.storage}, sequence {spec.name}: {frames} frames {spec.width}x"
              f"{spec.height} at {spec.rate_hz:g} Hz, command {spec.command!r}, ground truth with "
              "identities)")
        return 0
    args.frames = 30 if args.frames is None else args.frames
    make_bag(args.out, storage=args.storage, compressed=args.compressed, frames=args.frames, rate=args.rate,
             seed=args.seed, command=args.command, width=w, height=h, encoding=args.encoding)
    topic = bagio.TOPIC_IMAGE_COMPRESSED if args.compressed else bagio.TOPIC_IMAGE
    print(f"wrote {args.out} ({args.storage}, {args.frames} frames {w}x{h} at {args.rate:g} Hz on {topic}, "
          f"/command, /ground_truth)")
    return 0


def resolve_model_dir(models: Optional[Path]) -> Path:
    """Return the model set to use: ``--models``, else the cache's default set."""
    if models is not None:
        if not (Path(models) / "manifest.json").is_file():
            raise FileNotFoundError(f"{models} is not a model set (no manifest.json)")
        return Path(models)
    try:
        from tinyvlm_ros.models.registry import default_model_set_dir

        default = default_model_set_dir()
    except ImportError:
        default = None
    if default is not None and (default / "manifest.json").is_file():
        return default
    raise FileNotFoundError(f"no model set given and none at {default}; pass --models DIR "
                            "(a known-answer set from tinyvlm_ros.testing.models works too)")


def _make_engine(args: argparse.Namespace) -> Any:
    try:
        from tinyvlm_ros.engine.detector import Detector
    except ImportError as exc:
        raise ValueError(f"the host detector engine is not available ({exc})") from None
    return Detector.from_dir(resolve_model_dir(args.models), mode=args.mode)


def _cmd_bag(args: argparse.Namespace) -> int:
    command_line = "tinyvlm " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else ""
    tuning = {k: getattr(args, k) for k in ("engine_latency", "keyframe_period", "max_track_age",
                                            "reverify_period", "tracker", "target_identity")}
    if not args.tracking and any(v is not None for v in tuning.values()):
        raise ValueError("--engine-latency, --keyframe-period, --max-track-age, --reverify-period, --tracker "
                         "and --target-identity go with --tracking")
    node_side = [v for k, v in tuning.items() if k != "target_identity"]
    if args.live and args.tracking and any(v is not None for v in node_side):
        raise ValueError("live: the node's parameters (tracking_keyframe_period_s ...) set its tracking; "
                         "only --target-identity applies to --live --tracking")
    if args.tracking and not args.live:
        from tinyvlm_ros.bench.bag import check_bag
        from tinyvlm_ros.bench.tracking_bag import run_offline_tracking
        from tinyvlm_ros.tracking import TrackingConfig

        if args.rate is not None:
            raise ValueError("--rate applies to --live replays; offline runs go as fast as the engine")
        config = TrackingConfig(**{name: getattr(args, arg) for arg, name in (
            ("keyframe_period", "keyframe_period_s"), ("max_track_age", "max_track_age_s"),
            ("reverify_period", "reverify_period_s"), ("tracker", "tracker"))
            if getattr(args, arg) is not None})
        check_bag(args.bag, args.image_topic, args.command)
        summary = run_offline_tracking(args.bag, args.out, _make_engine(args), config=config,
                                       engine_latency_s=args.engine_latency, command=args.command,
                                       image_topic=args.image_topic, max_frames=args.max_frames,
                                       score_threshold=args.score_threshold,
                                       max_detections=args.max_detections,
                                       target_identity=args.target_identity, write_bag=not args.no_bag,
                                       command_line=command_line)
        print(headline(summary, args.out))
        return 0
    if args.live:
        from tinyvlm_ros.bench.live import run_live

        summary = run_live(args.bag, args.out, command=args.command, image_topic=args.image_topic,
                           publish_topic=args.publish_topic, command_topic=args.command_topic,
                           detections_topic=args.detections_topic, answer_timeout_s=args.answer_timeout,
                           rate=args.rate, max_frames=args.max_frames, node_pid=args.node_pid,
                           wait_node_s=args.wait_node, write_bag=not args.no_bag, command_line=command_line,
                           tracking=args.tracking, target_identity=args.target_identity)
    else:
        if args.rate is not None:
            raise ValueError("--rate applies to --live replays; offline runs go as fast as the engine")
        from tinyvlm_ros.bench.bag import check_bag, run_offline

        # Bag problems are reported before the (slow) model load.
        check_bag(args.bag, args.image_topic, args.command)
        summary = run_offline(args.bag, args.out, _make_engine(args), command=args.command,
                              image_topic=args.image_topic,
                              max_frames=args.max_frames, score_threshold=args.score_threshold,
                              max_detections=args.max_detections, write_bag=not args.no_bag,
                              command_line=command_line)
    print(headline(summary, args.out))
    return 0


def headline(summary: Dict[str, Any], out_dir: Path) -> str:
    """Two lines a person reads at the end of a run, the model set's kind first."""
    from tinyvlm_ros.bench.bag_report import model_set_phrase

    lat = summary["latency_ms"]
    acc = ""
    if summary.get("recall") is not None or summary.get("precision") is not None:
        acc = (f", precision {_f(summary['precision'])}, recall {_f(summary['recall'])} "
               f"({_f(summary.get('recall_processed'))} on processed frames), "
               f"mean IoU {_f(summary['mean_iou'])}")
    trk = ""
    t = summary.get("tracking")
    if t:
        k, ident = t["frame_kinds"], t["identity"]
        mot = ident.get("mot") or {}
        trk = (f"\ntracking: {k['detected']} detected, {k['tracked']} tracked, {k['empty']} empty, "
               f"{k['dropped']} dropped frames; target stream {_f(t['target_rate_hz'], 1)} Hz; tracked-frame "
               f"latency p50 {_f(t['latency_ms']['tracked']['p50'], 1)} ms p95 "
               f"{_f(t['latency_ms']['tracked']['p95'], 1)} ms; target id switches "
               f"{ident['target_id_switches'] if ident['target_id_switches'] is not None else 'n/a'}, "
               f"ID switches {mot.get('num_switches', 'n/a')}, fragmentations "
               f"{mot.get('num_fragmentations', 'n/a')}, MOTA {_f(mot.get('mota'))}, "
               f"IDF1 {_f(mot.get('idf1'))}, "
               f"target IoU on tracked frames {_f(t['target_iou_median']['tracked'])}")
    return (f"{summary['mode']} with the {model_set_phrase(summary)}: "
            f"{summary['processed']}/{summary['frames']} frames processed, "
            f"{summary['dropped']} dropped, {summary['corrupt']} corrupt; latency p50 {_f(lat['p50'], 1)} ms "
            f"p95 {_f(lat['p95'], 1)} ms; {_f(summary['throughput_fps'], 1)} fps{acc}\n"
            f"report: {Path(out_dir) / 'report.md'}{trk}")


def _f(v: Optional[float], nd: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"
