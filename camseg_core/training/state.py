"""Resumable training state without pickle: tensors in a safetensors file, everything else in JSON.

OUT/train_state.json            step, settings, and the name of the tensor file (written last)
OUT/train_state/step_N.safetensors  model.*, ema.*, optim.state.<param>.<key>, rng.<rank>.{cpu,cuda} tensors
The JSON is replaced atomically after its tensor file is complete, so a kill at any moment leaves the previous
consistent state behind.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

STATE_JSON = 'train_state.json'
STATE_DIR = 'train_state'
STATE_FORMAT = 'camseg-train-state'


def flatten_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split `optimizer.state_dict()` into tensors 'optim.state.<i>.<key>' and a JSON-able rest."""
    tensors, plain = {}, {}
    for index, entry in state_dict['state'].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f'optim.state.{index}.{key}'] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(index), {})[key] = value
    return tensors, {'param_groups': state_dict['param_groups'], 'plain': plain}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of `flatten_optimizer`."""
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith('optim.state.'):
            index, key = name[len('optim.state.'):].split('.', 1)
            state.setdefault(int(index), {})[key] = value
    for index, entry in meta['plain'].items():
        state.setdefault(int(index), {}).update(entry)
    return {'state': state, 'param_groups': meta['param_groups']}


def rng_tensors(rank: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Return the global torch RNG state of this process (CPU, and the current CUDA device if used)."""
    out = {f'rng.{rank}.cpu': torch.get_rng_state()}
    if device.type == 'cuda':
        out[f'rng.{rank}.cuda'] = torch.cuda.get_rng_state(device)
    return out


def restore_rng(tensors: dict[str, torch.Tensor], rank: int, device: torch.device) -> bool:
    """Restore this rank's RNG state if the state has it; False if not (e.g. a different world size)."""
    if f'rng.{rank}.cpu' not in tensors:
        return False
    torch.set_rng_state(tensors[f'rng.{rank}.cpu'])
    if device.type == 'cuda' and f'rng.{rank}.cuda' in tensors:
        torch.cuda.set_rng_state(tensors[f'rng.{rank}.cuda'], device)
    return True


def save_state(out: Path, step: int, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write the tensors for `step`, then point train_state.json at them, then drop older tensor files."""
    folder = out / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = f'step_{step:09d}.safetensors'
    tmp = folder / (name + '.tmp')
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
              metadata={'format': STATE_FORMAT, 'step': str(step)})
    tmp.replace(folder / name)
    header = {'format': STATE_FORMAT, 'step': step, 'tensors': f'{STATE_DIR}/{name}', **meta}
    tmp_json = out / (STATE_JSON + '.tmp')
    tmp_json.write_text(json.dumps(header, indent=2) + '\n')
    os.replace(tmp_json, out / STATE_JSON)
    for old in folder.glob('step_*.safetensors'):
        if old.name != name:
            old.unlink()
    return out / STATE_JSON


def restore_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Load the trained model's weights (the 'model.*' tensors) of a training state into `model`."""
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith('model.')})


def has_state(out: Path) -> bool:
    """Whether `out` holds a training state."""
    return (out / STATE_JSON).is_file()


def load_state(out: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """Read (JSON header, tensors); ValueError/FileNotFoundError naming the file on any problem."""
    path = out / STATE_JSON
    if not path.is_file():
        raise FileNotFoundError(f'{path}: no training state to resume from')
    try:
        header = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f'{path}: not valid JSON ({e})') from None
    if not isinstance(header, dict) or header.get('format') != STATE_FORMAT:
        raise ValueError(f'{path}: not a camseg training state (expected "format": "{STATE_FORMAT}")')
    tensor_file = out / header['tensors']
    try:
        tensors = load_file(str(tensor_file))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f'{tensor_file}: unreadable training state tensors ({e})') from None
    return header, tensors
