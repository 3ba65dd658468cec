"""Latent caching for the segmenter stage: encode the data once with the frozen autoencoder.

The items are split over the DDP ranks, each rank encodes its share with DataLoader workers, pinned memory
and autocast, and the ranks all-gather the tokens, so every rank holds the whole cache. Each item is seeded
from (seed, copy, index), so the cache is the same whatever the number of workers or ranks.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset
from tqdm import tqdm

from ..data.augment import AugmentConfig
from ..device import PRECISIONS
from ..imageops import to_bytes
from ..labels import token_class_mix
from ..models.camseg import CamSeg
from .data import PREFETCH, PairData, prepare_fork


class CachedTokens(Dataset):
    """Pre-encoded (image_tokens, mask_tokens) pairs held in memory.

    Also each token's class mix and the images (uint8, `to_bytes`) where kept, for a token classifier or a
    pixel stem.
    """

    def __init__(self, image_tokens: torch.Tensor, mask_tokens: torch.Tensor,
                 token_classes: torch.Tensor | None = None, images: torch.Tensor | None = None):
        self.image_tokens, self.mask_tokens, self.token_classes = image_tokens, mask_tokens, token_classes
        self.images = images

    def __len__(self) -> int:
        return len(self.image_tokens)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = {'image_tokens': self.image_tokens[index], 'mask_tokens': self.mask_tokens[index]}
        if self.token_classes is not None:
            item['token_classes'] = self.token_classes[index]
        if self.images is not None:
            item['image_bytes'] = self.images[index]
        return item


@dataclass
class CacheStats:
    """How long the caching pass took (the slowest rank's wall time bounds everyone)."""

    items: int  # items encoded by all ranks together
    seconds: float  # wall time of this rank, from the first batch requested to the gathered cache
    workers: int  # DataLoader workers per rank
    precision: str  # autocast of the encoder
    world: int  # ranks that shared the items

    @property
    def items_per_s(self) -> float:
        """Items of the whole cache per second of wall time."""
        return self.items / max(self.seconds, 1e-9)

    def to_dict(self) -> dict:
        """JSON-able summary, for the run's meta."""
        return {'items': self.items, 'seconds': round(self.seconds, 3),
                'items_per_s': round(self.items_per_s, 2), 'workers': self.workers,
                'precision': self.precision, 'world': self.world}


def cache_items(dataset: Dataset, size: tuple[int, int], copies: int, seed: int,
                augmentation: AugmentConfig | None = None) -> Dataset:
    """Return every item letterboxed, then `copies` augmented versions of each (seeded: seed, copy, item)."""
    plain = PairData(dataset, size, augment=False, seed=seed)
    if copies <= 0:
        return plain
    n = len(dataset)
    # keys n.. : copy k of item i is key k*n + i
    augmented = PairData(dataset, size, augment=True, seed=seed, augmentation=augmentation)
    return ConcatDataset([plain, Subset(augmented, range(n, (copies + 1) * n))])


def _share(total: int, rank: int, world: int) -> range:
    """Return the contiguous items of `rank`; shares differ by at most one item."""
    return range(rank * total // world, (rank + 1) * total // world)


def _gather(tokens: torch.Tensor, total: int, world: int, group=None) -> torch.Tensor:
    """All-gather the contiguous shares (N_r, ...) of every rank into (total, ...), in item order."""
    longest = -(-total // world)
    padded = tokens.new_zeros((longest, *tokens.shape[1:]))  # all_gather wants equal shapes
    padded[:len(tokens)] = tokens
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded, group=group)
    return torch.cat([part[:len(_share(total, r, world))] for r, part in enumerate(parts)])


@torch.no_grad()
def encode_dataset(model: CamSeg, dataset: Dataset, batch_size: int, device: torch.device,
                   progress: bool = False, copies: int = 0, seed: int = 0, workers: int = 0,
                   precision: str = 'fp32', rank: int = 0, world: int = 1,
                   class_mix: bool = False, augmentation: AugmentConfig | None = None
                   ) -> tuple[CachedTokens, CacheStats]:
    """Encode every item (see `cache_items`) with the frozen autoencoder -> tokens on the CPU, and timings.

    Rank `rank` of `world` encodes its share; with world > 1 the process group must be up (every rank calls).
    Each token's class mix is kept for a token classifier, or where `class_mix` asks for it.
    `augmentation`: the settings of the augmented copies (default `AugmentConfig()`).
    """
    data = cache_items(dataset, model.config.image_size, copies, seed, augmentation)
    total = len(data)
    if total < world:
        raise ValueError(f'{total} items to cache over {world} processes: fewer than one each')
    cuda = device.type == 'cuda'
    prepare_fork(workers)
    loader = DataLoader(Subset(data, _share(total, rank, world)), batch_size=batch_size, num_workers=workers,
                        pin_memory=cuda, prefetch_factor=PREFETCH if workers else None)
    start = time.perf_counter()
    keep_classes = class_mix or model.transformer.classifier is not None
    keep_pixels = model.transformer.pixel_stem is not None
    images, masks, classes, pixels = [], [], [], []  # tokens stay on the device: one copy back at the end
    with torch.autocast(device.type, dtype=PRECISIONS[precision], enabled=precision != 'fp32'):
        for batch in tqdm(loader, desc='encode latents', disable=not progress):
            label = batch['label'].to(device, non_blocking=True)
            image = batch['image'].to(device, non_blocking=True)
            x, y = model.encode_pair(image, label)  # (B, L, C) each
            images.append(x.float())
            masks.append(y.float())
            if keep_classes:
                classes.append(token_class_mix(label, model.grid).half())  # (B, L, K)
            if keep_pixels:  # on the host at once: pixels outweigh tokens by stride^2 * 3 / C
                pixels.append(to_bytes(image).cpu())
    parts = [torch.cat(p) if p else None for p in (images, masks, classes, pixels)]
    if world > 1:
        parts[:3] = [None if part is None else _gather(part.to(device), total, world) for part in parts[:3]]
        if keep_pixels:  # through the host (gloo), sparing the device memory the largest part would take
            host = dist.new_group(backend='gloo')
            parts[3] = _gather(parts[3], total, world, host)
            dist.destroy_process_group(host)
    cache = CachedTokens(*(None if part is None else part.cpu() for part in parts))
    return cache, CacheStats(total, time.perf_counter() - start, workers, precision, world)
