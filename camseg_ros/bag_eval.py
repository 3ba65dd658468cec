"""
camseg-bag-eval: segment the images of a rosbag2 (MCAP or sqlite3) offline, without rclpy.

Example: camseg-bag-eval drive_bag --image-topic /camera/image_raw --label-topic /camera/labels
--checkpoint runs/tiny --out runs/bag_eval

Writes OUT/segmented (an MCAP rosbag2 with the input images and `<ns>/segmentation/{mask,confidence,color}`
at the original timestamps and headers) and, with a label topic, metrics.json, report.md and figures:
overall and per time segment (the weather stretches of the bag's stretches.json when there is one, else
fixed windows). A bag cut off mid-file, a missing topic or an unknown message type stops with an error
naming it; what was processed before is kept.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import yaml
from mcap.exceptions import McapError
from mcap.records import Channel, Message, Schema
from mcap.stream_reader import StreamReader
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from camseg_core.api import Segmenter, load_segmenter
from camseg_core.config import PRESETS
from camseg_core.evaluation import plots
from camseg_core.evaluation.metrics import MetricSuite, latency_summary
from camseg_core.evaluation.report import render_markdown
from camseg_core.labels import colorize, label_ids_to_train_ids
from camseg_ros.image_codec import compressed_to_rgb, fill_image, image_to_rgb, stamp_ns

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
STRETCHES_FILE = 'stretches.json'
STRETCHES_KEY = 'camseg.stretches'
MAX_PENDING = 512  # images / labels waiting for their partner (by header stamp) before being dropped
NUM_SAMPLES = 6  # sample strips: the first labelled frame of each stretch or window, at most this many


class BagError(ValueError):
    """A bag that cannot be read: missing or cut-off file, missing topic, unknown message type."""


def _mcap_file(bag: Path) -> Path | None:
    if bag.suffix == '.mcap':
        return bag
    files = sorted(bag.glob('*.mcap')) if bag.is_dir() else []
    return files[0] if len(files) == 1 else None


def _check(topic: str, msgtype: str, allowed: dict[str, tuple[str, ...]]) -> None:
    if msgtype not in allowed[topic]:
        raise BagError(f'topic {topic} has unknown message type {msgtype}; expected one of {allowed[topic]}')


def _stream_mcap(path: Path, allowed: dict):
    """Read an MCAP file front to back (no footer needed); a cut-off end raises BagError."""
    schemas, channels, count = {}, {}, 0
    with open(path, 'rb') as f:
        try:
            for rec in StreamReader(f).records:
                if isinstance(rec, Schema):
                    schemas[rec.id] = rec.name
                elif isinstance(rec, Channel):
                    channels[rec.id] = (rec.topic, schemas.get(rec.schema_id, ''))
                elif isinstance(rec, Message) and channels.get(rec.channel_id, ('',))[0] in allowed:
                    topic, msgtype = channels[rec.channel_id]
                    _check(topic, msgtype, allowed)
                    count += 1
                    yield topic, msgtype, rec.log_time, rec.data
        except (McapError, EOFError) as err:
            raise BagError(f'bag file {path} is cut off or corrupt after {count} messages '
                           f'({type(err).__name__}: {err})') from err
    seen = {t for t, _ in channels.values()}
    missing = [t for t in allowed if t not in seen]
    if missing:
        raise BagError(f'topic(s) {missing} not in bag {path}; it has {sorted(seen)}')


def read_messages(bag: str | Path, allowed: dict[str, tuple[str, ...]], typestore):
    """Yield (topic, msgtype, log time ns, CDR bytes) of the `allowed` topics (topic -> message types).

    Raises BagError (on the first `next`) for a missing bag, topic or message type, and while
    iterating when the bag turns out to be cut off or corrupt.
    """
    bag = Path(bag)
    if not bag.exists():
        raise FileNotFoundError(f'bag {bag} does not exist')
    reader = AnyReader([bag], default_typestore=typestore)
    try:
        reader.open()
    except AnyReaderError as err:
        mcap = _mcap_file(bag)
        if mcap is None or 'magic' not in str(err).lower():
            raise BagError(f'cannot read bag {bag}: {err}') from err
        yield from _stream_mcap(mcap, allowed)  # no footer: cut off while recording
        return
    try:
        missing = [t for t in allowed if t not in reader.topics]
        if missing:
            raise BagError(f'topic(s) {missing} not in bag {bag}; it has {sorted(reader.topics)}')
        conns = [c for c in reader.connections if c.topic in allowed]
        for c in conns:
            _check(c.topic, c.msgtype, allowed)
        count, stream = 0, reader.messages(connections=conns)
        while True:
            try:
                conn, log_ns, raw = next(stream)
            except StopIteration:
                return
            except Exception as err:  # each storage backend raises its own types
                raise BagError(f'bag {bag} is cut off or corrupt after {count} messages '
                               f'({type(err).__name__}: {err})') from err
            count += 1
            yield conn.topic, conn.msgtype, log_ns, raw
    finally:
        reader.close()


def load_stretches(bag: str | Path) -> list[dict] | None:
    """Return the weather stretches of a camseg drive bag (stretches.json next to / in it, or metadata)."""
    bag = Path(bag)
    folder = bag if bag.is_dir() else bag.parent
    for path in (folder / STRETCHES_FILE, folder.parent / STRETCHES_FILE):
        if path.is_file():
            return json.loads(path.read_text())['stretches']
    meta = folder / 'metadata.yaml'
    if meta.is_file():
        custom = (yaml.safe_load(meta.read_text())['rosbag2_bagfile_information'].get('custom_data') or {})
        if STRETCHES_KEY in custom:
            return json.loads(custom[STRETCHES_KEY])['stretches']
    return None


class Scorer:
    """Pairs predictions with labels by header stamp and accumulates metrics overall and per segment."""

    def __init__(self, stretches: list[dict] | None, segment_seconds: float):
        self.stretches, self.segment_ns = stretches, int(segment_seconds * 1e9)
        conditions = [s['condition'] for s in stretches or []]
        self.names = [c if conditions.count(c) == 1 else f'{k}:{c}' for k, c in enumerate(conditions)]
        self.suites, self.counts, self.latency = {'all': MetricSuite()}, {'all': 0}, {'all': []}
        self.labels, self.preds, self.samples = {}, {}, []
        self.t0, self.dropped_images, self.dropped_labels = None, 0, 0

    def group(self, stamp: int) -> str:
        if self.stretches is not None:
            hits = [n for n, s in zip(self.names, self.stretches) if s['start_ns'] <= stamp <= s['end_ns']]
            return hits[0] if hits else 'outside stretches'
        self.t0 = stamp if self.t0 is None else self.t0
        k = (stamp - self.t0) // self.segment_ns
        return f'{k * self.segment_ns / 1e9:g}-{(k + 1) * self.segment_ns / 1e9:g}s'

    def add_label(self, stamp: int, label: np.ndarray) -> None:
        if stamp in self.preds:
            self._score(stamp, *self.preds.pop(stamp), label)
        else:
            self.labels[stamp] = label
            if len(self.labels) > MAX_PENDING:
                self.labels.pop(next(iter(self.labels)))
                self.dropped_labels += 1

    def add_prediction(self, stamp: int, image, out, latency: float) -> None:
        self.t0 = stamp if self.t0 is None else self.t0
        self.latency['all'].append(latency)
        image = image if self.wants_sample(stamp) else None
        if stamp in self.labels:
            self._score(stamp, image, out, latency, self.labels.pop(stamp))
        else:
            self.preds[stamp] = (image, out, latency)
            if len(self.preds) > MAX_PENDING:
                self.preds.pop(next(iter(self.preds)))
                self.dropped_images += 1

    def _score(self, stamp, image, out, latency, label) -> None:
        if label.shape != out.labels.shape:
            raise BagError(f'label at stamp {stamp} is {label.shape}, its image {out.labels.shape}')
        name = self.group(stamp)
        for key in ('all', name):
            self.suites.setdefault(key, MetricSuite()).update(out.labels, label, out.confidence)
            self.counts[key] = self.counts.get(key, 0) + 1
        self.latency.setdefault(name, []).append(latency)  # 'all' counts every image, in add_prediction
        if image is not None and self._wants(name):
            self.samples.append({'image': image, 'pred': out.labels, 'confidence': out.confidence,
                                 'label': label, 'name': name})

    def wants_sample(self, stamp: int) -> bool:
        """Whether the image at `stamp` may become a sample strip (its group has none yet)."""
        return self._wants(self.group(stamp))

    def _wants(self, name: str) -> bool:
        return len(self.samples) < NUM_SAMPLES and all(s['name'] != name for s in self.samples)

    def results(self) -> dict:
        out = {}
        for key, suite in self.suites.items():
            if self.counts[key]:
                latency = latency_summary(1000 * np.asarray(self.latency[key]))
                out[key] = {'num_images': self.counts[key], 'metrics': suite.summary(), 'latency': latency}
        return out


def _image_msg(typestore, header, array: np.ndarray, encoding: str):
    """Build a rosbags sensor_msgs/Image with the codec's `fill_image` (rosbags wants a uint8 array)."""
    f = fill_image(SimpleNamespace(), array, encoding)
    return typestore.types[IMAGE](header=header, height=f.height, width=f.width, encoding=f.encoding,
                                  is_bigendian=f.is_bigendian, step=f.step,
                                  data=np.frombuffer(f.data, np.uint8))


