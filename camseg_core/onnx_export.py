"""ONNX graphs of CAM-Seg's four network calls, each with a dynamic batch, and the JSON that describes them.

`export_onnx(model, directory)` writes encoder.onnx (images -> image condition, pixel stem included),
transformer.onnx (one pass, every mask token masked), head_step.onnx (one denoiser call of the diffusion
head; the scheduler loop stays in `DiffusionHead.sample`), decoder.onnx (mask latents -> class logits, or the
maskige of a model without class head) and camseg_onnx.json (the model's config and sampler, the graphs'
inputs and outputs, and the digest of the weights they hold). `runtime_ort` runs them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .documents import read_document

MANIFEST = 'camseg_onnx.json'
FORMAT = 'camseg-onnx'
FORMAT_VERSION = 1
OPSET = 17


class OnnxGraphError(ValueError):
    """ONNX graphs that are missing, unreadable or do not belong to the model they are used with."""


class _Call(nn.Module):
    """One of the model's network calls (`image_condition`, `one_pass`, `decode_latents`) as a module."""

    def __init__(self, model, method: str):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, *inputs):
        return getattr(self.model, self.method)(*inputs)


def graph_specs(model) -> dict[str, dict]:
    """Name -> (wrapper module, example inputs, input names, output name) of each graph of `model`."""
    cfg = model.config
    (h, w), (rows, cols) = cfg.image_size, cfg.token_grid
    L, C = rows * cols, cfg.autoencoder.latent_channels
    cond = C + cfg.transformer.pixel_stem
    width = cfg.transformer.width
    return {
        # images (N, 3, H, W) -> condition (N, L, C [+ P])
        'encoder': (_Call(model, 'image_condition'), (torch.zeros(2, 3, h, w),), ['images'], 'condition'),
        # condition (N, L, C [+ P]) -> z (N, L, W), every mask token masked
        'transformer': (_Call(model, 'one_pass'), (torch.zeros(2, L, cond),), ['condition'], 'z'),
        # the head's own forward: x (E*M, C), t (1,), z (M, D) -> v (E*M, C)
        'head_step': (model.head, (torch.zeros(6, C), torch.tensor([999]), torch.zeros(3, width)),
                      ['x', 't', 'z'], 'v'),
        # latents (N, C, h, w) -> class logits (N, K+1, H, W), or the maskige (N, 3, H, W)
        'decoder': (_Call(model, 'decode_latents'), (torch.zeros(2, C, rows, cols),), ['latents'], 'decoded'),
    }


def weights_digest(model: nn.Module) -> str:
    """Return the SHA-256 of the model's float32 weights (names, shapes, values): what graphs hold."""
    sha = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        value = value.detach().cpu()
        value = value.float() if value.is_floating_point() else value
        sha.update(f'{name}:{tuple(value.shape)}:{value.dtype}'.encode())
        sha.update(value.contiguous().numpy().tobytes())
    return sha.hexdigest()


@torch.no_grad()
def export_onnx(model: nn.Module, directory: str | Path) -> Path:
    """Write the four graphs of a CAM-Seg `model` (fp32, CPU, dynamic batch) and camseg_onnx.json.

    The manifest is written last, so a directory with one holds a complete set. Returns the directory.
    """
    if not hasattr(model, 'one_pass'):
        kind = getattr(model, 'model_type', type(model).__name__)
        raise OnnxGraphError(f'only CAM-Seg models export to ONNX, not {kind!r}')
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = model.float().cpu().eval()
    capture = model.capture_graphs
    model.capture_graphs = False
    graphs = {}
    try:
        for name, (module, example, inputs, output) in graph_specs(model).items():
            axes = {n: {0: 'batch'} for n in [*inputs, output] if n != 't'}
            if name == 'head_step':  # E samples of each of M conditions
                axes = {'x': {0: 'samples'}, 'z': {0: 'conditions'}, 'v': {0: 'samples'}}
            path = directory / f'{name}.onnx'
            tmp = directory / f'{name}.onnx.tmp'
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')  # tracer and deprecation notes about the TorchScript exporter
                torch.onnx.export(module, example, str(tmp), input_names=inputs, output_names=[output],
                                  dynamic_axes=axes, opset_version=OPSET, dynamo=False)
            os.replace(tmp, path)
            graphs[name] = {'file': path.name, 'inputs': inputs, 'output': output}
    finally:
        model.capture_graphs = capture
    manifest = {'format': FORMAT, 'version': FORMAT_VERSION, 'opset': OPSET, 'torch': torch.__version__,
                'model_type': model.model_type, 'weights_sha256': weights_digest(model),
                'config': model.config.to_dict(), 'sampler': dataclasses.asdict(model.config.sampler),
                'graphs': graphs}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + '\n')
    return directory


def read_manifest(directory: str | Path) -> dict:
    """Read and check camseg_onnx.json of a graph directory; OnnxGraphError names what is wrong."""
    path = Path(directory) / MANIFEST
    manifest = read_document(path, 'missing (not a directory of camseg ONNX graphs; write one with '
                                   'camseg-export CHECKPOINT OUT --onnx)', OnnxGraphError)
    if not isinstance(manifest, dict) or manifest.get('format') != FORMAT or \
            set(manifest.get('graphs', {})) != {'encoder', 'transformer', 'head_step', 'decoder'}:
        raise OnnxGraphError(f'{path}: not a camseg ONNX manifest (expected "format": "{FORMAT}" and four '
                             f'graphs)')
    for name, graph in manifest['graphs'].items():
        if not (Path(directory) / graph['file']).is_file():
            raise OnnxGraphError(f'{Path(directory) / graph["file"]}: the {name} graph is missing')
    return manifest
