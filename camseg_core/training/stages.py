"""The three training stages.

'vae' (autoencoder on images and maskiges), 'segmenter' (transformer + diffusion head on a frozen
autoencoder) and 'baseline' (the discriminative PixelClassifier).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset
from tqdm import tqdm

from ..checkpoint import (CheckpointError, build_model, load_pretrained, read_config, read_weights,
                          state_dict_mismatch)
from ..config import PRESETS, SamplerConfig, preset
from ..labels import colorize, decode_maskige, encode_maskige
from ..models.baseline import BASELINE_PRESETS, baseline_preset
from ..models.camseg import CamSeg
from .data import CachedTokens, PairData, ResumableBatches, preview_batch

STAGES = ('vae', 'segmenter', 'baseline')
DEFAULT_LR = {'vae': 1e-4, 'segmenter': 2e-4, 'baseline': 1e-3}


@dataclass
class StageOptions:
    """What a stage needs beyond `TrainConfig`."""

    stage: str  # one of STAGES
    preset: str = 'tiny'  # model preset (CAM-Seg PRESETS for vae, BASELINE_PRESETS for baseline)
    image_size: tuple[int, int] | None = None  # overrides the preset's / init checkpoint's processing size
    init: Path | None = None  # starting checkpoint: required for 'segmenter', optional fine-tuning otherwise
    augment: bool = True  # random scale/crop/flip/weather; False letterboxes every sample
    cache_latents: bool = False  # segmenter: encode the data once (no augmentation), keep tokens in memory
    cache_copies: int = 0  # with cache_latents: also cache this many augmented copies of every item
    kl_weight: float = 1e-6  # vae only: weight of the KL term
    workers: int = 2  # DataLoader worker processes


class VaeStep(nn.Module):
    """Autoencoder loss on a batch of images and the colour-coded masks of their labels."""

    def __init__(self, model: CamSeg, kl_weight: float):
        super().__init__()
        self.autoencoder, self.kl_weight = model.autoencoder, kl_weight

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        x = torch.cat([batch['image'], encode_maskige(batch['label'])])  # (2B, 3, H, W)
        return self.autoencoder.loss(x, self.kl_weight)


class SegmenterStep(nn.Module):
    """Denoising loss of the transformer + head on tokens from the frozen autoencoder (or cached tokens)."""

    def __init__(self, model: CamSeg):
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        if 'image_tokens' in batch:
            image_tokens, mask_tokens = batch['image_tokens'], batch['mask_tokens']
        else:
            self.model.autoencoder.eval()
            image_tokens, mask_tokens = self.model.encode_pair(batch['image'], batch['label'])
        return self.model.loss(image_tokens, mask_tokens), {}


class BaselineStep(nn.Module):
    """Cross-entropy of the PixelClassifier."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        return self.model.loss(batch['image'], batch['label']), {}


def _load_init(path: Path, model_type: str, image_size) -> nn.Module:
    """Load a model from an init checkpoint; a new image_size keeps only the size-independent weights."""
    _, header = read_config(path)
    if header.get('model_type', 'camseg') != model_type:
        raise CheckpointError(f'{path}: a {header.get("model_type")!r} checkpoint, expected {model_type!r}')
    old, _ = load_pretrained(path)
    if image_size is None or tuple(image_size) == tuple(old.config.image_size):
        return old.train()
    config = dict(header['config'], image_size=tuple(image_size))
    model = build_model(model_type, config)
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in old.state_dict().items() if k in own and own[k].shape == v.shape},
                          strict=False)
    return model


def init_stage(path: Path) -> str | None:
    """Return the training stage that wrote checkpoint `path` ('vae', 'segmenter', ...), or None."""
    return read_config(path)[1].get('meta', {}).get('stage')


def _autoencoder_from(path: Path, image_size) -> CamSeg:
    """Build a fresh CAM-Seg with only the autoencoder of a 'vae' run (that stage never trains the rest)."""
    path, header = read_config(path)
    config = dict(header['config'], image_size=tuple(image_size)) if image_size else header['config']
    model = build_model('camseg', config)
    state = {k: v for k, v in read_weights(path).items() if k.startswith('autoencoder.')}
    own = {k: v for k, v in model.state_dict().items() if k.startswith('autoencoder.')}
    problem = state_dict_mismatch(own, state)
    if problem:
        raise CheckpointError(f'{path}: the autoencoder weights do not match its config: {problem}')
    model.load_state_dict(state, strict=False)
    return model


def freeze(stage: str, model: nn.Module) -> nn.Module:
    """Freeze what `stage` does not train: the autoencoder for 'segmenter', transformer and head for 'vae'."""
    if stage == 'segmenter':
        model.autoencoder.requires_grad_(False).eval()
    elif stage == 'vae':
        model.transformer.requires_grad_(False)
        model.head.requires_grad_(False)
    return model


def build_stage_model(opts: StageOptions, resume_header: dict | None = None) -> nn.Module:
    """Build the full model a stage trains and saves, with the parts it does not train frozen.

    When resuming, the model is rebuilt from the configuration stored in the training state.
    """
    if resume_header is not None:
        return freeze(opts.stage, build_model(resume_header['model_type'], resume_header['model_config']))
    if opts.stage == 'baseline':
        if opts.init is not None:
            return _load_init(opts.init, 'baseline', opts.image_size)
        config = baseline_preset(opts.preset)
        if opts.image_size:
            config.image_size = tuple(opts.image_size)
        return build_model('baseline', config.to_dict())
    if opts.stage == 'segmenter':
        if opts.init is None:
            raise ValueError('the segmenter stage needs --init DIR: the checkpoint written by the vae stage')
        if init_stage(opts.init) == 'vae':
            return freeze('segmenter', _autoencoder_from(opts.init, opts.image_size))
        return freeze('segmenter', _load_init(opts.init, 'camseg', opts.image_size))
    if opts.init is not None:
        model = _load_init(opts.init, 'camseg', opts.image_size)
    else:
        config = preset(opts.preset)
        if opts.image_size:
            config.image_size = tuple(opts.image_size)
        model = build_model('camseg', config.to_dict())
    return freeze('vae', model)


