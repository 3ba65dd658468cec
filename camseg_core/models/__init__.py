"""Model parts of CAM-Seg (autoencoder, masked autoregressive transformer, diffusion head), and the registry.

`MODEL_TYPES` names every whole model a checkpoint can hold; each class has `model_type`, `config_class`
(to_dict/from_dict) and `predict`.
"""
from __future__ import annotations

from torch import nn

from .baseline import PixelClassifier
from .camseg import CamSeg

MODEL_TYPES: dict[str, type[nn.Module]] = {cls.model_type: cls for cls in (CamSeg, PixelClassifier)}


def build_model(model_type: str, config_dict: dict) -> nn.Module:
    """Build a fresh model of `model_type` from a config dictionary (ValueError for an unknown type)."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f'unknown model_type {model_type!r}; known: {sorted(MODEL_TYPES)}')
    cls = MODEL_TYPES[model_type]
    return cls(cls.config_class.from_dict(config_dict))
