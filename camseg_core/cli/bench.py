"""camseg-bench: latency, FPS, speedup over the paper's sampler, stage split and memory of segment()."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..api import RUNTIMES, Segmenter
from ..benchmark import DEFAULT_SETTINGS, benchmark, compare_runtimes, format_comparison, format_table
from .options import add_device_group, add_flags, add_model_group


def parse_runtimes(text: str) -> list[str]:
    names = [n.strip() for n in text.split(',') if n.strip()]
    bad = [n for n in names if n not in RUNTIMES]
    if not names or bad or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f'runtimes must be distinct names from {RUNTIMES}, got {text!r}')
    return names


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the command-line flags."""
    parser = argparse.ArgumentParser(prog='camseg-bench', description=__doc__)
    add_model_group(parser, preset={'default': 'tiny', 'help': 'random-weight preset to time'},
                    checkpoint={'help': 'checkpoint directory to time instead of a preset'})
    add_flags(parser, 'size', 'batch_size', batch_size={'default': 1})
    add_device_group(parser)
    parser.add_argument('--runtime', type=parse_runtimes, default=['torch'], metavar='NAME[,NAME]',
                        help='what runs the networks: torch, onnxruntime, or both (torch,onnxruntime) timed '
                             'in one run with their speed ratio (default torch)')
    parser.add_argument('--onnx-dir', help='ONNX graphs for onnxruntime (default: the checkpoint\'s onnx/ '
                                           'subfolder, else exported once into a cache directory)')
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
    if args.iters < 1 or args.warmup < 0:
        parser.error('--iters must be >= 1, --warmup >= 0')
    reports = {}
    try:
        for runtime in args.runtime:
            options = dict(device=args.device, precision=args.precision, graphs=args.graphs, runtime=runtime)
            if runtime == 'onnxruntime':
                options['onnx_dir'] = args.onnx_dir
            seg = (Segmenter.from_pretrained(args.checkpoint, **options) if args.checkpoint
                   else Segmenter.from_preset(args.preset, **options))
            reports[runtime] = benchmark(seg, *args.size, args.batch_size,
                                         args.setting or list(DEFAULT_SETTINGS), iters=args.iters,
                                         warmup=args.warmup, reference_wanted=args.paper)
            print(format_table(reports[runtime]), flush=True)
            seg.close()
    except (ValueError, ImportError) as e:
        parser.exit(2, f'camseg-bench: error: {e}\n')
    report = reports[args.runtime[0]]
    if len(reports) > 1:
        report = {'runtimes': reports, 'comparison': compare_runtimes(reports)}
        print(format_comparison(report['comparison']))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + '\n')
    print(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
