"""Scoring of segmentation answers against labels matched by header stamp, and the bag tools' report."""
from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np

from camseg_core.evaluation import plots
from camseg_core.evaluation.metrics import MetricSuite, latency_summary
from camseg_core.evaluation.report import describe_model, render_markdown
from camseg_ros.tools.bagio import BagError

MAX_PENDING = 512  # images / labels waiting for their partner (by header stamp) before being dropped
NUM_SAMPLES = 6  # sample strips: the first labelled frame of each stretch or window, at most this many


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
        """Return the name of the stretch or time window of a stamp."""
        if self.stretches is not None:
            hits = [n for n, s in zip(self.names, self.stretches) if s['start_ns'] <= stamp <= s['end_ns']]
            return hits[0] if hits else 'outside stretches'
        self.t0 = stamp if self.t0 is None else self.t0
        k = (stamp - self.t0) // self.segment_ns
        return f'{k * self.segment_ns / 1e9:g}-{(k + 1) * self.segment_ns / 1e9:g}s'

    def add_label(self, stamp: int, label: np.ndarray) -> None:
        """Add a label (H, W) trainIds; scored as soon as its prediction is there."""
        if stamp in self.preds:
            self._score(stamp, *self.preds.pop(stamp), label)
        else:
            self.labels[stamp] = label
            if len(self.labels) > MAX_PENDING:
                self.labels.pop(next(iter(self.labels)))
                self.dropped_labels += 1

    def add_prediction(self, stamp: int, image, out, latency: float) -> None:
        """Add a prediction (`labels`, `confidence`) and its latency in seconds; scored with its label."""
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
        """Return metrics and latency per group that has scored images ('all' for every image)."""
        out = {}
        for key, suite in self.suites.items():
            if self.counts[key]:
                latency = latency_summary(1000 * np.asarray(self.latency[key]))
                # No resolution / autoencoder ceilings here: they need the model, which camseg-eval has.
                out[key] = {'num_images': self.counts[key], 'metrics': suite.summary(), 'latency': latency,
                            'ceilings': None}
        return out


def write_report(out: Path, segmenter, scorer: Scorer, bag: dict, batch_size: int) -> dict:
    """Write metrics.json, report.md and the figures of `scorer` under `out`; return what metrics.json holds.

    `segmenter` is anything with `device` and `sampler` (a dataclass), and optionally `name` and `precision`.
    """
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
        'model': describe_model(segmenter),
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
