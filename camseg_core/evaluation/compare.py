"""
Compare evaluations: read two or more `metrics.json` files of camseg-eval and tabulate them side by side.

    runs = load_runs(['camseg=runs/eval_camseg', 'runs/eval_baseline/metrics.json'])
    result = compare(runs)            # the baseline: the run whose model_type is 'baseline'
    write_comparison(result, 'runs/compare')   # comparison.json, comparison.md, comparison.png

Per subset (clear, fog, night, ...) and model: mIoU, ECE, AUROC of the confidence for wrong pixels,
the retention mIoU(subset) / mIoU(reference subset, 'clear'), the mean per-class precision (the CAM-Seg
paper's "AP") and its retention, the mIoU as a fraction of the baseline's,
the ECE difference to the baseline, and the resolution and autoencoder ceilings where the run has them.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path

from ..documents import read_document

REFERENCE_SUBSET = 'clear'


def _ratio(a, b):
    return a / b if a is not None and b else None


def _diff(a, b):
    return a - b if a is not None and b is not None else None


def load_run(spec: str) -> tuple[str, dict]:
    """Read one `[NAME=]PATH` (PATH: a metrics.json or the directory holding it) -> (name, summary).

    Without NAME the run is named after its model (the checkpoint directory camseg-eval recorded).
    """
    name, sep, path = spec.partition('=')
    if not sep or not name or '/' in name:
        name, path = '', spec
    path = Path(path)
    if path.is_dir():
        path = path / 'metrics.json'
    summary = read_document(path, f'no metrics.json here ({spec})', missing_error=FileNotFoundError)
    datasets = summary.get('datasets') if isinstance(summary, dict) else None
    if not datasets or not isinstance(datasets, dict):
        raise ValueError(f'{path}: not a camseg-eval metrics.json (no datasets)')
    summary['path'] = str(path)
    return name or summary.get('model', {}).get('name') or path.parent.name, summary


def load_runs(specs: list[str]) -> dict[str, dict]:
    """Load several runs (see `load_run`); a repeated name gets its position appended (name#2)."""
    runs = {}
    for i, spec in enumerate(specs):
        name, summary = load_run(spec)
        runs[name if name not in runs else f'{name}#{i + 1}'] = summary
    return runs


def _pick_baseline(runs: dict[str, dict], baseline: str | None) -> str | None:
    if baseline is not None:
        if baseline not in runs:
            raise ValueError(f'baseline {baseline!r} is not one of the runs {list(runs)}')
        return baseline
    found = [n for n, r in runs.items() if r.get('model', {}).get('model_type') == 'baseline']
    return found[0] if found else None


def _entry(data: dict, clear: dict | None) -> dict:
    """One model on one subset: the headline numbers and its ceilings."""
    m = data['metrics']
    cal = m.get('calibration', {})
    ceilings = data.get('ceilings') or {}
    ceiling = {k: (ceilings.get(k) or {}).get('miou') for k in ('resolution', 'autoencoder')}
    return {'num_images': data.get('num_images'), 'miou': m.get('miou'),
            'pixel_accuracy': m.get('pixel_accuracy'), 'mean_precision': m.get('mean_precision'),
            'ece': cal.get('ece'), 'auroc_wrong': cal.get('auroc_wrong'),
            'retention': _ratio(m.get('miou'), clear['metrics'].get('miou')) if clear else None,
            'precision_retention': _ratio(m.get('mean_precision'),
                                          clear['metrics'].get('mean_precision')) if clear else None,
            'ceilings': ceiling if any(v is not None for v in ceiling.values()) else None}


def compare(runs: dict[str, dict], baseline: str | None = None, reference: str = REFERENCE_SUBSET) -> dict:
    """
    Tabulate evaluations side by side; returns what comparison.json holds.

    runs: name -> camseg-eval summary (at least two). baseline: the run the others are measured against
    (default: the first run whose model_type is 'baseline'; None if there is none). reference: the
    subset retention is relative to (default 'clear'; without it, each run's first subset).
    """
    if len(runs) < 2:
        raise ValueError(f'need at least two evaluations to compare, got {len(runs)}')
    base = _pick_baseline(runs, baseline)
    subsets = list(dict.fromkeys(s for r in runs.values() for s in r['datasets']))
    results = {}
    for subset in subsets:
        row = {}
        for name, run in runs.items():
            if subset not in run['datasets']:
                continue
            data = run['datasets']
            ref = data.get(reference, next(iter(data.values())))
            row[name] = _entry(data[subset], ref)
        if base in row:
            for name, entry in row.items():
                if name != base:
                    entry['of_baseline'] = _ratio(entry['miou'], row[base]['miou'])
                    entry['ece_vs_baseline'] = _diff(entry['ece'], row[base]['ece'])
        results[subset] = row
    models = {n: {'name': r.get('model', {}).get('name'), 'model_type': r.get('model', {}).get('model_type'),
                  'path': r.get('path'), 'created': r.get('created')} for n, r in runs.items()}
    return {'created': datetime.datetime.now().isoformat(timespec='seconds'), 'reference_subset': reference,
            'baseline': base, 'models': models, 'subsets': subsets, 'results': results}


def _pct(value) -> str:
    return '-' if value is None else f'{100 * value:.1f}'


def _signed(value) -> str:
    return '-' if value is None else f'{100 * value:+.1f}'


def _table(result: dict, columns: list[tuple[str, str, object]]) -> list[str]:
    """Rows per subset; columns: (header, model, formatter of an entry)."""
    lines = ['| subset | ' + ' | '.join(h for h, _, _ in columns) + ' |', '|---|' + '---|' * len(columns)]
    for subset, row in result['results'].items():
        cells = [fmt(row[m]) if m in row else '-' for _, m, fmt in columns]
        lines.append(f'| {subset} | ' + ' | '.join(cells) + ' |')
    return lines


def _ceiling_cell(entry: dict) -> str:
    ceilings = entry['ceilings'] or {}
    return f'{_pct(ceilings.get("resolution"))} / {_pct(ceilings.get("autoencoder"))} / {_pct(entry["miou"])}'


def render_markdown(result: dict) -> str:
    """Render a `compare` result as Markdown tables (values in %)."""
    names, base = list(result['models']), result['baseline']
    others = [n for n in names if n != base] if base else []
    lines = ['# camseg comparison', '', f'Created {result["created"]}. Values in %.', '']
    lines += [f'- **{n}** ({m["model_type"] or "?"}{", baseline" if n == base else ""}): `{m["path"]}`'
              for n, m in result['models'].items()]
    lines += ['', '## mIoU', '']
    if others:
        lines += [f'"of {base}": the mIoU as a share of the baseline\'s on the same subset.', '']
    cols = [(n, n, lambda e: _pct(e['miou'])) for n in names]
    cols += [(f'{n} of {base}', n, lambda e: _pct(e.get('of_baseline'))) for n in others]
    lines += _table(result, cols)
    lines += ['', f'## Retention (mIoU / mIoU on {result["reference_subset"]})', '']
    lines += _table(result, [(n, n, lambda e: _pct(e['retention'])) for n in names])
    lines += ['', '## Mean per-class precision (the CAM-Seg paper\'s "AP") and its retention', '']
    lines += _table(result, [(n, n, lambda e: f'{_pct(e.get("mean_precision"))} '
                                              f'({_pct(e.get("precision_retention"))})') for n in names])
    lines += ['', '## Calibration', '',
              'ECE (lower is better) and AUROC of low confidence for wrong pixels.', '']
    cols = [(f'{n} ECE', n, lambda e: _pct(e['ece'])) for n in names]
    cols += [(f'{n} ECE - {base}', n, lambda e: _signed(e.get('ece_vs_baseline'))) for n in others]
    cols += [(f'{n} AUROC', n, lambda e: _pct(e['auroc_wrong'])) for n in names]
    lines += _table(result, cols)
    rows = result['results'].values()
    with_ceilings = [n for n in names if any((row.get(n) or {}).get('ceilings') for row in rows)]
    if with_ceilings:
        lines += ['', '## Ceilings', '',
                  'Resolution ceiling / autoencoder ceiling / model mIoU (see each run\'s report.md).', '']
        lines += _table(result, [(n, n, _ceiling_cell) for n in with_ceilings])
    lines += ['', '![comparison](comparison.png)']
    return '\n'.join(lines) + '\n'


def write_comparison(result: dict, out_dir: str | Path) -> list[Path]:
    """Write comparison.json, comparison.md and comparison.png into out_dir; returns their paths."""
    from . import plots  # matplotlib only when writing

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / 'comparison.json', out / 'comparison.md']
    paths[0].write_text(json.dumps(result, indent=2, allow_nan=False))
    paths[1].write_text(render_markdown(result))
    paths.append(plots.plot_comparison(result, out / 'comparison.png'))
    return paths
