"""Evaluate a checkpoint on dataset specs: what camseg-eval does, as one library call."""
from __future__ import annotations

from pathlib import Path

from ..api import load_segmenter
from .corruptions import SEVERITIES, parse_corruptions
from .report import evaluate, open_data_specs


def evaluate_checkpoint(checkpoint: str | Path | None, data: list[str], out: str | Path, *,
                        device: str = 'auto', precision: str = 'fp32', batch_size: int = 4,
                        max_images: int | None = None, corruptions: str = 'none',
                        severities=(1, 2, 3, 4, 5), save_predictions: str | Path | None = None,
                        ceilings: bool = True, seed: int = 0, **options) -> dict:
    """Evaluate `checkpoint` (None: the shipped demo model) on the subsets of `data` and write into `out`.

    `data`: dataset specs (see `expand_data_spec`); `corruptions`: 'all', 'none' or a comma list swept over
    `severities` on the first subset; `options`: Segmenter options (sampler: num_iter, steps, temperature,
    ensemble; exposure_floor). ValueError/FileNotFoundError on bad input, before anything is written.
    Returns what metrics.json holds.
    """
    if batch_size < 1 or (max_images is not None and max_images < 1):
        raise ValueError('batch_size and max_images must be >= 1')
    if isinstance(severities, int):
        severities = [severities]
    severities = [int(v) for v in (severities.split(',') if isinstance(severities, str) else severities)]
    if not severities or any(v not in SEVERITIES for v in severities):
        raise ValueError(f'severities must be drawn from {SEVERITIES}, got {severities}')
    chosen = parse_corruptions(corruptions)
    datasets = open_data_specs([data] if isinstance(data, str) else data)
    segmenter = load_segmenter(checkpoint, device=device, precision=precision, seed=seed,
                               **{k: v for k, v in options.items() if v is not None})
    try:
        return evaluate(segmenter, datasets, out, batch_size=batch_size, max_images=max_images,
                        corruptions=chosen, severities=severities, save_predictions=save_predictions,
                        seed=seed, ceilings=ceilings)
    finally:
        segmenter.close()
