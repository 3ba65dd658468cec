"""camseg-bag-replay: play a bag's camera images into a running segment_node over DDS and score its answers.

Example: camseg-bag-replay drive_bag --image-topic /camera/image_raw --label-topic /camera/labels
--start-node --checkpoint runs/tiny --out runs/replay

Images are published (sensor_msgs/Image, original headers) on the node's input topic at `--rate` times
the bag's timing; the node's `segmentation/{mask,confidence}` are matched to them by header stamp.
Writes OUT/replay.json and OUT/report.md: end-to-end latency (publish -> receipt of both outputs),
frames the node dropped (sent but not answered, plus its /diagnostics counters) and, with a label topic,
the metrics of the answered frames overall and per stretch (bag_eval's scoring and report code).
A node started elsewhere must run with `max_frame_age_ms:=0`: the bag's old stamps look stale to it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from camseg_core.assets import resolve_checkpoint
from camseg_core.config import PRESETS
from camseg_core.evaluation.metrics import latency_summary
from camseg_core.evaluation.report import render_markdown
from camseg_ros.bag_eval import (COMPRESSED, IMAGE, BagError, load_stretches, output_topics,
                                 read_messages, Scorer, write_report)
from camseg_ros.diagnostics import COUNTERS
from camseg_ros.image_codec import compressed_to_rgb, fill_image, image_to_rgb, stamp_ns
from camseg_ros.latency_probe import NODE_ENV, start_node, stop_node

STARTUP_TIMEOUT_S = 120.0  # for the node to load its model and subscribe
SETTLE_S = 0.3  # extra spin for outputs in flight once the node reports itself idle


@dataclass
class NodeSampler:
    """The node's sampler as its diagnostics report it (the report's `sampler` entry)."""

    reported: str = 'unknown'


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


def _counters(diag: dict | None) -> dict[str, int]:
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


def _decode_outputs(mask_msg, conf_msg) -> SimpleNamespace:
    h, w = mask_msg.height, mask_msg.width
    labels = np.frombuffer(mask_msg.data, np.uint8).reshape(h, mask_msg.step)[:, :w]
    conf = np.frombuffer(conf_msg.data, np.float32).reshape(h, conf_msg.step // 4)[:, :w]
    return SimpleNamespace(labels=labels, confidence=conf)


def replay(rep: Replayer, bag: str | Path, image_topic: str, label_topic: str | None, rate: float,
           timeout: float, scorer: Scorer, record=None) -> dict:
    """Play the bag into the node and collect its answers; returns the counts and latencies.

    `record(kind, msgtype, log_ns, payload)` (optional) receives the input CDR bytes and the answered outputs.
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
        counts = _counters(diag)
        # The node reports itself idle after our last frame: every frame it received is accounted for.
        return (stamp > (last_publish or 0) + 200_000_000 and len(counts) == len(COUNTERS)
                and counts['received'] == sum(v for k, v in counts.items() if k != 'received'))

    if rep.spin_until(finished, timeout) and len(done) < len(sent):
        rep.spin_until(lambda: False, SETTLE_S)
        collect()
    return {'sent': len(sent), 'answered': len(done), 'dropped': len(sent) - len(done),
            'duplicate_stamps_skipped': duplicates, 'latency_ms': list(done.values()), 'error': error}


class _Recorder:
    """Writes the inputs and the node's answers into an MCAP rosbag2 (as bag_eval's output bag)."""

    def __init__(self, path: Path, image_topic: str):
        self.topics = {'image': image_topic, **output_topics(image_topic)}
        self.writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.typestore, self.conns = get_typestore(Stores.ROS2_KILTED), {}

    def __call__(self, kind: str, msgtype: str, log_ns: int, payload: bytes) -> None:
        if kind not in self.conns:
            self.conns[kind] = self.writer.add_connection(self.topics[kind], msgtype,
                                                          typestore=self.typestore)
        self.writer.write(self.conns[kind], log_ns, payload)

    def close(self) -> None:
        self.writer.close()


