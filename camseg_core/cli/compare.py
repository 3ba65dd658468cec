"""
camseg-compare: put two or more camseg-eval results side by side (mIoU, ECE, AUROC, retention, ceilings).

Example: camseg-compare camseg=runs/eval_camseg baseline=runs/eval_baseline --out runs/compare
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..evaluation.compare import REFERENCE_SUBSET, compare, load_runs, write_comparison
from .options import add_flags


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the command-line flags."""
    p = argparse.ArgumentParser(prog='camseg-compare', description=__doc__.strip().split('\n')[0])
    p.add_argument('runs', nargs='+', metavar='[NAME=]PATH',
                   help='a camseg-eval metrics.json or its directory; NAME labels it '
                        '(default: the model name)')
    add_flags(p, 'out', out={'help': 'directory for comparison.md, comparison.json and comparison.png'})
    p.add_argument('--baseline', help='run NAME the others are measured against (default: the run whose '
                                      "model_type is 'baseline', if any)")
    p.add_argument('--reference', default=REFERENCE_SUBSET,
                   help='subset that retention is relative to (default: %(default)s)')
    return p


def main(argv=None) -> int:
    """Parse flags, read the evaluations, write the comparison and print where it is."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = compare(load_runs(args.runs), args.baseline, args.reference)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    write_comparison(result, args.out)
    print(f'camseg-compare: wrote {Path(args.out) / "comparison.md"}, comparison.json and comparison.png')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
