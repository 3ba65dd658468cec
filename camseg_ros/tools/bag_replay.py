"""camseg-bag-replay: play a bag's camera images into a running segment_node over DDS and score its answers.

Example: camseg-bag-replay drive_bag --image-topic /camera/image_raw --label-topic /camera/labels
--start-node --checkpoint runs/tiny --out runs/replay

Images are published (sensor_msgs/Image, original headers) on the node's input topic at `--rate` times
the bag's timing; the node's `segmentation/{mask,confidence}` are matched to them by header stamp.
Writes OUT/replay.json and OUT/report.md: end-to-end latency (publish -> receipt of both outputs),
frames the node dropped (sent but not answered, plus its /diagnostics counters) and, with a label topic,
the metrics of the answered frames overall and per stretch (the scoring and report of camseg-bag-eval).
The node judges staleness by the time a frame waits inside it, so recorded stamps need no special setting.
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

from camseg_core.assets import resolve_checkpoint
from camseg_core.cli.options import add_device_group, add_flags, add_model_group, add_sampler_group
from camseg_core.config import SAMPLER_PROFILES
from camseg_core.evaluation.metrics import latency_summary
from camseg_core.evaluation.report import render_markdown
from camseg_ros.params import camera_remappings, remap_arguments
from camseg_ros.tools.bagio import BagRecorder, load_stretches, output_topics
from camseg_ros.tools.process import NODE_ENV, random_checkpoint, start_node, stop_node
from camseg_ros.tools.replay import Replayer, counters, replay
from camseg_ros.tools.scoring import Scorer, write_report

STARTUP_TIMEOUT_S = 120.0  # for the node to load its model and subscribe


@dataclass
class NodeSampler:
    """The node's sampler as its diagnostics report it (the report's `sampler` entry)."""

    reported: str = 'unknown'


class _KindRecorder(BagRecorder):
    """The output bag, written by kind of message: 'image' (the input topic), 'mask', 'confidence'."""

    def __init__(self, path: Path, image_topic: str):
        super().__init__(path)
        self.topics = {'image': image_topic, **output_topics(image_topic)}

    def __call__(self, kind: str, msgtype: str, log_ns: int, payload: bytes) -> None:
        self.write(self.topics[kind], msgtype, log_ns, payload)


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
        params = {'device': args.device}
        params.update({'steps': args.steps} if args.steps else {})
        params.update({'profile': args.profile} if args.profile else {})
        remaps = remap_arguments(camera_remappings(input_topic)[1])  # image, image/compressed, camera_info
        proc = start_node(checkpoint, domain, out / 'segment_node.log', params,
                          ros_args=(*remaps, '-r', f'__ns:={namespace}'))
    stretches = load_stretches(args.bag) if args.label_topic else None
    scorer = Scorer(stretches, args.segment_seconds)
    rep = Replayer(domain, input_topic, namespace, f'{namespace.rstrip("/")}/{args.node_name}')
    recorder = _KindRecorder(record_path, args.image_topic) if args.record else None
    try:
        startup = STARTUP_TIMEOUT_S if proc else args.timeout
        node_exited = (lambda: proc.poll() is not None) if proc else (lambda: False)
        if not rep.spin_until(lambda: rep.connected() or node_exited(), startup) or not rep.connected():
            log = (out / 'segment_node.log').read_text() if proc else ''
            raise RuntimeError(f'no segment_node on {input_topic} -> {namespace}/segmentation/* '
                               f'(domain {domain}) after {startup:g} s\n{log}')
        rep.spin_until(lambda: rep.diagnostics is not None, 1.5)  # counters before the replay
        before = counters(rep.diagnostics[1] if rep.diagnostics else None)
        result = replay(rep, args.bag, args.image_topic, args.label_topic, args.rate, args.timeout, scorer,
                        recorder)
        replayed = time.time_ns()  # counters computed after this cover every frame we sent (1 Hz diagnostics)
        rep.spin_until(lambda: rep.diagnostics is not None and rep.diagnostics[0] > replayed, 3.0)
        diag = rep.diagnostics[1] if rep.diagnostics else {}
        after = counters(diag)
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
    add_model_group(p, checkpoint={'help': 'with --start-node: checkpoint directory (default: demo model)'},
                    preset={'help': 'with --start-node: random model (tests)'})
    add_sampler_group(p, names=('steps',), steps={'help': 'with --start-node: diffusion steps per token'})
    p.add_argument('--profile', choices=tuple(SAMPLER_PROFILES),
                   help="with --start-node: the node's sampler profile (default: config, the checkpoint's)")
    add_device_group(p, precision=False, device={'help': 'with --start-node: auto, cpu, cuda or cuda:N'})
    add_flags(p, 'out')
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
                checkpoint = random_checkpoint(tmp, args.preset)
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
