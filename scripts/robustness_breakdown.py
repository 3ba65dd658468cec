"""Where a CAM-Seg model loses under weather: its two image inputs swapped between a scene and its clear twin.

    python scripts/robustness_breakdown.py --checkpoint runs/zero_shot_004/export \
        --data generated:runs/zero_shot_004/data --out runs/zero_shot_004/breakdown

The generated evaluation scenes render every scene clear and under each condition, so a foggy image has a
clear twin. The transformer is conditioned on the KL image tokens of the image and, with a pixel stem, on the
stem's features of its pixels. For every condition this scores (mIoU and mean per-class precision, the
model's own sampler unless --profile says otherwise):
  clear          both inputs from the clear twin (the clear score)
  tokens only    the KL image tokens from the condition, the pixel stem from the clear twin
  stem only      the KL image tokens from the clear twin, the pixel stem from the condition
  condition      both from the condition (the score camseg-eval reports)
  other tokens   the stem from the clear twin, the KL image tokens of another clear scene of the batch (how
                 much the model reads its image tokens at all)
and the drift of each input, |x(condition) - x(clear)| / |x(clear)| over the scenes. The mask decoder only
sees mask tokens, so what is left of the loss lies in the encoder's tokens and the transformer reading them.
Writes breakdown.json and breakdown.md (and breakdown.png with matplotlib) into --out.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from camseg_core import Segmenter
from camseg_core.config import apply_profile
from camseg_core.data.datasets import open_dataset
from camseg_core.evaluation.metrics import MetricSuite
from camseg_core.evaluation.report import check_item, expand_data_spec
from camseg_core.imageops import letterbox
from camseg_core.models.camseg import to_tokens

MODES = ('clear', 'tokens only', 'stem only', 'condition', 'other tokens')


class SwappedInputs:
    """The model's four network calls, with the image condition built from a scene and its clear twin."""

    def __init__(self, segmenter: Segmenter):
        """Wrap the segmenter's model; call `set_twins` (the clear images) and set `mode` before each call."""
        self.model, self.segmenter = segmenter.model, segmenter
        self.twins, self.mode, self.drift = None, 'condition', {'tokens': [], 'stem': []}
        self._twin_inputs = None  # the twins' (tokens, stem), computed once per set_twins

    def set_twins(self, images: list) -> None:
        """Set the clear twins (HxWx3 uint8) of the next batch; encoded once for all modes."""
        self.twins, self._twin_inputs = images, None

    def _inputs(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        tokens = to_tokens(self.model.autoencoder.encode(images))
        stem = self.model.transformer.pixel_stem
        return tokens, (None if stem is None else to_tokens(stem(images)).to(tokens.dtype))

    def image_condition(self, images: torch.Tensor) -> torch.Tensor:
        """Letterboxed condition images -> the transformer's condition with the inputs of `mode`."""
        if self._twin_inputs is None:
            size, floor = self.model.config.image_size, self.segmenter.exposure_floor
            self._twin_inputs = self._inputs(letterbox(self.twins, size, images.device, floor)[0])
        (tok, stem), (tok_c, stem_c) = self._inputs(images), self._twin_inputs
        if self.mode == 'condition':
            for key, x, ref in (('tokens', tok, tok_c), ('stem', stem, stem_c)):
                if x is not None:
                    change = (x - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)
                    self.drift[key] += change.tolist()
        pick = {'clear': (tok_c, stem_c), 'tokens only': (tok, stem_c), 'stem only': (tok_c, stem),
                'condition': (tok, stem), 'other tokens': (tok_c.roll(1, 0), stem_c)}[self.mode]
        return pick[0] if pick[1] is None else torch.cat(pick, dim=-1)

    def __getattr__(self, name):
        """one_pass, sample_tokens, decode_latents: the model's own."""
        return getattr(self.model, name)


def _batches(n: int, size: int) -> list[range]:
    """Return index ranges of `size` scenes; a last scene alone joins the batch before it."""
    starts = list(range(0, n, size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()  # "other tokens" rolls within a batch: a batch of one would keep its own tokens
    return [range(a, b) for a, b in zip(starts, starts[1:] + [n])]


def _modes(pixel_stem: bool) -> list[str]:
    return list(MODES) if pixel_stem else ['clear', 'condition']


def main(argv=None) -> int:
    """Score each condition with swapped inputs; write JSON, Markdown and a PNG."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--checkpoint', required=True, help='a CAM-Seg checkpoint')
    p.add_argument('--data', required=True, help='generated:ROOT with a clear subset and condition subsets')
    p.add_argument('--out', type=Path, required=True)
    p.add_argument('--profile', choices=('checkpoint', 'fast'), default='checkpoint')
    p.add_argument('--max-images', type=int, help='scenes per condition (default all)')
    p.add_argument('--batch-size', type=int, default=4, help='at least 2 ("other tokens" rolls the batch)')
    p.add_argument('--device', default='cpu')
    args = p.parse_args(argv)
    if args.batch_size < 2:
        p.error('--batch-size must be at least 2')
    segmenter = Segmenter.from_pretrained(args.checkpoint, device=args.device, seed=0)
    segmenter.sampler = apply_profile(segmenter.sampler, args.profile)
    swap = SwappedInputs(segmenter)
    segmenter.networks = swap
    subsets = {name: open_dataset(spec) for name, spec in expand_data_spec(args.data)}
    clear_name = next((n for n in subsets if n.endswith('clear')), None)
    if clear_name is None:
        p.error(f'{args.data} has no clear subset (subsets: {", ".join(subsets)})')
    clear = subsets.pop(clear_name)
    has_stem = segmenter.model.transformer.pixel_stem is not None
    result = {'checkpoint': args.checkpoint, 'profile': args.profile, 'pixel_stem': has_stem,
              'conditions': {}}
    for name, data in subsets.items():
        n = min(len(data), len(clear), args.max_images or len(data))
        suites = {m: MetricSuite() for m in _modes(has_stem)}
        swap.drift = {'tokens': [], 'stem': []}
        for batch in _batches(n, args.batch_size):
            items = [check_item(data[i], i) for i in batch]
            twins = [check_item(clear[i], i) for i in batch]
            if any(not np.array_equal(a[1], b[1]) for a, b in zip(items, twins)):  # twins share labels
                p.error(f'{name} and {clear_name} do not hold the same scenes in the same order')
            swap.set_twins([t[0] for t in twins])
            for mode, suite in suites.items():
                swap.mode = mode
                for (_, label, _), out in zip(items, segmenter.segment([it[0] for it in items])):
                    suite.update(out.labels, label, out.confidence)
        summaries = {m: s.summary() for m, s in suites.items()}
        row = {m: {k: sm[k] for k in ('miou', 'mean_precision')} for m, sm in summaries.items()}
        row['drift'] = {k: float(np.mean(v)) for k, v in swap.drift.items() if v}
        row['num_images'] = n
        result['conditions'][name] = row
        print(f'{name}: ' + ', '.join(f'{m} {100 * r["miou"]:.1f}' for m, r in row.items() if m in MODES)
              + ', drift ' + ', '.join(f'{k} {v:.3f}' for k, v in row['drift'].items()), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / 'breakdown.json').write_text(json.dumps(result, indent=1))
    (args.out / 'breakdown.md').write_text(_markdown(result))
    _plot(result, args.out / 'breakdown.png')
    return 0


def _markdown(result: dict) -> str:
    modes = _modes(result['pixel_stem'])
    lines = [f'# Where {result["checkpoint"]} loses (mIoU %, sampler profile {result["profile"]})', '',
             '| condition | ' + ' | '.join(modes) + ' | token drift | stem drift |',
             '|---' * (len(modes) + 3) + '|']
    for name, row in result['conditions'].items():
        drift = row['drift']
        lines.append(f'| {name} | ' + ' | '.join(f'{100 * row[m]["miou"]:.1f}' for m in modes)
                     + ''.join(f' | {drift.get(k, float("nan")):.3f}' for k in ('tokens', 'stem')) + ' |')
    return '\n'.join(lines) + '\n'


def _plot(result: dict, path: Path) -> None:
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return
    names = list(result['conditions'])
    modes = _modes(result['pixel_stem'])
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 3.5))
    width = 0.8 / len(modes)
    for k, mode in enumerate(modes):
        scores = [100 * result['conditions'][n][mode]['miou'] for n in names]
        ax.bar(np.arange(len(names)) + k * width, scores, width, label=mode)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, [n.split('/')[-1] for n in names], fontsize=8)
    ax.set_ylabel('mIoU %')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == '__main__':
    raise SystemExit(main())
