"""Fit a confidence temperature on held-out labelled scenes.

CAM-Seg's per-pixel confidence is the softmax probability of the decoded class (for a vote: the share of the
samples that agree times their mean probability). Dividing the class head's scores by a temperature T before
that softmax changes the confidence and not the class. `collect_scores` runs a `Segmenter` at its sampler
setting once per image and keeps the class scores of every sample on a fixed random subset of the labelled
pixels; `fit_temperature` then scores candidate temperatures on them without running the model again, and
`calibrated_sampler` writes the fitted value into a `SamplerConfig` for that setting's ensemble size.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..config import SamplerConfig
from ..imageops import letterbox_labels
from ..labels import IGNORE_INDEX
from ..models.camseg import scores_to_classes, vote
from .metrics import CalibrationMeter

OBJECTIVES = ('nll', 'ece')
EPS = 1e-6  # confidences are clipped to [EPS, 1 - EPS] in the log loss


@dataclass
class ClassScores:
    """Class scores of every sample on labelled pixels, and those pixels' classes."""

    logits: torch.Tensor  # (E, P, K+1) float32: sample, pixel, class scores (the last is void)
    target: torch.Tensor  # (P,) uint8 trainIds, none of them ignored

    @property
    def ensemble(self) -> int:
        """Return the number of samples per pixel."""
        return self.logits.shape[0]


def collect_scores(segmenter, dataset, pixels_per_image: int = 2048, seed: int = 0,
                   progress: bool = True, desc: str = 'scores') -> ClassScores:
    """Segment every image of `dataset` (items with 'image' and 'label') and keep its class scores.

    The scores are read from the autoencoder's class head while `segmenter.segment` runs, at the processing
    size; the labels are letterboxed to it as the images are. Up to `pixels_per_image` labelled pixels per
    image are kept, drawn with `seed`. Raises ValueError for a model without a class head.
    """
    model = segmenter.model
    head = getattr(getattr(model, 'autoencoder', None), 'class_head', None)
    if head is None:
        raise ValueError(f'model {segmenter.name!r} has no learned class head: nothing to calibrate')
    if pixels_per_image < 1:
        raise ValueError(f'pixels_per_image must be >= 1, got {pixels_per_image}')
    rng = np.random.default_rng(seed)
    ensemble = segmenter.sampler.ensemble
    captured: list[torch.Tensor] = []
    handle = head.register_forward_hook(lambda module, args, out: captured.append(out.detach().float()))
    logits, targets = [], []
    try:
        for i in tqdm(range(len(dataset)), desc=desc, unit='img', disable=not progress):
            item = dataset[i]
            captured.clear()
            segmenter.segment(item['image'])
            scores = torch.cat(captured)  # (E, K+1, h, w)
            if scores.shape[0] != ensemble:
                raise RuntimeError(f'expected the scores of {ensemble} samples, got {scores.shape[0]}')
            label, _ = letterbox_labels([item['label']], tuple(scores.shape[-2:]), scores.device)
            label = label[0].flatten().cpu()  # (h*w,)
            valid = np.flatnonzero((label != IGNORE_INDEX).numpy())
            if valid.size == 0:
                continue
            keep = np.sort(rng.choice(valid, min(pixels_per_image, valid.size), replace=False))
            keep = torch.from_numpy(keep)
            logits.append(scores.flatten(2)[:, :, keep].transpose(1, 2).cpu())  # (E, p, K+1)
            targets.append(label[keep])
    finally:
        handle.remove()
    if not targets:
        raise ValueError('no labelled pixels in the data')
    return ClassScores(torch.cat(logits, 1), torch.cat(targets))


def confidence(scores: ClassScores, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the voted confidence of every pixel and whether its class is right, both (P,)."""
    ids, conf = scores_to_classes(scores.logits, temperature, dim=-1)  # (E, P) each, as `decode_mask`
    ids, conf = vote(ids[:, None, None], conf[:, None, None])  # (1, 1, P) each
    return conf.flatten(), ids.flatten() == scores.target


def confidence_nll(conf: torch.Tensor, correct: torch.Tensor) -> float:
    """Mean log loss of `conf` as the probability that each pixel is right."""
    conf = conf.double().clamp(EPS, 1 - EPS)
    return float(-torch.where(correct, conf.log(), (1 - conf).log()).mean())


def calibration_error(conf: torch.Tensor, correct: torch.Tensor, num_bins: int = 15) -> float:
    """Return the expected calibration error (0-1) in `num_bins` equal bins, as camseg-eval computes it."""
    meter = CalibrationMeter(num_bins)
    meter.update(conf.numpy(), correct.numpy())
    return meter.ece()


def evaluate_temperature(scores: ClassScores, temperature: float) -> dict:
    """Return the NLL, ECE, mean confidence and accuracy of `scores` at `temperature`."""
    conf, correct = confidence(scores, temperature)
    return {'temperature': float(temperature), 'nll': confidence_nll(conf, correct),
            'ece': calibration_error(conf, correct), 'mean_confidence': float(conf.mean()),
            'accuracy': float(correct.float().mean())}


def fit_temperature(scores: ClassScores, objective: str = 'nll', low: float = 0.2, high: float = 10.0,
                    points: int = 41, refine: int = 2) -> tuple[float, list[dict]]:
    """Return the temperature minimising `objective` ('nll' or 'ece') over [low, high], and every evaluation.

    A log-spaced grid of `points` values, then `refine` rounds of the same number of points between the best
    value's neighbours. Ties go to the temperature closest to 1.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f'objective must be one of {OBJECTIVES}, got {objective!r}')
    if not (0 < low < high and math.isfinite(high)) or points < 3 or refine < 0:
        raise ValueError(f'need 0 < low < high finite, points >= 3, refine >= 0; got {low}, {high}, '
                         f'{points}, {refine}')
    table: list[dict] = []
    grid = np.geomspace(low, high, points)
    for _ in range(refine + 1):
        rows = [evaluate_temperature(scores, t) for t in grid]
        table += rows
        best = min(range(len(rows)), key=lambda i: (rows[i][objective], abs(math.log(grid[i]))))
        grid = np.geomspace(grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)], points)
    table.sort(key=lambda r: r['temperature'])
    best = min(table, key=lambda r: (r[objective], abs(math.log(r['temperature']))))
    return best['temperature'], table


def calibrated_sampler(sampler: SamplerConfig, temperature: float,
                       ensemble: int | None = None) -> SamplerConfig:
    """Return `sampler` with `temperature` as the confidence temperature of `ensemble` samples.

    `ensemble` defaults to the sampler's own ensemble size; the other entries are kept. Invalid values raise
    ValueError.
    """
    sampler.validate()
    size = sampler.ensemble if ensemble is None else ensemble
    result = dataclasses.replace(sampler, confidence_temperature={**sampler.confidence_temperature,
                                                                  size: float(temperature)})
    result.validate()
    return result


__all__ = ['ClassScores', 'OBJECTIVES', 'calibrated_sampler', 'calibration_error',
           'collect_scores', 'confidence', 'confidence_nll', 'evaluate_temperature', 'fit_temperature']
