"""``tinyvlm ros command|detect|echo``: drive a running detect_node without the ROS 2 command line.

They do what ``ros2 topic pub /command``, ``ros2 service call /detect_node/detect`` and ``ros2 topic
echo /detections`` do, for environments (like the one ``make`` builds) that have rclpy but no ``ros2``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from typing import Any

if importlib.util.find_spec("rclpy") is None:
    # the CLI leaves the group out and shows this in `tinyvlm --help`
    raise ImportError("needs ROS 2's rclpy: source tools/ros_env/env.sh (after `make setup`) or "
                      "/opt/ros/jazzy/setup.bash", name="rclpy")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``ros`` subcommands to ``subparsers``."""
    p = subparsers.add_parser(
        "command", help="set detect_node's standing command (as `ros2 topic pub --once /command ...`)",
        description="Publish a command on detect_node's command topic once the node listens, then print "
                    "the targets it parsed (from its ~/status). An empty text clears the command.")
    p.add_argument("text", help='e.g. "pick the red block"; "" clears the standing command')
    p.add_argument("--topic", default="/command", help="command topic (default /command)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for the node and its answer (default 10)")
    p.set_defaults(func=_cmd_command)

    p = subparsers.add_parser(
        "detect", help="call detect_node's Detect service and print the answer as JSON",
        description="Run one command on one image through detect_node's ~/detect service "
                    "(as `ros2 service call /detect_node/detect tinyvlm_ros/srv/Detect ...`).")
    p.add_argument("text", help='what to find, e.g. "take the scissors"')
    p.add_argument("--image", help="image file to send (default: the latest frame the node received)")
    p.add_argument("--service", default="/detect_node/detect",
                   help="service name (default /detect_node/detect; <namespace>/<node>/detect)")
    p.add_argument("--min-score", type=float, default=0.0, help="score threshold (0: the node's parameter)")
    p.add_argument("--max", type=int, default=0, dest="max_results",
                   help="most detections (0: the node's parameter)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for the service and for its answer (default 30)")
    p.set_defaults(func=_cmd_detect)

    p = subparsers.add_parser(
        "echo", help="print detect_node's detections as they arrive (as `ros2 topic echo /detections`)",
        description="Print each vision_msgs/Detection2DArray on the detections topic: one line per message, "
                    "or one JSON object per line with --json.")
    p.add_argument("--topic", default="/detections", help="detections topic (default /detections)")
    p.add_argument("--count", type=int, default=0, help="stop after N messages (default 0: until Ctrl-C)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="give up after this many seconds without a publisher or a message (default 30)")
    p.add_argument("--json", action="store_true", help="one JSON object per message")
    p.set_defaults(func=_cmd_echo)


def _cmd_command(args: argparse.Namespace) -> int:
    from tinyvlm_ros.ros import client

    with client.client_node("tinyvlm_command") as (node, executor):
        out = client.send_command(node, executor, args.text, topic=args.topic, timeout_s=args.timeout)
    what = f"{args.text!r}" if args.text.strip() else "an empty command (clears the standing one)"
    print(f"sent {what} on {out['topic']} to {', '.join(out['nodes'])}"
          + ("" if out["acked"] else f" (not acknowledged within {args.timeout:g} s)"))
    status = out["status"]
    if status is None:
        print(f"no status from the node within {args.timeout:g} s; check its log")
        return 0
    if status["command_error"] and not status["command"]:
        print(f"refused: {status['command_error']}")
        return 1
    if args.text.strip():
        print(f"standing command {status['command']!r}; targets: {', '.join(status['targets'])}")
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    from tinyvlm_ros.ros import client

    image = None
    if args.image:
        from std_msgs.msg import Header

        from tinyvlm_ros.imaging import read_image_file
        from tinyvlm_ros.ros.convert import rgb_to_image_msg

        image = rgb_to_image_msg(read_image_file(args.image), Header(frame_id="tinyvlm_cli"))
    with client.client_node("tinyvlm_detect") as (node, executor):
        response = client.call_detect(node, executor, args.text, service=args.service, image=image,
                                      min_score=args.min_score, max_results=args.max_results,
                                      timeout_s=args.timeout)
    print(json.dumps(client.response_to_dict(response), indent=2))
    return 0 if response.success else 1


def _cmd_echo(args: argparse.Namespace) -> int:
    from tinyvlm_ros.ros import client

    def show(msg: Any) -> None:
        stamp = f"{msg.header.stamp.sec}.{msg.header.stamp.nanosec:09d}"
        dets = client.detections_to_dicts(msg)
        if args.json:
            print(json.dumps({"stamp": stamp, "frame_id": msg.header.frame_id, "detections": dets}))
        else:
            objs = "; ".join(f"{d['id']} {d['label']} {d['score']:.2f} "
                             f"[{', '.join(f'{v:.0f}' for v in d['box_xyxy'])}]" for d in dets)
            print(f"{stamp} {msg.header.frame_id}: {len(dets)} detection(s){': ' + objs if objs else ''}")
        sys.stdout.flush()

    with client.client_node("tinyvlm_echo") as (node, executor):
        client.echo_detections(node, executor, show, topic=args.topic, count=args.count,
                               timeout_s=args.timeout)
    return 0
