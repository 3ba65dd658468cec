"""
camseg-calibrate: fit a sampler setting's confidence temperature on held-out scenes; write a new checkpoint.

Example: camseg-calibrate --checkpoint camseg_core/assets/tiny_synth --data generated:runs/tune --ensemble 1
--steps 4 --out runs/tiny_calibrated
The new checkpoint has the same weights (copied byte for byte) and the fitted temperature for the setting's
ensemble size in its sampler's `confidence_temperature`; its default sampler is otherwise the input's.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from torch.utils.data import Subset

from ..api import load_segmenter
from ..assets import resolve_checkpoint
from ..checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_config
from ..config import SamplerConfig
from ..evaluation.calibrate import (OBJECTIVES, ClassScores, calibrated_sampler, collect_scores,
                                    evaluate_temperature, fit_temperature)
from ..evaluation.report import open_data_specs
from .options import add_device_group, add_flags, add_sampler_group, inference_options, positive_int


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the command-line flags."""
    p = argparse.ArgumentParser(prog='camseg-calibrate', description=__doc__.strip().split('\n')[0])
    add_flags(p, 'checkpoint', 'data', 'out', 'max_images',
              data={'help': 'held-out dataset spec, repeatable, as camseg-eval takes them '
                            '(e.g. generated:ROOT); all subsets are pooled'},
              out={'help': 'new checkpoint directory (must not exist or be empty)'})
    p.add_argument('--objective', choices=OBJECTIVES, default='nll',
                   help='minimise the log loss of the confidence (default) or its ECE')
    p.add_argument('--pixels-per-image', type=positive_int, default=2048,
                   help='labelled pixels kept per image')
    add_device_group(p, precision=False)
    add_sampler_group(p, seed={'help': 'sampler and pixel-subset seed (default: %(default)s)'})
    return p


def _check_out(out: Path, source: Path) -> None:
    if out.resolve() == source.resolve():
        raise ValueError(f'--out {out} is the input checkpoint; camseg-calibrate never edits it in place')
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f'--out {out} exists and is not an empty directory')


def _line(name: str, before: dict, after: dict) -> str:
    return (f'{name:>14} | {100 * before["accuracy"]:6.1f} | {100 * before["ece"]:5.2f} -> '
            f'{100 * after["ece"]:5.2f} | {before["nll"]:.4f} -> {after["nll"]:.4f}')


def main(argv=None) -> int:
    """Parse flags, collect class scores, fit, print the fit per subset and write the new checkpoint."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        source, header = read_config(resolve_checkpoint(args.checkpoint))
        out = Path(args.out)
        _check_out(out, source)
        datasets = open_data_specs(args.data)
        if args.max_images is not None:  # the first images of each subset
            datasets = {k: Subset(d, range(min(len(d), args.max_images))) for k, d in datasets.items()}
        segmenter = load_segmenter(source, device=args.device, seed=args.seed, **inference_options(args))
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    setting = segmenter.sampler
    try:
        scores = {name: collect_scores(segmenter, data, args.pixels_per_image, args.seed, desc=name)
                  for name, data in datasets.items()}
    except ValueError as err:
        parser.error(str(err))
    finally:
        segmenter.close()
    pooled = ClassScores(torch.cat([s.logits for s in scores.values()], 1),
                         torch.cat([s.target for s in scores.values()]))
    temperature, table = fit_temperature(pooled, args.objective)
    print(f'fitted confidence temperature {temperature:.4f} for ensemble {setting.ensemble} '
          f'(steps {setting.steps}, {setting.scheduler}, num_iter {setting.num_iter}, temperature '
          f'{setting.temperature}) by {args.objective} on {pooled.target.numel()} pixels')
    print(f'{"subset":>14} | acc %  | ECE % (1 -> T) | NLL (1 -> T)')
    rows = {}
    for name, s in [*scores.items(), ('pooled', pooled)]:
        rows[name] = before, after = evaluate_temperature(s, 1.0), evaluate_temperature(s, temperature)
        print(_line(name, before, after))

    config = header['config']
    sampler = calibrated_sampler(SamplerConfig(**config.get('sampler', {})), temperature, setting.ensemble)
    config['sampler'] = {**config.get('sampler', {}), 'confidence_temperature': {
        str(k): v for k, v in sorted(sampler.confidence_temperature.items())}}

    def rounded(row: dict) -> dict:
        return {k: round(v, 5) for k, v in row.items()}

    header.setdefault('meta', {})['calibration'] = {
        'ensemble': setting.ensemble, 'steps': setting.steps, 'scheduler': setting.scheduler,
        'num_iter': setting.num_iter, 'temperature': setting.temperature, 'objective': args.objective,
        'confidence_temperature': temperature, 'data': args.data, 'max_images': args.max_images,
        'pixels_per_image': args.pixels_per_image, 'pixels': int(pooled.target.numel()), 'seed': args.seed,
        'subsets': {k: {'before': rounded(b), 'after': rounded(a)} for k, (b, a) in rows.items()}}
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / WEIGHTS_NAME, out / WEIGHTS_NAME)
    (out / CONFIG_NAME).write_text(json.dumps(header, indent=2) + '\n')
    print(f'wrote {out} (weights copied from {source})')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
