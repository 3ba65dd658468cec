"""
The image corruptions of the CAM-Seg robustness study, each at 5 fixed severities.

Every corruption is an albumentations 2.0 transform whose random ranges are collapsed to one
value per severity, so a severity is a defined strength; the remaining randomness (noise
patterns) comes from the seed, so the same (image, severity, seed) always gives the same output.

    CORRUPTIONS['gaussian_noise'](image, severity=3, seed=0) -> corrupted image

Images are HxWx3 uint8 RGB; the output has the same shape and dtype.
"""
from __future__ import annotations

from typing import Callable

import albumentations as A
import numpy as np

SEVERITIES = (1, 2, 3, 4, 5)

# One value per severity 1..5 (strengths follow the spirit of ImageNet-C / Cityscapes-C).
NOISE_STD = (0.04, 0.08, 0.12, 0.18, 0.26)  # gaussian noise std, fraction of 255
SALT_PEPPER_AMOUNT = (0.01, 0.03, 0.06, 0.10, 0.17)  # fraction of pixels set to 0 or 255
MOTION_KERNEL = (5, 9, 13, 17, 23)  # horizontal motion-blur kernel length in pixels (odd)
BLUR_SIGMA = (1.0, 2.0, 3.0, 4.5, 6.0)  # gaussian blur sigma in pixels
BRIGHTNESS_SHIFT = (0.1, 0.2, 0.3, 0.4, 0.5)  # added brightness, fraction of 255
CONTRAST_FACTOR = (0.6, 0.45, 0.3, 0.2, 0.1)  # contrast scale around the mean grey level
SATURATION_FACTOR = (0.7, 0.5, 0.3, 0.15, 0.0)  # saturation scale (0 = grey)
HUE_SHIFT = (10, 20, 30, 45, 60)  # hue rotation in OpenCV hue units (180 = a full turn)


def _transform(severity: int) -> int:
    if severity not in SEVERITIES:
        raise ValueError(f'severity must be one of {SEVERITIES}, got {severity!r}')
    return severity - 1


def _build(name: str, i: int) -> A.BasicTransform:
    """Build the albumentations transform of corruption `name` at severity index i (0..4), always applied."""
    if name == 'gaussian_noise':
        s = NOISE_STD[i]
        return A.GaussNoise(std_range=(s, s), mean_range=(0.0, 0.0), per_channel=True, p=1.0)
    if name == 'salt_and_pepper':
        a = SALT_PEPPER_AMOUNT[i]
        return A.SaltAndPepper(amount=(a, a), salt_vs_pepper=(0.5, 0.5), p=1.0)
    if name == 'motion_blur':
        k = MOTION_KERNEL[i]
        return A.MotionBlur(blur_limit=(k, k), angle_range=(0.0, 0.0), direction_range=(0.0, 0.0),
                            allow_shifted=False, p=1.0)
    if name == 'gaussian_blur':
        s = BLUR_SIGMA[i]
        return A.GaussianBlur(blur_limit=0, sigma_limit=(s, s), p=1.0)  # kernel size derived from sigma
    if name == 'brightness':
        b = BRIGHTNESS_SHIFT[i]
        return A.RandomBrightnessContrast(brightness_limit=(b, b), contrast_limit=(0.0, 0.0),
                                          brightness_by_max=True, p=1.0)
    if name == 'contrast':
        c = CONTRAST_FACTOR[i]
        return A.ColorJitter(brightness=(1.0, 1.0), contrast=(c, c), saturation=(1.0, 1.0), hue=(0.0, 0.0),
                             p=1.0)
    if name == 'saturation':
        s = SATURATION_FACTOR[i]
        return A.ColorJitter(brightness=(1.0, 1.0), contrast=(1.0, 1.0), saturation=(s, s), hue=(0.0, 0.0),
                             p=1.0)
    if name == 'hue':
        h = HUE_SHIFT[i]
        return A.HueSaturationValue(hue_shift_limit=(h, h), sat_shift_limit=(0, 0), val_shift_limit=(0, 0),
                                    p=1.0)
    raise ValueError(f'unknown corruption {name!r}; choose from {sorted(CORRUPTIONS)}')


def corrupt(name: str, image: np.ndarray, severity: int, seed: int = 0) -> np.ndarray:
    """Apply corruption `name` at `severity` (1..5) to an HxWx3 uint8 RGB image, reproducibly for a seed."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image must be an HxWx3 uint8 array, got {getattr(image, "dtype", type(image))} '
                         f'{getattr(image, "shape", "")}')
    pipeline = A.Compose([_build(name, _transform(severity))], seed=int(seed))
    return pipeline(image=np.ascontiguousarray(image))['image']


def _registered(name: str) -> Callable[..., np.ndarray]:
    def apply(image: np.ndarray, severity: int, seed: int = 0) -> np.ndarray:
        return corrupt(name, image, severity, seed)
    apply.__name__ = name
    apply.__doc__ = f'Apply {name.replace("_", " ")} at severity 1..5 (see corruptions.corrupt).'
    return apply


_NAMES = ('gaussian_noise', 'salt_and_pepper', 'motion_blur', 'gaussian_blur',
          'brightness', 'contrast', 'saturation', 'hue')
# name -> function(image, severity, seed=0) -> image
CORRUPTIONS: dict[str, Callable[..., np.ndarray]] = {n: _registered(n) for n in _NAMES}


def parse_corruptions(text: str) -> list[str]:
    """'all' -> every corruption, 'none' or '' -> [], else a comma list of names (checked)."""
    text = text.strip()
    if text in ('', 'none'):
        return []
    if text == 'all':
        return list(CORRUPTIONS)
    names = [n.strip() for n in text.split(',') if n.strip()]
    unknown = [n for n in names if n not in CORRUPTIONS]
    if unknown:
        raise ValueError(f'unknown corruption(s) {unknown}; choose from {list(CORRUPTIONS)}, all or none')
    return names
