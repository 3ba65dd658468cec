"""Training data: datasets from --data specs, letterbox or augmentation to the model size, resumable batches.

Every sample's augmentation is seeded from (seed, epoch, index), and the batch order from (seed, epoch), so a
resumed run sees exactly the batches an uninterrupted one would, whatever the number of loader workers.
"""
from __future__ import annotations

import dataclasses
import itertools
import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, DistributedSampler

from ..data.augment import Augment, AugmentConfig
from ..data.datasets import list_conditions, open_dataset
from ..imageops import from_bytes, place
from ..labels import IGNORE_INDEX, NUM_CLASSES

PAD_GREY = 128  # letterbox padding of images: mid grey, about 0 in [-1, 1] like the inference letterbox
PREFETCH = 4  # batches each loader worker prepares ahead


def prepare_fork(workers: int) -> None:
    """Shut OpenCV's thread pool down before `workers` loader processes are forked from this one.

    A forked worker inherits the pool's lock but not its threads, so its first OpenCV call (even
    cv2.setNumThreads) can wait for ever once this process has used the pool (it hung the tests). With one
    OpenCV thread there is no pool, and each of many workers keeps to one thread, which also avoids
    oversubscribing the cores.
    """
    if workers > 0:
        cv2.setNumThreads(1)


def default_workers(local_world: int = 1) -> int:
    """Loader workers per process: the cores of this machine shared by its processes, one left for each."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
    return max(2, min(16, cores // max(1, local_world) - 1))


def expand_train_spec(spec: str) -> list[str]:
    """Expand 'generated:ROOT' to the Cityscapes and every ACDC condition 'train' split in ROOT.

    Other specs are returned unchanged.
    """
    kind, _, root = spec.partition(':')
    if kind != 'generated':
        return [spec]
    base = Path(root)
    if not root or not base.is_dir():
        raise FileNotFoundError(f'--data {spec}: directory {root!r} does not exist')
    specs = [f'cityscapes:{root}:train'] if (base / 'leftImg8bit' / 'train').is_dir() else []
    if (base / 'rgb_anon').is_dir():
        specs += [f'acdc:{root}:{c}:train' for c in list_conditions(base, 'train')]
    if not specs:
        raise FileNotFoundError(f'--data {spec}: no leftImg8bit/train nor rgb_anon/<condition>/train '
                                f'in {root}')
    return specs


def open_training_data(specs: list[str]) -> Dataset:
    """One dataset over every --data spec (see `expand_train_spec`)."""
    if not specs:
        raise ValueError('no --data given')
    return ConcatDataset([open_dataset(s) for spec in specs for s in expand_train_spec(spec)])


def letterbox_pair(image: np.ndarray, label: np.ndarray, size: tuple[int, int]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Fit (image, label) into `size` keeping the aspect ratio, top-left aligned; pad grey / IGNORE_INDEX."""
    p = place(*label.shape, size)
    h, ih, iw = p.height, p.inner_height, p.inner_width
    out_img = np.full((*size, 3), PAD_GREY, np.uint8)
    out_lab = np.full(size, IGNORE_INDEX, np.uint8)
    interp = cv2.INTER_AREA if ih < h else cv2.INTER_LINEAR
    out_img[:ih, :iw] = cv2.resize(image, (iw, ih), interpolation=interp)
    out_lab[:ih, :iw] = cv2.resize(label, (iw, ih), interpolation=cv2.INTER_NEAREST)
    return out_img, out_lab


def to_tensors(image: np.ndarray, label: np.ndarray) -> dict[str, torch.Tensor]:
    """HxWx3 uint8 and HxW uint8 -> image (3, H, W) float in [-1, 1], label (H, W) int64."""
    x = from_bytes(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
    return {'image': x, 'label': torch.from_numpy(np.ascontiguousarray(label)).long()}


class PairData(Dataset):
    """Indexed by key = epoch * len + index; returns model-sized tensors (augmented, or letterboxed).

    With `augment`, `augmentation` gives the augmentation's settings (default `AugmentConfig()`); its crop is
    always `size`.
    """

    def __init__(self, dataset: Dataset, size: tuple[int, int], augment: bool, seed: int,
                 augmentation: AugmentConfig | None = None):
        self.dataset, self.size, self.seed = dataset, tuple(size), seed
        config = dataclasses.replace(augmentation or AugmentConfig(), crop=self.size)
        self.augment = Augment(config) if augment else None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int) -> dict[str, torch.Tensor]:
        epoch, index = divmod(int(key), len(self.dataset))
        item = self.dataset[index]
        if self.augment is None:
            return to_tensors(*letterbox_pair(item['image'], item['label'], self.size))
        self.augment.reseed(int(np.random.SeedSequence([self.seed, epoch, index]).generate_state(1)[0]))
        return to_tensors(*self.augment(item['image'], item['label']))


class ResumableBatches:
    """Endless batches of keys for `PairData` (or indices of a cached tensor set), sharded over ranks.

    Epoch e uses `DistributedSampler` order with `set_epoch(e)`; starting at `start_step` skips the batches
    already consumed without loading them.
    """

    def __init__(self, size: int, batch_size: int, rank: int, world: int, seed: int, start_step: int = 0,
                 encode_epoch: bool = True):
        self.size, self.batch_size, self.seed, self.encode_epoch = size, batch_size, seed, encode_epoch
        self.sampler = DistributedSampler(range(size), num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                          drop_last=True)
        self.steps_per_epoch = len(self.sampler) // batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f'the training data has {size} items: fewer than batch size {batch_size} x '
                             f'{world} process(es); lower --batch-size or add data')
        self.start_step = start_step

    def __iter__(self):
        epoch, skip = divmod(self.start_step, self.steps_per_epoch)
        for e in itertools.count(epoch):
            self.sampler.set_epoch(e)
            order = list(self.sampler)
            offset = e * self.size if self.encode_epoch else 0
            for b in range(skip, self.steps_per_epoch):
                yield [offset + i for i in order[b * self.batch_size:(b + 1) * self.batch_size]]
            skip = 0


def make_batches(data: Dataset, batch_size: int, rank: int, world: int, seed: int, workers: int = 0,
                 cached: bool = False, pin_memory: bool = False):
    """Return a factory start_step -> endless iterator of batches (dicts of CPU tensors).

    `cached`: `data` is indexed by item (a `CachedTokens`), not by epoch key (a `PairData`).
    `pin_memory`: page-locked batches, so that copies to a GPU can run asynchronously.
    """
    def batches(start_step: int):
        sampler = ResumableBatches(len(data), batch_size, rank, world, seed, start_step,
                                   encode_epoch=not cached)
        prepare_fork(workers)
        loader = DataLoader(data, batch_sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                            persistent_workers=workers > 0, prefetch_factor=PREFETCH if workers else None,
                            generator=torch.Generator().manual_seed(seed))
        return iter(loader)
    return batches


def class_frequencies(dataset: Dataset, limit: int = 500) -> np.ndarray:
    """Each class's share of the labelled pixels of up to `limit` evenly spaced items: (NUM_CLASSES,)."""
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(len(dataset), limit)).round().astype(int))
    counts = np.zeros(NUM_CLASSES)
    for i in picks:
        label = np.asarray(dataset[int(i)]['label'])
        counts += np.bincount(label[label < NUM_CLASSES].ravel(), minlength=NUM_CLASSES)
    return counts / max(counts.sum(), 1.0)
