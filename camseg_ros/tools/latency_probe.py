"""Measure segment_node end to end: publish -> mask received vs `segment()` alone; frame age under overload.

`camseg-latency-probe [--checkpoint DIR] [--width 1280 --height 720] [--overload 3]` publishes
pre-serialised rgb8 frames one at a time (Fast DDS LARGE_DATA transport, a private ROS domain) and times the
mask coming back, first from `camseg_ros.tools.relay` (no model: the transport floor of any rclpy node), then
from `segment_node` in its own process. The node's frames alternate, in `--blocks` blocks, with `segment()`
calls in this process on the same model and sampler (after the same idle pause as each timed frame), so that a
drift of the machine's speed hits both alike; then it publishes `--overload` times faster than inference
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

from camseg_core.cli.options import add_model_group, add_sampler_group
from camseg_ros.tools.latency_split import format_split, percentiles, split
from camseg_ros.tools.probe_client import IDLE_S, Probe, spin_until, time_frames, wait_for_answer
from camseg_ros.tools.process import NODE_ENV, random_checkpoint, start_node, start_relay, stop_node


def time_calls(seg, image: np.ndarray, repeats: int, idle: float) -> list[float]:
    """Milliseconds per `seg.segment(image)`, `repeats` calls, each after `idle` seconds of sleep.

    The node sees one frame after each idle pause, when caches are cold and the OpenMP workers asleep: the
    like-for-like `alone` figure has the same pauses (back to back, calls are a few ms faster).
    """
    times = []
    for _ in range(repeats):
        time.sleep(idle)
        start = time.perf_counter()
        seg.segment(image)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def blocks(repeats: int, count: int) -> list[int]:
    """Return the sizes of `count` blocks of `repeats` frames: at least one each, differing by at most one."""
    count = max(1, min(count, repeats))
    return [repeats // count + (i < repeats % count) for i in range(count)]


def measure(args, checkpoint: str, log_dir: Path) -> dict:
    """Run the measurements (relay, node interleaved with `segment()` alone, overload); figures in ms."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from camseg_core.api import Segmenter

    image = np.random.default_rng(0).integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    # The whole sampler, the same in both: a checkpoint's own defaults (e.g. an ensemble vote) would differ.
    sampler = {'num_iter': 1, 'steps': args.steps, 'scheduler': 'ddim', 'temperature': 1.0,
               'ensemble': args.ensemble, 'seed': 0}
    seg = Segmenter.from_pretrained(checkpoint, device='cpu', **sampler)
    seg.segment(image)  # warm-up
    report = {'segment_back_to_back_ms': time_calls(seg, image, args.repeats, 0.0),
              'cpu_count': os.cpu_count(),
              'load_average': os.getloadavg()}
    size = f'{args.width}x{args.height}'
    print(f'{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {size}, steps={args.steps}, '
          f'ensemble={args.ensemble}', flush=True)
    print(f'segment() alone, back to back: {percentiles(report["segment_back_to_back_ms"])}', flush=True)

    domain = args.domain_id if args.domain_id is not None else random.randint(150, 230)
    transports = args.transports or NODE_ENV['FASTDDS_BUILTIN_TRANSPORTS']
    os.environ['FASTDDS_BUILTIN_TRANSPORTS'] = report['transports'] = transports  # this process and the node
    print(f'FASTDDS_BUILTIN_TRANSPORTS={transports}', flush=True)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    try:
        probe = Probe(context, image)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(probe.node)
        relay = start_relay(domain, log_dir / 'relay.log', args.width, args.height, transports)
        try:
            wait_for_answer(probe, executor, relay, log_dir / 'relay.log')
            report['relay_ms'] = time_frames(probe, executor, args.repeats)
        finally:
            stop_node(relay)
        print(f'relay (no model: the transport floor): {percentiles(report["relay_ms"])}', flush=True)
        proc = start_node(checkpoint, domain, log_dir / 'segment_node.log', dict(sampler, device='cpu'),
                          transports=transports)
        try:
            report.update(measure_node(args, probe, executor, proc, log_dir, seg, image, report['relay_ms']))
        finally:
            stop_node(proc)
    finally:
        rclpy.shutdown(context=context)
        seg.close()
    return report


def measure_node(args, probe: Probe, executor, proc, log_dir: Path, seg, image: np.ndarray,
                 relay_ms: list[float]) -> dict:
    """Time node frames interleaved with `segment()` alone, split them (relay floor), then overload (ms)."""
    wait_for_answer(probe, executor, proc, log_dir / 'segment_node.log')
    alone, latencies, publish_ms, block_overheads = [], [], [], []
    for size in blocks(args.repeats, args.blocks):
        alone_block = time_calls(seg, image, size, IDLE_S)
        node_block = time_frames(probe, executor, size)
        publish_ms += probe.publish_ms
        alone += alone_block
        latencies += node_block
        if node_block:
            block_overheads.append(float(np.median(node_block) - np.median(alone_block)))
    report = {'segment_alone_ms': alone, 'end_to_end_ms': latencies, 'block_overhead_ms': block_overheads}
    spin_until(executor, lambda: False, 1.5)  # the node's next diagnostics
    print(f'segment() alone, {IDLE_S:g} s idle before each call as in the node: {percentiles(alone)}',
          flush=True)
    print(f'publish -> mask received: {percentiles(latencies)}', flush=True)
    print('node overhead per block (median end to end - median alone): '
          + ', '.join(f'{v:.1f}' for v in block_overheads) + ' ms', flush=True)
    floor = float(np.median(relay_ms)) if relay_ms else float('nan')
    report['split_ms'] = split(np.median(alone), np.median(latencies), np.median(publish_ms),
                               probe.diagnostics, floor=floor)
    print(format_split(report['split_ms']), flush=True)

    # Overload relative to what the node achieved just now (a busy machine makes `alone` unreliable).
    period = min(float(np.median(alone)), float(np.median(latencies))) / 1e3 / args.overload
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
    return report


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the command-line flags."""
    parser = argparse.ArgumentParser(prog='camseg-latency-probe', description=__doc__.splitlines()[0])
    add_model_group(parser, preset=False,
                    checkpoint={'help': 'checkpoint directory (default: a random tiny model)'})
    parser.add_argument('--width', type=int, default=1280)
    parser.add_argument('--height', type=int, default=720)
    add_sampler_group(parser, names=('steps', 'ensemble'),
                      steps={'default': 20, 'help': 'diffusion steps (ddim)'},
                      ensemble={'default': 1, 'help': 'samples per frame (majority vote)'})
    parser.add_argument('--repeats', type=int, default=40,
                        help='frames timed one at a time (and calls alone)')
    parser.add_argument('--blocks', type=int, default=8,
                        help='blocks of node frames and calls alone, alternating')
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
    if args.repeats < 1 or args.blocks < 1:
        raise SystemExit('camseg-latency-probe: --repeats and --blocks must be at least 1')
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or random_checkpoint(tmp)
        report = measure(args, checkpoint, Path(tmp))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
