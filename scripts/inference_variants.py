"""Can inference alone close CAM-Seg's gap to the baseline? Both models scored under inference-time variants.

    python scripts/inference_variants.py --checkpoint camseg_core/assets/tiny_synth --baseline runs/baseline \
        --data generated:data/synth --out runs/inference_variants

For every evaluation subset it draws the CAM-Seg class probabilities of `--samples` samples per image (each
from its own random stream, as `Segmenter` draws an ensemble) and of `--samples` / 2 samples of the mirrored
image, and runs the baseline on the image and its mirror, once, then scores the same outputs combined in
different ways:
- `hard-N`: the majority vote of N samples (what `ensemble: N` does), `soft-N`: the argmax of their mean
  class probabilities (confidence: the mean probability of the winner);
- `+flip`: half of the samples (or the baseline's second pass) on the mirrored image, mirrored back;
- `+bilinear`: class probabilities upsampled bilinearly to the label size before the argmax, instead of the
  class map by nearest neighbour (what `Segmenter` does).
mIoU and ECE over the 19 classes at the label size, as `camseg-eval` scores them. Writes OUT/variants.json,
OUT/variants.md (both models, each variant, CAM-Seg / baseline ratio of like with like) and OUT/variants.png.
A diagnostic, not a product command: the product's sampler stays what the checkpoint says.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from camseg_core.api import Segmenter
from camseg_core.cli.options import add_flags, add_model_group, add_sampler_group
from camseg_core.config import DEFAULT_EXPOSURE_FLOOR
from camseg_core.data.datasets import open_dataset
from camseg_core.evaluation.metrics import MetricSuite
from camseg_core.evaluation.report import expand_data_spec, image_batches
from camseg_core.imageops import letterbox, restore
from camseg_core.labels import slots_to_train_ids
from camseg_core.models.camseg import from_tokens, vote

FLIP_STREAM = 1000  # mirrored samples draw from streams 1000, 1001, ...: never one of the plain ones


def camseg_probs(model, images: torch.Tensor, sampler, streams: list[int]) -> torch.Tensor:
    """Class probabilities (E, N, K+1, h, w) of one sample per stream for images (N, 3, h', w')."""
    n = images.shape[0]
    condition = model.image_condition(images)
    generator = torch.Generator(images.device).manual_seed(sampler.seed or 0)
    tokens = model.generate(condition.repeat(len(streams), 1, 1), sampler, generator,
                            streams=[s for s in streams for _ in range(n)])
    logits = model.autoencoder.decode_classes(from_tokens(tokens, model.grid)).float()
    return logits.softmax(1).view(len(streams), n, *logits.shape[1:])


def hard(probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Majority vote of samples (E, N, K+1, h, w) -> trainIds, confidence (N, h, w)."""
    conf, slot = probs.max(2)
    return vote(slots_to_train_ids(slot), conf)


