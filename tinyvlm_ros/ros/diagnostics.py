"""``~/status`` and ``/diagnostics`` of the detect node, from construction to shutdown.

Both exist before the node is configured, so a node that cannot configure (a
missing model file, an MCU that does not answer) is visible with its lifecycle
state and the reason.  Both are built from one :class:`tinyvlm_ros.health.NodeReport`.
"""

from __future__ import annotations

from typing import Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from tinyvlm_ros import health
from tinyvlm_ros.msg import DetectorStatus

#: Latched: a late subscriber (a planner waiting for "ready") gets the current status at once.
STATUS_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                        durability=DurabilityPolicy.TRANSIENT_LOCAL)


def status_msg(r: health.NodeReport) -> DetectorStatus:
    """Build the DetectorStatus of a report."""
    c = r.counters
    return DetectorStatus(
        state=r.state, last_error=r.last_error, backend=r.backend,
        models=[KeyValue(key=k, value=v) for k, v in r.models.items()],
        command=r.command, command_id=int(r.command_id), targets=list(r.targets), understood=r.understood,
        not_understood=list(r.not_understood), command_error=r.command_error, ready=r.ready,
        frames_received=int(c.get("frames_received", 0)), frames_processed=int(c.get("frames_processed", 0)),
        frames_dropped=int(c.get("frames_dropped", 0)), bad_inputs=int(c.get("bad_inputs", 0)),
        tracking=bool(r.tracking), frames_tracked=int(r.tracking.get("frames_tracked", 0)),
        keyframes=int(r.tracking.get("keyframes", 0)),
        last_latency_s=float(r.last_latency_s) if r.last_latency_s == r.last_latency_s else 0.0)


def diagnostic_status(r: health.NodeReport) -> DiagnosticStatus:
    """Build the DiagnosticStatus of a report, named after the node's fully qualified name."""
    level, message = health.summary(r)
    return DiagnosticStatus(level=bytes([level]), name=f"{r.name}: detector", message=message,
                            hardware_id=r.backend,
                            values=[KeyValue(key=k, value=v) for k, v in health.values(r).items()])


class Reporter:
    """Publishes ``~/status`` on every change and, with ``/diagnostics``, every period.

    Args:
        node: the node that owns the publishers (plain publishers: they work in every
            lifecycle state).
        report: returns the current :class:`~tinyvlm_ros.health.NodeReport`.
        period_s: seconds between periodic updates.
    """

    def __init__(self, node: Node, report: Callable[[], health.NodeReport], period_s: float) -> None:
        self._node = node
        self._report = report
        self._status = node.create_publisher(DetectorStatus, "~/status", STATUS_QOS)
        self._diagnostics = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._group = MutuallyExclusiveCallbackGroup()
        self._timer = node.create_timer(period_s, self.publish_all, callback_group=self._group)
        self._period = period_s

    def set_period(self, period_s: float) -> None:
        if period_s == self._period:
            return
        self._node.destroy_timer(self._timer)
        self._timer = self._node.create_timer(period_s, self.publish_all, callback_group=self._group)
        self._period = period_s

    def publish_status(self) -> None:
        """Publish ``~/status`` now (after a change of state, command or health)."""
        msg = status_msg(self._report())
        msg.header.stamp = self._node.get_clock().now().to_msg()
        self._status.publish(msg)

    def publish_all(self) -> None:
        """Publish ``/diagnostics`` and ``~/status`` from one report."""
        r = self._report()
        stamp = self._node.get_clock().now().to_msg()
        arr = DiagnosticArray(status=[diagnostic_status(r)])
        arr.header.stamp = stamp
        self._diagnostics.publish(arr)
        msg = status_msg(r)
        msg.header.stamp = stamp
        self._status.publish(msg)

    def destroy(self) -> None:
        self._node.destroy_timer(self._timer)
        self._node.destroy_publisher(self._status)
        self._node.destroy_publisher(self._diagnostics)
