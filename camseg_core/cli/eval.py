"""
camseg-eval: evaluate a checkpoint on datasets (clean, per condition, and under corruptions).

Example: camseg-eval --checkpoint runs/tiny --data cityscapes:/data/cityscapes:val --out runs/eval
--corruptions all --severities 1,3,5 --max-images 50
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..evaluation.checkpoint_eval import evaluate_checkpoint
from .options import add_device_group, add_flags, add_model_group, add_sampler_group, inference_options


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(',') if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected comma-separated integers, got {text!r}') from None


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the command-line flags."""
    p = argparse.ArgumentParser(prog='camseg-eval', description=__doc__.strip().split('\n')[0])
    add_model_group(p, preset=False)
    add_flags(p, 'data', 'out', 'batch_size', 'max_images',
              out={'help': 'output directory for metrics.json, report.md and figures'})
    p.add_argument('--corruptions', default='none',
                   help='all, none, or a comma list of corruption names (swept on the first dataset)')
    p.add_argument('--severities', type=_int_list, default=[1, 2, 3, 4, 5], help='e.g. 1,3,5')
    p.add_argument('--save-predictions', nargs='?', const='', default=None, metavar='DIR',
                   help='write <name>_pred_trainIds.png per image (default DIR: OUT/predictions)')
    p.add_argument('--no-ceilings', dest='ceilings', action='store_false',
                   help='skip the resolution and autoencoder ceilings (ground truth resized, or passed '
                        'through the mask autoencoder, and scored like predictions)')
    add_device_group(p)
    add_sampler_group(p, seed={'help': 'sampler and corruption seed (default: %(default)s)'})
    return p


def main(argv=None) -> int:
    """Parse flags, evaluate the checkpoint, and print where the report is."""
    parser = build_parser()
    args = parser.parse_args(argv)
    save = args.save_predictions
    if save == '':
        save = Path(args.out) / 'predictions'
    try:
        evaluate_checkpoint(args.checkpoint, args.data, args.out, device=args.device,
                            precision=args.precision, batch_size=args.batch_size, max_images=args.max_images,
                            corruptions=args.corruptions, severities=args.severities, save_predictions=save,
                            ceilings=args.ceilings, seed=args.seed, **inference_options(args))
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    print(f'camseg-eval: wrote {Path(args.out) / "report.md"} and metrics.json')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
