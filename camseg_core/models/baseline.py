"""Discriminative baseline: a small U-Net that classifies every pixel, with max-softmax confidence.

It answers the same `predict` call as CAM-Seg, so the API, evaluation and ROS node treat both alike.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SamplerConfig, named_config
from ..labels import IGNORE_INDEX, NUM_CLASSES
from ..profiling import StageTimer


@dataclass
class BaselineConfig:
    """The whole baseline model: everything needed to rebuild it from a checkpoint."""

    image_size: tuple[int, int] = (128, 256)  # processing size (H, W); inputs are letterboxed
    widths: tuple[int, ...] = (64, 128, 256, 512)  # channels per resolution level; stride = 2**(len-1)
    convs_per_level: int = 2  # 3x3 conv + GroupNorm + SiLU units per level (encoder and decoder)
    norm_num_groups: int = 16  # GroupNorm groups (must divide every width)
    stem_stride: int = 1  # >1: a patchify conv stem; the U-Net runs at 1/stem_stride and logits are upsampled
    preset: str = 'custom'  # name of the preset this came from, for reports

    @property
    def stride(self) -> int:
        """Downsampling factor of the deepest level (stem included)."""
        return self.stem_stride * 2 ** (len(self.widths) - 1)

    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent field."""
        if not isinstance(self.stem_stride, int) or self.stem_stride < 1:
            raise ValueError(f'stem_stride must be >= 1, got {self.stem_stride}')
        if len(self.image_size) != 2 or any(not isinstance(v, int) or v <= 0 or v % self.stride
                                            for v in self.image_size):
            raise ValueError(f'image_size {tuple(self.image_size)} must be two positive multiples of the '
                             f'stride {self.stride}')
        if not 1 <= len(self.widths) <= 6 or any(w <= 0 or w % self.norm_num_groups for w in self.widths):
            raise ValueError(f'widths {tuple(self.widths)} must be 1..6 positive multiples of '
                             f'norm_num_groups={self.norm_num_groups}')
        if self.convs_per_level < 1:
            raise ValueError(f'convs_per_level must be >= 1, got {self.convs_per_level}')

    def to_dict(self) -> dict:
        """Plain data for config.json."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> 'BaselineConfig':
        """Rebuild from `to_dict()` output; unknown keys raise ValueError naming them."""
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f'unknown BaselineConfig keys: {unknown}')
        data = dict(data)
        for key in ('image_size', 'widths'):
            if key in data:
                data[key] = tuple(data[key])
        config = cls(**data)
        config.validate()
        return config


# 'tiny' is sized like the tiny CAM-Seg (7.8M parameters against its 9.6M, same 128x256 processing size) and,
# like most segmentation networks, predicts at 1/4 resolution (CAM-Seg's tokens are at 1/8);
# 'micro' (0.1M) is for tests and CPU smoke runs.
BASELINE_PRESETS = {
    'tiny': lambda: BaselineConfig(image_size=(128, 256), widths=(64, 128, 256, 512), stem_stride=4,
                                   preset='tiny'),
    'micro': lambda: BaselineConfig(image_size=(32, 64), widths=(16, 32, 64), convs_per_level=1,
                                    preset='micro'),
}


def baseline_preset(name: str) -> BaselineConfig:
    """Return a fresh config of a named baseline preset."""
    return named_config(BASELINE_PRESETS, name, 'baseline preset')


def _conv_stack(c_in: int, c_out: int, n: int, groups: int) -> nn.Sequential:
    layers = []
    for i in range(n):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1), nn.GroupNorm(groups, c_out),
                   nn.SiLU()]
    return nn.Sequential(*layers)


class PixelClassifier(nn.Module):
    """U-Net per-pixel classifier. `loss` trains it; `predict` segments preprocessed images."""

    model_type = 'baseline'
    config_class = BaselineConfig

    def __init__(self, config: BaselineConfig):
        super().__init__()
        config.validate()
        self.config = config
        w, n, g, s = config.widths, config.convs_per_level, config.norm_num_groups, config.stem_stride
        self.stem = nn.Identity() if s == 1 else nn.Sequential(nn.Conv2d(3, w[0], s, stride=s),
                                                               nn.GroupNorm(g, w[0]), nn.SiLU())
        c0 = 3 if s == 1 else w[0]
        self.down = nn.ModuleList(_conv_stack(c0 if i == 0 else w[i - 1], w[i], n, g) for i in range(len(w)))
        self.up = nn.ModuleList(_conv_stack(w[i + 1] + w[i], w[i], n, g) for i in range(len(w) - 1))
        self.classifier = nn.Conv2d(w[0], NUM_CLASSES, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) in [-1, 1] -> class logits (N, K, H, W)."""
        skips = []
        x = self.stem(images)
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))  # (N, w_i, H / 2**i, W / 2**i)
            skips.append(x)
        for i in reversed(range(len(self.up))):
            x = F.interpolate(x, size=skips[i].shape[-2:], mode='bilinear', align_corners=False)
            x = self.up[i](torch.cat([x, skips[i]], dim=1))  # (N, w_i, H / 2**i, W / 2**i)
        logits = self.classifier(x)
        if logits.shape[-2:] != images.shape[-2:]:
            logits = F.interpolate(logits, size=images.shape[-2:], mode='bilinear', align_corners=False)
        return logits

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over labelled pixels.

        images (N, 3, H, W) in [-1, 1], labels (N, H, W) trainIds (255 ignored).

        A batch without a single labelled pixel gives a zero loss (with gradients), not NaN.
        """
        logits = self(images).float()
        labels = labels.long()
        total = F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction='sum')
        return total / (labels != IGNORE_INDEX).sum().clamp_min(1)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, sampler: SamplerConfig | None = None,
                generator: torch.Generator | None = None,
                timer: StageTimer | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Segment images (N, 3, H, W) in [-1, 1].

        Returns trainIds (N, H, W) uint8 and the max softmax probability (N, H, W) float32.

        `sampler` and `generator` are accepted for API symmetry with CAM-Seg; the baseline is deterministic.
        """
        timer = timer or StageTimer()
        with timer('network'):
            logits = self(images)
        with timer('postprocess'):
            conf, ids = logits.float().softmax(dim=1).max(dim=1)
            return ids.to(torch.uint8), conf.to(torch.float32)