def run_replay(args, checkpoint: str | None) -> dict:
    """Start the node if asked, replay, write replay.json, report.md and metrics.json; return the summary."""
    out = Path(args.out)
    record_path = out / 'replayed'
    if args.record and record_path.exists():
        raise FileExistsError(f'output bag exists already, not overwriting: {record_path}')
    if not Path(args.bag).exists():
        raise FileNotFoundError(f'bag {args.bag} does not exist')
    out.mkdir(parents=True, exist_ok=True)
    domain = int(os.environ.get('ROS_DOMAIN_ID', '0'))
    os.environ.update(NODE_ENV)
    namespace = '/' + args.node_namespace.strip('/')
    input_topic = args.input_topic or args.image_topic
    proc = None
    if checkpoint:
        params = {'device': args.device, 'max_frame_age_ms': 0.0, 'publish_color': 'false',
                  'publish_overlay': 'false'}
        params.update({'steps': args.steps} if args.steps else {})
        proc = start_node(checkpoint, domain, out / 'segment_node.log', params,
                          ros_args=('-r', f'image:={input_topic}', '-r', f'__ns:={namespace}'))
    stretches = load_stretches(args.bag) if args.label_topic else None
    scorer = Scorer(stretches, args.segment_seconds)
    rep = Replayer(domain, input_topic, namespace, f'{namespace.rstrip("/")}/{args.node_name}')
    recorder = _Recorder(record_path, args.image_topic) if args.record else None
    try:
        startup = STARTUP_TIMEOUT_S if proc else args.timeout
        node_exited = (lambda: proc.poll() is not None) if proc else (lambda: False)
        if not rep.spin_until(lambda: rep.connected() or node_exited(), startup) or not rep.connected():
            log = (out / 'segment_node.log').read_text() if proc else ''
            raise RuntimeError(f'no segment_node on {input_topic} -> {namespace}/segmentation/* '
                               f'(domain {domain}) after {startup:g} s\n{log}')
        rep.spin_until(lambda: rep.diagnostics is not None, 1.5)  # counters before the replay
        before = _counters(rep.diagnostics[1] if rep.diagnostics else None)
        result = replay(rep, args.bag, args.image_topic, args.label_topic, args.rate, args.timeout, scorer,
                        recorder)
        replayed = time.time_ns()  # counters computed after this cover every frame we sent (1 Hz diagnostics)
        rep.spin_until(lambda: rep.diagnostics is not None and rep.diagnostics[0] > replayed, 3.0)
        diag = rep.diagnostics[1] if rep.diagnostics else {}
        after = _counters(diag)
    finally:
        if recorder:
            recorder.close()
        rep.close()
        if proc is not None:
            stop_node(proc)
    error = result.pop('error')
    latencies = result.pop('latency_ms')
    model = SimpleNamespace(name=diag.get('model', ''), device=diag.get('device', 'unknown'),
                            precision=diag.get('precision', ''),
                            sampler=NodeSampler(diag.get('sampler', 'unknown')))
    bag = dict(path=str(args.bag), image_topic=args.image_topic, label_topic=args.label_topic,
               images=result['sent'], output_bag=str(record_path) if args.record else None,
               grouping='stretches' if stretches is not None else f'windows of {args.segment_seconds:g} s',
               unmatched_images=len(scorer.preds) + scorer.dropped_images,
               unmatched_labels=len(scorer.labels) + scorer.dropped_labels,
               complete=error is None, error=str(error) if error else None)
    metrics = write_report(out, model, scorer, bag, batch_size=1)
    summary = {
        'bag': bag, 'rate': args.rate, 'input_topic': input_topic, 'node_namespace': namespace,
        'started_node': proc is not None, **result, 'latency': latency_summary(latencies),
        'node_counters': {k: after[k] - before.get(k, 0) for k in after},
        'metrics': metrics['datasets'], 'segments': metrics['segments'], 'model': metrics['model'],
    }
    (out / 'replay.json').write_text(json.dumps(summary, indent=2, allow_nan=False))
    _write_markdown(out, summary, metrics)
    if error is not None:
        raise error
    return summary


