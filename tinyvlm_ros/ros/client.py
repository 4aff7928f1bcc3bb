"""Talk to a running detect_node from a short-lived process: send a command, call Detect, echo detections.

The environment ``make`` builds from PyPI wheels has rclpy but no ROS 2 command line, so ``tinyvlm ros
command|detect|echo`` stand in for ``ros2 topic pub``, ``ros2 service call`` and ``ros2 topic echo``.
Each function takes a node and executor from :func:`client_node`; every wait is bounded and, when it
runs out, says what was missing and what to check.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import rclpy
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import String
from vision_msgs.msg import Detection2DArray

from tinyvlm_ros.ros import convert

#: detect_node's ``~/status``: latched, so a late subscriber still gets the current state.
STATUS_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)

#: How detect_node is started when none answers (printed in timeout messages).
START_HINT = ("start detect_node first (`make demo` shows a full run; `ros2 launch tinyvlm_ros "
              "detect.launch.py` needs the ROS 2 command line, see README)")


@contextlib.contextmanager
def client_node(name: str = "tinyvlm_client") -> Iterator[Tuple[Node, SingleThreadedExecutor]]:
    """Yield a node in its own rclpy context with an executor; shut both down on exit (also on Ctrl-C)."""
    ctx = Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node(f"{name}_{os.getpid()}", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    try:
        yield node, executor
    finally:
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def spin_until(executor: SingleThreadedExecutor, predicate: Callable[[], bool], timeout_s: float) -> bool:
    """Spin until ``predicate()`` holds or ``timeout_s`` passes; return whether it holds."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        executor.spin_once(timeout_sec=min(left, 0.05))
    return True


def publishers_reliability(node: Node, topic: str) -> ReliabilityPolicy:
    """Return the reliability a subscription needs to hear every publisher of ``topic``.

    A reliable subscription never matches a best-effort publisher, so reliable
    only when every publisher is.
    """
    infos = node.get_publishers_info_by_topic(topic)
    if infos and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos):
        return ReliabilityPolicy.RELIABLE
    return ReliabilityPolicy.BEST_EFFORT


def named_endpoints(executor: SingleThreadedExecutor, endpoints: Callable[[], List[Any]],
                    timeout_s: float = 5.0) -> List[Any]:
    """Return the endpoints ``endpoints()`` lists, once discovery has told their node names.

    Discovery reports an endpoint before the name of its node (``_NODE_NAME_UNKNOWN_`` until
    then); endpoints still unnamed after ``timeout_s`` are left out.
    """
    def named(e: Any) -> bool:
        return e.node_name != "_NODE_NAME_UNKNOWN_"

    spin_until(executor, lambda: all(named(e) for e in endpoints()), timeout_s)
    return [e for e in endpoints() if named(e)]


def status_topic(endpoint: Any) -> str:
    """Return the ``~/status`` topic of the node behind a topic endpoint: <namespace>/<node name>/status."""
    return f"{endpoint.node_namespace.rstrip('/')}/{endpoint.node_name}/status"


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()).lower() == " ".join(b.split()).lower()


