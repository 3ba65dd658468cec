"""
camseg-sweep: quality against speed of several sampler settings on the same images, in one run.

Example: camseg-sweep --data generated:runs/data --out runs/sweep --max-images 20
--setting paper=num_iter:1,steps:100,scheduler:ddpm --setting fastest=num_iter:1,steps:4,scheduler:ddim
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..api import load_segmenter
from ..data.datasets import open_dataset
from ..evaluation.report import expand_data_spec
from ..evaluation.sweep import DEFAULT_SETTINGS, sweep


class _Pooled:
    """Several datasets read as one (the sweep scores all their images together)."""

    def __init__(self, datasets):
        self.parts = [(d, len(d)) for d in datasets]

    def __len__(self) -> int:
        return sum(n for _, n in self.parts)

    def __getitem__(self, i: int) -> dict:
        for d, n in self.parts:
            if i < n:
                return d[i]
            i -= n
        raise IndexError(i)


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the command-line flags."""
    p = argparse.ArgumentParser(prog='camseg-sweep', description=__doc__.strip().split('\n')[0])
    p.add_argument('--checkpoint', help='checkpoint directory; default: the shipped demo model')
    p.add_argument('--data', action='append', required=True,
                   help='dataset spec as camseg-eval takes it (repeatable; all images are pooled)')
    p.add_argument('--out', required=True, help='output directory for sweep.json, sweep.md and sweep.png')
    p.add_argument('--setting', action='append', metavar='NAME=KEY:VAL,...',
                   help='sampler setting (repeatable); keys num_iter, steps, scheduler, temperature, '
                        f'ensemble, seed, precision; default: {" ".join(DEFAULT_SETTINGS)}')
    p.add_argument('--paper', default='paper', help='name of the reference setting of the verdict')
    p.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    p.add_argument('--batch-size', type=int, default=1)
    p.add_argument('--max-images', type=int, default=None, help='at most this many images in all')
    p.add_argument('--seed', type=int, default=0, help='sampler seed')
    return p


def main(argv=None) -> int:
    """Parse flags, load the model, sweep the settings and print the verdict."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1 or (args.max_images is not None and args.max_images < 1):
        parser.error('--batch-size and --max-images must be >= 1')
    try:
        pairs = [pair for spec in args.data for pair in expand_data_spec(spec)]
        dataset = _Pooled([open_dataset(spec) for _, spec in pairs])
        segmenter = load_segmenter(args.checkpoint, device=args.device, seed=args.seed)
        try:
            sweep(segmenter, dataset, args.out, args.setting or DEFAULT_SETTINGS,
                  batch_size=args.batch_size, max_images=args.max_images, paper=args.paper)
        finally:
            segmenter.close()
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    print((Path(args.out) / 'sweep.md').read_text())
    print(f'camseg-sweep: wrote {Path(args.out) / "sweep.md"}, sweep.json and sweep.png')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
