"""
Run a Segmenter over datasets and write metrics.json, report.md and figures.

    results = evaluate(segmenter, {'clear': dataset}, 'runs/eval', corruptions=['gaussian_noise'])

A dataset is anything with `__len__` / `__getitem__` returning dicts with `image` (HxWx3 uint8 RGB),
`label` (HxW uint8 trainIds, 255 = ignore) and `name` (str), e.g. `camseg_core.data.datasets.open_dataset`.
"""
from __future__ import annotations

import datetime
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Mapping

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..data.datasets import list_conditions, open_dataset
from . import plots
from .corruptions import CORRUPTIONS, SEVERITIES
from .metrics import MetricSuite, latency_summary


def _slug(name: str) -> str:
    return ''.join(c if c.isalnum() or c in '-_' else '_' for c in name).strip('_') or 'data'


def _find_dirs(root: Path, depth: int = 2) -> list[Path]:
    """List root and its sub-directories down to `depth` levels, sorted."""
    found, level = [root], [root]
    for _ in range(depth):
        level = sorted(d for p in level for d in p.iterdir() if d.is_dir())
        found += level
    return found


def expand_data_spec(spec: str) -> list[tuple[str, str]]:
    """
    Turn one --data SPEC into (subset name, open_dataset spec) pairs.

    `generated:ROOT` stands for every Cityscapes `val` split (named 'clear') and every ACDC condition
    `val` split (named after its folder: fog, fog_beta0.02, night, ...) found in ROOT or up to two directory
    levels below it.
    Other specs are passed through, named after the spec without its root directory.
    """
    kind, _, rest = spec.partition(':')
    if kind != 'generated':
        tail = rest.rsplit(':', 2 if kind == 'acdc' else 1)[1:]  # the root may itself contain ':'
        return [(':'.join([kind] + tail) if tail else spec, spec)]
    root = Path(rest)
    if not rest or not root.is_dir():
        raise FileNotFoundError(f'--data {spec}: directory {rest!r} does not exist')
    pairs = []
    for d in _find_dirs(root):
        if (d / 'leftImg8bit' / 'val').is_dir():
            pairs.append(('clear', f'cityscapes:{d}:val'))
        if (d / 'rgb_anon').is_dir():
            pairs += [(c, f'acdc:{d}:{c}:val') for c in list_conditions(d, 'val')]
    if not pairs:
        raise FileNotFoundError(f'--data {spec}: found no Cityscapes leftImg8bit/val nor ACDC '
                                f'rgb_anon/<condition>/val in {root} or two levels below it')
    names = [n for n, _ in pairs]
    return [(n if names.count(n) == 1 else f'{n}:{Path(s.split(":")[1]).name}', s) for n, s in pairs]


def open_data_specs(specs: list[str], unique: bool = True) -> dict:
    """Open the datasets of --data specs (see `expand_data_spec`) as {subset name: dataset}.

    With `unique` two specs that give the same subset name raise ValueError; without it the later one gets
    the name with a '#N' suffix (for callers that pool all images).
    """
    datasets = {}
    for name, spec in (pair for text in specs for pair in expand_data_spec(text)):
        if name in datasets:
            if unique:
                raise ValueError(f'two --data specs give the same subset name: {name!r}')
            name = f'{name}#{len(datasets)}'
        datasets[name] = open_dataset(spec)
    return datasets


