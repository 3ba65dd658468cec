"""CAM-Seg: image tokens in, mask tokens generated token by token, decoded to a class map."""
from __future__ import annotations

import torch
from torch import nn

from ..config import CamSegConfig, SamplerConfig
from ..labels import IGNORE_INDEX, NUM_CLASSES, decode_maskige, encode_maskige
from ..profiling import StageTimer
from .autoencoder import KLAutoencoder
from .diffusion_head import DiffusionHead
from .mar import MaskedTransformer, cosine_schedule


def to_tokens(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h*w, C)."""
    return latents.flatten(2).transpose(1, 2)


def from_tokens(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, h*w, C) -> (B, C, h, w)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)


def vote(ids: torch.Tensor, conf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Majority vote over an ensemble. ids, conf: (E, N, H, W) -> (N, H, W) each.

    Void (IGNORE_INDEX) takes part as a class of its own; ties go to the class with the larger summed
    confidence. The confidence is the fraction of samples that agree with the vote times their mean colour
    confidence.
    """
    if ids.shape[0] == 1:
        return ids[0], conf[0]
    slots = ids.long().clamp_max(NUM_CLASSES)  # (E, N, H, W); void -> slot NUM_CLASSES
    counts = torch.zeros((NUM_CLASSES + 1, *ids.shape[1:]), device=ids.device, dtype=torch.float32)
    counts.scatter_add_(0, slots, torch.ones_like(conf))  # (K+1, N, H, W) votes per class
    summed = torch.zeros_like(counts).scatter_add_(0, slots, conf.float())  # (K+1, N, H, W)
    winner = (counts + summed / (ids.shape[0] + 1)).argmax(0)  # summed < E + 1: breaks ties only
    agree = (slots == winner).float()  # (E, N, H, W)
    n_agree = agree.sum(0)
    mean_conf = (conf * agree).sum(0) / n_agree.clamp_min(1)
    labels = torch.where(winner == NUM_CLASSES, torch.full_like(winner, IGNORE_INDEX), winner)
    return labels.to(torch.uint8), (n_agree / ids.shape[0]) * mean_conf


class CamSeg(nn.Module):
    """The CAM-Seg model. `loss` trains the transformer and head; `predict` segments preprocessed images."""

    model_type = 'camseg'
    config_class = CamSegConfig

    def __init__(self, config: CamSegConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.grid = config.token_grid
        channels = config.autoencoder.latent_channels
        self.autoencoder = KLAutoencoder(config.autoencoder)
        self.transformer = MaskedTransformer(config.transformer, channels, self.grid[0] * self.grid[1])
        self.head = DiffusionHead(channels, config.transformer.width, config.head)

    def encode_pair(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode with the frozen autoencoder.

        Images (B, 3, H, W) in [-1, 1] and trainIds (B, H, W) -> token pairs (B, L, C) each.
        """
        with torch.no_grad():
            image_tokens = to_tokens(self.autoencoder.encode(images))
            mask_tokens = to_tokens(self.autoencoder.encode(encode_maskige(labels)))
        return image_tokens, mask_tokens

    def loss(self, image_tokens: torch.Tensor, mask_tokens: torch.Tensor) -> torch.Tensor:
        """Denoising loss on randomly masked mask tokens. Both (B, L, C) scaled latents."""
        B, L, C = mask_tokens.shape
        masked = self.transformer.sample_mask(B, mask_tokens.device)  # (B, L)
        visible = mask_tokens * (~masked).unsqueeze(-1)  # masked values never reach the encoder anyway
        z = self.transformer(image_tokens, visible, masked)  # (B, L, W)
        return self.head.loss(mask_tokens.reshape(B * L, C), z.reshape(B * L, -1), masked.reshape(-1).float())

    @torch.no_grad()
    def generate(self, image_tokens: torch.Tensor, sampler: SamplerConfig,
                 generator: torch.Generator | None = None, timer: StageTimer | None = None) -> torch.Tensor:
        """Generate mask tokens (B, L, C) for image tokens (B, L, C).

        Uses `sampler.num_iter` passes in a random order.
        """
        timer = timer or StageTimer()
        B, L, C = image_tokens.shape
        device = image_tokens.device
        tokens = torch.zeros_like(image_tokens)
        masked = torch.ones(B, L, dtype=torch.bool, device=device)
        order = torch.argsort(torch.rand(B, L, generator=generator, device=device), dim=1)  # (B, L)
        for left in cosine_schedule(L, sampler.num_iter):
            with timer('transformer'):
                z = self.transformer(image_tokens, tokens, masked)  # (B, L, W)
            next_masked = torch.zeros_like(masked)
            next_masked.scatter_(1, order[:, :left], True)
            predict = masked & ~next_masked  # (B, L), the same count per row
            if predict.any():
                with timer('diffusion'):
                    new = self.head.sample(z[predict], sampler.steps, sampler.scheduler, sampler.temperature,
                                           generator)  # (B * n, C)
                tokens[predict] = new.to(tokens.dtype)
            masked = next_masked
        return tokens

    @torch.no_grad()
    def predict(self, images: torch.Tensor, sampler: SamplerConfig, generator: torch.Generator | None = None,
                timer: StageTimer | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Segment preprocessed images.

        Images (N, 3, H, W) in [-1, 1] at the processing size -> trainIds (N, H, W) uint8 and
        confidence (N, H, W) float32.
        """
        timer = timer or StageTimer()
        with timer('encode'):
            image_tokens = to_tokens(self.autoencoder.encode(images))  # (N, L, C)
        E = sampler.ensemble
        tokens = self.generate(image_tokens.repeat(E, 1, 1), sampler, generator, timer)  # (E*N, L, C)
        ids, conf = self.decode_mask(from_tokens(tokens, self.grid), timer)
        return vote(ids.view(E, -1, *ids.shape[1:]), conf.view(E, -1, *conf.shape[1:]))

    @torch.no_grad()
    def decode_mask(self, latents: torch.Tensor, timer: StageTimer | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled mask latents (N, C, h, w) -> trainIds (N, H, W) uint8 and confidence (N, H, W) float32.

        With a class head: the most probable class (IGNORE_INDEX for void) and its softmax probability.
        Without: the nearest palette colour of the decoded maskige and its distance ratio confidence.
        """
        timer = timer or StageTimer()
        ae = self.autoencoder
        with timer('decode'), torch.autocast(latents.device.type, enabled=False):
            # fp32 decoding: half-precision VAE decoders can overflow to NaN
            if ae.class_head is None:
                maskige = ae.decode(latents.float())  # (N, 3, H, W)
            else:
                logits = ae.decode_classes(latents.float())  # (N, K+1, H, W)
        with timer('postprocess'):
            if ae.class_head is None:
                return decode_maskige(maskige)
            conf, slot = logits.softmax(1).max(1)  # (N, H, W) each
            ids = torch.where(slot == NUM_CLASSES, torch.full_like(slot, IGNORE_INDEX), slot)
            return ids.to(torch.uint8), conf.float()

    @torch.no_grad()
    def reconstruct_mask(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The autoencoder ceiling: trainIds (N, H, W) at the processing size -> maskige -> latents -> classes.

        Returns trainIds (N, H, W) uint8 and confidence (N, H, W) float32, decoded exactly as `predict` decodes
        generated tokens, so no generator can do better than this.
        """
        return self.decode_mask(self.autoencoder.encode(encode_maskige(labels)))
