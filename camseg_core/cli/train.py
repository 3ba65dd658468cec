"""camseg-train: train CAM-Seg ('vae', then 'segmenter') or the discriminative 'baseline'.

Stage 'vae' trains the autoencoder, 'segmenter' the transformer + diffusion head on the frozen autoencoder.

    camseg-train vae --data generated:data/synth --out runs/vae --preset tiny --steps 20000
    camseg-train segmenter --init runs/vae --data generated:data/synth --out runs/camseg --steps 50000
    camseg-train baseline --data cityscapes:/data/cityscapes:train --out runs/baseline --steps 20000

OUT holds the EMA inference checkpoint (config.json + model.safetensors, loadable with camseg-eval or
Segmenter.from_pretrained), train_state.json + train_state/ (resume with --resume), tb/ (TensorBoard) and
samples/. Multi-GPU / multi-node: start the same command with torchrun; --batch-size is per process.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from ..config import QUANTIZERS
from ..data.augment import AugmentConfig
from ..training import state as st
from ..training.build import (build_stage_model, calibrate_latent_scale, check_preset, encoder_trained,
                              init_stage)
from ..training.data import default_workers, open_training_data
from ..training.loop import (SCHEDULES, NonFiniteLoss, Trainer, TrainConfig, setup_distributed,
                             teardown_distributed)
from ..training.resume import check_resume, run_settings, saved_settings
from ..training.stages import DEFAULT_LR, STAGES, StageOptions, stage_data, step_module


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'size must look like 128x256 (HxW), got {text!r}') from None
    return h, w


def build_parser() -> argparse.ArgumentParser:
    """Build the command-line parser."""
    p = argparse.ArgumentParser(prog='camseg-train', description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('stage', choices=STAGES)
    p.add_argument('--data', action='append', required=True,
                   help='dataset spec, repeatable: cityscapes:ROOT:SPLIT, acdc:ROOT:CONDITION:SPLIT, or '
                        'generated:ROOT (the Cityscapes and every ACDC condition train split in ROOT)')
    p.add_argument('--out', type=Path, required=True, help='run directory')
    p.add_argument('--preset', default='tiny', help='model preset (vae: tiny/base/large, baseline: tiny)')
    p.add_argument('--image-size', type=_size, help='processing size HxW, overriding the preset / --init')
    p.add_argument('--init', type=Path, help='start from this checkpoint (segmenter: the vae run)')
    p.add_argument('--resume', action='store_true', help='continue the run saved in --out')
    p.add_argument('--allow-change', default='', metavar='NAMES',
                   help='with --resume: comma-separated settings that may differ from the saved run '
                        '(e.g. batch_size,steps); any other difference stops the resume')
    p.add_argument('--steps', type=int, default=10000, help='total optimisation steps')
    p.add_argument('--batch-size', type=int, default=8, help='images per step and process')
    p.add_argument('--lr', type=float, help=f'peak learning rate (default {DEFAULT_LR})')
    p.add_argument('--weight-decay', type=float, default=0.02)
    p.add_argument('--warmup', type=int, default=500, help='linear warm-up steps')
    p.add_argument('--schedule', default='cosine', choices=SCHEDULES)
    p.add_argument('--ema', type=float, default=0.999, help='EMA decay of the saved weights')
    p.add_argument('--clip', type=float, default=1.0, help='gradient norm clipping (0: off)')
    p.add_argument('--precision', default='fp32', choices=['fp32', 'bf16', 'fp16'], help='autocast dtype')
    p.add_argument('--device', default='auto', help='auto, cpu, cuda (torchrun: each process its LOCAL_RANK)')
    p.add_argument('--workers', type=int,
                   help='data loader worker processes (default: the cores per process less one, 2 to 16)')
    p.add_argument('--no-augment', action='store_true', help='letterbox samples instead of random scale/crop')
    p.add_argument('--low-light', type=float, default=AugmentConfig.low_light, metavar='P',
                   help='probability of the low-light augmentation (darker mid-tones, 20-60 %% exposure, '
                        'sensor noise) of an augmented sample (default %(default)s; 0: off)')
    p.add_argument('--weather', type=float, default=AugmentConfig.weather, metavar='P',
                   help='probability of the weather augmentation (one of fog, snow, rain) of an augmented '
                        'sample (default %(default)s; 0: off)')
    p.add_argument('--jitter', type=float, default=AugmentConfig.jitter, metavar='S',
                   help='colour jitter strength of an augmented sample: brightness, contrast and saturation '
                        'scaled by up to 1 +- S, hue shifted by up to S / 10 (default %(default)s)')
    p.add_argument('--cache-latents', action='store_true',
                   help='segmenter: encode the data once (no augmentation) and keep the tokens in memory')
    p.add_argument('--cache-copies', type=int, default=0,
                   help='with --cache-latents: also cache this many augmented copies of every item '
                        '(random scale/crop/flip, photometric and weather augmentation)')
    p.add_argument('--kl-weight', type=float, default=1e-6, help='vae: weight of the KL term')
    p.add_argument('--quantizer', choices=QUANTIZERS,
                   help="vae from a preset: 'kl' continuous mask and image tokens (the preset's) or 'vq' "
                        'tokens snapped to a learned codebook (diffusers VQModel; the same widths and grid)')
    p.add_argument('--codebook-size', type=int,
                   help='vae with --quantizer vq: codebook entries (default 1024)')
    p.add_argument('--code-restart', type=int, metavar='N',
                   help='vae with --quantizer vq: reset a codebook entry unused for N steps to a random '
                        'encoder output of the batch (default 0: never; one process only)')
    p.add_argument('--class-weight', type=float, default=0.0,
                   help='vae: weight of the class cross-entropy on decoded maskiges (0: colours only); '
                        'segmenter: weight of the cross-entropy teaching the transformer output each '
                        "token's class mix (0: the paper's denoising loss only; a run from a segmenter "
                        'checkpoint may add, change or drop it)')
    p.add_argument('--image-stem', type=int, default=0, metavar='N',
                   help='segmenter: N 3x3 convolutions over the image token grid beside the linear '
                        "projection into the transformer (0: MAR's linear projection only)")
    p.add_argument('--pixel-stem', type=int, default=0, metavar='P',
                   help='segmenter: P channels per token of a convolutional patch embedding of the pixels, '
                        'learned with the transformer beside the KL image tokens (0: KL tokens only)')
    p.add_argument('--rare-weight', type=float, default=0.0, metavar='A',
                   help="segmenter: weigh each token's denoising error by the rarity of its classes in the "
                        'training labels, (share / median share) ** -A clipped to [0.1, 10] (0: off)')
    p.add_argument('--mask-weight', type=float, default=1.0,
                   help='vae: weight of the maskige reconstruction error relative to the images')
    p.add_argument('--decoder-only', action='store_true',
                   help='vae: fine-tune only the decoder and class head of a segmenter checkpoint (--init), '
                        'on maskiges, with --class-weight > 0; the encoder stays frozen, so the segmenter '
                        'keeps its tokens and is saved with the new decoder')
    p.add_argument('--generated', type=float, default=0.0, metavar='S',
                   help='with --decoder-only: share of each batch decoded from mask tokens that the '
                        "checkpoint's transformer and head generate for the images, instead of the encoder's "
                        'tokens of the labels (0: encoder tokens only)')
    p.add_argument('--save-every', type=int, default=500, help='checkpoint interval in steps')
    p.add_argument('--log-every', type=int, default=10, help='TensorBoard scalar interval')
    p.add_argument('--sample-every', type=int, default=500, help='sample overlay interval (0: off)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--stop-after', type=int, help='stop after this step without a final save, as if killed')
    return p


def run(args) -> int:
    """Train one stage as the parsed flags say; returns the step reached."""
    env = setup_distributed(args.device)
    if args.workers is None:
        args.workers = default_workers(int(os.environ.get('LOCAL_WORLD_SIZE', env.world)))
    opts = StageOptions(stage=args.stage, preset=args.preset, image_size=args.image_size, init=args.init,
                        augment=not args.no_augment, low_light=args.low_light, weather=args.weather,
                        jitter=args.jitter,
                        cache_latents=args.cache_latents, cache_copies=args.cache_copies,
                        kl_weight=args.kl_weight, quantizer=args.quantizer, codebook_size=args.codebook_size,
                        code_restart=args.code_restart,
                        class_weight=args.class_weight, mask_weight=args.mask_weight,
                        image_stem=args.image_stem, pixel_stem=args.pixel_stem, rare_weight=args.rare_weight,
                        decoder_only=args.decoder_only, generated=args.generated,
                        workers=args.workers)
    config = TrainConfig(out=args.out, steps=args.steps, batch_size=args.batch_size,
                         lr=args.lr if args.lr is not None else DEFAULT_LR[args.stage],
                         weight_decay=args.weight_decay, warmup=args.warmup, schedule=args.schedule,
                         ema=args.ema,
                         clip=args.clip, precision=args.precision, save_every=args.save_every,
                         log_every=args.log_every, sample_every=args.sample_every, seed=args.seed,
                         stop_after=args.stop_after).validate()
    if args.workers < 0:
        raise ValueError(f'--workers must be >= 0, got {args.workers}')
    header, allow = None, {name.strip() for name in args.allow_change.split(',') if name.strip()}
    if args.resume:
        header, _ = st.load_state(args.out)
        saved = saved_settings(header)
        size = args.image_size or saved.get('image_size') or header['model_config']['image_size']
        now = run_settings(config, opts, args.data, env.world, size)
        changed = check_resume(args.out, saved, now, allow)
        if changed and env.main:
            print('resuming with changed settings (--allow-change): '
                  + ', '.join(f'{k} {saved[k]!r} -> {now[k]!r}' for k in changed), flush=True)
    elif st.has_state(args.out):
        raise ValueError(f'{args.out} already holds a training run; pass --resume to continue it '
                         f'or choose another --out')
    elif allow:
        raise ValueError('--allow-change only applies with --resume')
    check_preset(args.stage, args.preset)
    torch.manual_seed(args.seed)  # the same initial weights on every rank
    model = build_stage_model(opts, header)
    torch.manual_seed(args.seed + 1 + env.rank)  # masks and noise differ between ranks
    dataset = open_training_data(args.data)
    model.to(env.device)
    if args.stage == 'segmenter' and header is None and encoder_trained(args.init):
        scale = calibrate_latent_scale(model, dataset, env.device)
        if env.main:
            print(f'segmenter: latent scale set to {scale:.4f} (1 / std of the mask latents)', flush=True)
    meta = {'stage': args.stage, 'model_type': model.model_type, 'model_config': model.config.to_dict(),
            'data': args.data, 'init': str(args.init) if args.init else None,
            'settings': run_settings(config, opts, args.data, env.world, model.config.image_size)}
    if args.stage == 'vae' and args.init is not None and init_stage(args.init) == 'segmenter':
        meta['generator'] = True  # it keeps the segmenter's trained transformer and head (see init_stage)
    loss_step = step_module(opts, model, dataset)
    if getattr(loss_step, 'class_weights', None) is not None:
        meta['class_weights'] = [round(w, 4) for w in loss_step.class_weights.tolist()]
        if env.main:
            print(f'segmenter: class-rarity weights {meta["class_weights"]}', flush=True)
    trainer = Trainer(config, env, model, loss_step, None, None, meta)
    if args.resume:  # restore the weights before the data stage uses the model (--cache-latents encodes)
        trainer.resume(fresh_scaler='precision' in allow)
    cuda = [env.device] if env.device.type == 'cuda' else []
    with torch.random.fork_rng(devices=cuda):  # building the data (e.g. a DataLoader's seed) leaves the
        # training random stream alone, so a resumed run continues exactly where the saved state left it
        trainer.batches, trainer.preview, cache = stage_data(opts, model, dataset, args.batch_size, env,
                                                             args.seed, config.precision)
    if cache is not None:
        meta['cache'] = cache.to_dict()
        if env.main:
            print(f'cache: {cache.items} items in {cache.seconds:.2f} s = {cache.items_per_s:.1f} items/s '
                  f'({cache.workers} workers, {cache.precision}, {cache.world} process(es))', flush=True)
    start = trainer.step
    if env.main:
        print(f'{args.stage}: {len(dataset)} training items, {env.world} process(es) on {env.device}, '
              f'steps {start} -> {config.steps}', flush=True)
    step = trainer.train()
    sums = trainer.parameter_checksum()
    if env.main:
        if env.world > 1:
            agree = max(sums) - min(sums) <= 1e-9 * max(1.0, abs(sums[0]))
            print(f'ranks in sync: {agree} (parameter checksums {sums})', flush=True)
            if not agree:
                raise RuntimeError(f'ranks diverged: parameter checksums {sums}')
        done = 'finished' if step >= config.steps else f'stopped after step {step} (--stop-after)'
        print(f'{args.stage}: {done}; checkpoint from step {trainer.last_saved} in {args.out}', flush=True)
    return step


def main(argv=None) -> int:
    """Entry point of camseg-train."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        run(args)
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
