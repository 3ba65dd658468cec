"""Command-line entry points (one module per console script), and the flags that several of them share."""
from __future__ import annotations

import argparse

from ..config import DEFAULT_EXPOSURE_FLOOR

SAMPLER_FLAGS = ('num_iter', 'steps', 'temperature', 'ensemble')


def add_inference_flags(parser: argparse.ArgumentParser) -> None:
    """Add --num-iter, --steps, --temperature, --ensemble (sampler overrides) and --exposure-floor."""
    parser.add_argument('--num-iter', type=int, help='sampler: MAR iterations')
    parser.add_argument('--steps', type=int, help='sampler: diffusion steps per token')
    parser.add_argument('--temperature', type=float,
                        help="sampler: scale of the sampling noise, in (0, 10]; default: the checkpoint's")
    parser.add_argument('--ensemble', type=int, help='sampler: samples per image (majority vote); default: '
                        "the checkpoint's (demo: 8)")
    parser.add_argument('--exposure-floor', type=float, metavar='B',
                        help='brighten images darker than this mean brightness (0-1) to it before segmenting '
                             f'(default {DEFAULT_EXPOSURE_FLOOR}; 0: off)')


def inference_options(args: argparse.Namespace) -> dict:
    """Return the `Segmenter` options given on the command line (those left out keep their defaults)."""
    options = {k: getattr(args, k) for k in SAMPLER_FLAGS if getattr(args, k) is not None}
    if args.exposure_floor is not None:
        options['exposure_floor'] = args.exposure_floor
    return options
