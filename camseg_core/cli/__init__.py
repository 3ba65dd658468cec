"""Command-line entry points (one module per console script), and the flags that several of them share."""
from __future__ import annotations

import argparse

SAMPLER_FLAGS = ('num_iter', 'steps', 'ensemble')


def add_sampler_flags(parser: argparse.ArgumentParser) -> None:
    """Add --num-iter, --steps and --ensemble: per-run overrides of the checkpoint's default sampler."""
    parser.add_argument('--num-iter', type=int, help='sampler: MAR iterations')
    parser.add_argument('--steps', type=int, help='sampler: diffusion steps per token')
    parser.add_argument('--ensemble', type=int, help='sampler: samples per image (majority vote); default: '
                        "the checkpoint's (demo: 8)")


def sampler_overrides(args: argparse.Namespace) -> dict:
    """Return the sampler settings given on the command line; those left out keep the checkpoint's."""
    return {k: getattr(args, k) for k in SAMPLER_FLAGS if getattr(args, k) is not None}
