"""
Quality against speed: evaluate several sampler settings of one Segmenter on the same images in one run.

    result = sweep(segmenter, dataset, 'runs/sweep', ['paper=num_iter:1,steps:100,scheduler:ddpm',
                                                      'fastest=num_iter:1,steps:4,scheduler:ddim'])

Each setting is 'name=key:value,...' with sampler keys (num_iter, steps, scheduler, temperature, ensemble,
seed) and optionally `precision` (fp32, fp16, bf16). Writes sweep.json, sweep.md and sweep.png (mIoU, ECE and
AUROC against the median latency per image) and says whether the fastest setting loses at most
`max_loss` mIoU (1 point) against the paper's setting.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
from pathlib import Path

from ..benchmark import PAPER_SETTING, apply_setting, parse_setting
from . import plots
from .report import check_item, score_dataset

DEFAULT_SETTINGS = (
    PAPER_SETTING,
    'ddim20=num_iter:1,steps:20,scheduler:ddim',
    'ddim10=num_iter:1,steps:10,scheduler:ddim',
    'fastest=num_iter:1,steps:4,scheduler:ddim',
    'iter4=num_iter:4,steps:10,scheduler:ddim',
    'ensemble3=num_iter:1,steps:4,scheduler:ddim,ensemble:3',
    'cold=num_iter:1,steps:10,scheduler:ddpm,temperature:0.5',
    'fastest_bf16=num_iter:1,steps:4,scheduler:ddim,precision:bf16',
)
MAX_MIOU_LOSS = 0.01  # the fastest setting may lose at most 1 mIoU point against the paper's setting


def _row(name: str, sampler: dict, precision: str, run: dict) -> dict:
    m = run['metrics']
    return {'name': name, 'sampler': sampler, 'precision': precision, 'num_images': run['num_images'],
            'miou': m['miou'], 'pixel_accuracy': m['pixel_accuracy'], 'ece': m['calibration']['ece'],
            'auroc_wrong': m['calibration']['auroc_wrong'], 'latency': run['latency']}


def sweep(segmenter, dataset, out_dir: str | Path, settings=DEFAULT_SETTINGS, *, batch_size: int = 1,
          max_images: int | None = None, paper: str = 'paper', max_loss: float = MAX_MIOU_LOSS) -> dict:
    """Evaluate every setting on the same images; write sweep.json, sweep.md and sweep.png; return a summary.

    dataset: anything `camseg_core.evaluation.report.evaluate` takes as one subset. Latency per image is the
    batch time over the batch size, after one untimed warm-up call per setting. `paper` names the reference
    setting of the verdict (None in the summary when no setting has that name).
    """
    parsed = [parse_setting(text) for text in settings]
    names = [n for n, _ in parsed]
    if not parsed or len(set(names)) != len(names):
        raise ValueError(f'sweep needs settings with distinct names, got {names}')
    limit = len(dataset) if max_images is None else min(len(dataset), max_images)
    if limit == 0:
        raise ValueError('no images to sweep over')
    original, original_precision = dataclasses.replace(segmenter.sampler), segmenter.precision
    rows = []
    try:
        for name, changes in parsed:
            precision = apply_setting(segmenter, name, changes, original, original_precision)
            segmenter.segment(check_item(dataset[0], 0)[0])  # warm-up, not timed
            run = score_dataset(segmenter, dataset, limit, batch_size, name)
            rows.append(_row(name, dataclasses.asdict(segmenter.sampler), precision, run))
    finally:
        segmenter.sampler, segmenter.precision = original, original_precision
    summary = {
        'created': datetime.datetime.now().isoformat(timespec='seconds'),
        'model': getattr(segmenter, 'name', ''), 'device': str(segmenter.device),
        'batch_size': batch_size, 'num_images': limit, 'settings': rows,
        'verdict': verdict(rows, paper, max_loss),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'sweep.json').write_text(json.dumps(summary, indent=2, allow_nan=False))
    (out / 'sweep.md').write_text(render_markdown(summary))
    plot_sweep(rows, out / 'sweep.png')
    return summary


def verdict(rows: list[dict], paper: str, max_loss: float = MAX_MIOU_LOSS) -> dict | None:
    """Compare the fastest setting with the paper's: mIoU loss, speedup, and whether the loss <= max_loss."""
    reference = next((r for r in rows if r['name'] == paper), None)
    if reference is None:
        return None
    fastest = min(rows, key=lambda r: r['latency']['median_ms'])
    loss = None
    if reference['miou'] is not None and fastest['miou'] is not None:
        loss = reference['miou'] - fastest['miou']
    return {'paper': paper, 'fastest': fastest['name'], 'miou_loss': loss, 'max_loss': max_loss,
            'speedup': reference['latency']['median_ms'] / fastest['latency']['median_ms'],
            'within_max_loss': loss is not None and loss <= max_loss}


def plot_sweep(rows: list[dict], path: str | Path) -> Path:
    """Draw mIoU, ECE and AUROC (%) against the median latency per image, one labelled point per setting."""
    fig, axes = plots.plt.subplots(1, 3, figsize=(13, 4))
    latency = [r['latency'].get('median_ms', 0.0) for r in rows]
    for ax, key, label in zip(axes, ('miou', 'ece', 'auroc_wrong'), ('mIoU', 'ECE', 'AUROC (wrong pixels)')):
        for r, x in zip(rows, latency):
            if r[key] is not None:
                ax.scatter(x, 100 * r[key], color='C0')
                ax.annotate(r['name'], (x, 100 * r[key]), fontsize=7, xytext=(3, 3),
                            textcoords='offset points')
        ax.set_xscale('log')
        ax.set_xlabel('median latency per image (ms)')
        ax.set_ylabel(f'{label} (%)')
        ax.grid(alpha=0.3)
    fig.suptitle('Sampler settings: quality against speed')
    return plots._save(fig, path)


def _fmt(value, scale: float = 1.0, digits: int = 1) -> str:
    return '-' if value is None else f'{scale * value:.{digits}f}'


def render_markdown(summary: dict) -> str:
    """Render the sweep table and the verdict as Markdown."""
    lines = [f"# Sampler sweep: {summary['model']} on {summary['device']}", '',
             f"{summary['num_images']} images, batch {summary['batch_size']}; latency per image.", '',
             '| setting | num_iter | steps | scheduler | temp. | ensemble | precision | mIoU % | ECE % | '
             'AUROC % | median ms | p95 ms |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in summary['settings']:
        s, lat = r['sampler'], r['latency']
        lines.append(f"| {r['name']} | {s['num_iter']} | {s['steps']} | {s['scheduler']} | "
                     f"{s['temperature']} | {s['ensemble']} | {r['precision']} | {_fmt(r['miou'], 100)} | "
                     f"{_fmt(r['ece'], 100)} | {_fmt(r['auroc_wrong'], 100)} | "
                     f"{_fmt(lat.get('median_ms'))} | {_fmt(lat.get('p95_ms'))} |")
    v = summary['verdict']
    lines.append('')
    if v is None:
        lines.append('No setting named as the paper reference: no verdict.')
    else:
        ok = 'yes' if v['within_max_loss'] else 'no'
        lines.append(f"Fastest setting **{v['fastest']}**: {v['speedup']:.2f}x faster than **{v['paper']}**, "
                     f"mIoU loss {_fmt(v['miou_loss'], 100, 2)} points; within {100 * v['max_loss']:.0f} "
                     f'point: **{ok}**.')
    return '\n'.join(lines) + '\n'
