"""The autoencoder that turns images and maskiges into tokens.

Continuous tokens from a KL autoencoder (diffusers `AutoencoderKL`, the paper's choice), or, for comparison,
tokens snapped to a learned codebook (diffusers `VQModel`): `AutoencoderConfig.quantizer` chooses.
"""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, VQModel
from torch import nn
from torch.nn import functional as F

from ..config import AutoencoderConfig
from ..labels import NUM_CLASSES, class_targets, encode_maskige, maskige_logits


def class_losses(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-balanced cross-entropy and soft Dice loss of logits (N, K, H, W) against targets (N, H, W).

    mIoU weighs every class alike, but thin classes (poles, signs, people) cover a few pixels: each class
    present in the batch is weighted by 1 / sqrt(its pixel count) in the cross-entropy, and the Dice term
    averages the overlap of the classes present.
    """
    k = logits.shape[1]
    onehot = F.one_hot(targets, k).permute(0, 3, 1, 2).float()  # (N, K, H, W)
    counts = onehot.sum((0, 2, 3))  # (K,); no bincount or boolean indexing: neither waits for the device
    present = (counts > 0).float()
    weight = counts.clamp_min(1).rsqrt() * present
    ce = F.cross_entropy(logits.float(), targets, weight=weight)  # normalised by the summed pixel weights
    probs = logits.float().softmax(1)  # (N, K, H, W)
    inter = (probs * onehot).sum((0, 2, 3))
    total = probs.sum((0, 2, 3)) + counts
    dice = 1 - ((2 * inter + 1) / (total + 1) * present).sum() / present.sum().clamp_min(1)
    return ce, dice


def recon_error(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 + MSE of each of N reconstructions (N, 3, H, W) against its target -> (N,)."""
    diff = recon - target
    return (diff.abs() + diff ** 2).mean((1, 2, 3))


def build_vae(config: AutoencoderConfig) -> AutoencoderKL | VQModel:
    """Build the diffusers autoencoder of a config: the same levels, widths and token grid for both kinds.

    The VQ codebook has `codebook_size` entries as wide as a latent token (`latent_channels`).
    """
    levels = len(config.channel_mult)
    common = dict(in_channels=3, out_channels=3,
                  down_block_types=('DownEncoderBlock2D',) * levels,
                  up_block_types=('UpDecoderBlock2D',) * levels,
                  block_out_channels=tuple(config.base_channels * m for m in config.channel_mult),
                  layers_per_block=config.layers_per_block,
                  latent_channels=config.latent_channels,
                  norm_num_groups=config.norm_num_groups,
                  scaling_factor=config.scaling_factor)
    if config.quantizer == 'vq':
        return VQModel(**common, num_vq_embeddings=config.codebook_size, vq_embed_dim=config.latent_channels)
    return AutoencoderKL(**common)


class Autoencoder(nn.Module):
    """Encodes (N, 3, H, W) images in [-1, 1] into scaled latents (N, C, H/s, W/s) and back.

    KL (continuous latents) or VQ (latents snapped to codebook entries), as `config.quantizer` says; both
    decode masks through the same class head.
    """

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.vq = config.quantizer == 'vq'
        self.vae = build_vae(config)
        if self.vq:  # training steps since each codebook entry was last used (not saved: see code_restart)
            idle = torch.zeros(config.codebook_size, dtype=torch.long)
            self.register_buffer('code_idle', idle, persistent=False)
        # class scores (NUM_CLASSES + void) from the features the decoder's conv_out turns into colours
        self.class_head = (nn.Conv2d(config.base_channels * config.channel_mult[0], NUM_CLASSES + 1, 3,
                                     padding=1) if config.class_head else None)

    @property
    def scaling_factor(self) -> float:
        return self.vae.config.scaling_factor

    def set_scaling_factor(self, value: float) -> None:
        """Change the latent scale (kept in the config, so checkpoints store it)."""
        if not value > 0:
            raise ValueError(f'scaling_factor must be > 0, got {value}')
        self.config.scaling_factor = float(value)
        self.vae.register_to_config(scaling_factor=float(value))

    def encode(self, images: torch.Tensor, sample: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Images (N, 3, H, W) in [-1, 1] -> scaled latents (N, C, H/s, W/s).

        KL: the posterior mode, or a sample when `sample` is true. VQ: the nearest codebook entries.
        """
        if self.vq:
            return self.quantize(self.vae.encode(images).latents)[0] * self.scaling_factor
        dist = self.vae.encode(images).latent_dist
        z = dist.sample(generator) if sample else dist.mode()
        return z * self.scaling_factor

    def posterior(self, images: torch.Tensor):
        """Return the diagonal Gaussian posterior of images, for training with the KL term (KL only)."""
        if self.vq:
            raise ValueError('a VQ autoencoder has no Gaussian posterior')
        return self.vae.encode(images).latent_dist

    def quantize(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """VQ: unscaled latents (N, C, h, w) -> nearest entries (N, C, h, w), codebook loss, codes (N*h*w,).

        The entries pass the gradient straight through to the latents. The loss is diffusers' VectorQuantizer
        term: the encoder's commitment to its entries plus 0.25 times the entries' distance to the latents.
        """
        quant, loss, (_, _, codes) = self.vae.quantize(latents)
        return quant, loss, codes.reshape(-1)

    def loss(self, images: torch.Tensor, kl_weight: float = 1e-6, labels: torch.Tensor | None = None,
             class_weight: float = 0.0, mask_weight: float = 1.0) -> tuple[torch.Tensor, dict]:
        """Reconstruction (L1 + MSE) plus a regulariser for (N, 3, H, W) images in [-1, 1].

        The regulariser: KL, the KL term weighted by `kl_weight`; VQ, the codebook loss (`quantize`), weight
        1.

        With `labels` (M, H, W) trainIds, the last M images are their maskiges: their reconstruction error is
        weighted by `mask_weight`, and `class_weight` adds the class losses (`class_losses`) of the class
        scores that mask decoding uses (the class head if there is one, else the palette distances of the
        decoded colours) against the labels, void included, so that training keeps the classes, not just the
        colours.
        """
        if self.vq:
            encoded = self.vae.encode(images).latents  # (N, C, h, w) before the codebook
            latents, reg, codes = self.quantize(encoded)
            used = (torch.bincount(codes, minlength=self.config.codebook_size) > 0).sum()  # no device wait
            reg_logs = {'vq': reg.detach(), 'codes_used': used}
            if self.training and self.config.code_restart:
                self._restart_codes(encoded, codes)
        else:
            dist = self.posterior(images)
            latents = dist.sample()
            kl = dist.kl().mean() / images[0].numel()
            reg, reg_logs = kl_weight * kl, {'kl': kl.detach()}
        recon, features = self._decode_raw(latents, quantized=True)
        err = recon_error(recon, images)  # (N,)
        logs = {}
        if labels is None:
            rec = err.mean()
        else:
            m = labels.shape[0]
            weights = torch.ones_like(err)
            weights[-m:] = mask_weight
            rec = (err * weights).sum() / weights.sum()
            logs['recon_mask'] = err[-m:].mean().detach()
        loss = rec
        if labels is not None and class_weight > 0:
            m = labels.shape[0]
            ce, dice = self._class_losses(recon[-m:], None if features is None else features[-m:], labels)
            loss = loss + class_weight * (ce + dice)
            logs['class_ce'], logs['class_dice'] = ce.detach(), dice.detach()
        return loss + reg, {'recon': rec.detach(), **reg_logs, **logs}

    @torch.no_grad()
    def _restart_codes(self, latents: torch.Tensor, codes: torch.Tensor) -> None:
        """Reset the codebook entries unused for `code_restart` steps to random batch latents (N, C, h, w)."""
        book = self.vae.quantize.embedding.weight  # (K, C)
        used = torch.bincount(codes, minlength=book.shape[0]) > 0
        dead = (self.code_idle + 1 >= self.config.code_restart) & ~used  # (K,)
        self.code_idle.copy_(torch.where(used | dead, 0, self.code_idle + 1))  # in place: a registered buffer
        flat = latents.detach().permute(0, 2, 3, 1).reshape(-1, book.shape[1])  # (N*h*w, C)
        pick = torch.randint(flat.shape[0], (book.shape[0],), device=flat.device)
        book.copy_(torch.where(dead[:, None], flat[pick].to(book.dtype), book))

    def mask_decoder_loss(self, latents: torch.Tensor, labels: torch.Tensor,
                          class_weight: float) -> tuple[torch.Tensor, dict]:
        """Return the decoder loss for scaled mask latents (M, C, h, w) that did not come from this encoder.

        E.g. tokens generated by the segmenter: the decoder (and class head) learn to decode what the
        generator produces into the labels (M, H, W). Reconstruction (L1 + MSE) of the labels' maskige plus
        `class_weight` times the class losses, as in `loss`.
        """
        recon, features = self._decode_raw(latents / self.scaling_factor)
        rec = recon_error(recon, encode_maskige(labels)).mean()
        ce, dice = self._class_losses(recon, features, labels)
        logs = {'recon_generated': rec.detach(), 'class_ce_generated': ce.detach(),
                'class_dice_generated': dice.detach()}
        return rec + class_weight * (ce + dice), logs

    def _class_losses(self, recon: torch.Tensor, features: torch.Tensor | None,
                      labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`class_losses` of the scores mask decoding uses (class head, else palette distances) vs labels."""
        logits = self.class_head(features) if self.class_head is not None else maskige_logits(recon)
        return class_losses(logits, class_targets(labels))

    def _decode_raw(self, latents: torch.Tensor, quantized: bool = False
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decode unscaled latents: images (N, 3, H, W) and the features conv_out saw (None: no head).

        VQ: latents are snapped to the codebook first unless `quantized` says they already are.
        """
        if self.class_head is None:
            return self._vae_decode(latents, quantized), None
        seen = []
        hook = self.vae.decoder.conv_out.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
        try:
            images = self._vae_decode(latents, quantized)
        finally:
            hook.remove()
        return images, seen[0]

    def _vae_decode(self, latents: torch.Tensor, quantized: bool) -> torch.Tensor:
        if self.vq:
            return self.vae.decode(latents, force_not_quantize=quantized).sample
        return self.vae.decode(latents).sample

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (N, C, h, w) -> images (N, 3, h*s, w*s), roughly in [-1, 1]."""
        return self._vae_decode(latents / self.scaling_factor, False)

    def decode_classes(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled mask latents (N, C, h, w) -> class scores (N, NUM_CLASSES + 1, H, W); the last is void.

        The learned class head where there is one, else the palette distances of the decoded maskige.
        """
        images, features = self._decode_raw(latents / self.scaling_factor)
        if self.class_head is None:
            return maskige_logits(images.clamp(-1, 1))
        return self.class_head(features)

    def load_pretrained(self, path: str | Path) -> None:
        """Load locally stored pretrained weights.

        `path` is a diffusers directory (config.json + diffusion_pytorch_model.safetensors) or a single
        .safetensors file in the diffusers or the LDM ("first_stage_model." / "encoder.down.0...") layout.
        Keys that do not fit raise ValueError naming them.
        """
        from safetensors.torch import load_file

        from .weights import state_dict_mismatch

        path = Path(path)
        if path.is_dir():
            path = path / 'diffusion_pytorch_model.safetensors'
        if path.suffix != '.safetensors':
            raise ValueError(f'{path}: only .safetensors autoencoder weights are accepted '
                             f'(pickle files are refused)')
        if not path.is_file():
            raise FileNotFoundError(f'{path}: no such autoencoder weights file')
        state = load_file(str(path))
        ldm = any(k.removeprefix('first_stage_model.').startswith('encoder.down.') for k in state)
        if ldm and not self.vq:
            from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
            state = convert_ldm_vae_checkpoint(state, dict(self.vae.config))
        problem = state_dict_mismatch(self.vae.state_dict(), state)
        if problem:
            raise ValueError(f'{path}: autoencoder weights do not fit this configuration: {problem}')
        self.vae.load_state_dict(state)


KLAutoencoder = Autoencoder  # the name models/camseg.py builds it by (a KL one unless the config says 'vq')
