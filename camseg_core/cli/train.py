"""camseg-train: train CAM-Seg ('vae', then 'segmenter') or the discriminative 'baseline', or run a recipe.

Stage 'vae' trains the autoencoder, 'segmenter' the transformer + diffusion head on the frozen autoencoder.

    camseg-train vae --data generated:data/synth --out runs/vae --preset tiny --steps 20000
    camseg-train segmenter --init runs/vae --data generated:data/synth --out runs/camseg --steps 50000
    camseg-train baseline --data cityscapes:/data/cityscapes:train --out runs/baseline --steps 20000
    camseg-train recipe recipes/demo.yaml --out runs/demo_model   (see camseg-train recipe --help)

OUT holds the EMA inference checkpoint (config.json + model.safetensors, loadable with camseg-eval or
Segmenter.from_pretrained), train_state.json + train_state/ (resume with --resume), tb/ (TensorBoard) and
samples/. Multi-GPU / multi-node: start the same command with torchrun; --batch-size is per process.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import QUANTIZERS
from ..training.job import TrainJob, job_defaults, train
from ..training.loop import SCHEDULES, NonFiniteLoss, teardown_distributed
from ..training.stages import DEFAULT_LR, STAGES
from .options import add_device_group, add_flags, int_at_least, size_at_least

D = job_defaults()


# The augmentation flags (AugmentConfig's fields): metavar and meaning. All four 0: clear images only.
AUGMENTATIONS = {
    'low_light': ('P', 'probability of the low-light augmentation (darker mid-tones, 20-60 %% exposure, '
                       'noise)'),
    'weather': ('P', 'probability of the weather augmentation (one of fog, snow, rain)'),
    'jitter': ('S', 'colour jitter strength (brightness, contrast and saturation scaled by up to 1 +- S, hue '
                    'shifted by up to S / 10)'),
    'noise': ('P', 'probability of sensor noise or motion blur'),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line parser: a sub-command per stage, and `recipe`."""
    p = argparse.ArgumentParser(prog='camseg-train', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest='stage', required=True, metavar='{' + ','.join(STAGES) + ',recipe}')
    for stage in STAGES:
        add_train_flags(sub.add_parser(stage, help=f'train the {stage} stage'))
    add_recipe_flags(sub.add_parser('recipe', help='run a recipe file of stages (recipes/*.yaml)',
                                    description=RECIPE_HELP))
    return p


