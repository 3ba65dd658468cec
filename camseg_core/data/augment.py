"""Training augmentation for (image, label) pairs.

Random scale, crop and flip act on the image and the label together; photometric, weather and low-light
effects (albumentations 2.0.x) act on the image only.
"""
from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import cv2
import numpy as np

from camseg_core.labels import IGNORE_INDEX


@dataclass
class AugmentConfig:
    """Augmentation settings."""

    crop: tuple[int, int] = (256, 512)  # output size (H, W)
    scale: tuple[float, float] = (0.75, 1.5)  # random zoom; 1.0 makes the image height equal the crop height
    flip: float = 0.5  # probability of a horizontal flip
    photometric: float = 0.8  # probability of colour jitter
    jitter: float = 0.3  # colour jitter strength s: brightness, contrast, saturation x [1-s, 1+s], hue +-s/10
    weather: float = 0.3  # probability of one of fog, snow, rain
    noise: float = 0.2  # probability of sensor noise or motion blur
    low_light: float = 0.15  # probability of low light: darker mid-tones, 20-60 % exposure, sensor noise

    def validate(self) -> AugmentConfig:
        """Raise ValueError naming the first bad field; return self."""
        if min(self.crop) < 1:
            raise ValueError(f'AugmentConfig.crop must be positive, got {self.crop}')
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f'AugmentConfig.scale must be 0 < lo <= hi, got {self.scale}')
        for name in ('flip', 'photometric', 'weather', 'noise', 'low_light'):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f'AugmentConfig.{name} is a probability, got {getattr(self, name)}')
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f'AugmentConfig.jitter must be in [0, 1), got {self.jitter}')
        return self


class Augment:
    """Callable (image, label) -> (image, label): HxWx3 uint8 RGB and HxW uint8 trainIds in, crop-sized out.

    Labels are resized with nearest neighbour and padded with IGNORE_INDEX (255); images are padded with 0.
    Deterministic under `seed`; in DataLoader workers call `reseed(base + worker_id)` so workers differ.
    """

    def __init__(self, config: AugmentConfig | None = None, seed: int | None = None):
        self.config = (config or AugmentConfig()).validate()
        c = self.config
        self.photo = A.Compose([
            A.ColorJitter(brightness=c.jitter, contrast=c.jitter, saturation=c.jitter, hue=c.jitter / 10,
                          p=c.photometric),
            A.OneOf([A.RandomFog(fog_coef_range=(0.2, 0.6), alpha_coef=0.1, p=1.0),
                     A.RandomSnow(snow_point_range=(0.1, 0.3), brightness_coeff=1.8, p=1.0),
                     A.RandomRain(rain_type='drizzle', brightness_coefficient=0.8, p=1.0)], p=c.weather),
            A.OneOf([A.GaussNoise(std_range=(0.02, 0.08), p=1.0), A.MotionBlur(blur_limit=(3, 7), p=1.0)],
                    p=c.noise),
            A.Sequential([A.RandomGamma(gamma_limit=(110, 170), p=1.0),  # gamma 1.1-1.7: lights stay bright
                          A.MultiplicativeNoise(multiplier=(0.2, 0.6), p=1.0),  # one exposure per image
                          A.GaussNoise(std_range=(0.01, 0.04), p=1.0)], p=c.low_light),
        ])
        self.reseed(seed)

    def reseed(self, seed: int | None) -> None:
        """Restart the random streams (geometry and albumentations) from `seed`."""
        self.rng = np.random.default_rng(seed)
        self.photo.set_random_seed(seed)

    def __call__(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Augment one pair; ValueError if the shapes or dtypes are wrong."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'image must be HxWx3 uint8, got {image.shape} {image.dtype}')
        if label.shape != image.shape[:2] or label.dtype != np.uint8:
            raise ValueError(f'label must be {image.shape[:2]} uint8, got {label.shape} {label.dtype}')
        image, label = self._geometry(image, label)
        return self.photo(image=image)['image'], label

    def _geometry(self, image, label):
        (ch, cw), (h, w) = self.config.crop, image.shape[:2]
        s = ch / h * self.rng.uniform(*self.config.scale)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST)
        ph, pw = max(0, ch - nh), max(0, cw - nw)
        if ph or pw:  # pad bottom/right
            image = cv2.copyMakeBorder(image, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=(0, 0, 0))
            label = cv2.copyMakeBorder(label, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=IGNORE_INDEX)
        y = int(self.rng.integers(0, image.shape[0] - ch + 1))
        x = int(self.rng.integers(0, image.shape[1] - cw + 1))
        image, label = image[y:y + ch, x:x + cw], label[y:y + ch, x:x + cw]
        if self.rng.random() < self.config.flip:
            image, label = image[:, ::-1], label[:, ::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(label)
