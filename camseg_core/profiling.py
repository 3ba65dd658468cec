"""Wall-clock timing of named stages (synchronised with the model's CUDA device), for API and benchmark."""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

import torch


class StageTimer:
    """Accumulates seconds per stage name; disabled timers cost nothing.

    On a CUDA device each stage starts and ends with a synchronisation of that device (cuda:N), not of
    the current one, so that asynchronous kernels are counted in the stage that launched them.
    """

    def __init__(self, enabled: bool = False, device: torch.device | str | None = None):
        self.enabled = enabled
        self.device = torch.device(device) if device is not None else None
        self.sync = enabled and self.device is not None and self.device.type == 'cuda'
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str):
        if not self.enabled:
            yield
            return
        if self.sync:
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.sync:
                torch.cuda.synchronize(self.device)
            self.seconds[stage] += time.perf_counter() - start
