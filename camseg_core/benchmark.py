"""Latency, FPS, speedup over the paper's sampler, stage split and memory of `Segmenter.segment()`."""
from __future__ import annotations

import dataclasses
import resource
import statistics
import time

import numpy as np
import torch
from tqdm import tqdm

from .api import Segmenter
from .device import PRECISIONS

# 'generate': transformer and head replayed as one CUDA graph (one-pass sampling on CUDA), not split.
STAGES = ('preprocess', 'encode', 'transformer', 'diffusion', 'generate', 'decode', 'postprocess')
# The paper's released evaluation: every mask token in one pass, a 100-step DDPM head.
PAPER_SETTING = 'paper=num_iter:1,steps:100,scheduler:ddpm'
DEFAULT_SETTINGS = (PAPER_SETTING, 'fast=num_iter:1,steps:10,scheduler:ddim',
                    'fastest=num_iter:1,steps:4,scheduler:ddim')


def parse_setting(text: str) -> tuple[str, dict]:
    """'name=key:value,key:value' -> (name, {key: value}) with ints/floats converted."""
    name, _, body = text.partition('=')
    if not body:
        raise ValueError(f'sampler setting {text!r} must look like name=num_iter:1,steps:100,scheduler:ddpm')
    values = {}
    for item in body.split(','):
        key, _, raw = item.partition(':')
        if not raw:
            raise ValueError(f'sampler setting {text!r}: {item!r} is not key:value')
        for cast in (int, float, str):
            try:
                values[key.strip()] = cast(raw.strip())
                break
            except ValueError:
                continue
    return name.strip(), values


def apply_setting(seg: Segmenter, name: str, changes: dict, sampler, precision: str) -> str:
    """Put `seg` in setting `name`: `sampler` with `changes`, at `changes['precision']` or else `precision`.

    Returns the precision used; ValueError names the setting if its precision is unknown. The caller restores
    the Segmenter's own sampler and precision afterwards.
    """
    changes = dict(changes)
    chosen = changes.pop('precision', precision)
    if chosen not in PRECISIONS:
        raise ValueError(f'setting {name!r}: precision must be one of {sorted(PRECISIONS)}')
    if chosen != 'fp32' and seg.runtime != 'torch':
        raise ValueError(f'setting {name!r}: runtime {seg.runtime!r} runs fp32 only, not {chosen}')
    seg.sampler, seg.precision = sampler, chosen
    seg.set_sampler(**changes)
    return chosen


