"""The three training stages.

'vae' (autoencoder on images and maskiges), 'segmenter' (transformer + diffusion head on a frozen
autoencoder) and 'baseline' (the discriminative PixelClassifier). The models are built in build.py, the
latent cache in cache.py, batches in data.py and previews in preview.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.augment import AugmentConfig
from ..imageops import from_bytes
from ..labels import encode_maskige, token_class_mix
from ..models.camseg import CamSeg, from_tokens
from .cache import encode_dataset
from .data import PairData, class_frequencies, make_batches
from .preview import make_preview, preview_batch

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
    low_light: float = AugmentConfig.low_light  # with augment: probability of the low-light augmentation
    weather: float = AugmentConfig.weather  # with augment: probability of one of fog, snow, rain
    jitter: float = AugmentConfig.jitter  # with augment: colour jitter strength (see AugmentConfig)
    noise: float = AugmentConfig.noise  # with augment: probability of sensor noise or motion blur
    cache_latents: bool = False  # segmenter: encode the data once (no augmentation), keep tokens in memory
    cache_copies: int = 0  # with cache_latents: also cache this many augmented copies of every item
    kl_weight: float = 1e-6  # vae only: weight of the KL term
    quantizer: str | None = None  # vae from a preset only: 'kl' or 'vq' mask tokens (None: the preset's, KL)
    codebook_size: int | None = None  # vae from a preset with quantizer 'vq': codebook entries (None: 1024)
    code_restart: int | None = None  # vae from a preset with quantizer 'vq': AutoencoderConfig.code_restart
    class_weight: float = 0.0  # vae: weight of the class cross-entropy on decoded maskiges; segmenter (from a
    # vae run): the model's transformer.class_weight, the token-class cross-entropy on z
    image_stem: int = 0  # segmenter (from a vae run): the model's transformer.image_stem
    pixel_stem: int = 0  # segmenter (from a vae run): the model's transformer.pixel_stem
    rare_weight: float = 0.0  # segmenter: exponent a of the class-rarity weight of each token's denoising
    # error, (share of its classes / median share) ** -a, clipped to [0.1, 10] (0: every token weighs 1)
    mask_weight: float = 1.0  # vae only: weight of the maskige reconstruction error relative to images
    decoder_only: bool = False  # vae only: train the decoder (and class head) on maskiges alone; the encoder
    # stays frozen, so every token, and a segmenter trained on them, stays valid
    generated: float = 0.0  # with decoder_only: share of each batch decoded from tokens the model generates
    # for its images (transformer + head, default sampler) instead of the encoder's tokens of its labels
    workers: int = 2  # DataLoader worker processes

    def augmentation(self) -> AugmentConfig:
        """Return the augmentation settings these options ask for (the crop is set by the data)."""
        return AugmentConfig(low_light=self.low_light, weather=self.weather, jitter=self.jitter,
                             noise=self.noise)


class VaeStep(nn.Module):
    """Autoencoder loss on a batch of images and the colour-coded masks of their labels.

    With `generated` > 0 (decoder-only runs), that share of the batch is decoded from mask tokens the model's
    own transformer and head generate for the images (its default sampler, one sample each) instead of
    from the encoder's tokens, so that the decoder learns to decode what the generator produces.
    """

    def __init__(self, model: CamSeg, kl_weight: float, class_weight: float = 0.0, mask_weight: float = 1.0,
                 masks_only: bool = False, generated: float = 0.0):
        super().__init__()
        self.model, self.kl_weight = model, kl_weight
        self.class_weight, self.mask_weight, self.masks_only = class_weight, mask_weight, masks_only
        self.generated = generated
        # Sample eagerly: a CUDA graph capture during training would run beside the loader's pin-memory
        # thread, whose page-locked allocations are not allowed while a stream captures.
        model.capture_graphs = False

    @property
    def autoencoder(self) -> nn.Module:
        return self.model.autoencoder

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        labels = batch['label']
        n = round(labels.shape[0] * self.generated)
        if n:
            latents = self.generate(batch['image'][:n])
            loss, logs = self.autoencoder.mask_decoder_loss(latents, labels[:n], self.class_weight)
            if n == labels.shape[0]:
                return loss, logs
            rest, rest_logs = self.encoded_loss(batch['image'][n:], labels[n:])
            share = n / labels.shape[0]
            return share * loss + (1 - share) * rest, {**rest_logs, **logs}
        return self.encoded_loss(batch['image'], labels)

    def encoded_loss(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
        x = encode_maskige(labels)  # (B, 3, H, W)
        if not self.masks_only:
            x = torch.cat([images, x])  # (2B, 3, H, W)
        return self.autoencoder.loss(x, self.kl_weight, labels, self.class_weight, self.mask_weight)

    @torch.no_grad()
    def generate(self, images: torch.Tensor) -> torch.Tensor:
        """Mask latents (N, C, h, w) the frozen transformer and head generate for images (N, 3, H, W)."""
        model = self.model
        model.transformer.eval()  # the step module is put in train mode every step
        model.head.eval()
        tokens = model.generate(model.image_condition(images), model.config.sampler)
        return from_tokens(tokens, model.grid).float()


def rarity_weights(shares: np.ndarray, exponent: float) -> torch.Tensor:
    """Per-class weights (share / median share of present classes) ** -exponent in [0.1, 10]; absent: 1."""
    present = shares > 0
    ratio = np.ones_like(shares)
    ratio[present] = shares[present] / np.median(shares[present])
    return torch.as_tensor(np.clip(ratio ** -exponent, 0.1, 10.0), dtype=torch.float32)


class SegmenterStep(nn.Module):
    """Denoising loss of the transformer + head on tokens from the frozen autoencoder (or cached tokens).

    With `class_weights` (K,), each masked token's error is weighed by its class mix times those weights
    (tokens without a labelled pixel, e.g. padding, weigh 1).
    """

    def __init__(self, model: CamSeg, class_weights: torch.Tensor | None = None):
        super().__init__()
        self.model = model
        self.class_weights = class_weights  # a plain attribute: not part of the step's state

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        if 'image_tokens' in batch:
            image_tokens, mask_tokens = batch['image_tokens'], batch['mask_tokens']
            token_classes = batch.get('token_classes')
            if 'image_bytes' in batch:  # kept for a pixel stem
                image_tokens = self.model.image_condition(from_bytes(batch['image_bytes']), image_tokens)
        else:
            self.model.autoencoder.eval()
            image_tokens, mask_tokens = self.model.encode_pair(batch['image'], batch['label'])
            image_tokens = self.model.image_condition(batch['image'], image_tokens)
            token_classes = None
            if self.model.transformer.classifier is not None or self.class_weights is not None:
                token_classes = token_class_mix(batch['label'], self.model.grid)
        token_weight = None
        if self.class_weights is not None:
            mix = token_classes.float()  # (B, L, K)
            if self.class_weights.device != mix.device:  # once: no host-to-device copy in every step
                self.class_weights = self.class_weights.to(mix.device)
            token_weight = torch.where(mix.sum(-1) > 0, mix @ self.class_weights, 1.0)
        parts = {}
        loss = self.model.loss(image_tokens, mask_tokens, token_classes, parts, token_weight)
        return loss, parts if 'token_class' in parts else {}


class BaselineStep(nn.Module):
    """Cross-entropy of the PixelClassifier."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict]:
        return self.model.loss(batch['image'], batch['label']), {}


