"""Measure segment_node end to end: publish -> mask received vs `segment()` alone; frame age under overload.

`camseg-latency-probe [--checkpoint DIR] [--width 1280 --height 720] [--overload 3]` starts `segment_node`
in its own process (Fast DDS LARGE_DATA transport, a private ROS domain), times `segment()` in this process
first (after the same idle pause as each timed frame, and back to back), then publishes pre-serialised rgb8
frames one at a time (latency) and `--overload` times faster than inference
(output frame age: receipt of the mask - header stamp, median and p95).

The latency is split with the node's own diagnostics (medians): transport in (header stamp, set just before
`publish()`, -> receipt in the node's callback: the probe's publish, DDS and rclpy's take), the node's stages
(wait, decode, hand-off to the torch thread, `segment()`, outputs, publish) and transport out (the rest: the
node's publish returning -> the probe's callback). Node overhead = end to end - `segment()` alone.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from camseg_ros.cdr import Header, Stamp, image_bytes, parse_image, write_stamp
from camseg_ros.image_codec import stamp_ns
from camseg_ros.latency_split import format_split, percentiles, split
from camseg_ros.process import NODE_ENV, random_checkpoint, start_node, stop_node


IDLE_S = 0.3  # the node idles this long before each timed frame, and segment() alone before each call


def time_segment(checkpoint: str, image: np.ndarray, sampler: dict, repeats: int,
                 idles=(0.0,)) -> list[list[float]]:
    """Seconds per `segment()` call on `image`, `repeats` calls per entry of `idles`, one model for all.

    After one warm-up call, each entry of `idles` gets `repeats` calls, each after that many seconds of sleep.

    The node sees one frame after each idle pause, when caches are cold and the OpenMP workers asleep: the
    like-for-like `alone` figure has the same pauses (back to back, calls are a few ms faster).
    """
    from camseg_core.api import Segmenter
    seg = Segmenter.from_pretrained(checkpoint, device='cpu', **sampler)
    seg.segment(image)
    runs = []
    for idle in idles:
        times = []
        for _ in range(repeats):
            time.sleep(idle)
            start = time.perf_counter()
            seg.segment(image)
            times.append(time.perf_counter() - start)
        runs.append(times)
    seg.close()
    return runs


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


def spin_until(executor, predicate, timeout: float) -> bool:
    """Spin until predicate() is true or timeout seconds pass."""
    end = time.monotonic() + timeout
    while not predicate() and time.monotonic() < end:
        executor.spin_once(timeout_sec=0.02)
    return predicate()


def measure(args, checkpoint: str, log_path: Path) -> dict:
    """Run the three measurements; returns the figures in ms."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    image = np.random.default_rng(0).integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    # The whole sampler, the same in both: a checkpoint's own defaults (e.g. an ensemble vote) would differ.
    sampler = {'num_iter': 1, 'steps': args.steps, 'scheduler': 'ddim', 'temperature': 1.0,
               'ensemble': args.ensemble, 'seed': 0}
    back_to_back, alone = time_segment(checkpoint, image, sampler, args.repeats, idles=(0.0, IDLE_S))
    report = {'segment_alone_ms': [t * 1e3 for t in alone], 'load_average': os.getloadavg(),
              'segment_back_to_back_ms': [t * 1e3 for t in back_to_back], 'cpu_count': os.cpu_count()}
    print(f'{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; steps={args.steps}, '
          f'ensemble={args.ensemble}', flush=True)
    size = f'{args.width}x{args.height}'
    print(f'segment() alone, {size}, {IDLE_S:g} s idle before each call as in the node: '
          f'{percentiles(report["segment_alone_ms"])}', flush=True)
    print(f'segment() alone, {size}, back to back: {percentiles(report["segment_back_to_back_ms"])}',
          flush=True)

    domain = args.domain_id if args.domain_id is not None else random.randint(150, 230)
    transports = args.transports or NODE_ENV['FASTDDS_BUILTIN_TRANSPORTS']
    os.environ['FASTDDS_BUILTIN_TRANSPORTS'] = report['transports'] = transports  # this process and the node
    print(f'FASTDDS_BUILTIN_TRANSPORTS={transports}', flush=True)
    proc = start_node(checkpoint, domain, log_path, dict(sampler, device='cpu'), transports=transports)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    try:
        probe = Probe(context, image)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(probe.node)
        latencies = time_frames(probe, executor, proc, log_path, args.repeats)
        report['end_to_end_ms'] = latencies
        spin_until(executor, lambda: False, 1.5)  # the node's next diagnostics
        print(f'publish -> mask received: {percentiles(latencies)}', flush=True)
        report['split_ms'] = split(np.median(alone) * 1e3, np.median(latencies), np.median(probe.publish_ms),
                                   probe.diagnostics)
        print(format_split(report['split_ms']), flush=True)

        # Overload relative to what the node achieved just now (a busy machine makes `alone` unreliable).
        period = min(float(np.median(alone)), float(np.median(latencies)) / 1e3) / args.overload
        sent_stamps = []
        end = time.monotonic() + args.duration
        next_time = time.monotonic()
        while time.monotonic() < end:
            if time.monotonic() >= next_time:
                sent_stamps.append(probe.publish())
                next_time += period
            executor.spin_once(timeout_sec=min(0.01, max(0.0, next_time - time.monotonic())))
        spin_until(executor, lambda: False, 3 * float(np.median(latencies)) / 1e3 + 1)
        ages = [(probe.arrivals[s] - s) / 1e6 for s in sent_stamps if s in probe.arrivals]
        report.update(overload_frame_age_ms=ages, overload_sent=len(sent_stamps), overload_served=len(ages),
                      overload_rate_hz=1.0 / period)
        print(f'{args.overload:g}x overload ({1 / period:.2f} Hz in, {len(sent_stamps)} sent, '
              f'{len(ages)} served): '
              f'output frame age {percentiles(ages)}', flush=True)
    finally:
        rclpy.shutdown(context=context)
        stop_node(proc)
    return report


