"""Do the image tokens carry the classes? A discriminative probe on the frozen image latents of CAM-Seg.

    python scripts/latent_probe.py --checkpoint camseg_core/assets/tiny_synth --baseline runs/baseline \
        --data generated:data/synth --val cityscapes:data/synth:val --out runs/latent_probe.json

It encodes augmented training scenes once with the checkpoint's frozen autoencoder (the image tokens the MAR
transformer sees), trains a small convolutional head on them with cross-entropy (class scores per token,
upsampled to the processing size), and scores three models on the same letterboxed validation images at the
processing size: the probe, the CAM-Seg checkpoint itself (its default sampler) and, if given, the
discriminative baseline; beside them, the labels reduced to one class per token (the most a per-token class
map can score). If the probe comes close to the baseline, the image tokens hold what is needed and
the generator (transformer + diffusion head + mask decoding) is where CAM-Seg loses; if it stays near
CAM-Seg, the image latents are the bottleneck. It probes the KL latents only: a model with a pixel stem
(`--pixel-stem`) also sees the pixels, so for it the probe bounds the KL tokens' share, not what the
transformer sees. A diagnostic, not a product command.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from camseg_core.checkpoint import load_pretrained
from camseg_core.cli.options import add_flags, add_model_group
from camseg_core.data.datasets import open_dataset
from camseg_core.evaluation.metrics import MetricSuite
from camseg_core.labels import IGNORE_INDEX, NUM_CLASSES, token_class_mix
from camseg_core.training.data import PairData, open_training_data, prepare_fork


def token_head(channels: int, width: int = 128, depth: int = 4) -> nn.Module:
    """3x3 convolutions over the token grid (receptive field 2 * depth + 1 tokens), then class scores."""
    layers, c = [], channels
    for _ in range(depth):
        layers += [nn.Conv2d(c, width, 3, padding=1), nn.GroupNorm(8, width), nn.GELU()]
        c = width
    return nn.Sequential(*layers, nn.Conv2d(width, NUM_CLASSES, 1))


def token_majority(labels: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Labels (N, H, W) reduced to the majority class of each token's pixels and drawn back at (H, W).

    Ignored pixels (255) do not vote; a token without labelled pixels is 255. Ties go to the lower class id.
    """
    n, h, w = labels.shape
    mix = token_class_mix(labels, grid)  # (N, L, K)
    majority = mix.argmax(-1)
    majority[mix.sum(-1) == 0] = IGNORE_INDEX
    majority = majority.view(n, *grid)
    return majority.repeat_interleave(h // grid[0], 1).repeat_interleave(w // grid[1], 2)


@torch.no_grad()
def encode(autoencoder, data: PairData, keys, batch_size: int, workers: int):
    """Latents (N, C, h, w) and labels (N, H, W) uint8 of `data[key]` for every key."""
    prepare_fork(workers)  # the loader forks: OpenCV's thread pool must go first (training/data.py)
    loader = DataLoader([int(k) for k in keys], batch_size=batch_size, num_workers=workers,
                        collate_fn=lambda ks: torch.utils.data.default_collate([data[k] for k in ks]))
    latents, labels = [], []
    for batch in tqdm(loader, desc='encode'):
        latents.append(autoencoder.encode(batch['image']))
        labels.append(batch['label'].clamp_max(IGNORE_INDEX).to(torch.uint8))
    return torch.cat(latents), torch.cat(labels)


def main(argv=None) -> int:
    """Train the probe and score it beside the models; print and write the figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_group(p, preset=False, checkpoint={
        'required': True, 'help': 'CAM-Seg checkpoint whose image latents are probed'})
    p.add_argument('--baseline', help='discriminative baseline checkpoint to score beside it')
    add_flags(p, 'data', data={'action': 'store', 'help': 'training dataset spec (as camseg-train takes it)'})
    p.add_argument('--val', required=True, help='validation dataset spec (clear scenes)')
    p.add_argument('--copies', type=int, default=3, help='augmented copies of every training scene')
    p.add_argument('--steps', type=int, default=2000, help='optimisation steps of the probe')
    add_flags(p, 'batch_size', 'workers', 'seed', 'out', batch_size={'default': 16},
              out={'required': False, 'help': 'JSON file for the figures'})
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    model, _ = load_pretrained(args.checkpoint)
    model.eval()
    size = tuple(model.config.image_size)
    train = PairData(open_training_data([args.data]), size, augment=True, seed=args.seed)
    start = time.perf_counter()
    latents, labels = encode(model.autoencoder, train, range(args.copies * len(train)), 32, args.workers)
    head = token_head(latents.shape[1])
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    bar = tqdm(range(args.steps), desc='probe')
    for _ in bar:
        idx = torch.randint(len(latents), (args.batch_size,))
        logits = F.interpolate(head(latents[idx]), size=size, mode='bilinear', align_corners=False)
        loss = F.cross_entropy(logits, labels[idx].long(), ignore_index=IGNORE_INDEX)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f'{loss.item():.3f}')
    train_s = time.perf_counter() - start

    val = PairData(open_dataset(args.val), size, augment=False, seed=args.seed)
    models = {'probe on image latents': None, 'CAM-Seg': model}
    if args.baseline:
        models['baseline'] = load_pretrained(args.baseline)[0].eval()
    suites = {name: MetricSuite() for name in [*models, 'labels, one class per token (no model)']}
    head.eval()
    with torch.no_grad():
        for batch in tqdm(DataLoader([val[i] for i in range(len(val))], batch_size=8), desc='score'):
            x, truth = batch['image'], batch['label'].clamp_max(IGNORE_INDEX)
            for name, m in models.items():
                if m is None:
                    probs = F.interpolate(head(model.autoencoder.encode(x)), size=size, mode='bilinear',
                                          align_corners=False).softmax(1)
                    conf, pred = probs.max(1)
                else:
                    pred, conf = m.predict(x, model.config.sampler, torch.Generator().manual_seed(args.seed))
                for i in range(len(x)):
                    suites[name].update(pred[i].numpy(), truth[i].numpy(), conf[i].float().numpy())
            grid_labels = token_majority(truth, model.config.token_grid)
            for i in range(len(x)):
                suites['labels, one class per token (no model)'].update(
                    grid_labels[i].numpy(), truth[i].numpy(), torch.ones(size).numpy())
    figures = {name: round(100 * s.summary()['miou'], 1) for name, s in suites.items()}
    report = {'checkpoint': args.checkpoint, 'baseline': args.baseline, 'data': args.data, 'val': args.val,
              'val_images': len(val), 'processing_size': size, 'train_items': len(latents),
              'steps': args.steps,
              'train_seconds': round(train_s, 1), 'miou_at_processing_size': figures}
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
