"""Letterboxing to the processing size and back, on the model's device."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Placement:
    """Where an input image sits inside the processing canvas."""

    height: int  # input size
    width: int
    inner_height: int  # resized size inside the canvas (top-left aligned, the rest padded)
    inner_width: int


def check_image(image, index: int, max_pixels: int) -> np.ndarray:
    """Validate one HxWx3 uint8 RGB array; raise ValueError naming the problem."""
    where = f'image {index}'
    if not isinstance(image, np.ndarray):
        raise ValueError(f'{where}: expected a numpy array, got {type(image).__name__}')
    if image.dtype != np.uint8:
        raise ValueError(f'{where}: expected dtype uint8, got {image.dtype}')
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'{where}: expected shape (H, W, 3) RGB, got {image.shape}')
    h, w = image.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f'{where}: zero size {h}x{w}')
    if h * w > max_pixels:
        raise ValueError(f'{where}: {h}x{w} = {h * w} pixels is more than max_pixels={max_pixels}')
    return image


def letterbox(images: list[np.ndarray], size: tuple[int, int], device: torch.device
              ) -> tuple[torch.Tensor, list[Placement]]:
    """Resize each image to fit `size` (H, W) keeping its aspect ratio, pad the rest with 0 (mid grey).

    Returns (N, 3, H, W) float32 in [-1, 1] on `device` and each image's placement.
    """
    H, W = size
    batch = torch.zeros((len(images), 3, H, W), device=device)
    placements = []
    for i, image in enumerate(images):
        h, w = image.shape[:2]
        scale = min(H / h, W / w)
        ih, iw = max(1, min(H, round(h * scale))), max(1, min(W, round(w * scale)))
        if not image.flags.writeable:  # e.g. a zero-copy view of a ROS message buffer
            image = image.copy()
        x = torch.from_numpy(np.ascontiguousarray(image)).to(device)
        x = x.permute(2, 0, 1)[None].float()  # (1, 3, h, w)
        if (ih, iw) != (h, w):
            x = F.interpolate(x, size=(ih, iw), mode='bilinear', align_corners=False, antialias=ih < h)
        batch[i, :, :ih, :iw] = x[0] / 127.5 - 1.0
        placements.append(Placement(h, w, ih, iw))
    return batch, placements


def restore(ids: torch.Tensor, conf: torch.Tensor, placement: Placement) -> tuple[np.ndarray, np.ndarray]:
    """Crop one (H, W) prediction to its placement and resize to the input size.

    Class ids use nearest-neighbour resampling, the confidence bilinear. Returns uint8 and float32 arrays.
    """
    p = placement
    ids = ids[:p.inner_height, :p.inner_width]
    conf = conf[:p.inner_height, :p.inner_width]
    if (p.inner_height, p.inner_width) != (p.height, p.width):
        size = (p.height, p.width)
        ids = F.interpolate(ids[None, None].float(), size=size, mode='nearest-exact')[0, 0].to(torch.uint8)
        conf = F.interpolate(conf[None, None].float(), size=size, mode='bilinear', align_corners=False)[0, 0]
    return ids.cpu().numpy(), conf.clamp(0, 1).float().cpu().numpy()
