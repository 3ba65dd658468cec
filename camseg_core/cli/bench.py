"""camseg-bench: latency, FPS, speedup over the paper's sampler, stage split and memory of segment()."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..api import PRECISIONS, Segmenter
from ..benchmark import DEFAULT_SETTINGS, benchmark, format_table
from ..config import PRESETS


def parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must look like 256x512, got {text!r}') from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f'size must be positive, got {text!r}')
    return h, w


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the command-line flags."""
    parser = argparse.ArgumentParser(prog='camseg-bench', description=__doc__)
    model = parser.add_mutually_exclusive_group()
    model.add_argument('--preset', choices=sorted(PRESETS), default='tiny',
                       help='random-weight preset to time')
    model.add_argument('--checkpoint', help='checkpoint directory to time instead of a preset')
    parser.add_argument('--size', type=parse_size, default=(256, 512), help='input HxW (default 256x512)')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--device', default='auto', help='auto, cpu, cuda or cuda:N')
    parser.add_argument('--precision', choices=sorted(PRECISIONS), default='fp32')
    parser.add_argument('--setting', action='append', metavar='NAME=KEY:VAL,...',
                        help='sampler setting to compare (repeatable), '
                             'e.g. fast=num_iter:1,steps:10,scheduler:ddim (precision:bf16 overrides '
                             '--precision for one setting); '
                             f'default: {" ".join(DEFAULT_SETTINGS)}; the speedup column is over the '
                             'setting named paper (added when none is)')
    parser.add_argument('--iters', type=int, default=10, help='timed calls per setting')
    parser.add_argument('--warmup', type=int, default=2, help='untimed calls per setting')
    parser.add_argument('--no-paper', dest='paper', action='store_false',
                        help='do not add the paper setting as the speedup reference when no setting is it')
    parser.add_argument('--no-graphs', dest='graphs', action='store_false',
                        help='run the sampler eagerly on CUDA (no CUDA graph capture), for comparison')
    parser.add_argument('--json', type=Path, default=Path('bench.json'),
                        help='where to write the JSON report')
    return parser


def main(argv=None) -> int:
    """Entry point of camseg-bench."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.iters < 1 or args.warmup < 0:
        parser.error('--batch-size and --iters must be >= 1, --warmup >= 0')
    try:
        options = dict(device=args.device, precision=args.precision, graphs=args.graphs)
        seg = (Segmenter.from_pretrained(args.checkpoint, **options) if args.checkpoint
               else Segmenter.from_preset(args.preset, **options))
        report = benchmark(seg, *args.size, args.batch_size, args.setting or list(DEFAULT_SETTINGS),
                           iters=args.iters, warmup=args.warmup, reference_wanted=args.paper)
    except ValueError as e:
        parser.exit(2, f'camseg-bench: error: {e}\n')
    print(format_table(report))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + '\n')
    print(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