def output_topics(image_topic: str) -> dict[str, str]:
    ns = image_topic.rstrip('/').rsplit('/', 1)[0]
    return {k: f'{ns}/segmentation/{k}' for k in ('mask', 'confidence', 'color')}


def run_bag_eval(segmenter, bag: str | Path, out_dir: str | Path, image_topic: str,
                 label_topic: str | None = None, label_format: str = 'trainids', batch_size: int = 4,
                 segment_seconds: float = 10.0, progress: bool = True) -> dict:
    """
    Segment every image of `image_topic` in `bag`; write OUT/segmented and metrics.json / report.md.

    Labels (mono8 Image, trainIds or Cityscapes labelIds) are matched to images by header stamp.
    On a BagError (cut-off bag, missing topic, unknown type) what was read is still segmented, the
    output bag closed and the partial metrics written (with `complete: false`), then it is raised.
    Returns what metrics.json holds.
    """
    if label_format not in ('trainids', 'labelids'):
        raise ValueError(f"label_format must be 'trainids' or 'labelids', got {label_format!r}")
    if label_topic == image_topic:
        raise ValueError(f'image and label topic are the same: {image_topic}')
    if batch_size < 1 or segment_seconds <= 0:
        raise ValueError(f'need batch_size >= 1 and segment_seconds > 0, got {batch_size}, {segment_seconds}')
    if not Path(bag).exists():
        raise FileNotFoundError(f'bag {bag} does not exist')
    out = Path(out_dir)
    out_bag = out / 'segmented'
    if out_bag.exists():
        raise FileExistsError(f'output bag exists already, not overwriting: {out_bag}')
    out.mkdir(parents=True, exist_ok=True)
    ts = get_typestore(Stores.ROS2_KILTED)
    allowed = {image_topic: (IMAGE, COMPRESSED)}
    if label_topic:
        allowed[label_topic] = (IMAGE,)
    stretches = load_stretches(bag) if label_topic else None
    scorer, topics = Scorer(stretches, segment_seconds), output_topics(image_topic)
    conns, batch, error, images = {}, [], None, 0

    def flush():
        start = time.perf_counter()
        outs = segmenter.segment([b[4] for b in batch])
        latency = (time.perf_counter() - start) / len(batch)
        for (log_ns, msgtype, raw, header, rgb), res in zip(batch, outs):
            if not conns:
                conns['image'] = writer.add_connection(image_topic, msgtype, typestore=ts)
                conns.update({k: writer.add_connection(t, IMAGE, typestore=ts) for k, t in topics.items()})
            writer.write(conns['image'], log_ns, raw)
            for key, array, enc in (('mask', res.labels, 'mono8'), ('confidence', res.confidence, '32FC1'),
                                    ('color', colorize(res.labels), 'rgb8')):
                writer.write(conns[key], log_ns, ts.serialize_cdr(_image_msg(ts, header, array, enc), IMAGE))
            scorer.add_prediction(stamp_ns(header), rgb, res, latency)
        bar.update(len(batch))
        batch.clear()

    with Writer(out_bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer, \
            tqdm(desc=f'segment {Path(bag).name}', unit='img', disable=not progress) as bar:
        try:
            for topic, msgtype, log_ns, raw in read_messages(bag, allowed, ts):
                msg = ts.deserialize_cdr(raw, msgtype)
                try:
                    if topic == label_topic:
                        label = image_to_rgb(msg)[:, :, 0] if msg.encoding == 'mono8' else None
                        if label is None:
                            raise ValueError(f'labels must be mono8, got {msg.encoding!r}')
                        scorer.add_label(stamp_ns(msg.header), label if label_format == 'trainids'
                                         else label_ids_to_train_ids(label))
                        continue
                    rgb = compressed_to_rgb(msg) if msgtype == COMPRESSED else image_to_rgb(msg)
                except ValueError as err:
                    raise BagError(f'{topic} message at {log_ns} ns: {err}') from err
                images += 1
                batch.append((log_ns, msgtype, raw, msg.header, rgb))
                if len(batch) == batch_size:
                    flush()
        except BagError as err:
            error = err
        if batch:
            flush()
    summary = write_report(out, segmenter, scorer, dict(
        path=str(bag), image_topic=image_topic, label_topic=label_topic, label_format=label_format,
        images=images, output_bag=str(out_bag), output_topics=topics,
        grouping='stretches' if stretches is not None else f'windows of {segment_seconds:g} s',
        unmatched_images=len(scorer.preds) + scorer.dropped_images,
        unmatched_labels=len(scorer.labels) + scorer.dropped_labels,
        complete=error is None, error=str(error) if error else None), batch_size)
    if error is not None:
        raise error
    return summary


def write_report(out: Path, segmenter, scorer: Scorer, bag: dict, batch_size: int) -> dict:
    results = scorer.results()
    figures = []
    if results:
        figures = [plots.plot_per_class_iou({n: r['metrics']['per_class'] for n, r in results.items()},
                                            out / 'per_class_iou.png'),
                   plots.plot_reliability({n: {**r['metrics']['calibration']['reliability'],
                                               'ece': r['metrics']['calibration']['ece']}
                                           for n, r in results.items()}, out / 'reliability.png')]
        figures += [plots.plot_samples(scorer.samples, out / 'samples.png')] if scorer.samples else []
    summary = {
        'created': datetime.datetime.now().isoformat(timespec='seconds'),
        'model': {'name': getattr(segmenter, 'name', ''), 'device': str(segmenter.device),
                  'precision': getattr(segmenter, 'precision', ''), 'sampler': asdict(segmenter.sampler)},
        'settings': {'batch_size': batch_size},
        'bag': bag,
        'segments': [n for n in results if n != 'all'],
        'datasets': results,
        'corruptions': None,
        'figures': [f.name for f in figures],
    }
    (out / 'metrics.json').write_text(json.dumps(summary, indent=2, allow_nan=False))
    head = [f'# camseg bag evaluation: {bag["path"]}', '',
            f'Images on {bag["image_topic"]}: {bag["images"]}; segments grouped by {bag["grouping"]}; '
            f'unmatched images {bag["unmatched_images"]}, labels {bag["unmatched_labels"]}; '
            f'output bag `{bag["output_bag"]}`.', '']
    if bag['error']:
        head += [f'**Incomplete:** {bag["error"]}', '']
    body = render_markdown(summary) if results else 'No labelled images: no metrics.\n'
    (out / 'report.md').write_text('\n'.join(head) + '\n' + body)
    return summary


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the command-line flags."""
    p = argparse.ArgumentParser(prog='camseg-bag-eval', description=__doc__.strip().split('\n')[0])
    p.add_argument('bag', help='rosbag2 directory, .mcap or .db3 file')
    p.add_argument('--image-topic', required=True, help='sensor_msgs/Image or CompressedImage topic')
    p.add_argument('--label-topic', help='mono8 sensor_msgs/Image label topic (enables metrics)')
    p.add_argument('--label-format', default='trainids', choices=['trainids', 'labelids'])
    model = p.add_mutually_exclusive_group()
    model.add_argument('--checkpoint', help='checkpoint directory (default: the shipped demo model)')
    model.add_argument('--preset', choices=sorted(PRESETS), help='randomly initialised model (tests)')
    p.add_argument('--out', required=True, help='output directory')
    p.add_argument('--batch-size', type=int, default=4)
    p.add_argument('--segment-seconds', type=float, default=10.0,
                   help='metric window length when the bag has no stretches.json')
    p.add_argument('--steps', type=int, help='sampler: diffusion steps per token')
    p.add_argument('--num-iter', type=int, help='sampler: MAR iterations')
    p.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    p.add_argument('--precision', default='fp32', choices=['fp32', 'fp16', 'bf16'])
    p.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    return p


def main(argv=None) -> int:
    """Parse flags, load the model, run over the bag; exit 1 with a message on a bag error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    sampler = {k: getattr(args, k) for k in ('steps', 'num_iter') if getattr(args, k) is not None}
    try:
        options = dict(device=args.device, precision=args.precision, **sampler)
        segmenter = (Segmenter.from_preset(args.preset, **options) if args.preset
                     else load_segmenter(args.checkpoint, **options))
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    try:
        run_bag_eval(segmenter, args.bag, args.out, args.image_topic, args.label_topic, args.label_format,
                     args.batch_size, args.segment_seconds, progress=not args.no_progress)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f'camseg-bag-eval: error: {err}', file=sys.stderr)
        if isinstance(err, BagError):
            print(f'camseg-bag-eval: partial results kept in {args.out}', file=sys.stderr)
        return 1
    finally:
        segmenter.close()
    print(f'camseg-bag-eval: wrote {Path(args.out) / "segmented"}, report.md and metrics.json')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