def time_frames(probe: Probe, executor, proc, log_path: Path, repeats: int) -> list[float]:
    """Publish until segment_node (process `proc`) answers, then time `repeats` frames one at a time (ms).

    Each timed frame follows IDLE_S of quiet; the probe's publish() times count the timed frames only.
    """
    end = time.monotonic() + 120
    while not probe.arrivals and proc.poll() is None and time.monotonic() < end:
        probe.publish()
        spin_until(executor, lambda: probe.arrivals, 1.0)
    if not probe.arrivals:
        raise RuntimeError(f'segment_node did not answer:\n{Path(log_path).read_text()}')
    latencies = []
    probe.publish_ms.clear()
    clock = probe.node.get_clock()
    for _ in range(repeats):
        due = clock.now().nanoseconds + int(IDLE_S * 1e9)  # let the node go idle
        spin_until(executor, lambda: clock.now().nanoseconds >= due - 30_000_000, IDLE_S)
        sent = probe.publish(due)
        if spin_until(executor, lambda: sent in probe.arrivals, 60):
            latencies.append((probe.arrivals[sent] - sent) / 1e6)
    return latencies


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the command-line flags."""
    parser = argparse.ArgumentParser(prog='camseg-latency-probe', description=__doc__.splitlines()[0])
    parser.add_argument('--checkpoint', help='checkpoint directory (default: a random tiny model)')
    parser.add_argument('--width', type=int, default=1280)
    parser.add_argument('--height', type=int, default=720)
    parser.add_argument('--steps', type=int, default=20, help='diffusion steps (ddim)')
    parser.add_argument('--ensemble', type=int, default=1, help='samples per frame (majority vote)')
    parser.add_argument('--repeats', type=int, default=20, help='frames timed one at a time')
    parser.add_argument('--overload', type=float, default=3.0, help='publish rate / inference rate')
    parser.add_argument('--duration', type=float, default=20.0, help='seconds of overload')
    parser.add_argument('--domain-id', type=int, help='ROS domain (default: random in 150..230)')
    parser.add_argument('--transports', help='FASTDDS_BUILTIN_TRANSPORTS of the probe and the node '
                        f'(default: {NODE_ENV["FASTDDS_BUILTIN_TRANSPORTS"]})')
    parser.add_argument('--json', help='also write the figures to this JSON file')
    return parser


def main(argv=None) -> int:
    """Command line entry point (`camseg-latency-probe`)."""
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or random_checkpoint(tmp)
        report = measure(args, checkpoint, Path(tmp) / 'segment_node.log')
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
