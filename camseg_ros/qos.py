"""The QoS profiles behind segment_node's `qos` and `output_qos` parameters (shared with tools.relay)."""
from __future__ import annotations

from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_system_default

OUTPUT_DEPTH = 2  # keep-last depth of the node's reliable outputs


def qos_profile(name: str, reliable_depth: int = 1) -> QoSProfile:
    """Return the QoS of a `qos` / `output_qos` value: sensor_data is best effort, keep last 1."""
    if name == 'sensor_data':
        return QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.BEST_EFFORT)
    if name == 'reliable':
        return QoSProfile(depth=reliable_depth, history=HistoryPolicy.KEEP_LAST,
                          reliability=ReliabilityPolicy.RELIABLE)
    return qos_profile_system_default
