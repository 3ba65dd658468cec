"""CAM-Seg's four network calls run by ONNX Runtime: the `networks` that `CamSeg.predict` takes.

Everything between the calls (preprocessing, noise streams, the scheduler loop, decoding to confidence, vote,
restore) stays the PyTorch model's own code; only encoder, transformer, head step and decoder run here.

Providers: with device 'cpu' the CPU provider; with 'cuda[:N]' (or 'auto' where ONNX Runtime has them) the
TensorRT provider (engines cached beside the graphs in trt_cache/), then CUDA, then CPU, each only if this
onnxruntime build has it (onnxruntime-gpu; TensorRT libraries for the first).

Where the graphs come from (`resolve_graphs`): the directory given, exported there once if it holds none;
else a checkpoint's own onnx/ subfolder (camseg-export CKPT OUT --onnx); else a cache directory,
$CAMSEG_CACHE/onnx/<digest> (default ~/.cache/camseg/onnx/<digest>), exported once per set of weights.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from .onnx_export import MANIFEST, OnnxGraphError, export_onnx, read_manifest, weights_digest

log = logging.getLogger(__name__)
GRAPH_DIR = 'onnx'  # a checkpoint's subfolder of graphs


def import_onnxruntime():
    """Import onnxruntime, or raise ImportError saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("runtime 'onnxruntime' needs the onnxruntime package: pip install onnxruntime "
                          "(onnxruntime-gpu for CUDA and TensorRT), or pip install -e '.[onnx]'") from None
    return onnxruntime


def cache_root() -> Path:
    """$CAMSEG_CACHE, else $XDG_CACHE_HOME/camseg, else ~/.cache/camseg."""
    if os.environ.get('CAMSEG_CACHE'):
        return Path(os.environ['CAMSEG_CACHE'])
    return Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'camseg'


def resolve_graphs(model, checkpoint: str | Path | None = None, onnx_dir: str | Path | None = None) -> Path:
    """Return a directory of graphs of `model`'s weights, exported once if there is none (module doc)."""
    if onnx_dir is not None:
        onnx_dir = Path(onnx_dir)
        if not (onnx_dir / MANIFEST).exists():
            log.warning('exporting ONNX graphs into %s (once)', onnx_dir)
            export_onnx(model, onnx_dir)
        return onnx_dir
    if checkpoint is not None and (Path(checkpoint) / GRAPH_DIR / MANIFEST).exists():
        return Path(checkpoint) / GRAPH_DIR
    target = cache_root() / 'onnx' / weights_digest(model)[:16]
    if not (target / MANIFEST).exists():
        log.warning('exporting ONNX graphs into %s (once per set of weights)', target)
        tmp = target.with_name(f'{target.name}.tmp-{os.getpid()}')
        export_onnx(model, tmp)
        try:
            tmp.rename(target)  # atomic: another process exporting the same weights may have won
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def choose_providers(device: str = 'cpu', cache: Path | None = None) -> list:
    """ONNX Runtime providers for 'cpu', 'cuda[:N]' or 'auto', each only if this onnxruntime has it."""
    ort = import_onnxruntime()
    available = ort.get_available_providers()
    device = str(device)
    if device == 'cpu' or (device == 'auto' and 'CUDAExecutionProvider' not in available):
        return ['CPUExecutionProvider']
    if not device.startswith(('cuda', 'auto')):
        raise ValueError(f'unsupported device {device!r}; use auto, cpu, cuda or cuda:N')
    if 'CUDAExecutionProvider' not in available:
        raise ValueError(f'device {device!r} asked for, but this onnxruntime has no CUDA provider '
                         f'({available}); install onnxruntime-gpu')
    index = int(device.partition(':')[2] or 0)
    chosen = []
    if 'TensorrtExecutionProvider' in available:
        trt = {'device_id': index, 'trt_engine_cache_enable': True}
        if cache is not None:
            trt['trt_engine_cache_path'] = str(cache / 'trt_cache')
        chosen.append(('TensorrtExecutionProvider', trt))
    return chosen + [('CUDAExecutionProvider', {'device_id': index}), 'CPUExecutionProvider']


class OrtNetworks:
    """The encoder, transformer, head step and decoder of one set of graphs, as ONNX Runtime sessions."""

    def __init__(self, directory: str | Path, model, device: str = 'cpu', threads: int | None = None):
        ort = import_onnxruntime()
        self.directory = Path(directory)
        manifest = read_manifest(self.directory)
        digest = weights_digest(model)
        if manifest.get('weights_sha256') != digest:
            raise OnnxGraphError(f'{self.directory}: these graphs were exported from other weights '
                                 f'({str(manifest.get("weights_sha256"))[:16]}, the model is {digest[:16]}); '
                                 f're-export them (camseg-export CHECKPOINT OUT --onnx) or remove them')
        self.model = model
        self.providers = choose_providers(device, self.directory)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        # Worker threads that spin between runs would take the cores from the PyTorch steps in between
        # (noise, scheduler loop, vote): they sleep instead.
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        options.log_severity_level = 3  # errors only
        self.sessions = {}
        for name, graph in manifest['graphs'].items():
            path = self.directory / graph['file']
            try:
                self.sessions[name] = ort.InferenceSession(str(path), options, providers=self.providers)
            except Exception as e:  # onnxruntime raises its own exception types for unreadable graphs
                raise OnnxGraphError(f'{path}: not a readable ONNX graph ({type(e).__name__}: '
                                     f'{str(e)[:200]}); re-export it with camseg-export --onnx') from None
        self.graphs = manifest['graphs']

    def _run(self, name: str, *inputs: torch.Tensor) -> torch.Tensor:
        feeds = {n: np.ascontiguousarray(x.detach().cpu().numpy())
                 for n, x in zip(self.graphs[name]['inputs'], inputs)}
        return torch.from_numpy(self.sessions[name].run(None, feeds)[0])

    def image_condition(self, images: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) in [-1, 1] -> image condition (N, L, C [+ P])."""
        return self._run('encoder', images.float())

    def one_pass(self, condition: torch.Tensor) -> torch.Tensor:
        """Image condition (B, L, C [+ P]) -> z (B, L, W), every mask token masked."""
        return self._run('transformer', condition.float())

    def velocity(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """One denoiser call: x (E*M, C), t (1,), z (M, D) -> v (E*M, C)."""
        return self._run('head_step', x.float(), t.long(), z.float())

    def sample_tokens(self, z: torch.Tensor, noise: torch.Tensor, sampler, samples: int = 1) -> torch.Tensor:
        """Run the head's own sampling loop with this denoiser: z (M, W), noise (S', E*M, C) -> (E*M, C)."""
        return self.model.head.sample(z, sampler.steps, sampler.scheduler, sampler.temperature, noise=noise,
                                      velocity=self.velocity, samples=samples)

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled mask latents (N, C, h, w) -> class logits (N, K+1, H, W) or maskige (N, 3, H, W)."""
        return self._run('decoder', latents.float())