def check_preset(stage: str, name: str) -> None:
    """Raise ValueError if `name` is not a preset of this stage's model."""
    names = BASELINE_PRESETS if stage == 'baseline' else PRESETS
    if name not in names:
        raise ValueError(f'unknown preset {name!r} for stage {stage!r}; choose from {sorted(names)}')


def step_module(opts: StageOptions, model: nn.Module) -> nn.Module:
    """Return the module whose forward(batch) gives the stage's loss."""
    return {'vae': lambda: VaeStep(model, opts.kl_weight), 'segmenter': lambda: SegmenterStep(model),
            'baseline': lambda: BaselineStep(model)}[opts.stage]()


@torch.no_grad()
def calibrate_latent_scale(model: CamSeg, dataset: Dataset, device: torch.device, items: int = 64) -> float:
    """Set the autoencoder's latent scale to 1 / std of the mask latents of the first `items` items.

    The head diffuses mask tokens on a schedule made for unit-variance data; an autoencoder trained here has
    its own latent spread, so the segmenter stage rescales before it starts (as latent diffusion does).
    Deterministic (letterboxed items, posterior modes), so every rank computes the same value.
    """
    data = PairData(dataset, model.config.image_size, augment=False, seed=0)
    labels = torch.stack([data[i]['label'] for i in range(min(items, len(data)))]).to(device)
    ae = model.autoencoder
    ae.set_scaling_factor(1.0)
    latents = torch.cat([ae.encode(encode_maskige(labels[i:i + 16])) for i in range(0, len(labels), 16)])
    ae.set_scaling_factor(1.0 / float(latents.float().std().clamp_min(1e-6)))
    return ae.scaling_factor


@torch.no_grad()
def encode_dataset(model: CamSeg, dataset: Dataset, batch_size: int, device: torch.device,
                   progress: bool, copies: int = 0, seed: int = 0) -> CachedTokens:
    """Encode every item with the frozen autoencoder -> tokens on the CPU.

    The cache holds each item letterboxed, then `copies` augmented versions of it (random scale, crop, flip,
    photometric and weather augmentation, seeded from (seed, copy, index) so a resumed run rebuilds the same
    cache).
    """
    size, n = model.config.image_size, len(dataset)
    plain = PairData(dataset, size, augment=False, seed=seed)
    data = plain if copies <= 0 else ConcatDataset(
        [plain, Subset(PairData(dataset, size, augment=True, seed=seed), range(n, (copies + 1) * n))])
    loader = DataLoader(data, batch_size=batch_size, shuffle=False)
    images, masks = [], []
    for batch in tqdm(loader, desc='encode latents', disable=not progress):
        x, y = model.encode_pair(batch['image'].to(device), batch['label'].to(device))
        images.append(x.cpu())
        masks.append(y.cpu())
    return CachedTokens(torch.cat(images), torch.cat(masks))


def make_batches(opts: StageOptions, data: Dataset, batch_size: int, rank: int, world: int, seed: int,
                 cached: bool = False):
    """Return a factory start_step -> endless iterator of batches (dicts of CPU tensors)."""
    workers = 0 if cached else opts.workers

    def batches(start_step: int):
        sampler = ResumableBatches(len(data), batch_size, rank, world, seed, start_step,
                                   encode_epoch=not cached)
        loader = DataLoader(data, batch_sampler=sampler, num_workers=workers, persistent_workers=workers > 0,
                            generator=torch.Generator().manual_seed(seed))
        return iter(loader)
    return batches


def _blend(image: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return (0.5 * image + 0.5 * colorize(ids)).astype(np.uint8)


def _grey(conf: np.ndarray) -> np.ndarray:
    return np.repeat((np.clip(conf, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=-1)


def _u8(x: torch.Tensor) -> np.ndarray:
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def make_preview(opts: StageOptions, batch: dict, device: torch.device):
    """Preview function model -> HxWx3 uint8 grid, one row per preview image.

    vae: input | reconstruction | decoded mask reconstruction | its confidence.
    segmenter / baseline: input | prediction over the input | ground truth | confidence.
    """
    x, y = batch['image'].to(device), batch['label'].to(device)
    images, truth = _u8(x), y.cpu().numpy().astype(np.uint8)

    @torch.no_grad()
    def preview(model: nn.Module) -> np.ndarray:
        if opts.stage == 'vae':
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


def stage_data(opts: StageOptions, model: nn.Module, dataset: Dataset, batch_size: int, env, seed: int):
    """(batch factory, preview function) for a stage over `dataset`."""
    size = model.config.image_size
    preview = make_preview(opts, preview_batch(dataset, size), env.device)
    if opts.cache_latents:
        if opts.stage != 'segmenter':
            raise ValueError('--cache-latents only applies to the segmenter stage')
        if opts.cache_copies < 0:
            raise ValueError(f'--cache-copies must be >= 0, got {opts.cache_copies}')
        cached = encode_dataset(model, dataset, batch_size, env.device, env.main, opts.cache_copies, seed)
        return make_batches(opts, cached, batch_size, env.rank, env.world, seed, cached=True), preview
    data = PairData(dataset, size, opts.augment, seed)
    return make_batches(opts, data, batch_size, env.rank, env.world, seed), preview
