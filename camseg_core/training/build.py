"""The model a stage trains: built from a preset, an init checkpoint or a saved training state."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.data import Dataset

from ..checkpoint import (CheckpointError, build_model, load_pretrained, read_config, read_weights,
                          state_dict_mismatch)
from ..config import PRESETS, preset
from ..labels import encode_maskige
from ..models.baseline import BASELINE_PRESETS, baseline_preset
from ..models.camseg import CamSeg
from .data import PairData

if TYPE_CHECKING:
    from .stages import StageOptions


def _load_init(path: Path, model_type: str, image_size, transformer: dict | None = None) -> nn.Module:
    """Load a model from an init checkpoint.

    A new image_size, or `transformer` fields that differ from the checkpoint's (e.g. a class_weight that
    adds the token classifier), keep only the weights whose shapes still fit.
    """
    _, header = read_config(path)
    if header.get('model_type', 'camseg') != model_type:
        raise CheckpointError(f'{path}: a {header.get("model_type")!r} checkpoint, expected {model_type!r}')
    old, _ = load_pretrained(path)
    same_size = image_size is None or tuple(image_size) == tuple(old.config.image_size)
    changed = {k: v for k, v in (transformer or {}).items() if getattr(old.config.transformer, k) != v}
    if same_size and not changed:
        return old.train()
    config = dict(header['config'], image_size=tuple(image_size or old.config.image_size))
    if changed:
        config['transformer'] = dict(config['transformer'], **changed)
    model = build_model(model_type, config)
    own = model.state_dict()
    model.load_state_dict({k: v for k, v in old.state_dict().items() if k in own and own[k].shape == v.shape},
                          strict=False)
    return model


def init_stage(path: Path) -> str | None:
    """Return the training stage that wrote checkpoint `path` ('vae', 'segmenter', ...), or None.

    A vae run that started from a segmenter (decoder-only, or the whole autoencoder fine-tuned) counts as
    'segmenter': it keeps that segmenter's trained transformer and head, which a later segmenter run
    continues.
    """
    return _stage(read_config(path)[1])


def _decoder_only(meta: dict) -> bool:
    """Return True if a checkpoint's meta is that of a `--decoder-only` vae run."""
    return meta.get('stage') == 'vae' and bool((meta.get('settings') or {}).get('decoder_only'))


def _stage(header: dict) -> str | None:
    """Return the stage of a checkpoint header; a vae run that kept a segmenter's generator is 'segmenter'."""
    meta = header.get('meta', {})
    if _decoder_only(meta) or (meta.get('stage') == 'vae' and meta.get('generator')):
        return 'segmenter'
    return meta.get('stage')


def encoder_trained(path: Path) -> bool:
    """Return True if checkpoint `path` is a vae run that trained the encoder (its latents have a new spread).

    A segmenter starting from one recalibrates the latent scale (`calibrate_latent_scale`), also when it
    continues the generator that such a run kept.
    """
    return _encoder_trained(read_config(path)[1])


def _encoder_trained(header: dict) -> bool:
    """Return True if a checkpoint header is that of a vae run that trained the encoder."""
    meta = header.get('meta', {})
    return meta.get('stage') == 'vae' and not _decoder_only(meta)


def check_decoder_only(opts: StageOptions) -> None:
    """Raise ValueError unless `--decoder-only` fine-tunes the decoder of a trained segmenter, as it must."""
    if opts.stage != 'vae':
        raise ValueError('--decoder-only only applies to the vae stage')
    header = read_config(opts.init)[1] if opts.init is not None else {}
    if _stage(header) != 'segmenter':
        raise ValueError('--decoder-only needs --init DIR: a segmenter checkpoint (its encoder, transformer '
                         'and head stay as they are)')
    if _encoder_trained(header):
        raise ValueError(f'--decoder-only: {opts.init} fine-tuned the whole autoencoder after its segmenter; '
                         'train the segmenter on its new tokens first (camseg-train segmenter --init ...)')
    if opts.image_size and tuple(opts.image_size) != tuple(header['config']['image_size']):
        raise ValueError('--decoder-only keeps the processing size of its --init checkpoint: '
                         'drop --image-size')
    if opts.class_weight <= 0:
        raise ValueError('--decoder-only needs --class-weight > 0: the class head decodes the masks and must '
                         'learn from the new decoder features')


