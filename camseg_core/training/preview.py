"""Preview grids of a stage's model on a few fixed letterboxed items (TensorBoard and samples/*.png)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..config import SamplerConfig
from ..imageops import to_bytes
from ..labels import colorize, decode_maskige, encode_maskige
from .data import letterbox_pair, to_tensors


def preview_batch(dataset: Dataset, size: tuple[int, int], count: int = 4) -> dict[str, torch.Tensor]:
    """Letterbox the first `count` items into one batch for the sample overlays."""
    items = [to_tensors(*letterbox_pair(dataset[i]['image'], dataset[i]['label'], size))
             for i in range(min(count, len(dataset)))]
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


def _blend(image: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return (0.5 * image + 0.5 * colorize(ids)).astype(np.uint8)


def _grey(conf: np.ndarray) -> np.ndarray:
    return np.repeat((np.clip(conf, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=-1)


def _u8(x: torch.Tensor) -> np.ndarray:
    return to_bytes(x).permute(0, 2, 3, 1).cpu().numpy()


def make_preview(stage: str, batch: dict, device: torch.device):
    """Preview function model -> HxWx3 uint8 grid, one row per preview image.

    vae: input | reconstruction | decoded mask reconstruction | its confidence.
    segmenter / baseline: input | prediction over the input | ground truth | confidence.
    """
    x, y = batch['image'].to(device), batch['label'].to(device)
    images, truth = _u8(x), y.cpu().numpy().astype(np.uint8)

    @torch.no_grad()
    def preview(model: nn.Module) -> np.ndarray:
        if stage == 'vae':
            ae = model.autoencoder
            recon = _u8(ae.decode(ae.encode(x)))
            ids, conf = decode_maskige(ae.decode(ae.encode(encode_maskige(y))))
            rows = [np.concatenate([im, rc, colorize(i), _grey(c)], 1)
                    for im, rc, i, c in zip(images, recon, ids.cpu().numpy(), conf.cpu().numpy())]
        else:
            sampler = getattr(model.config, 'sampler', SamplerConfig())
            ids, conf = model.predict(x, sampler, torch.Generator(device).manual_seed(0))
            rows = [np.concatenate([im, _blend(im, i), colorize(t), _grey(c)], 1)
                    for im, i, t, c in zip(images, ids.cpu().numpy(), truth, conf.cpu().numpy())]
        return np.concatenate(rows, 0)
    return preview
