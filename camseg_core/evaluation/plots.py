"""Figures of an evaluation (matplotlib, Agg backend: no display needed). Each function writes one PNG."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..labels import CLASS_NAMES, PALETTE, colorize  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches='tight')
    plt.close(fig)
    return path


def plot_per_class_iou(per_class: dict[str, dict[str, dict]], path: str | Path,
                       title: str = 'IoU per class') -> Path:
    """Draw grouped bars of per-class IoU; per_class maps a subset name to a summary's 'per_class' dict."""
    names = list(CLASS_NAMES)
    groups = list(per_class)
    width = 0.8 / max(len(groups), 1)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.55 * len(names) * max(1, len(groups) ** 0.5)), 4.2))
    x = np.arange(len(names))
    for g, group in enumerate(groups):
        values = [per_class[group].get(n, {}).get('iou') for n in names]
        heights = [100 * v if v is not None else 0.0 for v in values]
        xs = x + (g - (len(groups) - 1) / 2) * width
        ax.bar(xs, heights, width, label=group,
               color=PALETTE / 255.0 if len(groups) == 1 else None, edgecolor='black', linewidth=0.3)
        for xi, v in zip(xs, values):
            if v is None:  # class absent from prediction and ground truth: not part of the mean
                ax.text(xi, 1, 'n/a', rotation=90, ha='center', va='bottom', fontsize=7, color='grey')
    ax.set_xticks(x, names, rotation=60, ha='right')
    ax.set_ylabel('IoU (%)')
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(axis='y', alpha=0.3)
    if len(groups) > 1:
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_reliability(reliability: dict[str, dict], path: str | Path,
                     title: str = 'Reliability diagram') -> Path:
    """
    Plot accuracy against mean confidence per bin, one line per subset, and the diagonal.

    The diagonal is perfect calibration; a lower panel shows the share of pixels per bin.

    reliability maps a subset name to a summary's calibration 'reliability' dict (edges, confidence,
    accuracy, count) with an optional 'ece' entry for the legend.
    """
    fig, (ax, ax_count) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True,
                                       gridspec_kw={'height_ratios': [3, 1]})
    ax.plot([0, 1], [0, 1], 'k--', linewidth=1, label='perfect calibration')
    for name, rel in reliability.items():
        edges = np.asarray(rel['edges'], dtype=float)
        centres = (edges[:-1] + edges[1:]) / 2
        conf = np.array([np.nan if v is None else v for v in rel['confidence']], dtype=float)
        acc = np.array([np.nan if v is None else v for v in rel['accuracy']], dtype=float)
        label = name if rel.get('ece') is None else f'{name} (ECE {100 * rel["ece"]:.1f}%)'
        keep = ~np.isnan(acc)
        line, = ax.plot(conf[keep], acc[keep], 'o-', markersize=3, label=label)
        count = np.asarray(rel['count'], dtype=float)
        ax_count.step(centres, count / max(count.sum(), 1), where='mid', color=line.get_color())
    ax.set_ylabel('accuracy')
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc='upper left')
    ax_count.set_xlabel('confidence')
    ax_count.set_ylabel('share of pixels')
    ax_count.grid(alpha=0.3)
    return _save(fig, path)


