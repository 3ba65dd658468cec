"""CUDA graphs of pure tensor functions, one per key (shapes, dtypes, settings), with an eager fallback.

A captured call replays every kernel of `fn` with one launch, which is what a launch-bound loop such as the
diffusion head's needs. `fn` must be a pure function of its tensor inputs: no host synchronisation, no
data-dependent shapes, no random draws (draw the noise before and pass it in).
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Callable, Hashable

import torch


def autocast_state(device: torch.device) -> tuple[bool, torch.dtype]:
    """Return (enabled, dtype) of autocast on the device type right now."""
    return torch.is_autocast_enabled(device.type), torch.get_autocast_dtype(device.type)


class GraphCache:
    """Capture `fn(*inputs)` once per key on CUDA and replay it; run `fn` eagerly elsewhere or on failure."""

    def __init__(self, max_entries: int = 8):
        self.max_entries = max_entries
        self.entries: OrderedDict = OrderedDict()  # key -> (graph, static inputs, static output)
        self.failed: set = set()

    def __call__(self, key: Hashable, fn: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
        """Return fn(*inputs), replayed from a CUDA graph when the inputs are on CUDA."""
        device = inputs[0].device
        if device.type != 'cuda' or key in self.failed or torch.cuda.is_current_stream_capturing():
            return fn(*inputs)
        key = (key, device, *autocast_state(device))
        entry = self.entries.get(key)
        if entry is None:
            try:
                entry = self._capture(fn, inputs)
            except Exception as err:  # capture is an optimisation: fall back to eager, say so once
                self.failed.add(key[0])
                warnings.warn(f'CUDA graph capture failed ({err!r}); running eagerly', RuntimeWarning)
                torch.cuda.synchronize(device)
                return fn(*inputs)
            self.entries[key] = entry
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)
        self.entries.move_to_end(key)
        graph, static_inputs, static_output = entry
        for static, value in zip(static_inputs, inputs):
            static.copy_(value)
        graph.replay()
        return static_output.clone()

    @staticmethod
    def _capture(fn, inputs):
        device = inputs[0].device
        enabled, dtype = autocast_state(device)
        static_inputs = [x.clone() for x in inputs]

        def run():
            # autocast's weight cast cache lives outside the graph's memory pool: keep it off while capturing
            with torch.autocast(device.type, dtype=dtype, enabled=enabled, cache_enabled=False):
                return fn(*static_inputs)

        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up: lazy initialisation and workspace allocation outside the capture
                run()
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_output = run()
        return graph, static_inputs, static_output

    def clear(self) -> None:
        """Drop every captured graph (and its memory pool)."""
        self.entries.clear()
        self.failed.clear()