def send_command(node: Node, executor: SingleThreadedExecutor, text: str, *, topic: str = "/command",
                 timeout_s: float = 10.0) -> Dict[str, Any]:
    """Publish ``text`` on the command topic once a detect_node listens, and report what it made of it.

    Returns ``{"topic", "nodes", "acked", "status"}`` where ``status`` is the
    node's ``~/status`` after the command (``None`` when none came within the
    timeout): its ``command``, ``targets`` and ``command_error``.

    Raises:
        TimeoutError: nothing subscribes to ``topic`` within ``timeout_s``.
    """
    from tinyvlm_ros.msg import DetectorStatus  # generated: present once the package is built

    # The node's command subscription: reliable, volatile, so publish only once it has matched.
    pub = node.create_publisher(String, topic, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    if not spin_until(executor, lambda: pub.get_subscription_count() > 0, timeout_s):
        raise TimeoutError(f"nothing subscribes to {topic} within {timeout_s:g} s: {START_HINT}, or pass "
                           "--topic if its command topic is remapped")
    listeners = named_endpoints(executor, lambda: node.get_subscriptions_info_by_topic(pub.topic_name),
                                timeout_s)
    statuses: List[Any] = []
    subs = [node.create_subscription(DetectorStatus, t, statuses.append, STATUS_QOS)
            for t in sorted({status_topic(e) for e in listeners})]
    # the latched status first, so a later one tells the command's effect apart from the state before
    spin_until(executor, lambda: bool(statuses) or not subs, min(timeout_s, 2.0))
    before = len(statuses)
    pub.publish(String(data=text))
    acked = pub.wait_for_all_acked(Duration(seconds=timeout_s))

    def answered() -> bool:
        if statuses and _same_text(statuses[-1].command, text):
            return True   # taken (or already standing, in which case the node publishes nothing new)
        return any(getattr(s, "command_error", "") for s in statuses[before:])

    status = None
    if subs and spin_until(executor, answered, timeout_s):
        s = statuses[-1]
        status = {"command": s.command, "targets": list(s.targets),
                  "command_error": getattr(s, "command_error", "")}
    return {"topic": pub.topic_name, "nodes": [f"{e.node_namespace.rstrip('/')}/{e.node_name}"
                                               for e in listeners],
            "acked": bool(acked), "status": status}


def call_detect(node: Node, executor: SingleThreadedExecutor, text: str, *,
                service: str = "/detect_node/detect", image: Optional[Image] = None,
                min_score: float = 0.0, max_results: int = 0, timeout_s: float = 30.0) -> Any:
    """Call the Detect service and return its response.

    ``image`` None asks for the node's latest frame.

    Raises:
        TimeoutError: the service does not exist, or gives no answer, within ``timeout_s``.
    """
    from tinyvlm_ros.srv import Detect  # generated: present once the package is built

    client = node.create_client(Detect, service)
    if not client.wait_for_service(timeout_sec=timeout_s):
        raise TimeoutError(f"no service {service} within {timeout_s:g} s: {START_HINT}, or pass --service "
                           "(<namespace>/<node name>/detect)")
    request = Detect.Request(command=text, min_score=float(min_score), max_results=int(max_results))
    if image is not None:
        request.image = image
    future = client.call_async(request)
    if not spin_until(executor, future.done, timeout_s):
        client.remove_pending_request(future)
        raise TimeoutError(f"{service} gave no answer within {timeout_s:g} s (the node answers within its "
                           "service_timeout_s parameter; is it overloaded?)")
    return future.result()


def detections_to_dicts(msg: Detection2DArray) -> List[Dict[str, Any]]:
    """JSON-ready view of a Detection2DArray's detections: id, label, score, box (x0, y0, x1, y1)."""
    return [{"id": d.id, "label": label, "score": round(float(score), 4),
             "box_xyxy": [round(float(v), 1) for v in box]}
            for d, (label, score, box) in zip(msg.detections, convert.msg_to_boxes(msg))]


def response_to_dict(response: Any) -> Dict[str, Any]:
    """JSON-ready view of a Detect response."""
    header = response.detections.header
    return {"success": bool(response.success), "message": response.message,
            "command_id": int(getattr(response, "command_id", 0)), "targets": list(response.targets),
            "understood": getattr(response, "understood", ""),
            "not_understood": list(getattr(response, "not_understood", [])),
            "stamp": f"{header.stamp.sec}.{header.stamp.nanosec:09d}", "frame_id": header.frame_id,
            "detections": detections_to_dicts(response.detections)}


def echo_detections(node: Node, executor: SingleThreadedExecutor,
                    on_message: Callable[[Detection2DArray], None], *, topic: str = "/detections",
                    count: int = 0, timeout_s: float = 30.0) -> int:
    """Hand each Detection2DArray on ``topic`` to ``on_message`` until ``count`` came (0: no limit).

    Returns the number of messages seen.

    Raises:
        TimeoutError: no publisher within ``timeout_s``, or no message for ``timeout_s``.
    """
    if not spin_until(executor, lambda: node.count_publishers(topic) > 0, timeout_s):
        raise TimeoutError(f"nothing publishes {topic} within {timeout_s:g} s: {START_HINT}, or pass --topic")
    seen = [0]

    def handle(msg: Detection2DArray) -> None:
        seen[0] += 1
        on_message(msg)

    node.create_subscription(Detection2DArray, topic, handle,
                             QoSProfile(depth=10, reliability=publishers_reliability(node, topic)))
    while not count or seen[0] < count:
        before = seen[0]
        if not spin_until(executor, lambda: seen[0] > before, timeout_s):
            raise TimeoutError(
                f"no message on {topic} for {timeout_s:g} s ({seen[0]} so far): detect_node publishes only "
                "for frames it processed under a standing command; send one with `tinyvlm ros command "
                "TEXT` and check that images reach its image topic")
    return seen[0]
