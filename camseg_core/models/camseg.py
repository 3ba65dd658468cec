"""CAM-Seg: image tokens in, mask tokens generated token by token, decoded to a class map."""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..config import CamSegConfig, SamplerConfig
from ..labels import VOID_SLOT, decode_maskige, encode_maskige, slots_to_train_ids
from ..profiling import StageTimer
from .autoencoder import KLAutoencoder
from .diffusion_head import DiffusionHead
from .graphs import GraphCache
from .mar import MaskedTransformer, cosine_schedule


def to_tokens(latents: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h*w, C)."""
    return latents.flatten(2).transpose(1, 2)


def from_tokens(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(B, h*w, C) -> (B, C, h, w)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)


def stream_seed(seed: int, stream: int) -> int:
    """Return a 63-bit seed for random stream `stream` (e.g. an ensemble member) of a call seeded `seed`."""
    high, low = np.random.SeedSequence([seed, stream]).generate_state(2)
    return (int(high) << 31) ^ int(low)


def vote(ids: torch.Tensor, conf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Majority vote over an ensemble. ids, conf: (E, N, H, W) -> (N, H, W) each.

    Void (IGNORE_INDEX) takes part as a class of its own; ties go to the class with the larger summed
    confidence. The confidence is the fraction of samples that agree with the vote times their mean colour
    confidence.
    """
    if ids.shape[0] == 1:
        return ids[0], conf[0]
    slots = ids.long().clamp_max(VOID_SLOT)  # (E, N, H, W); void (255) -> VOID_SLOT
    counts = torch.zeros((VOID_SLOT + 1, *ids.shape[1:]), device=ids.device, dtype=torch.float32)
    counts.scatter_add_(0, slots, torch.ones_like(conf))  # (K+1, N, H, W) votes per class
    summed = torch.zeros_like(counts).scatter_add_(0, slots, conf.float())  # (K+1, N, H, W)
    winner = (counts + summed / (ids.shape[0] + 1)).argmax(0)  # summed < E + 1: breaks ties only
    agree = (slots == winner).float()  # (E, N, H, W)
    n_agree = agree.sum(0)
    mean_conf = (conf * agree).sum(0) / n_agree.clamp_min(1)
    return slots_to_train_ids(winner), (n_agree / ids.shape[0]) * mean_conf


