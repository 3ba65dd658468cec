"""The pixel scale of model inputs; letterboxing to the processing size and back, on the model's device."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .labels import IGNORE_INDEX


def from_bytes(images: torch.Tensor) -> torch.Tensor:
    """Pixels in [0, 255] (uint8 or float) -> float32 in [-1, 1] (k / 127.5 - 1), the models' input scale."""
    return images.float() / 127.5 - 1.0


def to_bytes(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> uint8; exact inverse of `from_bytes` on its uint8 values."""
    return ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


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


def check_labels(labels, index: int, max_pixels: int) -> np.ndarray:
    """Validate one (H, W) integer trainId map; return it as uint8 or raise ValueError naming the problem."""
    where = f'label map {index}'
    if not isinstance(labels, np.ndarray):
        raise ValueError(f'{where}: expected a numpy array, got {type(labels).__name__}')
    if labels.ndim != 2 or 0 in labels.shape:
        raise ValueError(f'{where}: expected a non-empty (H, W) map, got shape {labels.shape}')
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 255:
        raise ValueError(f'{where}: expected trainIds in [0, 255] as integers, got {labels.dtype}')
    if labels.size > max_pixels:
        raise ValueError(f'{where}: {labels.size} pixels is more than max_pixels={max_pixels}')
    return labels.astype(np.uint8, copy=False)


def place(h: int, w: int, size: tuple[int, int]) -> Placement:
    """Where an h x w input goes inside a `size` (H, W) canvas: scaled to fit, aspect ratio kept."""
    H, W = size
    scale = min(H / h, W / w)
    return Placement(h, w, max(1, min(H, round(h * scale))), max(1, min(W, round(w * scale))))


def lift_exposure(image: torch.Tensor, floor: float) -> torch.Tensor:
    """Brighten an image whose mean brightness is below `floor`; return brighter images unchanged.

    image (3, h, w) float in [0, 255]; floor in [0, 1) (0: off). A dark image gets the gamma curve that takes
    its mean brightness m (in [0, 1]) to the floor, x -> 255 (x / 255) ** (log floor / log m): black and white
    stay, the mid-tones rise, as a camera's auto-exposure would have raised them.
    """
    if floor <= 0:
        return image
    x = (image / 255).clamp(0, 1)
    mean = x.mean().clamp_min(1e-3)
    dark = mean < floor  # decided on the device: no host synchronisation
    gamma = torch.where(dark, math.log(floor) / mean.log(), torch.ones_like(mean))
    return torch.where(dark, x.pow(gamma) * 255, image)


def letterbox(images: list[np.ndarray], size: tuple[int, int], device: torch.device,
              exposure_floor: float = 0.0) -> tuple[torch.Tensor, list[Placement]]:
    """Resize each image to fit `size` (H, W) keeping its aspect ratio, pad the rest with 0 (mid grey).

    Images darker than `exposure_floor` are brightened first (`lift_exposure`). Returns (N, 3, H, W) float32
    in [-1, 1] on `device` and each image's placement.
    """
    H, W = size
    batch = torch.zeros((len(images), 3, H, W), device=device)
    placements = []
    for i, image in enumerate(images):
        h, w = image.shape[:2]
        p = place(h, w, size)
        ih, iw = p.inner_height, p.inner_width
        if not image.flags.writeable:  # e.g. a zero-copy view of a ROS message buffer
            image = image.copy()
        x = torch.from_numpy(np.ascontiguousarray(image)).to(device)
        x = x.permute(2, 0, 1)[None].float()  # (1, 3, h, w)
        if (ih, iw) != (h, w):
            x = F.interpolate(x, size=(ih, iw), mode='bilinear', align_corners=False, antialias=ih < h)
        batch[i, :, :ih, :iw] = from_bytes(lift_exposure(x[0], exposure_floor))
        placements.append(p)
    return batch, placements


def letterbox_labels(labels: list[np.ndarray], size: tuple[int, int], device: torch.device,
                     ignore_index: int = IGNORE_INDEX) -> tuple[torch.Tensor, list[Placement]]:
    """Letterbox (H, W) uint8 label maps like `letterbox` places images, resized by nearest neighbour.

    The padding is `ignore_index`. Returns (N, H, W) uint8 on `device` and each map's placement.
    """
    batch = torch.full((len(labels), *size), ignore_index, dtype=torch.uint8, device=device)
    placements = []
    for i, label in enumerate(labels):
        p = place(*label.shape[:2], size)
        x = torch.from_numpy(np.array(label, dtype=np.uint8, copy=True)).to(device)  # (h, w)
        if (p.inner_height, p.inner_width) != (p.height, p.width):
            x = F.interpolate(x[None, None].float(), size=(p.inner_height, p.inner_width),
                              mode='nearest-exact')[0, 0].to(torch.uint8)
        batch[i, :p.inner_height, :p.inner_width] = x
        placements.append(p)
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
