"""Checkpoints: a directory with `config.json` and `model.safetensors`. Pickle files are refused."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .documents import read_document
from .models import build_model
from .models.weights import state_dict_mismatch

CONFIG_NAME = 'config.json'
WEIGHTS_NAME = 'model.safetensors'
FORMAT = 'camseg-checkpoint'
FORMAT_VERSION = 1
PICKLE_SUFFIXES = ('.pt', '.pth', '.ckpt', '.bin', '.pkl')


class CheckpointError(ValueError):
    """A checkpoint that is missing, truncated, refused or does not fit its configuration."""


def save_pretrained(model: nn.Module, directory: str | Path, meta: dict | None = None,
                    dtype: torch.dtype | None = None) -> Path:
    """Write `config.json` and `model.safetensors` (weights optionally stored as `dtype`, e.g. float16)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def stored(v: torch.Tensor) -> torch.Tensor:
        return (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().cpu().contiguous()

    state = {k: stored(v) for k, v in model.state_dict().items()}
    header = {'format': FORMAT, 'version': FORMAT_VERSION, 'model_type': model.model_type,
              'config': model.config.to_dict(), 'meta': meta or {}}
    tmp = directory / (WEIGHTS_NAME + '.tmp')
    save_file(state, str(tmp), metadata={'format': FORMAT, 'model_type': model.model_type})
    tmp.replace(directory / WEIGHTS_NAME)  # atomic: a kill mid-write never leaves a half file behind
    (directory / CONFIG_NAME).write_text(json.dumps(header, indent=2) + '\n')
    return directory


def export_pretrained(source: str | Path, directory: str | Path, ensemble: int | None = None,
                      dtype: torch.dtype = torch.float16, temperature: float | None = None,
                      steps: int | None = None) -> Path:
    """Save the checkpoint `source` into `directory` as a model ships: weights stored as `dtype`.

    `ensemble` sets how many samples a CAM-Seg checkpoint's default sampler votes over, `temperature` its
    sampling noise scale and `steps` its diffusion steps (None: kept). Invalid values raise ValueError before
    anything is written.
    """
    model, header = load_pretrained(source)
    changes = {k: v for k, v in (('ensemble', ensemble), ('temperature', temperature), ('steps', steps))
               if v is not None}
    if changes:
        sampler = dataclasses.replace(model.config.sampler, **changes)
        sampler.validate()
        model.config.sampler = sampler
    return save_pretrained(model, directory, header['meta'], dtype=dtype)


def _refuse_pickle(path: Path) -> None:
    with open(path, 'rb') as f:
        head = f.read(4)
    if path.suffix in PICKLE_SUFFIXES or head[:1] == b'\x80' or head == b'PK\x03\x04':
        raise CheckpointError(
            f'{path}: looks like a pickle/torch.save file; camseg never unpickles files. '
            f'Convert it once, where you trust it, with: python -c "import torch, safetensors.torch as s; '
            f"s.save_file(torch.load('{path.name}', weights_only=True), 'model.safetensors')\" "
            f'and put it in a directory next to a config.json.')


def read_config(path: str | Path) -> tuple[Path, dict]:
    """Resolve a checkpoint path (directory, or its model.safetensors) and read its config.json."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f'{path}: checkpoint not found')
    if path.is_file():
        if path.suffix != '.safetensors':
            _refuse_pickle(path)
            raise CheckpointError(f'{path}: a checkpoint is a directory with {CONFIG_NAME} and '
                                  f'{WEIGHTS_NAME}')
        path = path.parent
    config_file = path / CONFIG_NAME
    header = read_document(config_file, f'missing (a checkpoint directory needs {CONFIG_NAME} and '
                                        f'{WEIGHTS_NAME})', CheckpointError)
    if not isinstance(header, dict) or header.get('format') != FORMAT or 'config' not in header:
        raise CheckpointError(f'{config_file}: not a camseg checkpoint config '
                              f'(expected "format": "{FORMAT}")')
    return path, header


def load_pretrained(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild exactly the saved model on the CPU. Returns (model in eval mode, the config.json contents)."""
    path, header = read_config(path)
    try:
        model = build_model(header.get('model_type', 'camseg'), header['config'])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f'{path / CONFIG_NAME}: invalid model config ({e})') from None
    state = read_weights(path)
    problem = state_dict_mismatch(model.state_dict(), state)
    if problem:
        raise CheckpointError(f'{path / WEIGHTS_NAME}: weights do not match {CONFIG_NAME}: {problem}')
    model.load_state_dict(state)
    return model.eval(), header


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read the tensors of checkpoint directory `path` (CPU); CheckpointError if missing or unreadable."""
    weights = path / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f'{weights}: missing')
    try:
        return load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f'{weights}: unreadable or truncated safetensors file ({e})') from None
