"""The one segmentation API.

Every caller (ROS node, evaluation, bag tools, benchmark, tests) uses `Segmenter`.
"""
from __future__ import annotations

import dataclasses
import gc
import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import build_model, load_pretrained
from .config import DEFAULT_EXPOSURE_FLOOR, RUNTIMES, SamplerConfig, check_exposure_floor, preset
from .device import PRECISIONS, resolve_device  # noqa: F401 (re-exported for callers)
from .imageops import check_image, check_labels, letterbox, letterbox_labels, restore
from .profiling import StageTimer

DEFAULT_MAX_PIXELS = 4096 * 4096


@dataclass
class Segmentation:
    """The result for one image, at the input resolution."""

    labels: np.ndarray  # (H, W) uint8 trainIds
    confidence: np.ndarray  # (H, W) float32 in [0, 1]


class Segmenter:
    """Segments RGB images into trainId maps with a per-pixel confidence.

    Build it with `from_pretrained(checkpoint_dir)` or `from_preset(name)` (random weights).

    `runtime='onnxruntime'` runs the encoder, transformer, head step and decoder as ONNX graphs in ONNX
    Runtime (`runtime_ort`; one pass only, fp32); `device` then picks its providers (cpu: CPU; cuda[:N] or
    auto with onnxruntime-gpu: TensorRT, CUDA, CPU) while the code between the calls runs on the CPU.
    `onnx_dir`: the graphs (exported there once if empty); default the checkpoint's onnx/ subfolder, else a
    cache directory (`runtime_ort.resolve_graphs`). `checkpoint`: the directory the model was loaded from
    (`from_pretrained` sets it).
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device = 'auto', precision: str = 'fp32',
                 max_pixels: int | None = None, name: str = '', graphs: bool = True,
                 exposure_floor: float = DEFAULT_EXPOSURE_FLOOR, runtime: str = 'torch',
                 onnx_dir: str | Path | None = None, checkpoint: str | Path | None = None, **sampler):
        if precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {sorted(PRECISIONS)}, got {precision!r}')
        if runtime not in RUNTIMES:
            raise ValueError(f'runtime must be one of {RUNTIMES}, got {runtime!r}')
        self.exposure_floor = check_exposure_floor(exposure_floor)
        self.runtime = runtime
        self.networks = None  # the network calls of the onnxruntime runtime (None: the model's own)
        if runtime == 'onnxruntime':
            model = self._attach_onnxruntime(model, device, precision, onnx_dir, checkpoint)
            device = 'cpu'  # tensors between the network calls; the graphs run on ONNX Runtime's providers
        self.device = resolve_device(device)
        self.precision = precision
        self.max_pixels = int(max_pixels or DEFAULT_MAX_PIXELS)
        if self.max_pixels <= 0:
            raise ValueError(f'max_pixels must be positive, got {max_pixels!r}')
        self.name = name or getattr(model.config, 'preset', model.model_type)
        # Convolution weights in NHWC (channels_last): oneDNN on the CPU and cuDNN's tensor-core kernels run
        # them faster (on a 2-core CPU the tiny autoencoder encoded and decoded about 1.3x faster).
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)
        if hasattr(self.model, 'capture_graphs'):  # CUDA graphs of the sampler (no effect on the CPU)
            self.model.capture_graphs = bool(graphs)
        self.config = model.config
        self.sampler = getattr(model.config, 'sampler', SamplerConfig())
        self.set_sampler(**sampler)
        self.profile = False
        self.last_timings: dict[str, float] = {}

    @classmethod
    def from_pretrained(cls, path: str | Path, **options) -> 'Segmenter':
        """Load a checkpoint directory (config.json + model.safetensors); see `__init__` for the options."""
        model, _ = load_pretrained(path)
        directory = Path(path) if Path(path).is_dir() else Path(path).parent
        return cls(model, name=options.pop('name', directory.name), checkpoint=directory, **options)

    @classmethod
    def from_preset(cls, name: str, seed: int = 0, **options) -> 'Segmenter':
        """Build a randomly initialised model of a named preset (tests, benchmarks)."""
        with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
            torch.manual_seed(seed)
            model = build_model('camseg', preset(name).to_dict())
        return cls(model, name=options.pop('name', name), **options)

    def set_sampler(self, **changes) -> SamplerConfig:
        """Change sampler settings (num_iter, steps, scheduler, temperature, ensemble, seed).

        Invalid values raise ValueError and keep the old settings.
        """
        unknown = set(changes) - {f.name for f in dataclasses.fields(SamplerConfig)}
        if unknown:
            raise ValueError(f'unknown sampler settings: {sorted(unknown)}')
        candidate = dataclasses.replace(self.sampler, **changes)
        candidate.validate()
        if self.networks is not None and candidate.num_iter != 1:
            raise ValueError(f'runtime {self.runtime!r} predicts in one pass: num_iter must be 1, '
                             f'got {candidate.num_iter}')
        self.sampler = candidate
        return candidate

    @torch.inference_mode()
    def segment(self, images):
        """Segment one HxWx3 uint8 RGB array (-> Segmentation) or a batch (list or NxHxWx3 -> list).

        With a fixed seed an image gives the same result whether it is segmented alone or in a batch with
        other images (each ensemble member draws from its own stream of the seed, whatever the batch).
        """
        if self.model is None:
            raise RuntimeError('this Segmenter was closed; build a new one')
        single = isinstance(images, np.ndarray) and images.ndim == 3
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        batch = [images] if single else list(images)
        if not batch:
            raise ValueError('empty batch: no images given')
        batch = [check_image(im, i, self.max_pixels) for i, im in enumerate(batch)]
        timer = StageTimer(self.profile, self.device)
        seed = self.sampler.seed if self.sampler.seed is not None else secrets.randbits(31)
        generator = torch.Generator(self.device).manual_seed(seed)
        with timer('preprocess'):
            x, placements = letterbox(batch, self.config.image_size, self.device, self.exposure_floor)
        with self._autocast():
            extra = {} if self.networks is None else {'networks': self.networks}
            ids, conf = self.model.predict(x, self.sampler, generator, timer, **extra)
        with timer('postprocess'):
            results = [Segmentation(*restore(ids[i], conf[i], p)) for i, p in enumerate(placements)]
        self.last_timings = dict(timer.seconds)
        return results[0] if single else results

    def _attach_onnxruntime(self, model, device, precision, onnx_dir, checkpoint):
        """Load the ONNX Runtime networks of `model` into self.networks; return the model, fp32, CPU."""
        from .runtime_ort import OrtNetworks, import_onnxruntime, resolve_graphs
        import_onnxruntime()  # a clear ImportError before any export
        if not hasattr(model, 'one_pass'):
            raise ValueError(f"runtime 'onnxruntime' runs CAM-Seg models only, not {model.model_type!r}")
        if precision != 'fp32':
            raise ValueError(f"runtime 'onnxruntime' runs the fp32 graphs; precision must be fp32, "
                             f'got {precision!r}')
        model = model.float().cpu().eval()
        self.networks = OrtNetworks(resolve_graphs(model, checkpoint, onnx_dir), model, str(device))
        return model

    def _autocast(self):
        """Return the autocast context of this Segmenter's precision (off for fp32)."""
        return torch.autocast(self.device.type, dtype=PRECISIONS[self.precision],
                              enabled=self.precision != 'fp32')

    @property
    def has_mask_autoencoder(self) -> bool:
        """Tell whether masks pass through an autoencoder (CAM-Seg; the baseline has none)."""
        return hasattr(self.model, 'reconstruct_mask')

    @torch.inference_mode()
    def autoencode_labels(self, labels) -> list[Segmentation]:
        """Pass ground-truth trainId maps through the mask autoencoder and back (the autoencoder ceiling).

        Each (H, W) map (255 = ignore) is letterboxed to the processing size by nearest neighbour (ignore
        padding), drawn as a maskige, encoded, decoded to classes exactly as predictions are, and restored
        to its input size like a prediction. No generator can segment better than this. Raises ValueError
        for a model without a mask autoencoder (the baseline).
        """
        if not self.has_mask_autoencoder:
            raise ValueError(f'model {self.name!r} ({self.model.model_type}) has no mask autoencoder')
        x, placements = self._letterbox_labels(labels)  # (N, H, W) uint8
        with self._autocast():
            ids, conf = self.model.reconstruct_mask(x)
        return [Segmentation(*restore(ids[i], conf[i], p)) for i, p in enumerate(placements)]

    @torch.inference_mode()
    def resize_labels(self, labels) -> list[Segmentation]:
        """Resize trainId maps to the processing size and back (the resolution ceiling).

        Each map is letterboxed by nearest neighbour and restored to its input size the way predictions are;
        the confidence is 1.
        """
        x, placements = self._letterbox_labels(labels)
        conf = torch.ones(x.shape, device=self.device)
        return [Segmentation(*restore(x[i], conf[i], p)) for i, p in enumerate(placements)]

    def _letterbox_labels(self, labels):
        if self.model is None:
            raise RuntimeError('this Segmenter was closed; build a new one')
        batch = list(labels) if not (isinstance(labels, np.ndarray) and labels.ndim == 2) else [labels]
        if not batch:
            raise ValueError('empty batch: no label maps given')
        batch = [check_labels(lab, i, self.max_pixels) for i, lab in enumerate(batch)]
        return letterbox_labels(batch, self.config.image_size, self.device)

    def close(self) -> None:
        """Drop the model (and ONNX Runtime sessions) and free its (GPU) memory."""
        self.model = self.networks = None
        gc.collect()
        if self.device.type == 'cuda':
            torch.cuda.empty_cache()


def load_segmenter(path: str | Path | None = None, **options) -> Segmenter:
    """`Segmenter.from_pretrained` of `path`, or of the shipped demo model when `path` is empty."""
    from .assets import resolve_checkpoint
    return Segmenter.from_pretrained(resolve_checkpoint(path), **options)