def check_item(item, index: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Return (image, label, name) of dataset item `index`; ValueError unless a valid image and label."""
    if not isinstance(item, Mapping) or 'image' not in item or 'label' not in item:
        raise ValueError(f'dataset item {index} must be a dict with image, label and name')
    image, label = np.asarray(item['image']), np.asarray(item['label'])
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'dataset item {index}: image must be HxWx3 uint8, got {image.dtype} {image.shape}')
    if label.shape != image.shape[:2]:
        raise ValueError(f'dataset item {index}: label shape {label.shape} differs from image '
                         f'{image.shape[:2]}')
    return image, label.astype(np.uint8, copy=False), str(item.get('name', index))


def image_batches(dataset, limit: int, batch_size: int):
    """Yield lists of (index, image, label, name) with images of one size, at most batch_size long."""
    batch = []
    for i in range(limit):
        image, label, name = check_item(dataset[i], i)
        if batch and (len(batch) == batch_size or batch[0][1].shape != image.shape):
            yield batch
            batch = []
        batch.append((i, image, label, name))
    if batch:
        yield batch


def _save_prediction(directory: Path, name: str, labels: np.ndarray) -> None:
    rel = Path(f'{name}_pred_trainIds.png')
    if rel.is_absolute() or '..' in rel.parts:
        raise ValueError(f'image name {name!r} cannot be used as a file name inside {directory}')
    path = directory / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels).save(path)


def score_dataset(segmenter, dataset, limit: int, batch_size: int, desc: str,
                  corruption: str | None = None, severity: int = 0, seed: int = 0,
                  save_dir: Path | None = None, num_samples: int = 0) -> dict:
    """One pass over a dataset: metrics, per-image latency (batch time / batch size) and sample panels."""
    suite, latencies, samples = MetricSuite(), [], []
    with tqdm(total=limit, desc=desc, unit='img', leave=False) as bar:
        for batch in image_batches(dataset, limit, batch_size):
            images = [b[1] for b in batch]
            if corruption:
                images = [CORRUPTIONS[corruption](im, severity, seed=int(np.random.SeedSequence(
                    [seed, b[0], severity]).generate_state(1)[0])) for im, b in zip(images, batch)]
            start = time.perf_counter()
            outputs = segmenter.segment(images)
            latencies += [(time.perf_counter() - start) / len(batch)] * len(batch)
            for (_, _, label, name), image, out in zip(batch, images, outputs):
                suite.update(out.labels, label, out.confidence)
                if save_dir is not None:
                    _save_prediction(save_dir, name, out.labels)
                if len(samples) < num_samples:
                    samples.append({'image': image, 'pred': out.labels, 'confidence': out.confidence,
                                    'label': label, 'name': name})
            bar.update(len(batch))
    latency = latency_summary(1000 * np.asarray(latencies))
    return {'num_images': limit, 'metrics': suite.summary(), 'latency': latency, 'samples': samples}


def _ceiling_summary(suite: MetricSuite) -> dict:
    """Keep the part of a MetricSuite summary a ceiling reports.

    mIoU, pixel accuracy, IoU per class, and the CAM-Seg paper's metric: precision per class and its mean over
    the classes predicted ("AP" in the paper).
    """
    s = suite.summary()
    return {'miou': s['miou'], 'num_classes_averaged': s['num_classes_averaged'],
            'pixel_accuracy': s['pixel_accuracy'], 'void_pixels': s['void_pixels'],
            'ece': s['calibration']['ece'], 'per_class': {n: v['iou'] for n, v in s['per_class'].items()},
            'mean_precision': s['mean_precision'],
            'per_class_precision': {n: v['precision'] for n, v in s['per_class'].items()}}


def measure_ceilings(segmenter, dataset, limit: int, batch_size: int, desc: str = 'data') -> dict:
    """
    Score the ground-truth labels after what the model does to every mask, without the generator.

    'resolution': labels letterboxed to the processing size (nearest) and restored like predictions.
    'autoencoder' (models with a mask autoencoder, else None): labels at the processing size drawn as a
    maskige, encoded, decoded to classes and restored. Both are scored against the full-size labels of the
    first `limit` items of `dataset` (mIoU, IoU per class, precision per class and its mean: see
    `_ceiling_summary`); `desc` names the progress bar.
    """
    suites = {'resolution': (MetricSuite(), segmenter.resize_labels)}
    if getattr(segmenter, 'has_mask_autoencoder', False):
        suites['autoencoder'] = (MetricSuite(), segmenter.autoencode_labels)
    with tqdm(total=limit, desc=f'{desc} ceilings', unit='img', leave=False) as bar:
        for batch in image_batches(dataset, limit, batch_size):
            labels = [b[2] for b in batch]
            for suite, run in suites.values():
                for out, label in zip(run(labels), labels):
                    suite.update(out.labels, label, out.confidence)
            bar.update(len(batch))
    result = {kind: _ceiling_summary(suite) for kind, (suite, _) in suites.items()}
    result.setdefault('autoencoder', None)
    return result


def describe_model(segmenter) -> dict:
    """Return the `model` block of a metrics.json: what ran (name, type, device, precision, sampler, floor).

    `segmenter` is a `Segmenter`, or any object with its `device` and `sampler` (a node's answer, say).
    """
    return {'name': getattr(segmenter, 'name', ''),
            'model_type': getattr(getattr(segmenter, 'model', None), 'model_type', ''),
            'device': str(segmenter.device), 'precision': getattr(segmenter, 'precision', ''),
            'sampler': asdict(segmenter.sampler),
            'exposure_floor': getattr(segmenter, 'exposure_floor', None)}


def evaluate(segmenter, data, out_dir: str | Path, *, batch_size: int = 4, max_images: int | None = None,
             corruptions=(), severities=SEVERITIES, save_predictions: str | Path | None = None,
             seed: int = 0, num_samples: int = 3, ceilings: bool = True) -> dict:
    """
    Evaluate `segmenter` on `data` and write metrics.json, report.md and PNG figures into out_dir.

    data: one dataset, or a mapping subset name -> dataset (e.g. 'clear', 'fog'); each subset is
    evaluated clean, with up to `max_images` images. corruptions: names from CORRUPTIONS, swept over
    `severities` on the first subset; retention = mIoU(corrupted) / mIoU(clean). save_predictions:
    a directory that receives `<subset>/<name>_pred_trainIds.png`. Latency per image is the batch
    time divided by the batch size, after one untimed warm-up image. ceilings: also score each subset's
    resolution ceiling and, for a model with a mask autoencoder, its autoencoder ceiling (see `_ceilings`)
    under 'ceilings' (None when skipped). Returns what metrics.json holds.
    """
    subsets = dict(data) if isinstance(data, Mapping) else {'data': data}
    if not subsets:
        raise ValueError('no dataset to evaluate')
    if batch_size < 1:
        raise ValueError(f'batch_size must be >= 1, got {batch_size}')
    unknown = [c for c in corruptions if c not in CORRUPTIONS]
    bad = [s for s in severities if s not in SEVERITIES]
    if unknown or bad:
        raise ValueError(f'unknown corruptions {unknown} or severities {bad}; '
                         f'choose from {list(CORRUPTIONS)} and {SEVERITIES}')
    limits = {}
    for name, dataset in subsets.items():
        limits[name] = len(dataset) if max_images is None else min(len(dataset), max_images)
        if limits[name] == 0:
            raise ValueError(f'dataset {name!r} has no images')
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    first = next(iter(subsets))
    segmenter.segment(check_item(subsets[first][0], 0)[0])  # warm-up, not timed

    results, samples = {}, {}
    for name, dataset in subsets.items():
        save_dir = Path(save_predictions) / _slug(name) if save_predictions else None
        run = score_dataset(segmenter, dataset, limits[name], batch_size, name, save_dir=save_dir,
                            num_samples=num_samples)
        samples[name] = run.pop('samples')
        run['ceilings'] = (measure_ceilings(segmenter, dataset, limits[name], batch_size, name) if ceilings
                           else None)
        results[name] = run

    sweep = {}
    if corruptions:
        clean = results[first]['metrics']['miou']
        steps = [(c, s) for c in corruptions for s in severities]
        for c, s in tqdm(steps, desc='corruptions', unit='run'):
            run = score_dataset(segmenter, subsets[first], limits[first], batch_size, f'{c}@{s}', c, s, seed)
            m = run['metrics']
            sweep.setdefault(c, {})[str(s)] = {
                'miou': m['miou'],
                'retention': m['miou'] / clean if m['miou'] is not None and clean else None,
                'pixel_accuracy': m['pixel_accuracy'], 'mean_precision': m['mean_precision'],
                'ece': m['calibration']['ece'], 'auroc_wrong': m['calibration']['auroc_wrong']}

    summary = {
        'created': datetime.datetime.now().isoformat(timespec='seconds'),
        'model': describe_model(segmenter),
        'settings': {'batch_size': batch_size, 'max_images': max_images, 'seed': seed,
                     'ceilings': ceilings,
                     'corruptions': list(corruptions), 'severities': list(severities),
                     'save_predictions': str(save_predictions) if save_predictions else None},
        'datasets': results,
        'corruptions': {'dataset': first, 'clean_miou': results[first]['metrics']['miou'],
                        'results': sweep} if sweep else None,
        'figures': _figures(out, results, samples, sweep),
    }
    (out / 'metrics.json').write_text(json.dumps(summary, indent=2, allow_nan=False))
    (out / 'report.md').write_text(render_markdown(summary))
    return summary


def _figures(out: Path, results: dict, samples: dict, sweep: dict) -> list[str]:
    """Draw every figure; returns their file names (relative to out)."""
    files = [plots.plot_per_class_iou({n: r['metrics']['per_class'] for n, r in results.items()},
                                      out / 'per_class_iou.png'),
             plots.plot_reliability({n: {**r['metrics']['calibration']['reliability'],
                                         'ece': r['metrics']['calibration']['ece']}
                                     for n, r in results.items()}, out / 'reliability.png')]
    files += [plots.plot_samples(s, out / f'samples_{_slug(n)}.png') for n, s in samples.items() if s]
    if sweep:
        curves = {c: {int(s): v['retention'] for s, v in by.items()} for c, by in sweep.items()}
        files.append(plots.plot_robustness(curves, 1.0, out / 'robustness.png'))
    if any(r['ceilings'] for r in results.values()):
        files.append(plots.plot_ceilings(_ceiling_rows(results), out / 'ceilings.png'))
    return [f.name for f in files]


def _ceiling_rows(results: dict) -> dict[str, dict[str, float | None]]:
    """Subset -> resolution ceiling, autoencoder ceiling and model mIoU (subsets with ceilings only)."""
    rows = {}
    for n, r in results.items():
        c = r['ceilings']
        if c:
            rows[n] = {'resolution': c['resolution']['miou'],
                       'autoencoder': c['autoencoder']['miou'] if c['autoencoder'] else None,
                       'model': r['metrics']['miou']}
    return rows


def _loss(upper, lower) -> str:
    return '-' if upper is None or lower is None else f'{100 * (upper - lower):.1f}'


def _ceiling_markdown(results: dict) -> list[str]:
    """Render the report section that splits the mIoU lost into resolution, autoencoder and generator."""
    rows = _ceiling_rows(results)
    if not rows:
        return []
    lines = ['', '## Where accuracy is lost', '',
             'Resolution ceiling: the ground truth resized to the processing size (nearest) and back, as',
             'predictions are. Autoencoder ceiling: the ground truth at the processing size drawn as a',
             'maskige, encoded, decoded to classes and restored (CAM-Seg only; no generator can beat it).',
             'mIoU in %; the last three columns are the points lost at each stage.', '',
             '| subset | resolution ceiling | autoencoder ceiling | model | lost to resolution | '
             'lost to autoencoder | lost to generator |', '|---|---|---|---|---|---|---|']
    for n, v in rows.items():
        ae = v['autoencoder']
        gen_from = ae if ae is not None else v['resolution']
        lines.append(f'| {n} | {_pct(v["resolution"])} | {_pct(ae)} | {_pct(v["model"])} | '
                     f'{_loss(1.0, v["resolution"])} | {_loss(v["resolution"], ae)} | '
                     f'{_loss(gen_from, v["model"])} |')
    lines += ['', 'Mean precision per class (TP / (TP + FP), averaged over the classes predicted: the',
              "CAM-Seg paper's \"AP\"), in %.", '',
              '| subset | resolution ceiling | autoencoder ceiling | model |',
              '|---|---|---|---|']
    for n in rows:
        c = results[n]['ceilings']
        ae = c['autoencoder']['mean_precision'] if c['autoencoder'] else None
        lines.append(f'| {n} | {_pct(c["resolution"].get("mean_precision"))} | {_pct(ae)} | '
                     f'{_pct(results[n]["metrics"].get("mean_precision"))} |')
    names = list(rows)
    lines += ['', 'IoU per class: resolution ceiling / autoencoder ceiling / model.', '',
              '| class | ' + ' | '.join(names) + ' |', '|---|' + '---|' * len(names)]
    for cls in results[names[0]]['metrics']['per_class']:
        cells = []
        for n in names:
            c = results[n]['ceilings']
            ae = c['autoencoder']['per_class'][cls] if c['autoencoder'] else None
            cells.append(f'{_pct(c["resolution"]["per_class"][cls])} / {_pct(ae)} / '
                         f'{_pct(results[n]["metrics"]["per_class"][cls]["iou"])}')
        lines.append(f'| {cls} | ' + ' | '.join(cells) + ' |')
    return lines


def _pct(value) -> str:
    return '-' if value is None else f'{100 * value:.1f}'


def render_markdown(summary: dict) -> str:
    """Render an `evaluate` summary as a human-readable Markdown report."""
    model, results = summary['model'], summary['datasets']
    names = list(results)
    lines = [f'# camseg evaluation: {model["name"]}', '',
             f'Device `{model["device"]}`, precision `{model["precision"]}`, sampler '
             + ', '.join(f'{k}={v}' for k, v in model['sampler'].items())
             + (f', exposure floor {model["exposure_floor"]}' if model.get('exposure_floor') is not None
                else '')
             + f'. Created {summary["created"]}.', '',
             'mIoU averages the classes present in prediction or ground truth (count in "classes");',
             '"AP" is the mean per-class precision the CAM-Seg paper reports; AUROC is for detecting',
             'wrong pixels by low confidence. Values in %, latency per image in ms.', '',
             '## Overall', '',
             '| subset | images | mIoU | classes | pixel acc | AP | ECE | AUROC | latency median | p95 |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for n, r in results.items():
        m, cal, lat = r['metrics'], r['metrics']['calibration'], r['latency']
        lines.append(f'| {n} | {r["num_images"]} | {_pct(m["miou"])} | {m["num_classes_averaged"]} | '
                     f'{_pct(m["pixel_accuracy"])} | {_pct(m["mean_precision"])} | {_pct(cal["ece"])} | '
                     f'{_pct(cal["auroc_wrong"])} | {lat.get("median_ms", 0):.1f} | '
                     f'{lat.get("p95_ms", 0):.1f} |')
    lines += ['', '## Per class (IoU / precision)', '', '| class | ' + ' | '.join(names) + ' |',
              '|---|' + '---|' * len(names)]
    for cls in next(iter(results.values()))['metrics']['per_class']:
        cells = [f'{_pct(results[n]["metrics"]["per_class"][cls]["iou"])} / '
                 f'{_pct(results[n]["metrics"]["per_class"][cls]["precision"])}' for n in names]
        lines.append(f'| {cls} | ' + ' | '.join(cells) + ' |')
    lines += ['', '## Calibration', '',
              '| subset | pixels | accuracy | mean confidence | ECE | AUROC (wrong) |',
              '|---|---|---|---|---|---|']
    for n, r in results.items():
        m, cal = r['metrics'], r['metrics']['calibration']
        lines.append(f'| {n} | {m["num_pixels"]} | {_pct(m["pixel_accuracy"])} | '
                     f'{_pct(cal["mean_confidence"])} | {_pct(cal["ece"])} | {_pct(cal["auroc_wrong"])} |')
    lines += _ceiling_markdown(results)
    sweep = summary['corruptions']
    if sweep:
        sev = summary['settings']['severities']
        lines += ['', f'## Corruptions (on {sweep["dataset"]}, clean mIoU {_pct(sweep["clean_miou"])})', '',
                  'mIoU (retention = mIoU corrupted / clean) per severity.', '',
                  '| corruption | ' + ' | '.join(f'severity {s}' for s in sev) + ' | mean retention |',
                  '|---|' + '---|' * (len(sev) + 1)]
        for c, by in sweep['results'].items():
            kept = [v['retention'] for v in by.values() if v['retention'] is not None]
            cells = [f'{_pct(by[str(s)]["miou"])} ({_pct(by[str(s)]["retention"])})' for s in sev]
            lines.append(f'| {c} | ' + ' | '.join(cells) + f' | {_pct(np.mean(kept)) if kept else "-"} |')
    lines += ['', '## Figures', ''] + [f'![{f}]({f})' for f in summary['figures']]
    return '\n'.join(lines) + '\n'
