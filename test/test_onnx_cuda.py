"""onnxruntime on a GPU (marker `cuda`): the CUDA and TensorRT providers agree with PyTorch.

Skips with a reason without CUDA, without onnxruntime-gpu's CUDA provider, or (TensorRT) without its
provider. Run on a GPU machine with `python -m pytest -m cuda test/test_onnx_cuda.py`.
"""
import numpy as np
import pytest
import torch

from camseg_core.api import load_segmenter
from camseg_core.data.synth import SceneConfig, render_scene

ort = pytest.importorskip('onnxruntime', reason='onnxruntime not installed (pip install -e .[onnx])')
pytest.importorskip('onnx', reason='onnx not installed (pip install -e .[onnx])')
PROVIDERS = ort.get_available_providers()

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device'),
              pytest.mark.skipif('CUDAExecutionProvider' not in PROVIDERS,
                                 reason='needs onnxruntime-gpu (no CUDAExecutionProvider)')]


@pytest.mark.parametrize('provider', ['CUDAExecutionProvider', 'TensorrtExecutionProvider'])
def test_gpu_providers_agree_with_torch(tmp_path, provider):
    if provider not in PROVIDERS:
        pytest.skip(f'this onnxruntime has no {provider}')
    rng = np.random.default_rng(0)
    images = [render_scene(rng, SceneConfig(height=360, width=640)).image for _ in range(2)]
    reference = load_segmenter(device='cuda', steps=4, ensemble=2).segment(images)
    seg = load_segmenter(device='cuda', runtime='onnxruntime', onnx_dir=tmp_path / 'g', steps=4, ensemble=2)
    names = [p if isinstance(p, str) else p[0] for p in seg.networks.providers]
    assert provider in names and names[-1] == 'CPUExecutionProvider'
    assert provider in seg.networks.sessions['head_step'].get_providers()
    out = seg.segment(images)
    assert np.mean([np.mean(a.labels == b.labels) for a, b in zip(out, reference)]) >= 0.995