def _is_paper(changes: dict) -> bool:
    """Tell whether a setting's changes give the paper's sampler (1 pass, 100-step DDPM, no ensemble)."""
    paper = parse_setting(PAPER_SETTING)[1]
    return all(changes.get(k) == v for k, v in paper.items()) and changes.get('ensemble', 1) == 1 \
        and changes.get('temperature', 1.0) == 1.0


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def rss_mb() -> float:
    """Peak resident set size of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_setting(seg: Segmenter, images: list[np.ndarray], iters: int, warmup: int) -> dict:
    """Time `iters` calls of segment(images) after `warmup` calls; return medians, p95 and the stage split."""
    seg.profile = True
    if seg.device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(seg.device)
    for _ in range(warmup):
        seg.segment(images)
    totals, stages = [], {s: [] for s in STAGES}
    for _ in tqdm(range(iters), desc='  timing', leave=False):
        if seg.device.type == 'cuda':
            torch.cuda.synchronize(seg.device)
        start = time.perf_counter()
        seg.segment(images)
        if seg.device.type == 'cuda':
            torch.cuda.synchronize(seg.device)
        totals.append(time.perf_counter() - start)
        for s in STAGES:
            stages[s].append(seg.last_timings.get(s, 0.0))
    seg.profile = False
    batch = len(images)
    result = {
        'batch_size': batch,
        'latency_ms_median': 1e3 * statistics.median(totals),
        'latency_ms_p95': 1e3 * percentile(totals, 95),
        'throughput_img_s': batch / statistics.median(totals),
        'fps': 1 / statistics.median(totals),  # calls (frames of `batch` images) per second
        'stages_ms_median': {s: 1e3 * statistics.median(v) for s, v in stages.items()},
    }
    if seg.device.type == 'cuda':
        result['peak_gpu_memory_mb'] = torch.cuda.max_memory_allocated(seg.device) / 2**20
    result['peak_rss_mb'] = rss_mb()
    return result


def benchmark(seg: Segmenter, height: int, width: int, batch_size: int, settings: list[str],
              iters: int = 10, warmup: int = 2, seed: int = 0, reference_wanted: bool = True) -> dict:
    """Benchmark each 'name=key:value,...' sampler setting on random images of the given size.

    The reference is the setting named 'paper', else one with the paper's sampler, else PAPER_SETTING timed
    in the same run (unless `reference_wanted` is false); every setting reports `speedup_vs_paper`, the
    reference's median latency over its own (None without a reference). A setting's `precision` key (fp32,
    bf16, fp16) overrides the Segmenter's precision for that setting.
    """
    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(batch_size)]
    original = dataclasses.replace(seg.sampler)
    parsed = [parse_setting(text) for text in settings]
    paper_name, paper = parse_setting(PAPER_SETTING)
    names = [n for n, _ in parsed]
    if len(set(names)) != len(names):
        raise ValueError(f'two sampler settings have the same name: {names}')
    reference = paper_name if paper_name in names else next((n for n, c in parsed if _is_paper(c)), None)
    if reference is None and reference_wanted:
        parsed.insert(0, (paper_name, paper))
        reference = paper_name
    results, original_precision = {}, seg.precision
    try:
        for name, changes in parsed:
            precision = apply_setting(seg, name, changes, original, original_precision)
            print(f'{name} ({precision}): {dataclasses.asdict(seg.sampler)}', flush=True)
            timing = run_setting(seg, images, iters, warmup)
            results[name] = {'sampler': dataclasses.asdict(seg.sampler), 'precision': precision, **timing}
    finally:
        seg.sampler, seg.precision = original, original_precision
    for r in results.values():
        r['speedup_vs_paper'] = (results[reference]['latency_ms_median'] / r['latency_ms_median']
                                 if reference else None)
    return {
        'model': seg.name, 'device': str(seg.device), 'precision': seg.precision, 'runtime': seg.runtime,
        'providers': [p if isinstance(p, str) else p[0] for p in getattr(seg.networks, 'providers', [])],
        'graphs': seg.device.type == 'cuda' and bool(getattr(seg.model, 'capture_graphs', False)),
        'paper_setting': reference,
        'input_size': [height, width], 'processing_size': list(seg.config.image_size),
        'torch': torch.__version__, 'threads': torch.get_num_threads(),
        'iters': iters, 'warmup': warmup, 'settings': results,
    }


def format_table(report: dict) -> str:
    """Format one benchmark report as a plain-text table."""
    (ih, iw), (ph, pw) = report['input_size'], report['processing_size']
    graphs = 'on' if report.get('graphs') else 'off'
    where = ', '.join(report.get('providers') or []) or report['device']
    head = (f"{report['model']} on {report.get('runtime', 'torch')} / {where} ({report['precision']}, "
            f"CUDA graphs {graphs}), "
            f"input {ih}x{iw}, processing {ph}x{pw}; speedup over {report.get('paper_setting')!r}, same run")
    cols = ['setting', 'precision', 'median ms', 'p95 ms', 'FPS', 'img/s', 'speedup', *STAGES, 'mem MiB']
    rows = []
    for name, r in report['settings'].items():
        mem = r.get('peak_gpu_memory_mb', r['peak_rss_mb'])
        rows.append([name, r.get('precision', report['precision']), f"{r['latency_ms_median']:.1f}",
                     f"{r['latency_ms_p95']:.1f}", f"{r['fps']:.2f}",
                     f"{r['throughput_img_s']:.2f}",
                     '-' if r['speedup_vs_paper'] is None else f"{r['speedup_vs_paper']:.2f}x",
                     *(f"{r['stages_ms_median'][s]:.1f}" for s in STAGES),
                     f'{mem:.0f}'])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    line = ' | '.join(c.ljust(w) for c, w in zip(cols, widths))
    body = '\n'.join(' | '.join(v.ljust(w) for v, w in zip(r, widths)) for r in rows)
    return f"{head}\n{line}\n{'-' * len(line)}\n{body}"


def compare_runtimes(reports: dict[str, dict]) -> dict:
    """Per setting, each runtime's median latency and its speed relative to the first runtime (x faster)."""
    first, *_ = reports
    table = {}
    for name, base in reports[first]['settings'].items():
        row = {rt: r['settings'][name]['latency_ms_median'] for rt, r in reports.items()}
        table[name] = {'latency_ms_median': row,
                       'speed_vs_' + first: {rt: row[first] / ms for rt, ms in row.items()}}
    return table


def format_comparison(comparison: dict) -> str:
    """Format `compare_runtimes` as lines: setting, each runtime's median ms, and the speed ratio."""
    lines = []
    for name, row in comparison.items():
        ratio_key = next(k for k in row if k.startswith('speed_vs_'))
        medians = ', '.join(f'{rt} {ms:.1f} ms' for rt, ms in row['latency_ms_median'].items())
        ratios = ', '.join(f'{rt} {x:.2f}x' for rt, x in row[ratio_key].items())
        lines.append(f'{name}: median {medians}; speed {ratio_key[9:]}-relative: {ratios}')
    return '\n'.join(lines)