def add_train_flags(p: argparse.ArgumentParser) -> None:
    """Add the flags of one training run (their names are `TrainJob`'s settings)."""
    add_flags(p, 'data', 'out', 'batch_size', 'workers', 'seed',
              data={'help': 'dataset spec, repeatable: cityscapes:ROOT:SPLIT, acdc:ROOT:CONDITION:SPLIT, '
                            'or generated:ROOT (the Cityscapes and every ACDC condition train split in '
                            'ROOT)'},
              out={'type': Path, 'help': 'run directory'},
              batch_size={'default': D['batch_size'], 'help': 'images per step and process'},
              workers={'type': int_at_least(0), 'default': None,
                       'help': 'data loader worker processes (default: the cores per process less one, '
                               '2 to 16)'},
              seed={'default': D['seed']})
    add_device_group(p, device={'default': D['device'],
                                'help': 'auto, cpu, cuda (torchrun: each process its LOCAL_RANK)'},
                     precision={'default': D['precision'], 'help': 'autocast dtype'})
    p.add_argument('--preset', default=D['preset'],
                   help='model preset (vae: tiny/base/large, baseline: tiny)')
    p.add_argument('--image-size', type=size_at_least(16),
                   help='processing size HxW, overriding the preset / --init')
    p.add_argument('--init', type=Path, help='start from this checkpoint (segmenter: the vae run)')
    p.add_argument('--resume', action='store_true', help='continue the run saved in --out')
    p.add_argument('--allow-change', default=D['allow_change'], metavar='NAMES',
                   help='with --resume: comma-separated settings that may differ from the saved run '
                        '(e.g. batch_size,steps); any other difference stops the resume')
    p.add_argument('--steps', type=int, default=D['steps'], help='total optimisation steps')
    p.add_argument('--lr', type=float, help=f'peak learning rate (default {DEFAULT_LR})')
    p.add_argument('--weight-decay', type=float, default=D['weight_decay'])
    p.add_argument('--warmup', type=int, default=D['warmup'], help='linear warm-up steps')
    p.add_argument('--schedule', default=D['schedule'], choices=SCHEDULES)
    p.add_argument('--ema', type=float, default=D['ema'], help='EMA decay of the saved weights')
    p.add_argument('--clip', type=float, default=D['clip'], help='gradient norm clipping (0: off)')
    p.add_argument('--no-augment', action='store_true', help='letterbox samples instead of random scale/crop')
    for name, (metavar, text) in AUGMENTATIONS.items():
        p.add_argument('--' + name.replace('_', '-'), type=float, default=D[name], metavar=metavar,
                       help=f'{text} of an augmented sample (default %(default)s)')
    p.add_argument('--cache-latents', action='store_true',
                   help='segmenter: encode the data once (no augmentation) and keep the tokens in memory')
    p.add_argument('--cache-copies', type=int, default=D['cache_copies'],
                   help='with --cache-latents: also cache this many augmented copies of every item '
                        '(random scale/crop/flip, photometric and weather augmentation)')
    p.add_argument('--kl-weight', type=float, default=D['kl_weight'], help='vae: weight of the KL term')
    p.add_argument('--quantizer', choices=QUANTIZERS,
                   help="vae from a preset: 'kl' continuous mask and image tokens (the preset's) or 'vq' "
                        'tokens snapped to a learned codebook (diffusers VQModel; the same widths and grid)')
    p.add_argument('--codebook-size', type=int,
                   help='vae with --quantizer vq: codebook entries (default 1024)')
    p.add_argument('--code-restart', type=int, metavar='N',
                   help='vae with --quantizer vq: reset a codebook entry unused for N steps to a random '
                        'encoder output of the batch (default 0: never; one process only)')
    p.add_argument('--class-weight', type=float, default=D['class_weight'],
                   help='vae: weight of the class cross-entropy on decoded maskiges (0: colours only); '
                        'segmenter: weight of the cross-entropy teaching the transformer output each '
                        "token's class mix (0: the paper's denoising loss only; a run from a segmenter "
                        'checkpoint may add, change or drop it)')
    p.add_argument('--image-stem', type=int, default=D['image_stem'], metavar='N',
                   help='segmenter: N 3x3 convolutions over the image token grid beside the linear '
                        "projection into the transformer (0: MAR's linear projection only)")
    p.add_argument('--pixel-stem', type=int, default=D['pixel_stem'], metavar='P',
                   help='segmenter: P channels per token of a convolutional patch embedding of the pixels, '
                        'learned with the transformer beside the KL image tokens (0: KL tokens only)')
    p.add_argument('--rare-weight', type=float, default=D['rare_weight'], metavar='A',
                   help="segmenter: weigh each token's denoising error by the rarity of its classes in the "
                        'training labels, (share / median share) ** -A clipped to [0.1, 10] (0: off)')
    p.add_argument('--mask-weight', type=float, default=D['mask_weight'],
                   help='vae: weight of the maskige reconstruction error relative to the images')
    p.add_argument('--decoder-only', action='store_true',
                   help='vae: fine-tune only the decoder and class head of a segmenter checkpoint (--init), '
                        'on maskiges, with --class-weight > 0; the encoder stays frozen, so the segmenter '
                        'keeps its tokens and is saved with the new decoder')
    p.add_argument('--generated', type=float, default=D['generated'], metavar='S',
                   help='with --decoder-only: share of each batch decoded from mask tokens that the '
                        "checkpoint's transformer and head generate for the images, instead of the encoder's "
                        'tokens of the labels (0: encoder tokens only)')
    p.add_argument('--save-every', type=int, default=D['save_every'], help='checkpoint interval in steps')
    p.add_argument('--log-every', type=int, default=D['log_every'], help='TensorBoard scalar interval')
    p.add_argument('--sample-every', type=int, default=D['sample_every'],
                   help='sample overlay interval (0: off)')
    p.add_argument('--stop-after', type=int, help='stop after this step without a final save, as if killed')


RECIPE_HELP = ('Run a recipe file of stages (synth, vae, segmenter, baseline, export, eval, compare): '
               'print the plan, skip the stages finished before, resume an interrupted one, refuse a stage '
               'whose settings changed, write OUT/summary.md and summary.json.')


def add_recipe_flags(p: argparse.ArgumentParser) -> None:
    """Add the flags of `camseg-train recipe`."""
    p.add_argument('file', type=Path, help='recipe file (recipes/*.yaml)')
    p.add_argument('--out', type=Path, help="run directory (default: the recipe's own, e.g. runs/<name>)")
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help='override a variable (train_scenes=500) or one stage setting (vae.steps=2000); '
                        'repeatable')
    p.add_argument('--toy', action='store_true',
                   help="use the recipe's toy values (tiny data, few steps, CPU)")
    p.add_argument('--scale', type=float, default=1.0, metavar='F',
                   help="multiply every training stage's steps and warm-up by F (e.g. 0.05: the same "
                        'schedule at a twentieth of the budget, into its own --out)')
    p.add_argument('--dry-run', action='store_true', help='print the plan and the state of each stage only')


def _recipe(args) -> None:
    """Run a recipe through the library's runner."""
    from ..training.recipe import load_recipe
    from ..training.runner import run_recipe
    run_recipe(load_recipe(args.file, args.set, toy=args.toy, out=args.out,
                           scale=args.scale), dry_run=args.dry_run)


def main(argv=None) -> int:
    """Entry point of camseg-train."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.stage == 'recipe':
            _recipe(args)
        else:
            train(TrainJob.from_settings(args.stage, {k: v for k, v in vars(args).items() if k != 'stage'}))
    except NonFiniteLoss as e:
        print(f'camseg-train: error: {e}', file=sys.stderr, flush=True)
        return 3
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    finally:
        teardown_distributed()
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
