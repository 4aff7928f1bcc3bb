"""``tinyvlm bench bag --live --tracking``: the tracking report from what a tracking detect_node publishes.

The node must run with ``tracking:=true``: :func:`node_tracking_parameters`
asks it over its parameter service (``~/get_parameters``) and refuses a node
without the ``tracking`` parameter or with it off, so a report never
describes a node that was not tracking.  :class:`LiveTrackingRecorder` pairs
every answered frame's ``Detection2DArray`` with its
``tinyvlm_ros/DetectionInfo`` (same header stamp): track ids from
``Detection2D.id`` (checked against ``DetectionInfo.track_ids``).  A frame is
*detected* when the engine's answer is in it: a detection's source is
``SOURCE_DETECTED``, or the target's last verification (frame stamp -
``verified_age_s``) moved forward or its track is new, i.e. a keyframe or
re-verification was folded in on that frame; else *tracked*.  At the end the
frames go, in bag order, into a :class:`~tinyvlm_ros.bench.tracking.TrackingTally`.

rclpy is imported inside the functions only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from tinyvlm_ros.bench.tracking import DETECTED, DROPPED, EMPTY, TRACKED, TrackingTally
from tinyvlm_ros.types import Detection

#: The node's tracking parameters reported next to the numbers (the node helper's names).
TRACKING_PARAMETERS = ("tracking", "tracking_keyframe_period_s", "tracking_max_track_age_s",
                       "tracking_reverify_period_s", "tracking_tracker")
#: DetectionInfo.SOURCE_DETECTED
SOURCE_DETECTED = 0


def info_topic_for(detections_topic: str) -> str:
    """Return the ``detections_info`` topic beside ``detections_topic`` (``/ns/detections_info``)."""
    head, _, _ = detections_topic.rstrip("/").rpartition("/")
    return f"{head}/detections_info"


def get_parameters(node: Any, executor: Any, node_fqn: str, names: List[str],
                   timeout_s: float = 5.0) -> Dict[str, Any]:
    """Ask ``node_fqn`` for parameters; return name -> value for those it has (absent ones are left out).

    Raises:
        TimeoutError: the node's parameter service did not answer within ``timeout_s``.
    """
    from rcl_interfaces.msg import ParameterType
    from rcl_interfaces.srv import GetParameters

    from tinyvlm_ros.ros.client import spin_until

    client = node.create_client(GetParameters, f"{node_fqn.rstrip('/')}/get_parameters")
    try:
        if not spin_until(executor, client.service_is_ready, timeout_s):
            raise TimeoutError(f"{node_fqn}/get_parameters did not appear within {timeout_s:g} s")
        future = client.call_async(GetParameters.Request(names=list(names)))
        if not spin_until(executor, future.done, timeout_s) or future.result() is None:
            raise TimeoutError(f"{node_fqn}/get_parameters did not answer within {timeout_s:g} s")
        fields = {ParameterType.PARAMETER_BOOL: "bool_value",
                  ParameterType.PARAMETER_INTEGER: "integer_value",
                  ParameterType.PARAMETER_DOUBLE: "double_value",
                  ParameterType.PARAMETER_STRING: "string_value"}
        out = {}
        for name, value in zip(names, future.result().values):
            if value.type in fields:
                out[name] = getattr(value, fields[value.type])
        return out
    finally:
        node.destroy_client(client)


def node_tracking_parameters(node: Any, executor: Any, detections_topic: str,
                             timeout_s: float = 5.0) -> Tuple[str, Dict[str, Any]]:
    """Return (node name, its tracking parameters) of the node publishing ``detections_topic``.

    Raises:
        ValueError: no named publisher, the node has no ``tracking`` parameter, or it is off.
    """
    from tinyvlm_ros.ros.client import named_endpoints

    infos = named_endpoints(executor, lambda: node.get_publishers_info_by_topic(detections_topic), timeout_s)
    if not infos:
        raise ValueError(f"no named node publishes {detections_topic}")
    e = infos[0]
    fqn = f"{e.node_namespace.rstrip('/')}/{e.node_name}"
    params = get_parameters(node, executor, fqn, list(TRACKING_PARAMETERS), timeout_s)
    if "tracking" not in params:
        raise ValueError(f"{fqn} has no 'tracking' parameter: this detect_node cannot track "
                         "(--live --tracking needs a node with tracking)")
    if not params["tracking"]:
        raise ValueError(f"{fqn} runs with tracking:=false; start it with -p tracking:=true")
    return fqn, params


@dataclass
class _Answer:
    index: int
    stamp_ns: int          # the stamp the frame was published with (the node copies it)
    truth: Optional[List[Detection]]
    dets: List[Detection]
    recv_s: float
    latency_s: Optional[float]


class LiveTrackingRecorder:
    """Collect a live replay's answers and their DetectionInfo; :meth:`summary` scores them in bag order.

    Args:
        command: the standing command.
        target_identity: see :class:`~tinyvlm_ros.bench.tracking.TrackingTally`.
    """

    def __init__(self, command: str, target_identity: Optional[int] = None) -> None:
        self.command = command
        self.target_identity = target_identity
        self._answers: List[_Answer] = []
        self._dropped: List[Tuple[int, Optional[List[Detection]]]] = []
        self._infos: Dict[int, Tuple[List[int], List[int], List[float]]] = {}
        self._verified_ns: Dict[int, int] = {}
        self.info_missing = 0
        self.id_mismatches = 0

    def subscribe(self, node: Any, topic: str) -> Any:
        """Listen to ``topic`` (tinyvlm_ros/DetectionInfo); return the subscription."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        from tinyvlm_ros.msg import DetectionInfo

        def on_info(msg: Any) -> None:
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            self._infos[stamp] = ([int(v) for v in msg.track_ids], [int(v) for v in msg.sources],
                                  [float(v) for v in msg.verified_age_s])

        return node.create_subscription(DetectionInfo, topic, on_info,
                                        QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))

    def answered(self, index: int, sent_stamp_ns: int, truth: Optional[List[Detection]],
                 dets: List[Detection], latency_s: Optional[float]) -> None:
        """Record an answered frame (``dets`` with ``track_id`` read from ``Detection2D.id``)."""
        self._answers.append(_Answer(index, sent_stamp_ns, truth, list(dets), time.monotonic(), latency_s))

    def dropped(self, index: int, truth: Optional[List[Detection]]) -> None:
        """Record a frame the node never answered."""
        self._dropped.append((index, truth))

    def summary(self, has_truth: bool) -> Dict[str, Any]:
        """Score every recorded frame in bag order and return the tracking report."""
        tally = TrackingTally(self.command, target_identity=self.target_identity)
        rows: List[Tuple[int, Any]] = [(a.index, a) for a in self._answers] + list(self._dropped)
        for _, item in sorted(rows, key=lambda r: r[0]):
            if isinstance(item, _Answer):
                dets, kind = self._with_info(item)
                tally.add(item.truth if has_truth else None, dets, kind=kind, time_s=item.recv_s,
                          latency_s=item.latency_s)
            else:
                tally.add(item if has_truth else None, [], kind=DROPPED)
        out = tally.summary()
        out.update({"mode": "live", "info_missing": self.info_missing, "id_mismatches": self.id_mismatches})
        return out

    def _with_info(self, a: _Answer) -> Tuple[List[Detection], str]:
        if not a.dets:
            return [], EMPTY
        info = self._infos.get(a.stamp_ns)
        if info is None or len(info[0]) != len(a.dets):
            self.info_missing += 1
            return a.dets, TRACKED
        track_ids, sources, ages = info
        dets = []
        for d, tid, src, age in zip(a.dets, track_ids, sources, ages or [0.0] * len(a.dets)):
            if tid and d.track_id != tid:
                self.id_mismatches += 1
            dets.append(Detection(label=d.label, score=d.score, box_xyxy=d.box_xyxy, role=d.role,
                                  track_id=tid or d.track_id, tracked=src != SOURCE_DETECTED,
                                  verified_age_s=age))
        # the target's last verification, on the stream's clock; 1 ms slack for float32 ages
        target = dets[0].track_id
        verified = a.stamp_ns - int(round(dets[0].verified_age_s * 1e9))
        before = self._verified_ns.get(target)
        fresh = before is None or verified > before + 1_000_000
        self._verified_ns[target] = verified if before is None else max(before, verified)
        kind = DETECTED if fresh or any(not d.tracked for d in dets) else TRACKED
        return dets, kind