def _autoencoder_from(path: Path, image_size, transformer: dict | None = None) -> CamSeg:
    """Build a fresh CAM-Seg with only the autoencoder of a 'vae' run (that stage never trains the rest).

    `transformer` overrides TransformerConfig fields of the new transformer (e.g. class_weight).
    """
    path, header = read_config(path)
    config = dict(header['config'], image_size=tuple(image_size)) if image_size else dict(header['config'])
    config['transformer'] = dict(config['transformer'], **(transformer or {}))
    model = build_model('camseg', config)
    state = {k: v for k, v in read_weights(path).items() if k.startswith('autoencoder.')}
    own = {k: v for k, v in model.state_dict().items() if k.startswith('autoencoder.')}
    problem = state_dict_mismatch(own, state)
    if problem:
        raise CheckpointError(f'{path}: the autoencoder weights do not match its config: {problem}')
    model.load_state_dict(state, strict=False)
    return model


def freeze(stage: str, model: nn.Module, decoder_only: bool = False) -> nn.Module:
    """Freeze what `stage` does not train: the autoencoder for 'segmenter', transformer and head for 'vae'.

    `decoder_only` (vae): the autoencoder's encoder too, so that its tokens do not change.
    """
    if stage == 'segmenter':
        model.autoencoder.requires_grad_(False).eval()
    elif stage == 'vae':
        model.transformer.requires_grad_(False)
        model.head.requires_grad_(False)
        if decoder_only:
            model.autoencoder.vae.encoder.requires_grad_(False)
            model.autoencoder.vae.quant_conv.requires_grad_(False)
    return model


def build_stage_model(opts: StageOptions, resume_header: dict | None = None) -> nn.Module:
    """Build the full model a stage trains and saves, with the parts it does not train frozen.

    When resuming, the model is rebuilt from the configuration stored in the training state.
    """
    if opts.decoder_only and resume_header is None:
        check_decoder_only(opts)
    chosen = opts.quantizer or opts.codebook_size or opts.code_restart
    if chosen and (opts.stage != 'vae' or opts.init is not None):
        raise ValueError('--quantizer, --codebook-size and --code-restart choose the autoencoder of a vae '
                         'run from a preset (no --init); a checkpoint keeps its own')
    if resume_header is not None:
        model = build_model(resume_header['model_type'], resume_header['model_config'])
        return freeze(opts.stage, model, opts.decoder_only)
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
        chosen = {'class_weight': opts.class_weight, 'image_stem': opts.image_stem,
                  'pixel_stem': opts.pixel_stem}
        if init_stage(opts.init) == 'vae':
            return freeze('segmenter', _autoencoder_from(opts.init, opts.image_size, chosen))
        model = _load_init(opts.init, 'camseg', opts.image_size, {'class_weight': opts.class_weight})
        for key, value in chosen.items():  # the class weight only adds or drops the token classifier
            if key != 'class_weight' and value != getattr(model.config.transformer, key):
                raise ValueError(f'--{key.replace("_", "-")} {value} differs from the {key} '
                                 f'{getattr(model.config.transformer, key)} of {opts.init}; it is set when '
                                 'the segmenter starts from a vae run')
        return freeze('segmenter', model)
    if opts.init is not None:
        model = _load_init(opts.init, 'camseg', opts.image_size)
    else:
        config = preset(opts.preset)
        if opts.image_size:
            config.image_size = tuple(opts.image_size)
        config.autoencoder.quantizer = opts.quantizer or config.autoencoder.quantizer
        config.autoencoder.codebook_size = opts.codebook_size or config.autoencoder.codebook_size
        config.autoencoder.code_restart = opts.code_restart or config.autoencoder.code_restart
        model = build_model('camseg', config.to_dict())
    return freeze('vae', model, opts.decoder_only)


def check_preset(stage: str, name: str) -> None:
    """Raise ValueError if `name` is not a preset of this stage's model."""
    names = BASELINE_PRESETS if stage == 'baseline' else PRESETS
    if name not in names:
        raise ValueError(f'unknown preset {name!r} for stage {stage!r}; choose from {sorted(names)}')


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
