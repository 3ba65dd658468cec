"""Wall-clock timing of named stages (CUDA-synchronised), used by the API and the benchmark."""
from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

import torch


class StageTimer:
    """Accumulates seconds per stage name; disabled timers cost nothing."""

    def __init__(self, enabled: bool = False, device: torch.device | None = None):
        self.enabled = enabled
        self.sync = enabled and device is not None and device.type == 'cuda'
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str):
        if not self.enabled:
            yield
            return
        if self.sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.sync:
                torch.cuda.synchronize()
            self.seconds[stage] += time.perf_counter() - start