def soft(probs: torch.Tensor, size: tuple[int, int] | None = None,
         inner: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax of the mean probabilities (E, N, K+1, h, w).

    With `size`: the image's part of the canvas (`inner` (h, w), without the letterbox padding) upsampled
    bilinearly to `size` first.
    """
    mean = probs.mean(0)
    if size is not None:
        if inner is not None:
            mean = mean[..., :inner[0], :inner[1]]
        mean = F.interpolate(mean, size=size, mode='bilinear', align_corners=False)
    conf, slot = mean.max(1)
    return slots_to_train_ids(slot), conf


def variants(cam: torch.Tensor, cam_flip: torch.Tensor, base: torch.Tensor, size: tuple[int, int],
             inner: tuple[int, int]) -> dict:
    """Every combination scored: name -> (trainIds, confidence), at the processing size or at `size`.

    cam (E, N, K+1, h, w) with E even, cam_flip (E / 2, ...) mirrored back, base (2, N, K+1, h, w): the
    baseline on the image and on its mirror; `inner`: the images' part of the letterboxed canvas.
    """
    n, half = cam.shape[0], cam.shape[0] // 2
    flipped = torch.cat([cam[:n - half], cam_flip[:half]])
    return {f'CAM-Seg hard-{half}': hard(cam[:half]),  # at 8 samples: round 1-4's vote of 4
            f'CAM-Seg hard-{n}': hard(cam), f'CAM-Seg soft-{n}': soft(cam),
            f'CAM-Seg hard-{n} +flip': hard(flipped), f'CAM-Seg soft-{n} +flip': soft(flipped),
            f'CAM-Seg soft-{n} +bilinear': soft(cam, size, inner),
            f'CAM-Seg soft-{n} +flip +bilinear': soft(flipped, size, inner),
            'baseline': soft(base[:1]), 'baseline +flip': soft(base),
            'baseline +bilinear': soft(base[:1], size, inner),
            'baseline +flip +bilinear': soft(base, size, inner)}


def score_subset(cam_model, base_model, sampler, dataset, limit: int, samples: int, batch_size: int,
                 desc: str, exposure_floor: float = DEFAULT_EXPOSURE_FLOOR) -> dict:
    """Run both models once over the first `limit` items and score every variant: name -> summary."""
    suites: dict[str, MetricSuite] = {}
    size = tuple(cam_model.config.image_size)
    mirrored = [FLIP_STREAM + s for s in range(samples // 2)]
    with tqdm(total=limit, desc=desc, unit='img', leave=False) as bar:
        for batch in image_batches(dataset, limit, batch_size):  # images of one size: one placement
            images = [b[1] for b in batch]
            x, placements = letterbox(images, size, torch.device('cpu'), exposure_floor)  # as Segmenter
            cam = camseg_probs(cam_model, x, sampler, list(range(samples)))
            cam_flip = camseg_probs(cam_model, x.flip(-1), sampler, mirrored).flip(-1)
            base = torch.stack([base_model(x).float().softmax(1),
                                base_model(x.flip(-1)).float().softmax(1).flip(-1)])
            label_size = images[0].shape[:2]
            inner = (placements[0].inner_height, placements[0].inner_width)
            for name, (ids, conf) in variants(cam, cam_flip, base, label_size, inner).items():
                suite = suites.setdefault(name, MetricSuite())
                for i, (_, _, label, _) in enumerate(batch):
                    if tuple(ids.shape[-2:]) == tuple(label_size):  # already at the label size
                        pred, confidence = ids[i].numpy(), conf[i].clamp(0, 1).numpy()
                    else:
                        pred, confidence = restore(ids[i], conf[i], placements[i])
                    suite.update(pred, label, confidence)
            bar.update(len(batch))
    return {name: suite.summary() for name, suite in suites.items()}


def table(results: dict) -> str:
    """Markdown: mIoU / ECE per variant and subset, and CAM-Seg's share of the matching baseline's mIoU."""
    subsets = list(results)
    names = list(results[subsets[0]])
    lines = ['| variant | ' + ' | '.join(subsets) + ' |', '|---|' + '---|' * len(subsets)]
    for name in names:
        cells = [f"{100 * r['miou']:.1f} / {100 * r['calibration']['ece']:.1f}"
                 for r in (results[s][name] for s in subsets)]
        lines.append(f'| {name} (mIoU / ECE) | ' + ' | '.join(cells) + ' |')
    lines += ['', '| CAM-Seg / baseline mIoU (%) | ' + ' | '.join(subsets) + ' |',
              '|---|' + '---|' * len(subsets)]
    for name in names:
        if not name.startswith('CAM-Seg'):
            continue
        tricks = name.split(' +', 1)[1] if ' +' in name else ''
        base = 'baseline' + (' +' + tricks if tricks else '')
        cells = [f"{100 * results[s][name]['miou'] / max(results[s][base]['miou'], 1e-9):.1f}"
                 for s in subsets]
        lines.append(f'| {name} vs {base} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def figure(results: dict, path: Path) -> None:
    """Draw the mIoU of every variant per subset as grouped bars."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    subsets = list(results)
    names = list(results[subsets[0]])
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(subsets)), 5.5))
    width = 0.8 / len(names)
    colours = plt.get_cmap('tab20')
    for j, name in enumerate(names):
        values = [100 * results[s][name]['miou'] for s in subsets]
        ax.bar(np.arange(len(subsets)) + j * width, values, width, label=name, color=colours(j % 20))
    ax.set_xticks(np.arange(len(subsets)) + 0.4 - width / 2, subsets)
    ax.set_ylabel('mIoU (%)')
    ax.legend(fontsize=7, ncol=4, loc='upper center', bbox_to_anchor=(0.5, -0.08))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    """Parse flags, score both models under every variant, write JSON, markdown and PNG."""
    p = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    add_model_group(p, preset=False, checkpoint={
        'required': True, 'help': 'CAM-Seg checkpoint (its sampler settings are used)'})
    p.add_argument('--baseline', required=True, help='baseline checkpoint')
    add_flags(p, 'data', 'out', data={'action': 'store', 'help': 'dataset spec, as camseg-eval --data '
                                                                 '(e.g. generated:ROOT)'})
    p.add_argument('--samples', type=int, default=8,
                   help='CAM-Seg samples per image (plus half as many mirrored)')
    add_flags(p, 'batch_size', 'max_images', max_images={'help': 'at most this many images per subset'})
    add_sampler_group(p, names=('steps',), steps={
        'help': "CAM-Seg sampler: diffusion steps per token (default: the checkpoint's)"})
    args = p.parse_args(argv)
    if args.samples < 2 or args.samples % 2:
        p.error('--samples must be even and >= 2')
    cam = Segmenter.from_pretrained(args.checkpoint, device='cpu')
    if args.steps is not None:
        cam.set_sampler(steps=args.steps)
    base = Segmenter.from_pretrained(args.baseline, device='cpu')
    if not cam.has_mask_autoencoder or base.has_mask_autoencoder:
        p.error('--checkpoint must be a CAM-Seg model and --baseline a baseline')
    if tuple(cam.config.image_size) != tuple(base.config.image_size):
        p.error(f'processing sizes differ: {cam.config.image_size} and {base.config.image_size}')
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    with torch.inference_mode():
        for name, spec in expand_data_spec(args.data):
            dataset = open_dataset(spec)
            limit = len(dataset) if args.max_images is None else min(args.max_images, len(dataset))
            results[name] = score_subset(cam.model, base.model, cam.sampler, dataset, limit, args.samples,
                                         args.batch_size, name, cam.exposure_floor)
            print(name, {k: round(100 * v['miou'], 1) for k, v in results[name].items()}, flush=True)
    settings = {'checkpoint': args.checkpoint, 'baseline': args.baseline, 'data': args.data,
                'samples': args.samples, 'sampler': vars(cam.sampler)}
    (out / 'variants.json').write_text(json.dumps({'settings': settings, 'results': results}, indent=1))
    (out / 'variants.md').write_text(f'# Inference variants\n\n{json.dumps(settings)}\n\n' + table(results))
    figure(results, out / 'variants.png')
    print(f'wrote {out}/variants.json, variants.md, variants.png')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