def plot_robustness(results: dict[str, dict[int, float]], clean: float, path: str | Path,
                    ylabel: str = 'retention (mIoU corrupted / clean)') -> Path:
    """One line per corruption: value against severity, with severity 0 = the clean value."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, by_severity in results.items():
        severities = sorted(by_severity)
        ys = [clean] + [by_severity[s] for s in severities]
        ax.plot([0] + severities, [np.nan if y is None else y for y in ys], 'o-', markersize=3, label=name)
    ax.set_xticks(range(0, 1 + max((max(b) for b in results.values() if b), default=5)))
    ax.set_xlabel('severity (0 = clean)')
    ax.set_ylabel(ylabel)
    ax.set_title('Robustness to corruptions')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _save(fig, path)


def plot_ceilings(rows: dict[str, dict[str, float | None]], path: str | Path,
                  title: str = 'mIoU: resolution ceiling, autoencoder ceiling, model') -> Path:
    """Draw grouped bars per subset: resolution ceiling, autoencoder ceiling (if known) and model mIoU.

    rows maps a subset name to {'resolution': v, 'autoencoder': v or None, 'model': v}, values in [0, 1].
    """
    kinds = [('resolution', 'resolution ceiling', '#9ecae1'),
             ('autoencoder', 'autoencoder ceiling', '#fdae6b'), ('model', 'model', '#31a354')]
    kinds = [k for k in kinds if any(r.get(k[0]) is not None for r in rows.values())]
    names = list(rows)
    width = 0.8 / len(kinds)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(names) + 2), 4.2))
    x = np.arange(len(names))
    for k, (key, label, colour) in enumerate(kinds):
        values = [rows[n].get(key) for n in names]
        xs = x + (k - (len(kinds) - 1) / 2) * width
        heights = [100 * v if v is not None else 0.0 for v in values]
        bars = ax.bar(xs, heights, width, label=label, color=colour, edgecolor='black', linewidth=0.3)
        for bar, v in zip(bars, values):
            if v is not None:
                ax.text(bar.get_x() + bar.get_width() / 2, 100 * v + 1, f'{100 * v:.0f}', ha='center',
                        va='bottom', fontsize=7)
    ax.set_xticks(x, names, rotation=30 if len(names) > 4 else 0, ha='right' if len(names) > 4 else 'center')
    ax.set_ylabel('mIoU (%)')
    ax.set_ylim(0, 122)  # room above 100 for the value labels and the legend
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(title)
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8, loc='upper center', ncol=len(kinds))
    return _save(fig, path)


def plot_comparison(result: dict, path: str | Path) -> Path:
    """Draw a `compare` result: mIoU per subset and model (ceilings as markers) above, ECE below."""
    names, subsets = list(result['models']), result['subsets']
    width = 0.8 / len(names)
    size = (max(6.0, 1.1 * len(subsets) * len(names) ** 0.5 + 2), 6.5)
    fig, (ax, ax_ece) = plt.subplots(2, 1, figsize=size, sharex=True, gridspec_kw={'height_ratios': [3, 2]})
    x = np.arange(len(subsets))
    markers = {'resolution': ('_', 'resolution ceiling'), 'autoencoder': ('x', 'autoencoder ceiling')}
    labelled = set()
    for k, name in enumerate(names):
        xs = x + (k - (len(names) - 1) / 2) * width
        entries = [result['results'][s].get(name) or {} for s in subsets]
        colour = f'C{k}'
        for axis, key in ((ax, 'miou'), (ax_ece, 'ece')):
            axis.bar(xs, [100 * (e.get(key) or 0.0) for e in entries], width, label=name, color=colour,
                     edgecolor='black', linewidth=0.3)
        for kind, (marker, label) in markers.items():
            pts = [(xi, 100 * e['ceilings'][kind]) for xi, e in zip(xs, entries)
                   if e.get('ceilings') and e['ceilings'].get(kind) is not None]
            if pts:
                ax.scatter(*zip(*pts), marker=marker, s=120, color='black', zorder=3,
                           label=label if kind not in labelled else None)
                labelled.add(kind)
    ax.set_ylabel('mIoU (%)')
    ax.set_ylim(0, 105)
    ax.set_title('mIoU and calibration per subset')
    ax.legend(fontsize=8, ncol=2)
    ax_ece.set_ylabel('ECE (%)')
    ax_ece.set_xticks(x, subsets, rotation=30 if len(subsets) > 4 else 0,
                      ha='right' if len(subsets) > 4 else 'center')
    for axis in (ax, ax_ece):
        axis.grid(axis='y', alpha=0.3)
    return _save(fig, path)


def plot_samples(samples: list[dict], path: str | Path) -> Path:
    """Draw rows of input / prediction over the input / confidence / ground truth (dicts as `report` has)."""
    if not samples:
        raise ValueError('plot_samples needs at least one sample')
    columns = ('input', 'prediction (overlay)', 'confidence', 'ground truth')
    h, w = samples[0]['image'].shape[:2]
    size = (4 * 3.2, len(samples) * 3.2 * h / w + 0.6)
    fig, axes = plt.subplots(len(samples), 4, figsize=size, squeeze=False)
    for r, s in enumerate(samples):
        overlay = (0.4 * s['image'] + 0.6 * colorize(s['pred'])).astype(np.uint8)
        panels = (s['image'], overlay, s['confidence'], colorize(s['label']))
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            extra = {'cmap': 'magma', 'vmin': 0.0, 'vmax': 1.0} if c == 2 else {}
            im = ax.imshow(panel, interpolation='nearest', **extra)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c])
            if c == 0:
                ax.set_ylabel(str(s.get('name', r)), fontsize=7)
            if c == 2:
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    return _save(fig, path)
