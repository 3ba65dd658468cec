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
import sys
import time
from contextlib import closing
from pathlib import Path

from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from camseg_core.cli.options import (add_device_group, add_flags, add_model_group, add_sampler_group,
                                     load_model)
from camseg_core.labels import colorize, label_ids_to_train_ids
from camseg_ros.image_codec import compressed_to_rgb, image_to_rgb, stamp_ns
from camseg_ros.tools.bagio import (COMPRESSED, IMAGE, BagError, BagRecorder, image_msg, load_stretches,
                                    output_topics, read_messages)
from camseg_ros.tools.scoring import Scorer, write_report


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
    batch, error, images = [], None, 0

    def flush():
        start = time.perf_counter()
        outs = segmenter.segment([b[4] for b in batch])
        latency = (time.perf_counter() - start) / len(batch)
        for (log_ns, msgtype, raw, header, rgb), res in zip(batch, outs):
            writer.write(image_topic, msgtype, log_ns, raw)
            for key, array, enc in (('mask', res.labels, 'mono8'), ('confidence', res.confidence, '32FC1'),
                                    ('color', colorize(res.labels), 'rgb8')):
                cdr = ts.serialize_cdr(image_msg(ts, header, array, enc), IMAGE)
                writer.write(topics[key], IMAGE, log_ns, cdr)
            scorer.add_prediction(stamp_ns(header), rgb, res, latency)
        bar.update(len(batch))
        batch.clear()

    with BagRecorder(out_bag) as writer, \
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


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the command-line flags."""
    p = argparse.ArgumentParser(prog='camseg-bag-eval', description=__doc__.strip().split('\n')[0])
    p.add_argument('bag', help='rosbag2 directory, .mcap or .db3 file')
    p.add_argument('--image-topic', required=True, help='sensor_msgs/Image or CompressedImage topic')
    p.add_argument('--label-topic', help='mono8 sensor_msgs/Image label topic (enables metrics)')
    p.add_argument('--label-format', default='trainids', choices=['trainids', 'labelids'])
    add_model_group(p)
    add_flags(p, 'out', 'batch_size')
    p.add_argument('--segment-seconds', type=float, default=10.0,
                   help='metric window length when the bag has no stretches.json')
    add_sampler_group(p, seed={'default': None, 'help': "sampler seed (default: the checkpoint's)"})
    add_device_group(p)
    p.add_argument('--no-progress', action='store_true', help='hide the progress bar')
    return p


def main(argv=None) -> int:
    """Parse flags, load the model, run over the bag; exit 1 with a message on a bag error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        segmenter = load_model(args)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    with closing(segmenter):
        try:
            run_bag_eval(segmenter, args.bag, args.out, args.image_topic, args.label_topic, args.label_format,
                         args.batch_size, args.segment_seconds, progress=not args.no_progress)
        except (ValueError, FileNotFoundError, FileExistsError) as err:
            print(f'camseg-bag-eval: error: {err}', file=sys.stderr)
            if isinstance(err, BagError):
                print(f'camseg-bag-eval: partial results kept in {args.out}', file=sys.stderr)
            return 1
    print(f'camseg-bag-eval: wrote {Path(args.out) / "segmented"}, report.md and metrics.json')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
