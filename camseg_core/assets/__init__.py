"""Models shipped inside the package: the demo checkpoint, the default of the node and the bag tools."""
from __future__ import annotations

from pathlib import Path

DEMO_MODEL = 'tiny_synth'  # tiny CAM-Seg trained on generated street scenes; see its MODEL_CARD.md


def demo_checkpoint() -> Path:
    """Return the directory of the shipped demo model; FileNotFoundError if it is not installed."""
    path = Path(__file__).resolve().parent / DEMO_MODEL
    if not (path / 'model.safetensors').is_file() or not (path / 'config.json').is_file():
        raise FileNotFoundError(f'the demo model is not installed (no config.json + model.safetensors in '
                                f'{path}); pass a checkpoint directory instead')
    return path


def resolve_checkpoint(path: str | Path | None) -> Path:
    """Return `path`, or the demo model's directory when `path` is empty or None."""
    return Path(path) if path else demo_checkpoint()
