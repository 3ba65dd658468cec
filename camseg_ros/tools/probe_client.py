"""The latency probe's ROS side: a publisher of pre-serialised frames, a recorder of the masks coming back.

Used by `camseg-latency-probe` against segment_node and against `tools.relay` (the transport floor).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from camseg_ros.cdr import Header, Stamp, image_bytes, parse_image, write_stamp
from camseg_ros.image_codec import stamp_ns

IDLE_S = 0.3  # the node idles this long before each timed frame, and segment() alone before each call


class Probe:
    """A publisher of rgb8 frames on `image` and a recorder of `segmentation/mask` arrivals."""

    def __init__(self, context, image: np.ndarray):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.node = Node('camseg_latency_probe', context=context)
        # Serialised once; publish() only writes the stamp (bytes 4..11), as a C++ camera driver would cost
        # next to nothing: the probe's own Python work stays out of the node's figures.
        self.template = bytearray(image_bytes(Header(Stamp(), 'probe'), image, 'rgb8'))
        self.pub = self.node.create_publisher(Image, 'image', QoSProfile(depth=1))
        self.arrivals: dict[int, int] = {}  # header stamp ns -> receipt ns
        self.publish_ms: list[float] = []  # duration of each publish() call
        self.node.create_subscription(Image, 'segmentation/mask', self._on_mask,
                                      QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE), raw=True)
        self.diagnostics: dict[str, str] = {}  # the node's latest statistics
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.endswith(': segmentation'):
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    def _on_mask(self, serialised: bytes) -> None:  # raw: only the header is read
        received = self.node.get_clock().now().nanoseconds
        self.arrivals[stamp_ns(parse_image(serialised).header)] = received

    def publish(self, due_ns: int | None = None) -> int:
        """Publish the frame stamped now, or stamped `due_ns` at that time; returns the stamp in ns.

        With `due_ns`, the frame is stamped and copied into its bytes first, and published once the clock
        reaches the stamp: the probe's own copy of the frame stays out of the measured latency.
        """
        clock = self.node.get_clock()
        stamp = due_ns if due_ns is not None else clock.now().nanoseconds
        write_stamp(self.template, stamp)
        data = bytes(self.template)  # rclpy publishes serialised bytes only from a bytes object
        while clock.now().nanoseconds < stamp:
            pass  # at most the rest of the idle pause's last spin
        start = time.perf_counter()
        self.pub.publish(data)
        self.publish_ms.append((time.perf_counter() - start) * 1e3)
        return stamp


def spin_until(executor, predicate, timeout: float, poll: float = 0.02) -> bool:
    """Spin until predicate() is true or timeout seconds pass.

    A predicate that only a callback can make true needs no polling: `poll=None` waits for the next callback
    (or the timeout) in one call, so the probe wakes no CPU while the node it measures is working.
    """
    end = time.monotonic() + timeout
    while not predicate() and time.monotonic() < end:
        left = end - time.monotonic()
        executor.spin_once(timeout_sec=max(0.0, left if poll is None else min(poll, left)))
    return predicate()


def wait_for_answer(probe: Probe, executor, proc, log_path: Path, timeout: float = 120.0) -> None:
    """Publish until `proc` answers (older arrivals forgotten); RuntimeError with its log if it does not."""
    probe.arrivals.clear()
    end = time.monotonic() + timeout
    while not probe.arrivals and proc.poll() is None and time.monotonic() < end:
        probe.publish()
        spin_until(executor, lambda: probe.arrivals, 1.0)
    if not probe.arrivals:
        raise RuntimeError(f'{proc.args} did not answer:\n{Path(log_path).read_text()}')


def time_frames(probe: Probe, executor, repeats: int) -> list[float]:
    """Time `repeats` frames one at a time (ms, publish -> mask received), each after IDLE_S of quiet.

    The probe's publish() times (`probe.publish_ms`) then hold these frames only.
    """
    latencies = []
    probe.publish_ms.clear()
    clock = probe.node.get_clock()
    for _ in range(repeats):
        due = clock.now().nanoseconds + int(IDLE_S * 1e9)  # let the node go idle
        spin_until(executor, lambda: clock.now().nanoseconds >= due - 30_000_000, IDLE_S)
        sent = probe.publish(due)
        if spin_until(executor, lambda: sent in probe.arrivals, 60, poll=None):
            latencies.append((probe.arrivals[sent] - sent) / 1e6)
    return latencies