def scores_to_classes(scores: torch.Tensor, temperature: float = 1.0, dim: int = 1
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Class scores (K+1 along `dim`, the last void) -> trainIds uint8 and confidence float32, `dim` removed.

    The most probable class (IGNORE_INDEX for void) and its softmax probability, the scores divided by
    `temperature` first (a sampler's confidence calibration: the class is unchanged).
    """
    if temperature != 1.0:
        scores = scores / temperature
    conf, slot = scores.softmax(dim).max(dim)
    return slots_to_train_ids(slot), conf.float()


class CamSeg(nn.Module):
    """The CAM-Seg model. `loss` trains the transformer and head; `predict` segments preprocessed images."""

    model_type = 'camseg'
    config_class = CamSegConfig
    capture_graphs = True  # on CUDA, replay the sampling pass from CUDA graphs (False: eager, for comparison)

    def __init__(self, config: CamSegConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.grid = config.token_grid
        channels = config.autoencoder.latent_channels
        self.autoencoder = KLAutoencoder(config.autoencoder)
        self.transformer = MaskedTransformer(config.transformer, channels, self.grid,
                                             config.autoencoder.stride)
        self.head = DiffusionHead(channels, config.transformer.width, config.head)
        self.graphs = GraphCache()  # CUDA graphs of one-pass sampling, per shape and setting

    def encode_pair(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode with the frozen autoencoder.

        Images (B, 3, H, W) in [-1, 1] and trainIds (B, H, W) -> token pairs (B, L, C) each.
        """
        with torch.no_grad():
            image_tokens = to_tokens(self.autoencoder.encode(images))
            mask_tokens = to_tokens(self.autoencoder.encode(encode_maskige(labels)))
        return image_tokens, mask_tokens

    def image_condition(self, images: torch.Tensor, image_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Return what the transformer is conditioned on: (B, L, C), or (B, L, C + P) with a pixel stem.

        Images (B, 3, H, W) in [-1, 1]; `image_tokens` (B, L, C) their KL tokens if already encoded. With
        `transformer.pixel_stem` = P, the stem's features of the pixels follow the KL channels of each token.
        """
        if image_tokens is None:
            with torch.no_grad():
                image_tokens = to_tokens(self.autoencoder.encode(images))
        stem = self.transformer.pixel_stem
        if stem is None:
            return image_tokens
        return torch.cat([image_tokens, to_tokens(stem(images)).to(image_tokens.dtype)], dim=-1)

    def loss(self, image_tokens: torch.Tensor, mask_tokens: torch.Tensor,
             token_classes: torch.Tensor | None = None, parts: dict | None = None,
             token_weight: torch.Tensor | None = None) -> torch.Tensor:
        """Denoising loss on randomly masked mask tokens (B, L, C), scaled latents, given `image_condition`.

        `token_weight` (B, L), if given, weighs each masked token's denoising error (a weighted mean).

        With `transformer.class_weight` > 0 and `token_classes` (B, L, K), each token's class mix
        (`labels.token_class_mix`), it adds the weighted cross-entropy of the transformer's classifier on the
        masked tokens. `parts`, if given, receives the detached terms by name.
        """
        B, L, C = mask_tokens.shape
        masked = self.transformer.sample_mask(B, mask_tokens.device)  # (B, L)
        visible = mask_tokens * (~masked).unsqueeze(-1)  # masked values never reach the encoder anyway
        z = self.transformer(image_tokens, visible, masked)  # (B, L, W)
        weight = masked.float() if token_weight is None else masked.float() * token_weight.float()
        loss = self.head.loss(mask_tokens.reshape(B * L, C), z.reshape(B * L, -1), weight.reshape(-1))
        classifier = self.transformer.classifier
        if parts is not None:
            parts['diffusion'] = loss.detach()
        if classifier is None or token_classes is None:
            return loss
        target = token_classes.float()
        weight = masked.float() * (target.sum(-1) > 0)  # masked tokens with labelled pixels
        cross = -(target * torch.log_softmax(classifier(z).float(), dim=-1)).sum(-1)  # (B, L)
        cross = (cross * weight).sum() / weight.sum().clamp_min(1.0)
        if parts is not None:
            parts['token_class'] = cross.detach()
        return loss + self.config.transformer.class_weight * cross

    @torch.no_grad()
    def generate(self, image_tokens: torch.Tensor, sampler: SamplerConfig,
                 generator: torch.Generator | None = None, timer: StageTimer | None = None,
                 streams: Sequence[int] | None = None, ensemble: int = 1, networks=None) -> torch.Tensor:
        """Generate mask tokens (E*B, L, C) for image tokens (B, L, C [+ P]) from `image_condition`.

        Each image row is sampled `ensemble` (E) times, member-major: output row e*B + b is member e of row b.
        Uses `sampler.num_iter` passes in a random order. Output row r draws its order and noise from its own
        random stream, seeded by the generator's seed and streams[r] (default: the member e), so a row's
        result does not depend on the other rows of its batch. With one pass every member shares the
        transformer's output z (all tokens masked, same condition): the transformer runs once per image, the
        head samples the E members from the one z. No step synchronises with the host; on CUDA with
        `capture_graphs`, a one-pass sampler replays transformer and head from one CUDA graph per shape (timed
        as the stage 'generate'), and the head loop of a multi-pass sampler from one per pass. `networks`: an
        object with this model's network calls (`one_pass`, `sample_tokens`; e.g. ONNX Runtime sessions),
        default self.
        """
        timer = timer or StageTimer()
        nets = self if networks is None else networks
        B, L, C = *image_tokens.shape[:2], self.config.autoencoder.latent_channels
        E = int(ensemble)
        if streams is None:
            streams = [e for e in range(E) for _ in range(B)]
        order, noise = self.draw_noise(E * B, L, sampler, generator, streams, image_tokens.device)
        capture = self.capture_graphs and image_tokens.is_cuda and nets is self
        if sampler.num_iter == 1:
            noise = noise.reshape(noise.shape[0], E * B * L, C)  # (S', E*B*L, C)
            if not capture:
                return self._single_pass(image_tokens, noise, sampler, timer, E, nets)
            key = ('pass', tuple(image_tokens.shape), image_tokens.dtype, E, sampler.steps, sampler.scheduler,
                   float(sampler.temperature))
            with timer('generate'):
                run = functools.partial(self._single_pass, sampler=sampler, ensemble=E)
                return self.graphs(key, run, image_tokens, noise)
        if nets is not self:
            raise ValueError('this runtime predicts in one pass only (num_iter 1), '
                             f'got num_iter {sampler.num_iter}')
        image_tokens = image_tokens.repeat(E, 1, 1)  # (E*B, L, C [+ P]): each member its own passes
        B = E * B
        tokens = image_tokens.new_zeros(B, L, C)
        masked = torch.ones(B, L, dtype=torch.bool, device=image_tokens.device)
        before = L  # tokens masked before this pass
        for left in cosine_schedule(L, sampler.num_iter):
            n = before - left  # tokens predicted in this pass, per row
            if n:
                with timer('transformer'):
                    z = self.transformer(image_tokens, tokens, masked, num_masked=before)  # (B, L, W)
                idx = order[:, left:before]  # (B, n) their positions
                with timer('diffusion'):
                    z = z.gather(1, idx[..., None].expand(-1, -1, z.shape[-1])).reshape(B * n, -1)
                    where = idx[None, ..., None].expand(noise.shape[0], -1, -1, C)
                    eps = noise.gather(2, where)  # (S', B, n, C)
                    new = self.head.sample(z, sampler.steps, sampler.scheduler, sampler.temperature,
                                           noise=eps.reshape(-1, B * n, C), capture=capture)  # (B * n, C)
                tokens.scatter_(1, idx[..., None].expand(-1, -1, C), new.view(B, n, C).to(tokens.dtype))
                masked = torch.zeros_like(masked).scatter_(1, order[:, :left], True)
            before = left
        return tokens

    def draw_noise(self, batch: int, length: int, sampler: SamplerConfig, generator: torch.Generator | None,
                   streams: Sequence[int] | None, device: torch.device
                   ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Draw every random number of `generate` up front, one stream per distinct value of `streams`.

        Returns the order in which each row's positions are predicted (B, L), None for one pass, and the head
        noise per position (S', B, L, C) float32. The streams are seeded from the generator's seed (a fresh
        one without a generator), so that a row gets the same numbers whatever else is in the batch.
        """
        seed = generator.initial_seed() if generator is not None else int(torch.randint(0, 2**62, ()))
        streams = [0] * batch if streams is None else [int(s) for s in streams]
        if len(streams) != batch:
            raise ValueError(f'{len(streams)} streams given for a batch of {batch}')
        shape = self.head.noise_shape(length, sampler.steps, sampler.scheduler)  # (S', L, C)
        drawn = {}
        for s in dict.fromkeys(streams):
            g = torch.Generator(device).manual_seed(stream_seed(seed, s))
            order = None
            if sampler.num_iter > 1:
                order = torch.argsort(torch.rand(length, generator=g, device=device))  # (L,)
            drawn[s] = order, torch.randn(shape, generator=g, device=device)
        if len(drawn) == 1:  # every row the same numbers: no copies
            order, noise = drawn[streams[0]]
            noise = noise[:, None].expand(-1, batch, -1, -1)
            return (None if order is None else order.expand(batch, -1)), noise
        order = None if sampler.num_iter == 1 else torch.stack([drawn[s][0] for s in streams])
        return order, torch.stack([drawn[s][1] for s in streams], dim=1)

    def _single_pass(self, image_tokens: torch.Tensor, noise: torch.Tensor, sampler: SamplerConfig,
                     timer: StageTimer | None = None, ensemble: int = 1, networks=None) -> torch.Tensor:
        """Predict every mask token in one pass: noise (S', E*B*L, C) -> tokens (E*B, L, C), member-major."""
        timer = timer or StageTimer()
        nets = self if networks is None else networks
        B, L, C = *image_tokens.shape[:2], self.config.autoencoder.latent_channels
        with timer('transformer'):
            z = nets.one_pass(image_tokens)  # (B, L, W), the same for every member
        with timer('diffusion'):  # the E members of a token share z and its AdaLN modulation
            tokens = nets.sample_tokens(z.reshape(B * L, -1), noise, sampler, ensemble)  # (E*B*L, C)
        return tokens.view(ensemble * B, L, C).to(image_tokens.dtype)

    def one_pass(self, image_tokens: torch.Tensor) -> torch.Tensor:
        """Condition every mask token, all masked: image tokens (B, L, C [+ P]) -> z (B, L, W)."""
        B, L, C = *image_tokens.shape[:2], self.config.autoencoder.latent_channels
        masked = torch.ones(B, L, dtype=torch.bool, device=image_tokens.device)
        return self.transformer(image_tokens, image_tokens.new_zeros(B, L, C), masked, num_masked=L)

    def sample_tokens(self, z: torch.Tensor, noise: torch.Tensor, sampler: SamplerConfig,
                      samples: int = 1) -> torch.Tensor:
        """Sample E tokens per condition with the head: z (M, W), noise (S', E*M, C) -> (E*M, C), E-major."""
        return self.head.sample(z, sampler.steps, sampler.scheduler, sampler.temperature, noise=noise,
                                samples=samples)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, sampler: SamplerConfig, generator: torch.Generator | None = None,
                timer: StageTimer | None = None, networks=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Segment preprocessed images.

        Images (N, 3, H, W) in [-1, 1] at the processing size -> trainIds (N, H, W) uint8 and
        confidence (N, H, W) float32. Ensemble member e of every image samples from random stream e, so an
        image's result does not depend on the other images of the batch. The encoder runs once per image, the
        decoder once per member (batched). `networks`: the four network calls (`image_condition`,
        `one_pass`, `sample_tokens`, `decode_latents`) from elsewhere, e.g. ONNX Runtime
        (`runtime_ort.OrtNetworks`); everything between them is this method's, whatever runs the networks.
        """
        timer = timer or StageTimer()
        images = images.contiguous(memory_format=torch.channels_last)  # NHWC, like the Segmenter's weights
        with timer('encode'):
            image_tokens = (self if networks is None else networks).image_condition(images)  # (N, L, C [+ P])
        E = sampler.ensemble
        tokens = self.generate(image_tokens, sampler, generator, timer, ensemble=E,
                               networks=networks)  # (E*N, L, C), member e from stream e
        ids, conf = self.decode_mask(from_tokens(tokens, self.grid), timer, networks,
                                     sampler.confidence_scale())  # (E*N, H, W) each
        return vote(ids.view(E, -1, *ids.shape[1:]), conf.view(E, -1, *conf.shape[1:]))

    @torch.no_grad()
    def decode_mask(self, latents: torch.Tensor, timer: StageTimer | None = None, networks=None,
                    confidence_temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled mask latents (N, C, h, w) -> trainIds (N, H, W) uint8 and confidence (N, H, W) float32.

        With a class head: the most probable class (IGNORE_INDEX for void) and its softmax probability, the
        scores divided by `confidence_temperature` first (the sampler's calibration; the class is unchanged).
        Without: the nearest palette colour of the decoded maskige and its distance ratio confidence.
        `networks` runs the decoder (`decode_latents`) instead of this model; the rest is the same.
        """
        timer = timer or StageTimer()
        with timer('decode'):
            decoded = (self if networks is None else networks).decode_latents(latents)
        with timer('postprocess'):
            if self.autoencoder.class_head is None:
                return decode_maskige(decoded)
            return scores_to_classes(decoded, confidence_temperature)  # (N, H, W) each

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled mask latents (N, C, h, w) -> class logits (N, K+1, H, W) or maskige (N, 3, H, W), fp32."""
        ae = self.autoencoder
        kind = latents.device.type
        # bf16 has fp32's range and decodes in bf16; fp16 decoders can overflow to NaN and decode in fp32
        bf16 = torch.is_autocast_enabled(kind) and torch.get_autocast_dtype(kind) == torch.bfloat16
        latents = latents.float().contiguous(memory_format=torch.channels_last)
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
            if ae.class_head is None:
                return ae.decode(latents).float()  # (N, 3, H, W)
            return ae.decode_classes(latents).float()  # (N, K+1, H, W)

    @torch.no_grad()
    def reconstruct_mask(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode and decode ground truth: the autoencoder ceiling.

        trainIds (N, H, W) at the processing size -> maskige -> latents -> trainIds (N, H, W) uint8 and
        confidence (N, H, W) float32, decoded exactly as `predict` decodes generated tokens, so no generator
        can do better than this.
        """
        return self.decode_mask(self.autoencoder.encode(encode_maskige(labels)))
