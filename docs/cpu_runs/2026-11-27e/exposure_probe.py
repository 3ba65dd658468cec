"""Score a checkpoint with input normalisations applied to each uint8 image before `Segmenter.segment`.

python exposure_probe.py CHECKPOINT CONDITIONS VARIANTS, e.g. '' clear,rain,night none,gamma,floor29
('' is the shipped model). Run from the repository root; the model runs with `exposure_floor=0`, as every
model did before the floor existed.
"""
import sys

import cv2
import numpy as np

from camseg_core.api import load_segmenter
from camseg_core.data.datasets import open_dataset
from camseg_core.evaluation.metrics import MetricSuite


def autolevel(img):
    """Stretch the 1st-99th percentile of the luminance to the full range."""
    f = img.astype(np.float32)
    lum = f.mean(-1)
    lo, hi = np.percentile(lum, 1), np.percentile(lum, 99)
    return np.clip((f - lo) * 255.0 / max(hi - lo, 1.0), 0, 255).astype(np.uint8)


def meangamma(img):
    """Gamma that takes the mean brightness to 0.42, on every image."""
    f = img.astype(np.float32) / 255
    g = np.log(0.42) / np.log(max(f.mean(), 1e-3))
    return (np.clip(f, 0, 1) ** g * 255).astype(np.uint8)


def clahe(img):
    """CLAHE on the L channel."""
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.createCLAHE(2.0, (8, 8)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def floor(t):
    """Gamma that takes the mean brightness to t, on images darker than t only."""
    def lift(img):
        x = img.astype(np.float32) / 255
        m = x.mean()
        if m >= t:
            return img
        return (np.clip(x, 0, 1) ** (np.log(t) / np.log(max(m, 1e-3))) * 255).round().astype(np.uint8)
    return lift


PREP = dict(none=lambda x: x, autolevel=autolevel, gamma=meangamma, clahe=clahe, floor29=floor(0.29),
            floor35=floor(0.35))
ck, conds, preps = sys.argv[1], sys.argv[2].split(','), sys.argv[3].split(',')
seg = load_segmenter(ck or None, device='cpu', seed=0, exposure_floor=0.0)
for cond in conds:
    spec = 'cityscapes:runs/dm/data:val' if cond == 'clear' else f'acdc:runs/dm/data:{cond}:val'
    items = [open_dataset(spec)[i] for i in range(len(open_dataset(spec)))]
    for p in preps:
        m = MetricSuite()
        for it in items:
            s = seg.segment(PREP[p](it['image']))
            m.update(s.labels, it['label'], s.confidence)
        print(f"{ck.split('/')[-1] or 'shipped':10s} {cond:6s} {p:9s} mIoU {100 * m.miou():.1f} "
              f'ECE {100 * m.calibration.ece():.1f}', flush=True)
