"""The device and the precisions: chosen once, at the edge, by every command and the node."""
from __future__ import annotations

import torch

from .config import PRECISION_NAMES

PRECISIONS = dict(zip(PRECISION_NAMES, (torch.float32, torch.float16, torch.bfloat16)))


def resolve_device(device: str | torch.device = 'auto') -> torch.device:
    """'auto' -> cuda if available else cpu; 'cuda' where there is none raises ValueError."""
    if str(device) == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f'invalid device {device!r}; use auto, cpu, cuda or cuda:N') from None
    if dev.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(f'device {device!r} asked for, but CUDA is not available on this machine')
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f'device {device!r}: only {torch.cuda.device_count()} CUDA device(s)')
    elif dev.type != 'cpu':
        raise ValueError(f'unsupported device {device!r}; use auto, cpu, cuda or cuda:N')
    return dev