def _write_markdown(out: Path, summary: dict, metrics: dict) -> None:
    lat, bag = summary['latency'], summary['bag']
    figures = (f'median {lat["median_ms"]:.1f} ms, p95 {lat["p95_ms"]:.1f} ms, max {lat["max_ms"]:.1f} ms'
               if lat['count'] else 'no answers')
    counters = ', '.join(f'{k} {v}' for k, v in summary['node_counters'].items()) or 'no diagnostics'
    head = [f'# camseg bag replay: {bag["path"]}', '',
            f'{summary["sent"]} frames of {bag["image_topic"]} played at {summary["rate"]:g}x into the node '
            f'{"started here" if summary["started_node"] else "running"} ({summary["input_topic"]} -> '
            f'{summary["node_namespace"]}); answered {summary["answered"]}, '
            f'dropped {summary["dropped"]}.', '',
            f'End-to-end latency (publish -> mask and confidence received): {figures}.', '',
            f'Node counters during the replay: {counters}.', '']
    if bag['error']:
        head += [f'**Incomplete:** {bag["error"]}', '']
    body = render_markdown(metrics) if metrics['datasets'] else 'No labelled answered frames: no metrics.\n'
    (out / 'report.md').write_text('\n'.join(head) + '\n' + body)


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the command-line flags."""
    p = argparse.ArgumentParser(prog='camseg-bag-replay', description=__doc__.strip().split('\n')[0])
    p.add_argument('bag', help='rosbag2 directory, .mcap or .db3 file')
    p.add_argument('--image-topic', required=True, help='Image or CompressedImage topic of the bag')
    p.add_argument('--label-topic', help='mono8 trainIds sensor_msgs/Image label topic (enables metrics)')
    p.add_argument('--input-topic', help="the node's input topic (default: the image topic)")
    p.add_argument('--rate', type=float, default=1.0, help='playback speed relative to the bag')
    p.add_argument('--node-namespace', default='/', help="namespace of the node's outputs")
    p.add_argument('--node-name', default='camseg', help='node name (for its /diagnostics)')
    p.add_argument('--start-node', action='store_true', help='start segment_node here and stop it at the end')
    model = p.add_mutually_exclusive_group()
    model.add_argument('--checkpoint', help='with --start-node: checkpoint directory (default: demo model)')
    model.add_argument('--preset', choices=sorted(PRESETS), help='with --start-node: random model (tests)')
    p.add_argument('--steps', type=int, help='with --start-node: diffusion steps per token')
    p.add_argument('--device', default='auto', help='with --start-node: auto, cpu, cuda or cuda:N')
    p.add_argument('--out', required=True, help='output directory')
    p.add_argument('--timeout', type=float, default=10.0,
                   help='seconds to wait for answers after the last frame (and for a running node)')
    p.add_argument('--segment-seconds', type=float, default=10.0,
                   help='metric window length when the bag has no stretches.json')
    p.add_argument('--record', action='store_true', help='write inputs and answers to OUT/replayed (MCAP)')
    return p


def main(argv=None) -> int:
    """Parse flags, replay the bag; exit 1 with a message on a bag, node or input error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.timeout <= 0 or args.segment_seconds <= 0:
        parser.error('--rate, --timeout and --segment-seconds must be > 0')
    if not args.start_node and (args.checkpoint or args.preset):
        parser.error('--checkpoint and --preset need --start-node')
    try:
        import rclpy  # noqa: F401
    except ImportError:
        parser.error('rclpy (ROS 2) is not installed')
    with tempfile.TemporaryDirectory() as tmp:
        try:
            checkpoint = None
            if args.start_node and not args.preset:
                checkpoint = str(resolve_checkpoint(args.checkpoint))
            if args.preset:
                from camseg_core.api import Segmenter
                from camseg_core.checkpoint import save_pretrained
                checkpoint = str(save_pretrained(Segmenter.from_preset(args.preset, device='cpu').model,
                                                 Path(tmp) / args.preset))
            summary = run_replay(args, checkpoint)
        except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as err:
            print(f'camseg-bag-replay: error: {err}', file=sys.stderr)
            return 1
    lat = summary['latency']
    print(f'camseg-bag-replay: {summary["answered"]}/{summary["sent"]} frames answered, latency median '
          f'{lat.get("median_ms", float("nan")):.1f} ms; wrote {Path(args.out) / "replay.json"}, report.md')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
