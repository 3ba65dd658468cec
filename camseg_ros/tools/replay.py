"""Play bag images into a running segment_node over DDS and collect its answers, matched by header stamp."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from rosbags.typesys import Stores, get_typestore

from camseg_core.api import Segmentation
from camseg_ros.diagnostics import COUNTERS
from camseg_ros.image_codec import compressed_to_rgb, fill_image, image_to_rgb, stamp_ns
from camseg_ros.tools.bagio import COMPRESSED, IMAGE, BagError, read_messages
from camseg_ros.tools.scoring import Scorer

SETTLE_S = 0.3  # extra spin for outputs in flight once the node reports itself idle


class Replayer:
    """A node in this process: publishes the bag's frames, records the segment_node's outputs."""

    def __init__(self, domain_id: int, input_topic: str, namespace: str, node_fqn: str):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node('camseg_bag_replay', context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        self.pub = self.node.create_publisher(Image, input_topic, QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE))
        prefix = namespace.rstrip('/')
        self.outputs: dict[str, dict[int, tuple[int, object]]] = {'mask': {}, 'confidence': {}}
        self.subs = {name: self.node.create_subscription(
            Image, f'{prefix}/segmentation/{name}', lambda msg, n=name: self._on_output(n, msg), reliable)
            for name in self.outputs}
        self.node_fqn = node_fqn
        self.diagnostics: tuple[int, dict] | None = None  # (stamp ns, the node's latest statistics)
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

    def _on_output(self, name: str, msg) -> None:
        self.outputs[name][stamp_ns(msg.header)] = (time.perf_counter_ns(), msg)

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.hardware_id == self.node_fqn and status.name.endswith(': segmentation'):
                self.diagnostics = (stamp_ns(msg.header), {kv.key: kv.value for kv in status.values})

    def spin_until(self, predicate, timeout: float) -> bool:
        """Spin until predicate() is true or `timeout` seconds pass."""
        end = time.monotonic() + timeout
        while not predicate() and time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.01, max(0.0, end - time.monotonic())))
        return bool(predicate())

    def connected(self) -> bool:
        """Whether the node subscribes to the input and publishes both outputs."""
        return self.pub.get_subscription_count() > 0 and all(
            s.get_publisher_count() > 0 for s in self.subs.values())

    def publish(self, msg) -> int:
        """Publish an input frame; returns the publish time (perf_counter ns)."""
        self.pub.publish(msg)
        return time.perf_counter_ns()

    def close(self) -> None:
        """Destroy the node and shut its context down."""
        import rclpy
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def counters(diag: dict | None) -> dict[str, int]:
    """Return the node's drop and rate counters from its diagnostics values."""
    return {k: int(diag[k]) for k in COUNTERS if diag and k in diag}


def _to_ros_image(bag_msg, msgtype: str, rgb: np.ndarray | None):
    """Build an rclpy sensor_msgs/Image with the bag message's header (compressed input -> rgb8)."""
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    h = bag_msg.header
    header = Header(stamp=Time(sec=int(h.stamp.sec), nanosec=int(h.stamp.nanosec)), frame_id=h.frame_id)
    if msgtype == COMPRESSED:
        return fill_image(Image(header=header), rgb, 'rgb8')
    return Image(header=header, height=bag_msg.height, width=bag_msg.width, encoding=bag_msg.encoding,
                 is_bigendian=bag_msg.is_bigendian, step=bag_msg.step, data=bytes(bag_msg.data))


def _decode_outputs(mask_msg, conf_msg):
    h, w = mask_msg.height, mask_msg.width
    labels = np.frombuffer(mask_msg.data, np.uint8).reshape(h, mask_msg.step)[:, :w]
    conf = np.frombuffer(conf_msg.data, np.float32).reshape(h, conf_msg.step // 4)[:, :w]
    return Segmentation(labels=labels, confidence=conf)


def replay(rep: Replayer, bag: str | Path, image_topic: str, label_topic: str | None, rate: float,
           timeout: float, scorer: Scorer, record=None) -> dict:
    """Play the bag into the node and collect its answers; returns the counts and latencies.

    `record(kind, msgtype, log_ns, payload)` (optional) receives the input CDR bytes ('image') and the
    answered outputs ('mask', 'confidence').
    A BagError mid-bag ends the replay early; it is returned under 'error'.
    """
    from rclpy.serialization import serialize_message
    ts = get_typestore(Stores.ROS2_KILTED)
    allowed = {image_topic: (IMAGE, COMPRESSED)}
    if label_topic:
        allowed[label_topic] = (IMAGE,)
    sent: dict[int, tuple[int, int, np.ndarray | None]] = {}  # stamp -> (publish ns, log ns, rgb sample)
    done: dict[int, float] = {}  # stamp -> latency ms
    duplicates, error, t0, last_publish = 0, None, None, None

    def collect():
        for stamp in [s for s in rep.outputs['mask'] if s in rep.outputs['confidence'] and s in sent]:
            t_mask, mask = rep.outputs['mask'].pop(stamp)
            t_conf, conf = rep.outputs['confidence'].pop(stamp)
            published, log_ns, rgb = sent[stamp]
            done[stamp] = (max(t_mask, t_conf) - published) / 1e6
            scorer.add_prediction(stamp, rgb, _decode_outputs(mask, conf), done[stamp] / 1e3)
            if record:
                record('mask', IMAGE, log_ns, serialize_message(mask))
                record('confidence', IMAGE, log_ns, serialize_message(conf))

    try:
        for topic, msgtype, log_ns, raw in read_messages(bag, allowed, ts):
            msg = ts.deserialize_cdr(raw, msgtype)
            try:
                if topic == label_topic:
                    if msg.encoding != 'mono8':
                        raise ValueError(f'labels must be mono8, got {msg.encoding!r}')
                    scorer.add_label(stamp_ns(msg.header), image_to_rgb(msg)[:, :, 0])
                    continue
                stamp = stamp_ns(msg.header)
                if stamp in sent:
                    duplicates += 1  # answers could not be told apart
                    continue
                sample = scorer.wants_sample(stamp)
                rgb = (compressed_to_rgb(msg) if msgtype == COMPRESSED
                       else image_to_rgb(msg) if sample else None)
                ros_msg = _to_ros_image(msg, msgtype, rgb)
            except ValueError as err:
                raise BagError(f'{topic} message at {log_ns} ns: {err}') from err
            t0 = t0 or (log_ns, time.monotonic())
            due = t0[1] + (log_ns - t0[0]) / 1e9 / rate
            rep.spin_until(lambda: time.monotonic() >= due, max(0.0, due - time.monotonic()) + 1)
            collect()
            last_publish = time.time_ns()
            sent[stamp] = (rep.publish(ros_msg), log_ns, rgb if sample else None)
            if record:
                record('image', msgtype, log_ns, bytes(raw))
    except BagError as err:
        error = err

    def finished():
        collect()
        if len(done) == len(sent):
            return True
        stamp, diag = rep.diagnostics or (0, None)
        counts = counters(diag)
        # The node reports itself idle after our last frame: every frame it received is accounted for.
        return (stamp > (last_publish or 0) + 200_000_000 and len(counts) == len(COUNTERS)
                and counts['received'] == sum(v for k, v in counts.items() if k != 'received'))

    if rep.spin_until(finished, timeout) and len(done) < len(sent):
        rep.spin_until(lambda: False, SETTLE_S)
        collect()
    return {'sent': len(sent), 'answered': len(done), 'dropped': len(sent) - len(done),
            'duplicate_stamps_skipped': duplicates, 'latency_ms': list(done.values()), 'error': error}
