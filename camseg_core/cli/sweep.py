"""
camseg-sweep: quality against speed of several sampler settings on the same images, in one run.

Example: camseg-sweep --data generated:runs/data --out runs/sweep --max-images 20
--setting paper=num_iter:1,steps:100,scheduler:ddpm --setting fastest=num_iter:1,steps:4,scheduler:ddim
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..evaluation.report import open_data_specs
from ..evaluation.sweep import DEFAULT_SETTINGS, sweep
from .options import add_device_group, add_flags, add_model_group, add_sampler_group, load_model


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
    add_model_group(p, preset=False)
    add_flags(p, 'data', 'out', data={'help': 'dataset spec as camseg-eval takes it (repeatable; all images '
                                              'are pooled)'},
              out={'help': 'output directory for sweep.json, sweep.md and sweep.png'})
    p.add_argument('--setting', action='append', metavar='NAME=KEY:VAL,...',
                   help='sampler setting (repeatable); keys num_iter, steps, scheduler, temperature, '
                        f'ensemble, seed, precision; default: {" ".join(DEFAULT_SETTINGS)}')
    p.add_argument('--paper', default='paper', help='name of the reference setting of the verdict')
    add_device_group(p, precision=False)
    add_flags(p, 'batch_size', 'max_images', batch_size={'default': 1},
              max_images={'help': 'at most this many images in all'})
    add_sampler_group(p, names=('seed',), seed={'help': 'sampler seed (default: %(default)s)'})
    return p


def main(argv=None) -> int:
    """Parse flags, load the model, sweep the settings and print the verdict."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        dataset = _Pooled(open_data_specs(args.data, unique=False).values())
        segmenter = load_model(args)
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