def step_module(opts: StageOptions, model: nn.Module, dataset: Dataset | None = None) -> nn.Module:
    """Return the module whose forward(batch) gives the stage's loss (`dataset`: for `opts.rare_weight`)."""
    if opts.rare_weight < 0 or (opts.rare_weight and opts.stage != 'segmenter'):
        raise ValueError(f'--rare-weight is an exponent >= 0 for the segmenter stage, got {opts.rare_weight} '
                         f'for {opts.stage}')
    if not 0 <= opts.generated <= 1 or (opts.generated and not opts.decoder_only):
        raise ValueError(f'--generated is a share in [0, 1] for --decoder-only runs, got {opts.generated}'
                         + ('' if opts.decoder_only else ' without --decoder-only'))
    if opts.stage == 'segmenter':
        weights = rarity_weights(class_frequencies(dataset), opts.rare_weight) if opts.rare_weight else None
        return SegmenterStep(model, weights)
    if opts.stage == 'vae':
        return VaeStep(model, opts.kl_weight, opts.class_weight, opts.mask_weight, opts.decoder_only,
                       opts.generated)
    return BaselineStep(model)


def stage_data(opts: StageOptions, model: nn.Module, dataset: Dataset, batch_size: int, env, seed: int,
               precision: str = 'fp32'):
    """(batch factory, preview function, CacheStats or None) for a stage over `dataset`.

    With `opts.cache_latents` the data is encoded here, shared over the ranks of `env` (every rank calls).
    """
    size = model.config.image_size
    preview = make_preview(opts.stage, preview_batch(dataset, size), env.device)
    pin = env.device.type == 'cuda'
    if opts.cache_latents:
        if opts.stage != 'segmenter':
            raise ValueError('--cache-latents only applies to the segmenter stage')
        if opts.cache_copies < 0:
            raise ValueError(f'--cache-copies must be >= 0, got {opts.cache_copies}')
        cached, stats = encode_dataset(model, dataset, batch_size, env.device, env.main, opts.cache_copies,
                                       seed, opts.workers, precision, env.rank, env.world,
                                       class_mix=opts.rare_weight > 0, augmentation=opts.augmentation())
        return make_batches(cached, batch_size, env.rank, env.world, seed, 0, True, pin), preview, stats
    data = PairData(dataset, size, opts.augment, seed, opts.augmentation())
    return make_batches(data, batch_size, env.rank, env.world, seed, opts.workers, False, pin), preview, None
