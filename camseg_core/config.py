"""Typed configuration of the CAM-Seg model, the sampler, and the named presets.

A checkpoint stores a `CamSegConfig` as JSON, so loading rebuilds exactly the saved model.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

SCHEDULERS = ('ddpm', 'ddim')
PRECISION_NAMES = ('fp32', 'fp16', 'bf16')  # autocast dtypes by name (camseg_core.device.PRECISIONS)
RUNTIMES = ('torch', 'onnxruntime')  # what runs the four network calls; everything else is the same code
QUANTIZERS = ('kl', 'vq')  # AutoencoderConfig.quantizer: continuous (KL) or codebook (VQ) tokens
# Every `Segmenter` brightens frames darker than this mean brightness (0..1) to it before segmenting
# (`imageops.lift_exposure`). The darkest of the demo model's 1000 generated training scenes has a mean of
# 0.286: a darker frame (night) is outside what the models saw. Measured on both models in the model card.
DEFAULT_EXPOSURE_FLOOR = 0.3


def parse_size(value, minimum: int = 1) -> tuple[int, int]:
    """Parse '128x256', [128, 256] or (128, 256) into (128, 256): height x width, each >= `minimum`.

    Raises ValueError otherwise. The one size parser: every command's size flags and the recipes' size
    settings go through it.
    """
    try:
        h, w = (int(v) for v in (value.lower().split('x') if isinstance(value, str) else value))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f'size must look like 256x512 (HxW), got {value!r}') from None
    if h < minimum or w < minimum:
        raise ValueError(f'size must be at least {minimum}x{minimum} (HxW), got {value!r}')
    return h, w


def check_exposure_floor(value) -> float:
    """Return `value` as an exposure floor (a mean brightness in [0, 1), 0: off); ValueError otherwise."""
    if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
        raise ValueError(f'exposure_floor is a mean brightness in [0, 1) (0: off), got {value!r}')
    return float(value)


@dataclass
class AutoencoderConfig:
    """Autoencoder shared by the image and the maskige streams (diffusers `AutoencoderKL`, or `VQModel`)."""

    base_channels: int = 128  # width of the first resolution level
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)  # one entry per level; stride = 2**(len-1)
    layers_per_block: int = 2  # resnet blocks per level
    latent_channels: int = 16  # channels of a latent token
    norm_num_groups: int = 32  # GroupNorm groups (must divide every level's width)
    scaling_factor: float = 0.2325  # latents are multiplied by this before the transformer sees them
    class_head: bool = False  # a learned 3x3 conv from the last decoder features to class scores (+ void),
    # used to decode masks instead of the nearest palette colour (GSS's learned inverse mapping)
    quantizer: str = 'kl'  # 'kl': continuous tokens (diffusers AutoencoderKL, the paper's choice); 'vq': each
    # token snapped to the nearest entry of a learned codebook (diffusers VQModel), for comparison
    codebook_size: int = 1024  # vq only: entries in the codebook (each latent_channels wide)
    code_restart: int = 0  # vq training: an entry no token used for this many steps is reset to a random
    # encoder output of the batch, against codebook collapse (0: never; one training process only)

    @property
    def stride(self) -> int:
        """Downsampling factor between pixels and latent tokens."""
        return 2 ** (len(self.channel_mult) - 1)

    def validate(self) -> None:
        if self.quantizer not in QUANTIZERS:
            raise ValueError(f'autoencoder quantizer must be one of {QUANTIZERS}, got {self.quantizer!r}')
        if not isinstance(self.codebook_size, int) or self.codebook_size < 2:
            raise ValueError(f'autoencoder codebook_size must be an integer >= 2, got {self.codebook_size!r}')
        if not isinstance(self.code_restart, int) or self.code_restart < 0:
            raise ValueError(f'autoencoder code_restart must be an integer >= 0, got {self.code_restart!r}')
        if self.stride not in (8, 16):
            raise ValueError(f'autoencoder stride must be 8 or 16, got {self.stride} '
                             f'(channel_mult has {len(self.channel_mult)} levels)')
        for m in self.channel_mult:
            if (self.base_channels * m) % self.norm_num_groups:
                raise ValueError(f'norm_num_groups={self.norm_num_groups} does not divide '
                                 f'width {self.base_channels * m}')


@dataclass
class TransformerConfig:
    """Masked autoregressive transformer (MAR encoder/decoder) over image + mask tokens."""

    width: int = 768  # token embedding width
    encoder_depth: int = 12  # encoder blocks (see image tokens + visible mask tokens)
    decoder_depth: int = 12  # decoder blocks (see all tokens, masked ones as a learned token)
    num_heads: int = 12  # attention heads
    mlp_ratio: float = 4.0  # hidden width of the block MLPs relative to `width`
    dropout: float = 0.1  # attention and projection dropout in training
    mask_ratio_min: float = 0.7  # training mask ratio ~ truncated N(1.0, std) on [min, 1.0]
    mask_ratio_std: float = 0.25
    image_stem: int = 0  # 3x3 convolutions over the image token grid, added to the image tokens' linear
    # projection: each image token then also sees its neighbours (0: MAR's linear projection only)
    pixel_stem: int = 0  # > 0: a convolutional patch embedding of the pixels, this many channels per token,
    # learned with the transformer and appended to each image token's KL channels (0: the KL tokens only)
    class_weight: float = 0.0  # > 0: training adds this weight times a cross-entropy teaching z each masked
    # token's class mix (a linear classifier on z, trained with the rest; CAM-Seg's loss is unchanged)


@dataclass
class DiffusionHeadConfig:
    """Per-token diffusion head: residual MLP conditioned on the transformer output via AdaLN."""

    width: int = 1024  # hidden width of the MLP
    depth: int = 6  # residual blocks
    num_train_timesteps: int = 1000  # diffusion steps in training
    beta_schedule: str = 'squaredcos_cap_v2'  # diffusers name of the cosine schedule
    batch_mul: int = 4  # noise draws per token per training step


@dataclass
class SamplerConfig:
    """Inference settings; changeable at run time without reloading the model."""

    num_iter: int = 1  # MAR iterations; 1 predicts every mask token in one pass
    steps: int = 100  # diffusion steps of the head per token
    scheduler: str = 'ddpm'  # 'ddpm' (ancestral) or 'ddim' (deterministic, good for few steps)
    temperature: float = 1.0  # scale of the sampling noise
    ensemble: int = 1  # samples per image; the class map is their majority vote
    seed: int | None = 0  # same seed and input -> same output; None draws a fresh seed
    # Confidence calibration: ensemble size -> temperature dividing the class head's scores before the softmax
    # of each sample's confidence (labels unchanged); a size not listed (an empty map: the default) gets 1.
    # Fitted on held-out scenes by camseg_core.evaluation.calibrate (`camseg-calibrate`).
    confidence_temperature: dict[int, float] = field(default_factory=dict)

    def __post_init__(self):
        # JSON object keys are strings: "1" -> 1 (anything else is left for validate to refuse)
        if isinstance(self.confidence_temperature, dict):
            self.confidence_temperature = {
                int(k) if isinstance(k, str) and k.isdigit() else k: v
                for k, v in self.confidence_temperature.items()}

    def confidence_scale(self) -> float:
        """Return the temperature of this setting's confidence (its ensemble size's entry, else 1)."""
        return float(self.confidence_temperature.get(self.ensemble, 1.0))

    def validate(self) -> None:
        if not isinstance(self.num_iter, int) or self.num_iter < 1:
            raise ValueError(f'num_iter must be an integer >= 1, got {self.num_iter!r}')
        if not isinstance(self.steps, int) or not 1 <= self.steps <= 1000:
            raise ValueError(f'steps must be an integer in [1, 1000], got {self.steps!r}')
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f'scheduler must be one of {SCHEDULERS}, got {self.scheduler!r}')
        if not isinstance(self.temperature, (int, float)) or not 0 < self.temperature <= 10 \
                or not math.isfinite(self.temperature):
            raise ValueError(f'temperature must be in (0, 10], got {self.temperature!r}')
        if not isinstance(self.ensemble, int) or not 1 <= self.ensemble <= 64:
            raise ValueError(f'ensemble must be an integer in [1, 64], got {self.ensemble!r}')
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise ValueError(f'seed must be a non-negative integer or None, got {self.seed!r}')
        if not isinstance(self.confidence_temperature, dict):
            raise ValueError(f'confidence_temperature must map ensemble sizes to temperatures, '
                             f'got {self.confidence_temperature!r}')
        for size, value in self.confidence_temperature.items():
            if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 64:
                raise ValueError(f'confidence_temperature keys must be ensemble sizes in [1, 64], '
                                 f'got {size!r}')
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 100 \
                    or not math.isfinite(value):
                raise ValueError(f'confidence_temperature[{size}] must be in (0, 100], got {value!r}')


# Named sampler settings for deployments (the node's `profile` parameter, benchmarks): each maps to the
# SamplerConfig fields it changes; the fields it leaves out keep the checkpoint's values.
SAMPLER_PROFILES: dict[str, dict] = {
    'checkpoint': {},  # the checkpoint's own sampler, the one its model card measured
    # one sample, 4 DDIM steps, one pass
    'fast': {'ensemble': 1, 'steps': 4, 'scheduler': 'ddim', 'num_iter': 1},
}


def apply_profile(sampler: SamplerConfig, name: str) -> SamplerConfig:
    """Return `sampler` with the settings of the named profile (SAMPLER_PROFILES); ValueError if unknown."""
    if name not in SAMPLER_PROFILES:
        raise ValueError(f'sampler profile must be one of {tuple(SAMPLER_PROFILES)}, got {name!r}')
    return dataclasses.replace(sampler, **SAMPLER_PROFILES[name])


@dataclass
class CamSegConfig:
    """The whole model: everything needed to rebuild it from a checkpoint."""

    image_size: tuple[int, int] = (512, 1024)  # processing size (H, W); inputs are letterboxed
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    head: DiffusionHeadConfig = field(default_factory=DiffusionHeadConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)  # default inference settings
    preset: str = 'custom'  # name of the preset this came from, for reports

    @property
    def token_grid(self) -> tuple[int, int]:
        """(rows, cols) of latent tokens per stream."""
        s = self.autoencoder.stride
        return self.image_size[0] // s, self.image_size[1] // s

    def validate(self) -> None:
        self.autoencoder.validate()
        self.sampler.validate()
        s = self.autoencoder.stride
        if any(v <= 0 or v % s for v in self.image_size):
            raise ValueError(f'image_size {tuple(self.image_size)} must be positive multiples of '
                             f'the autoencoder stride {s}')
        if self.transformer.width % self.transformer.num_heads:
            raise ValueError('transformer width must be divisible by num_heads')
        t = self.transformer
        if not isinstance(t.image_stem, int) or t.image_stem < 0:
            raise ValueError(f'transformer image_stem must be an integer >= 0, got {t.image_stem!r}')
        if t.image_stem and t.width % 8:
            raise ValueError(f'an image stem needs a transformer width divisible by 8 (its GroupNorm has 8 '
                             f'groups), got {t.width}')
        step = 4 * self.autoencoder.stride  # the stem's first level has pixel_stem / (stride / 2) channels
        if not isinstance(t.pixel_stem, int) or t.pixel_stem < 0 or t.pixel_stem % step:
            raise ValueError(f'transformer pixel_stem must be 0 or a positive multiple of {step} (its '
                             f'GroupNorms have 8 groups at every level), got {t.pixel_stem!r}')
        if not t.class_weight >= 0:
            raise ValueError(f'transformer class_weight must be >= 0, got {t.class_weight!r}')

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> 'CamSegConfig':
        """Rebuild from `to_dict()` output; unknown keys raise ValueError naming them."""
        def build(kind, values):
            names = {f.name for f in dataclasses.fields(kind)}
            unknown = sorted(set(values) - names)
            if unknown:
                raise ValueError(f'unknown {kind.__name__} keys: {unknown}')
            return values

        data = dict(build(cls, data))
        parts = {'autoencoder': AutoencoderConfig, 'transformer': TransformerConfig,
                 'head': DiffusionHeadConfig, 'sampler': SamplerConfig}
        for key, kind in parts.items():
            if key in data:
                values = dict(build(kind, data[key]))
                if kind is AutoencoderConfig and 'channel_mult' in values:
                    values['channel_mult'] = tuple(values['channel_mult'])
                data[key] = kind(**values)
        if 'image_size' in data:
            data['image_size'] = tuple(data['image_size'])
        config = cls(**data)
        config.validate()
        return config


def _tiny() -> CamSegConfig:
    # Fits CPU tests and a CPU demo: 128x256 processing, stride 8 -> 16x32 tokens per stream.
    return CamSegConfig(
        image_size=(128, 256),
        autoencoder=AutoencoderConfig(base_channels=16, channel_mult=(1, 2, 4, 8), layers_per_block=1,
                                      latent_channels=16, norm_num_groups=8, class_head=True),
        transformer=TransformerConfig(width=256, encoder_depth=3, decoder_depth=3, num_heads=8,
                                      dropout=0.0),
        head=DiffusionHeadConfig(width=256, depth=3),
        sampler=SamplerConfig(num_iter=1, steps=20, scheduler='ddim'),
        preset='tiny')


def _base() -> CamSegConfig:
    # The paper's architecture: KL-16 (multipliers 1,1,2,2,4), MAR-B 12+12 x 768, head 6 x 1024.
    # 512x1024 keeps Cityscapes' 1:2 aspect (2048 tokens/stream, close to the paper's 48x48).
    return CamSegConfig(image_size=(512, 1024), autoencoder=AutoencoderConfig(class_head=True), preset='base')


def _large() -> CamSegConfig:
    # MAR-L sized transformer (16+16 x 1024) and a wider head (8 x 1280).
    return CamSegConfig(
        image_size=(512, 1024),
        autoencoder=AutoencoderConfig(class_head=True),
        transformer=TransformerConfig(width=1024, encoder_depth=16, decoder_depth=16, num_heads=16),
        head=DiffusionHeadConfig(width=1280, depth=8),
        preset='large')


PRESETS = {'tiny': _tiny, 'base': _base, 'large': _large}


def named_config(registry: dict, name: str, what: str = 'preset'):
    """Return a fresh, validated config from a registry of named presets; ValueError naming the choices."""
    if name not in registry:
        raise ValueError(f'unknown {what} {name!r}; choose from {sorted(registry)}')
    config = registry[name]()
    config.validate()
    return config


def preset(name: str) -> CamSegConfig:
    """Return a fresh config of a named preset; PRESETS lists the names."""
    return named_config(PRESETS, name)
