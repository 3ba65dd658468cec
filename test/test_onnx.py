"""ONNX export and the onnxruntime runtime: agreement with PyTorch, dynamic batch, the CLI, bad graphs."""
import json
import sys

import numpy as np
import pytest
import torch

from camseg_core.api import Segmenter, load_segmenter
from camseg_core.assets import resolve_checkpoint
from camseg_core.checkpoint import load_pretrained
from camseg_core.cli import export
from camseg_core.data.synth import SceneConfig, render_scene
from camseg_core.models.diffusion_head import timestep_embedding
from camseg_core.onnx_export import MANIFEST, OnnxGraphError, export_onnx

ort = pytest.importorskip('onnxruntime', reason='onnxruntime not installed (pip install -e .[onnx])')
pytest.importorskip('onnx', reason='onnx not installed (pip install -e .[onnx])')


@pytest.fixture(scope='module')
def demo_graphs(tmp_path_factory):
    """Export the shipped demo model's graphs once, with the library call."""
    model, _ = load_pretrained(resolve_checkpoint(None))
    return export_onnx(model, tmp_path_factory.mktemp('onnx') / 'demo')


@pytest.fixture(scope='module')
def scenes():
    rng = np.random.default_rng(11)
    return [render_scene(rng, SceneConfig(height=180, width=320)).image for _ in range(3)]


@pytest.mark.parametrize('changes', [dict(), dict(ensemble=1, steps=4)])
def test_onnxruntime_agrees_with_torch_on_the_demo_model(demo_graphs, scenes, changes):
    """Same noise (same seed and streams): labels equal on >= 99.5 % of pixels, confidences close."""
    torch_seg = load_segmenter(device='cpu', **changes)
    ort_seg = load_segmenter(device='cpu', runtime='onnxruntime', onnx_dir=demo_graphs, **changes)
    assert ort_seg.runtime == 'onnxruntime' and ort_seg.networks.providers == ['CPUExecutionProvider']
    a, b = torch_seg.segment(scenes), ort_seg.segment(scenes)
    for x, y in zip(a, b):
        assert np.mean(x.labels == y.labels) >= 0.995
        assert np.abs(x.confidence - y.confidence).max() < 1e-2


def test_graphs_take_any_batch(demo_graphs):
    model, _ = load_pretrained(resolve_checkpoint(None))
    seg = Segmenter(model, device='cpu', runtime='onnxruntime', onnx_dir=demo_graphs)
    nets, (h, w) = seg.networks, model.config.image_size
    for n in (1, 3):
        images = torch.rand(n, 3, h, w) * 2 - 1
        cond = nets.image_condition(images)
        torch.testing.assert_close(cond, model.image_condition(images), rtol=1e-3, atol=1e-3)
        z = nets.one_pass(cond)
        torch.testing.assert_close(z, model.one_pass(cond), rtol=1e-3, atol=1e-3)
        x = torch.randn(2 * z.shape[0] * z.shape[1], model.config.autoencoder.latent_channels)
        flat = z.reshape(-1, z.shape[-1])
        v = nets.velocity(x, torch.tensor([500]), flat)  # two samples per condition
        c = model.head.time_embed(timestep_embedding(torch.tensor([500]), model.head.config.width))
        torch.testing.assert_close(v, model.head.denoise(x, c + model.head.cond_embed(flat)), rtol=1e-3,
                                   atol=1e-3)
        latents = torch.randn(n, model.config.autoencoder.latent_channels, *model.grid)
        torch.testing.assert_close(nets.decode_latents(latents), model.decode_latents(latents), rtol=1e-3,
                                   atol=1e-3)


def test_export_cli_round_trip(tmp_path, tiny_checkpoint, rng):
    out = tmp_path / 'shipped'
    assert export.main([str(tiny_checkpoint), str(out), '--ensemble', '3', '--temperature', '0.7',
                        '--steps', '2', '--onnx']) == 0
    manifest = json.loads((out / 'onnx' / MANIFEST).read_text())
    assert manifest['sampler']['ensemble'] == 3 and manifest['sampler']['steps'] == 2
    assert json.loads((out / 'config.json').read_text())['config']['sampler']['temperature'] == 0.7
    seg = Segmenter.from_pretrained(out, device='cpu', runtime='onnxruntime')  # finds out/onnx itself
    assert seg.networks.directory == out / 'onnx'
    ref = Segmenter.from_pretrained(out, device='cpu')
    img = rng.integers(0, 256, (70, 130, 3), dtype=np.uint8)
    assert np.mean(seg.segment(img).labels == ref.segment(img).labels) >= 0.995
    with pytest.raises(ValueError, match='num_iter must be 1'):
        seg.set_sampler(num_iter=2)
    assert export.main([str(tiny_checkpoint), str(tmp_path / 'other'), '--onnx', str(tmp_path / 'g')]) == 0
    assert (tmp_path / 'g' / 'decoder.onnx').is_file() and not (tmp_path / 'other' / 'onnx').exists()
    with pytest.raises(SystemExit) as bad:
        export.main([str(tiny_checkpoint), str(tmp_path / 'bad'), '--ensemble', '0'])
    assert bad.value.code == 2 and not (tmp_path / 'bad').exists()


def test_graphs_are_exported_once_into_the_cache(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.setenv('CAMSEG_CACHE', str(tmp_path / 'cache'))
    seg = Segmenter.from_pretrained(tiny_checkpoint, device='cpu', runtime='onnxruntime')
    graphs = seg.networks.directory
    assert graphs.parent == tmp_path / 'cache' / 'onnx' and (graphs / MANIFEST).is_file()
    stamp = (graphs / 'encoder.onnx').stat().st_mtime_ns
    again = Segmenter.from_pretrained(tiny_checkpoint, device='cpu', runtime='onnxruntime')
    assert again.networks.directory == graphs and (graphs / 'encoder.onnx').stat().st_mtime_ns == stamp


def test_bad_graphs_give_clear_errors(tmp_path, tiny_checkpoint, demo_graphs):
    model, _ = load_pretrained(tiny_checkpoint)
    with pytest.raises(OnnxGraphError, match='exported from other weights'):
        Segmenter(model, device='cpu', runtime='onnxruntime', onnx_dir=demo_graphs)
    graphs = export_onnx(model, tmp_path / 'g')
    (graphs / 'transformer.onnx').write_bytes(b'not a graph')
    with pytest.raises(OnnxGraphError, match='transformer.onnx: not a readable ONNX graph'):
        Segmenter(model, device='cpu', runtime='onnxruntime', onnx_dir=graphs)
    (graphs / 'transformer.onnx').unlink()
    with pytest.raises(OnnxGraphError, match='transformer graph is missing'):
        Segmenter(model, device='cpu', runtime='onnxruntime', onnx_dir=graphs)
    (graphs / MANIFEST).write_text('{')
    with pytest.raises(OnnxGraphError, match='not valid JSON'):
        Segmenter(model, device='cpu', runtime='onnxruntime', onnx_dir=graphs)
    with pytest.raises(ValueError, match='fp32'):
        Segmenter(model, device='cpu', runtime='onnxruntime', precision='bf16', onnx_dir=graphs)
    with pytest.raises(ValueError, match='runtime must be one of'):
        Segmenter(model, device='cpu', runtime='tensorflow')


def test_missing_onnxruntime_is_named(tiny_checkpoint, monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # what `import onnxruntime` meets without it
    with pytest.raises(ImportError, match='pip install onnxruntime'):
        Segmenter.from_pretrained(tiny_checkpoint, device='cpu', runtime='onnxruntime')
